"""How PyTorch's OpenMP threads wait, chosen before torch loads.

libgomp (PyTorch's OpenMP, which this package's C++ kernels share) lets an idle thread spin up to
300,000 times before it sleeps (forever with OMP_WAIT_POLICY=ACTIVE). A small face's optimisation
step is hundreds of short parallel regions; on a CPU another process also uses, a spinning thread
holds a core that the thread it waits for needs, and the run can slow down by far more than its lost
share of the cores. With OMP_WAIT_POLICY=PASSIVE idle threads sleep at once: measured faster both
alone and beside a 2-thread load (docs/cpu-contention.md). libgomp reads the variable once, when it
is loaded, so this must run before `import torch`.
"""
from __future__ import annotations

import os
import sys


def prefer_passive_wait() -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user chose a policy (or a spin count) or torch is
    already loaded (then it is too late to matter). Returns whether the policy is now passive."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ and "torch" not in sys.modules:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
