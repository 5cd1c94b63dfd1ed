"""The CUDA kernels (csrc/cuda/) on machines without a GPU, and the two backends their tests run.

- 'emulated': the very same kernel sources compiled by g++ against csrc/cuda/emulation/emu.h (a CPU
  thread per CUDA thread, real barriers), behind `EmulatedCuda`, a Python mirror of
  csrc/cuda/bindings_cuda.cpp, so that the kernels' index logic, tiling and reductions are tested
  without a GPU;
- 'cuda': the built extension rlse_fast._cuda on a GPU (skipped without one, or without the build).
Both go through `cpp_ops.native_impls`, the autograd layer that `cuda_ops` registers. Used by
tests/test_ops_cuda.py (bias_act, upfirdn2d) and tests/test_ops_cuda_loss.py (downsample_loss).
"""
from __future__ import annotations

import ctypes
import hashlib
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from rlse_fast.ops.cpp_ops import native_impls

ROOT = Path(__file__).resolve().parents[1]
CUDA_SRC = ROOT / "csrc" / "cuda"
LOW = [torch.float16, torch.bfloat16]
DTYPE_CODE = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
BACKENDS = ["emulated", "cuda"]


def build_emulation() -> Path:
    """Compile the kernel sources for the host once per source version (cached under build/)."""
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None:
        pytest.skip("no C++ compiler (g++) to build the CUDA emulation")
    from torch.utils.cpp_extension import include_paths

    sources = sorted(CUDA_SRC.glob("*.cu")) + [CUDA_SRC / "emulation" / "capi.cpp"]
    headers = sorted(CUDA_SRC.glob("*.cuh")) + [CUDA_SRC / "emulation" / "emu.h"]
    headers += sorted((ROOT / "csrc" / "common").glob("*.h"))
    cmd = [cxx, "-std=c++17", "-O1", "-fPIC", "-shared", "-pthread", "-Wno-unknown-pragmas",
           "-DRLSE_CUDA_EMULATION", f"-I{include_paths()[0]}", f"-I{ROOT / 'csrc' / 'common'}", "-x", "c++"]
    digest = hashlib.sha256(" ".join(cmd).encode() + torch.__version__.encode())
    for path in sources + headers:
        digest.update(path.read_bytes())
    out = ROOT / "build" / "cuda-emulation" / f"emu-{digest.hexdigest()[:16]}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        res = subprocess.run(cmd + [str(s) for s in sources] + ["-o", str(tmp)], capture_output=True, text=True)
        if res.returncode != 0:
            pytest.fail(f"building the CUDA emulation failed:\n{res.stderr[-4000:]}")
        os.replace(tmp, out)
    return out


def _ptr(t: torch.Tensor | None):
    return ctypes.c_void_p(t.data_ptr()) if t is not None and t.numel() else None


