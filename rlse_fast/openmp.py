"""How PyTorch's OpenMP threads wait, chosen before torch loads.

libgomp's default lets an idle thread spin for about 300,000 iterations before it sleeps. On a CPU
that another process also uses, a spinning thread holds a core that the thread it waits for needs,
and every parallel region (hundreds per optimisation step on small faces) then waits for a time
slice: a 64 px run became 5-23x slower beside one other 2-thread process. With OMP_WAIT_POLICY=PASSIVE
idle threads sleep at once; alone the run costs about the same (docs/cpu-contention.md measures both).
libgomp reads the variable once, when it is loaded, so this must run before `import torch`.
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
