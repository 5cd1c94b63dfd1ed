"""Every Triton kernel compiles for Hopper (sm_90) without a GPU, spilling no registers to local
memory in the variants the GPU runs (tests/triton_sm90.py does the compiling, in a subprocess:
this test session decorates the kernels for the interpreter)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

SCRIPT = Path(__file__).resolve().parent / "triton_sm90.py"


def test_triton_kernels_compile_for_sm90():
    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"this triton cannot compile ahead of time: {exc}")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    res = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=600, env=env,
                         cwd=SCRIPT.parent.parent)
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert rows, f"no variant compiled:\n{res.stderr[-3000:]}"
    failed = [r for r in rows if not r["ok"]]
    assert not failed and res.returncode == 0, "\n".join(f"{r['kernel']}: {r.get('error')}" for r in failed)
    names = {r["kernel"].split()[0] for r in rows}
    assert names == {"adain_tile_stats", "adain_forward", "adain_backward_sums", "adain_backward", "bias_act",
                     "downsample_diff", "downsample_loss_backward", "modulate", "modulate_backward",
                     "fir_act_forward", "fir_act_backward",
                     "perface_forward", "perface_convt", "perface_wgrad", "perface_act_forward", "perface_act_grad"}
    for r in rows:
        if "local" in r:  # cuobjdump read the cubin
            assert r["local"] == 0, r
            if "fp64" not in r["kernel"]:  # float64 is for gradcheck only
                assert r["stack"] == 0, r