class EmulatedCuda:
    """The four functions of rlse_fast._cuda over CPU tensors, mirroring bindings_cuda.cpp."""

    def __init__(self, path: Path):
        lib = ctypes.CDLL(str(path))
        P, I, L, D = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_double
        lib.rlse_emu_error.restype = ctypes.c_char_p
        lib.rlse_emu_bias_act.argtypes = [I, P, P, P, P, P, P, I, I, D, D, D, L, L, L]
        lib.rlse_emu_upfirdn2d.argtypes = [I, P, P, P] + [I] * 10 + [D, L] + [I] * 6 + [L]
        lib.rlse_emu_downsample_loss.argtypes = [I, I, P, P, P, P, P, P, P] + [I] * 9
        lib.rlse_emu_force_index64.argtypes = [I]
        self.lib = lib

    def _check(self, rc):
        if rc:
            raise RuntimeError(self.lib.rlse_emu_error().decode())

    def bias_act(self, x, b, xref, yref, grad, dim, act, alpha, gain, clamp, db=None):
        # The bindings' preconditions that keep the kernel's pointers valid.
        assert x.is_contiguous() and all(t.numel() in (0, x.numel()) for t in (xref, yref))
        assert grad == 0 or act == 1 or xref.numel() or yref.numel(), "relu/lrelu gradient needs xref or yref"
        assert grad == 0 or clamp < 0 or xref.numel(), "the gradient with a clamp needs xref"
        y = torch.empty_like(x, memory_format=torch.contiguous_format)
        if x.numel() == 0:
            return y
        step = math.prod(x.shape[dim + 1:]) if b.numel() else 1
        self._check(self.lib.rlse_emu_bias_act(
            DTYPE_CODE[x.dtype], _ptr(x), _ptr(b), _ptr(xref), _ptr(yref), _ptr(y), _ptr(db), grad, act, alpha,
            gain, clamp, x.numel(), b.numel() or 1, step))
        return y

    def bias_act_backward(self, dy, b, xref, yref, dim, act, alpha, gain, clamp, need_db):
        if not need_db:
            return self.bias_act(dy, b, xref, yref, 1, dim, act, alpha, gain, clamp), None
        dims = [i for i in range(dy.ndim) if i != dim]
        acc = torch.float64 if dy.dtype == torch.float64 else torch.float32
        if math.prod(dy.shape[dim + 1:]) == 1:  # as the bindings: ATen sums a bias along the innermost dim
            dx = self.bias_act(dy, b, xref, yref, 1, dim, act, alpha, gain, clamp)
            return dx, dx.sum(dims, dtype=acc).to(b.dtype)
        # The bindings use the fused kernel from 128 channels on; here always, to test it.
        db = torch.full([b.numel()], float("nan"), dtype=acc)
        dx = self.bias_act(dy, b, xref, yref, 1, dim, act, alpha, gain, clamp, db=db)
        return dx, db.to(b.dtype)

    def upfirdn2d(self, x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain):
        # As the CUDA bindings: NCHW, or channels-last in and out (the NHWC kernel).
        nhwc = not x.is_contiguous()
        assert (not nhwc or x.is_contiguous(memory_format=torch.channels_last)) and f.is_contiguous()
        fw, fh = f.shape[-1], f.shape[0]
        out_h = (x.shape[2] * upy + pady0 + pady1 - fh) // downy + 1
        out_w = (x.shape[3] * upx + padx0 + padx1 - fw) // downx + 1
        fmt = torch.channels_last if nhwc else torch.contiguous_format
        y = torch.empty([x.shape[0], x.shape[1], out_h, out_w], dtype=x.dtype).contiguous(memory_format=fmt)
        self._check(self.lib.rlse_emu_upfirdn2d(
            DTYPE_CODE[x.dtype], _ptr(x), _ptr(f), _ptr(y), upx, upy, downx, downy, padx0, padx1, pady0, pady1,
            int(flip), int(f.ndim == 1), gain, x.shape[0] * x.shape[1], x.shape[2], x.shape[3], out_h, out_w,
            fh, fw, x.shape[1] if nhwc else 0))
        return y

    def downsample_loss(self, y, x, taps, factor, pad0, keep_diff):
        acc = torch.float64 if y.dtype == torch.float64 else torch.float32
        B, C, H, W = y.shape
        loss = torch.zeros([B], dtype=acc)
        diff = torch.empty([B, C, H // factor, W // factor], dtype=acc)
        self._check(self.lib.rlse_emu_downsample_loss(
            DTYPE_CODE[y.dtype], 0, _ptr(y), _ptr(x), _ptr(taps), _ptr(loss), _ptr(diff), None, None,
            B, C, H, W, H // factor, W // factor, factor, taps.numel(), pad0))
        return loss, diff if keep_diff else torch.empty([0], dtype=acc)

    def downsample_loss_backward(self, diff, gloss, taps, factor, pad0, H, W, dtype):
        B, C = diff.shape[:2]
        dy = torch.empty([B, C, H, W], dtype=dtype)
        self._check(self.lib.rlse_emu_downsample_loss(
            DTYPE_CODE[dtype], 1, None, None, _ptr(taps), None, _ptr(diff), _ptr(gloss), _ptr(dy),
            B, C, H, W, H // factor, W // factor, factor, taps.numel(), pad0))
        return dy


def cuda_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device"
    try:
        import rlse_fast._cuda  # noqa: F401
    except ImportError as exc:
        return f"rlse_fast._cuda is not built ({exc})"
    return None


def backend_impls(name: str):
    """(op functions, device) of the backend `name` (one of BACKENDS); skips 'cuda' where it cannot run."""
    if name == "cuda":
        reason = cuda_reason()
        if reason:
            pytest.skip(reason)
        from rlse_fast.ops import cuda_ops

        return cuda_ops.IMPLS, torch.device("cuda")
    return native_impls(EmulatedCuda(build_emulation())), torch.device("cpu")


def rand(*shape, device, dtype=torch.float32, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device=device, dtype=dtype)
