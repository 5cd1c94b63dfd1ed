"""The CUDA kernels (extension `rlse_fast._cuda`, csrc/cuda/) registered as impl 'cuda'.

Importing this module raises ImportError when the extension is not built (a CPU build of torch,
or no nvcc at install time); `dispatch._load_natives` then records 'cuda' as unavailable.

`rlse_fast._cuda` exposes the four functions of the CPU extension with the same signatures
(csrc/cuda/bindings_cuda.cpp mirrors csrc/bindings_cpu.cpp), so the autograd Functions are the
ones of `cpp_ops.native_impls`: every backward runs the same extension (bias_act with grad=1,
upfirdn2d with up/down swapped and the filter flipped, downsample_loss's transpose kernel).
"""
from __future__ import annotations

import torch

from . import dispatch
from .cpp_ops import native_impls

try:
    from .. import _cuda
except ImportError as _exc:
    if not torch.version.cuda:
        _why = f"torch {torch.__version__} is a CPU build, so the CUDA extension rlse_fast._cuda was not built"
    else:
        _why = ("the CUDA extension rlse_fast._cuda is not built or does not load "
                f"({_exc}); reinstall with CUDA_HOME pointing at nvcc's CUDA: `pip install --no-build-isolation .`")
    raise ImportError(_why) from _exc

# 'auto' tries the lowest rank first: CUDA kernels before the Triton ones on a GPU tensor.
RANK = 0

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def usable(x: torch.Tensor) -> bool:
    """The kernels take CUDA tensors of the four float dtypes."""
    return isinstance(x, torch.Tensor) and x.is_cuda and x.dtype in DTYPES


IMPLS = native_impls(_cuda)
bias_act = IMPLS["bias_act"]
upfirdn2d = IMPLS["upfirdn2d"]
downsample_loss = IMPLS["downsample_loss"]

for _op, _fn in IMPLS.items():
    dispatch.register(_op, "cuda", _fn, usable, RANK)
