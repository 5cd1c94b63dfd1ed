"""L_s: distances between discriminator features of the generated and the target low-resolution faces.

Two ways in ('mode'). 'native' (StyleGAN v1's progressive D, which has a fromRGB at every
resolution): both low-resolution images enter through the fromRGB of their own resolution, as the
progressive network scores a small image, the paper's D_i(x) on a low-resolution x; it costs almost
nothing. The features are the last `count` of those the image passes before the epilogue (whose
minibatch stddev mixes faces): from 16 px 'fromrgb16', 'b16', 'b8'; from 32 px 'b32', 'b16', 'b8';
from 8 px only two exist, 'fromrgb8' and 'b8', and L_s uses those two.
'upsampled': the StyleGAN2 discriminator accepts images at its own resolution only, so both
low-resolution images enter it bicubic-upsampled to that size. Upsampling both with the same smooth filter compares like
with like and keeps the input close to the (blurry) faces D has seen, where nearest-neighbour blocks
or zero insertion would excite its high-frequency features instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import registry
from ..models.stylegan2 import Discriminator


def takes_native(D) -> bool:
    """Whether D has an input at every resolution (StyleGAN v1's progressive D), so that a
    low-resolution image can enter it at its own size (its backbone's `native_lr_input`)."""
    backbone, _ = registry.of(D)
    return backbone is not None and backbone.native_lr_input


def input_mode(D, requested: str = "auto") -> str:
    """'native' or 'upsampled' for this discriminator ('auto': native where D has an input at every
    resolution, i.e. StyleGAN v1)."""
    progressive = takes_native(D)
    if requested == "auto":
        return "native" if progressive else "upsampled"
    if requested == "native" and not progressive:
        raise ValueError("semantic_input 'native' needs a progressive StyleGAN v1 discriminator; use 'upsampled'")
    return requested


def block_names(D: Discriminator, count: int, lr_size: int | None = None, mode: str = "upsampled") -> list[str]:
    """The last `count` discriminator features before the minibatch-stddev epilogue (so faces in a
    batch never see each other): of D's blocks ('upsampled'), or of those an lr_size image passes
    from its own fromRGB ('native', see the module docstring)."""
    if takes_native(D):
        return D.reachable(lr_size if mode == "native" else D.img_resolution)[-count:]
    return [f"b{res}" for res in D.block_resolutions[-count:]]


_RESIZE: dict[tuple, torch.Tensor] = {}


def bicubic_matrix(size_in: int, size_out: int, device) -> torch.Tensor:
    """(size_out, size_in) float32: PyTorch's bicubic resize along one axis (`F.interpolate`,
    align_corners=False: Keys a = -0.75, border taps clamped) as a matrix, made by resizing the
    columns of the identity in float64. Cached per size and device (the fast engine's warm-up
    iterations fill it before a CUDA graph is captured)."""
    key = (size_in, size_out, str(torch.device(device)))
    m = _RESIZE.get(key)
    if m is None:
        eye = torch.eye(size_in, dtype=torch.float64, device=device).view(size_in, 1, size_in, 1)
        cols = F.interpolate(eye, size=(size_out, 1), mode="bicubic", align_corners=False)
        m = _RESIZE[key] = cols[:, 0, :, 0].t().float().contiguous()
    return m


def to_discriminator(lr01: torch.Tensor, resolution: int) -> torch.Tensor:
    """(B, 3, h, w) in [0, 1] -> (B, 3, R, R) in [-1, 1], bicubic-upsampled.

    The upsampling is `F.interpolate(..., mode="bicubic")` written as two matrix products,
    rows @ x @ cols^T, in float32 whatever the autocast: the same function to float rounding, and
    its gradient is two more products, where interpolate's backward scatters with atomics (4.5 ms
    of a 64 ms batch-4 iteration at 1024 px on an H100)."""
    x = lr01 * 2 - 1
    h, w = x.shape[-2:]
    if h == resolution and w == resolution:
        return x
    rows = bicubic_matrix(h, resolution, x.device)
    cols = rows if w == h else bicubic_matrix(w, resolution, x.device)
    with torch.autocast(x.device.type, enabled=False):
        return (rows @ x.float() @ cols.t()).to(x.dtype)


def features(D: Discriminator, lr01: torch.Tensor, names: list[str], channels_last: bool = False,
             mode: str = "upsampled") -> list[torch.Tensor]:
    """Outputs of the named blocks for low-resolution images in [0, 1]; stops after the last one.
    channels_last: D's input in NHWC (for a D whose weights are NHWC too)."""
    x = None
    img = lr01 * 2 - 1 if mode == "native" else to_discriminator(lr01, D.img_resolution)
    if channels_last:
        img = img.contiguous(memory_format=torch.channels_last)
    if takes_native(D):  # StyleGAN v1: enters at img's own resolution
        _, out = D.run(img, names)
        return [out[n] for n in names]
    out = []
    for res in D.block_resolutions:
        x = getattr(D, f"b{res}")(x, img)
        if f"b{res}" in names:
            out.append(x)
            if len(out) == len(names):
                break
    return out


def semantic_loss(feats: list[torch.Tensor], target: list[torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """Sum over blocks of the per-face L1 distance; (B,). Reduced over the non-batch dims in place,
    not through flatten(1), which copies NHWC features (the same sums for NCHW ones)."""
    total = 0
    for a, b in zip(feats, target):
        d = (a - b).abs()
        dims = tuple(range(1, d.ndim))
        total = total + (d.mean(dims) if reduction == "mean" else d.sum(dims))
    return total
