"""The data term of L_p: per-sample squared error between the downscaled image and the target.

`downsample_loss(y, x, factor)` = sum over (C, h, w) of (down_factor(y) - x)^2, where down_factor is
PULSE's bicubic downscaler (rlse_fast/downsample.py). The native kernels fuse the downscale and the
reduction in one pass, never storing the downscaled image. `_downsample_loss_ref` is the definition
of correctness.
"""
from __future__ import annotations

import torch

from ..downsample import bicubic_downsample_ref, check_factor
from . import dispatch


def _loss_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _downsample_loss_ref(y: torch.Tensor, x: torch.Tensor, factor: int, taps: torch.Tensor | None = None) -> torch.Tensor:
    """Plain-PyTorch reference: unfused, accumulating in float32 (float64 for float64 y)."""
    acc = _loss_dtype(y.dtype)
    d = bicubic_downsample_ref(y.to(acc), factor, taps) - x.to(acc)
    return (d * d).sum((1, 2, 3))


def _check(y: torch.Tensor, x: torch.Tensor, factor: int) -> None:
    check_factor(factor)
    if y.ndim != 4:
        raise ValueError(f"y must be (B, C, H, W), got shape {tuple(y.shape)}")
    b, c, h, w = y.shape
    if h % factor or w % factor:
        raise ValueError(f"image size {h}x{w} is not a multiple of the factor {factor}")
    want = (b, c, h // factor, w // factor)
    if tuple(x.shape) != want:
        raise ValueError(f"x must have shape {want} (y downscaled by {factor}), got {tuple(x.shape)}")


def downsample_loss(y: torch.Tensor, x: torch.Tensor, factor: int, impl: str = "auto",
                    taps: torch.Tensor | None = None) -> torch.Tensor:
    """Sum of squared differences between bicubic_downsample(y, factor) and x, per sample.

    y: (B, C, H, W), H and W multiples of `factor` (a power of two, 1..64; the reflect padding needs
    H, W > 1.5 * factor); x: (B, C, H / factor, W / factor), any float dtype. Returns (B,) in float32
    (float64 when y is float64). Differentiable w.r.t. y and x. impl: 'auto', 'ref', 'cpp', 'cuda'
    or 'triton'. taps: the reference's `bicubic_kernel`, made beforehand (graph capture).
    """
    _check(y, x, factor)
    fn = dispatch.pick("downsample_loss", impl, y)
    if fn is None:
        return _downsample_loss_ref(y, x, factor, taps)
    return fn(y, x, factor)
