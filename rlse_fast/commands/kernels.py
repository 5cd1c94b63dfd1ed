"""`rlse-fast kernels`: which kernel implementations this installation has and what 'auto' runs."""
from __future__ import annotations

import json
import os
import platform

import torch

from ..ops import dispatch


def register(sub) -> None:
    p = sub.add_parser("kernels", help="show the built kernels and what --impl auto picks",
                       description="Show which kernel implementations (cpp, cuda, triton) this installation "
                                   "has, why any is missing, the CPU kernels' instruction set, and the "
                                   "implementation --impl auto takes per device and dtype.")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def describe() -> dict:
    info = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "machine": platform.machine(),
            "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "cpu_isa": None, "cpu_isas": []}
    try:
        from .. import _C
    except ImportError:
        pass
    else:
        info["cpu_isa"], info["cpu_isas"] = _C.cpu_isa(), list(_C.cpu_isas())
    info.update(dispatch.report())
    return info


def run(args) -> int:
    info = describe()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"torch:      {info['torch']} (CUDA {info['torch_cuda'] or 'none: CPU build'})")
    print(f"GPU:        {info['cuda_device'] or 'none visible'}")
    isa = info["cpu_isa"]
    print(f"CPU build:  {isa + ' (of ' + ', '.join(info['cpu_isas']) + ')' if isa else 'none'}")
    for impl, state in info["impls"].items():
        if impl == "triton" and state == "available" and not info["cuda_device"]:
            state = ("available under its interpreter (TRITON_INTERPRET=1: slow, for tests)" if _interpreted()
                     else "installed; runs on a GPU only (on a CPU only under its interpreter, TRITON_INTERPRET=1)")
        print(f"{impl + ':':11s} {state}")
    for device, rows in info["auto"].items():
        for dtype, row in rows.items():
            picks = ", ".join(f"{op} {impl}" for op, impl in row.items())
            print(f"auto on {device} {dtype}: {picks}")
    return 0


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
