"""Convolutions with a weight of their own per face (per-face fine-tuned generators).

`perface_conv2d(x, w, stride, padding, transposed)` is, face by face, F.conv2d(x[b], w[b]) (or
F.conv_transpose2d for transposed=True). `_perface_conv2d_ref` computes it as the networks always
have: one grouped convolution with the faces folded into the channels (groups = faces), which
cuDNN runs with NCHW<->NHWC transposes around it; it is the definition of correctness. The Triton
implementation (`triton_perface_conv.py`) is one implicit GEMM over every face in NHWC.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from . import dispatch

ENV = "RLSE_PERFACE_CONV"
"""Set to 'triton' to let impl='auto' take the Triton per-face convolution on CUDA tensors (and on
CPU tensors under the Triton interpreter, TRITON_INTERPRET=1: for tests). Off by
default: whether it beats cuDNN's grouped conv is for a GPU measurement to say
(`benchmarks/bench_conv_layouts.py`, layout triton-perface-nhwc; docs/kernels-perface-conv.md)."""


def auto_enabled() -> bool:
    return os.environ.get(ENV, "") == "triton"


def _perface_conv2d_ref(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int | tuple[int, int] = 0,
                        transposed: bool = False) -> torch.Tensor:
    """The grouped-conv reference, exactly the call `conv2d_resample` makes for grouped weights."""
    batch = x.shape[0]
    if w.ndim == 4:
        w = w.unsqueeze(0).expand(batch, *w.shape)
    xg = x.reshape(1, -1, *x.shape[2:])
    wg = w.reshape(-1, *w.shape[2:])
    if transposed:
        y = F.conv_transpose2d(xg, wg, stride=stride, padding=padding, groups=batch)
    else:
        y = F.conv2d(xg, wg, stride=stride, padding=padding, groups=batch)
    return y.reshape(batch, -1, *y.shape[2:])


def pads(padding: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """(top/bottom, left/right) padding from an int or a pair, as F.conv2d takes it."""
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return int(ph), int(pw)


def check(x: torch.Tensor, w: torch.Tensor, stride: int, padding, transposed: bool) -> None:
    if x.ndim != 4:
        raise ValueError(f"x must be (B, C_in, H, W), got shape {tuple(x.shape)}")
    if w.ndim not in (4, 5):
        raise ValueError(f"w must be (B, ., ., kh, kw) per face or (., ., kh, kw) shared, got shape {tuple(w.shape)}")
    if w.ndim == 5 and w.shape[0] != x.shape[0]:
        raise ValueError(f"a per-face weight must have x's batch {x.shape[0]}, got {w.shape[0]}")
    cin = w.shape[-4] if transposed else w.shape[-3]
    if cin != x.shape[1]:
        layout = "(B, C_in, C_out, kh, kw)" if transposed else "(B, C_out, C_in, kh, kw)"
        raise ValueError(f"w {tuple(w.shape)} is {layout} and must have C_in = x's {x.shape[1]} channels")
    ph, pw = pads(padding)
    if int(stride) < 1 or min(ph, pw) < 0:
        raise ValueError(f"stride must be >= 1 and padding >= 0, got {stride}, {padding}")
    size = [(n - 1) * stride - 2 * p + k if transposed else (n + 2 * p - k) // stride + 1
            for n, p, k in zip(x.shape[2:], (ph, pw), w.shape[-2:])]
    if min(size) < 1:
        raise ValueError(f"a {tuple(x.shape[2:])} input with a {tuple(w.shape[-2:])} kernel, stride {stride} and "
                         f"padding {padding} has an empty output")


def perface_conv2d(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int | tuple[int, int] = 0,
                   transposed: bool = False, impl: str = "auto") -> torch.Tensor:
    """Per-face 2-D convolution, differentiable w.r.t. x and w.

    x: (B, C_in, H, W), NCHW or channels-last. w: (B, C_out, C_in, kh, kw), one weight per face (or
    (C_out, C_in, kh, kw) shared); transposed=True: w (B, C_in, C_out, kh, kw), PyTorch's
    conv_transpose2d layout, and the result is conv_transpose2d's (output height (H - 1) * stride -
    2 * padding + kh). padding: an int or (top/bottom, left/right). Correlation, as F.conv2d.
    Returns (B, C_out, OH, OW) in x's memory layout.
    impl: 'auto' (the reference, unless RLSE_PERFACE_CONV=triton), 'ref' or 'triton'.
    """
    check(x, w, stride, padding, transposed)
    fn = dispatch.pick("perface_conv2d", impl, x)
    if fn is None:
        return _perface_conv2d_ref(x, w, stride, padding, transposed)
    return fn(x, w, int(stride), pads(padding), bool(transposed))


def chosen(x: torch.Tensor) -> bool:
    """Whether impl='auto' runs a native per-face convolution for activations like x (the networks
    then hand it their per-face weights instead of folding the faces into a grouped conv). Inside
    `dispatch.using(impl)` where impl cannot take x (a float64 x under 'triton'), the grouped conv."""
    try:
        return dispatch.pick("perface_conv2d", "auto", x) is not None
    except RuntimeError:
        return False
