"""rlse_fast.memory: with keep_freed_memory(), the large temporaries of repeated ops reuse memory the
process already has, instead of page-faulting fresh memory in on every call (glibc only)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the setting is glibc's malloc")

# Rounds of the ops an iteration repeats (the reference's temporaries and the output, 8 MB each);
# prints whether the setting is on and the page faults of each round.
CODE = """
import resource, torch
from rlse_fast.memory import keep_freed_memory
from rlse_fast.ops import setup_filter, upsample2d
on = keep_freed_memory()
torch.set_num_threads(1)
x, f = torch.randn(4, 128, 64, 64), setup_filter([1, 3, 3, 1])
faults = []
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = upsample2d(x, f, impl="ref")
    del y
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(on, *faults)
"""


def _run(keep: str) -> tuple[bool, list[int]]:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "RLSE_KEEP_MEMORY": keep})
    assert out.returncode == 0, out.stderr
    on, *faults = out.stdout.split()
    return on == "True", [int(v) for v in faults]


def test_freed_memory_is_reused():
    on, kept = _run("1")
    off, default = _run("0")
    assert on and not off
    output_pages = 4 * 128 * 128 * 128 * 4 // os.sysconf("SC_PAGE_SIZE")
    assert min(default[-5:]) > output_pages  # glibc's default: every round faults its memory in again
    # Kept: the steady state reuses the memory (a round that grows the heap once may still fault).
    assert sorted(kept[-5:])[2] < output_pages // 50


def test_cli_applies_it():
    code = ("import rlse_fast.memory as m, rlse_fast.cli as c; c.main(['kernels', '--json']); "
            "import sys; print(m._done, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stderr.strip().endswith("True"), out.stderr
