"""PULSE's bicubic downscaler: Keys cubic (a = -0.5), 4*s taps, reflect padding, stride s.

`down_s(y)` in the paper's losses. Separable: a vertical pass, then a horizontal one.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


def _keys_cubic(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x <= 1.0:
        return (a + 2.0) * x**3 - (a + 3.0) * x**2 + 1.0
    if x < 2.0:
        return a * x**3 - 5.0 * a * x**2 + 8.0 * a * x - 4.0 * a
    return 0.0


@functools.lru_cache(maxsize=None)
def _kernel64(factor: int) -> tuple[float, ...]:
    size = 4 * factor
    taps = [_keys_cubic((i - math.floor(size / 2) + 0.5) / factor) for i in range(size)]
    total = sum(taps)
    return tuple(t / total for t in taps)


def bicubic_kernel(factor: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """The normalised 1-D kernel of length 4*factor."""
    check_factor(factor)
    return torch.tensor(_kernel64(factor), dtype=torch.float64).to(dtype=dtype, device=device)


def check_factor(factor: int) -> None:
    if not isinstance(factor, int) or factor < 1 or factor & (factor - 1):
        raise ValueError(f"downscale factor must be a power of two >= 1, got {factor!r}")


def padding(factor: int) -> tuple[int, int]:
    """(before, after) reflect padding along each axis."""
    total = max(4 * factor - factor, 0)
    return total // 2, total - total // 2


@functools.lru_cache(maxsize=None)
def cached_taps(factor: int, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, int]:
    """The kernel and the leading reflect padding, made once per factor, dtype and device (`device`
    as a string) for the native ops; factor 1 is the identity. Made on first use, so a CUDA graph
    captured later holds no host-to-device copy."""
    if factor == 1:
        return torch.ones(1, dtype=dtype, device=device), 0
    return bicubic_kernel(factor, dtype=dtype, device=device), padding(factor)[0]


def max_factor(size: int) -> int:
    """The largest power-of-two factor the downscaler takes for `size` px images: the factor must
    divide the size, and the reflect padding (1.5x the factor) must stay inside the image."""
    f = 1
    while size % (2 * f) == 0 and padding(2 * f)[1] < size:
        f *= 2
    return f


def bicubic_downsample_ref(x: torch.Tensor, factor: int, taps: torch.Tensor | None = None) -> torch.Tensor:
    """x: (B, C, H, W) with H, W multiples of `factor` -> (B, C, H / factor, W / factor).

    Plain-PyTorch reference, the definition of correctness for the fused kernels. taps: the
    `bicubic_kernel` made beforehand on x's device (cast to x's dtype here), so that a CUDA graph
    captured later holds no host-to-device copy; None makes it now.
    """
    check_factor(factor)
    if factor == 1:
        return x
    b, c, h, w = x.shape
    if h % factor or w % factor:
        raise ValueError(f"image size {h}x{w} is not a multiple of the factor {factor}")
    k = bicubic_kernel(factor, dtype=x.dtype, device=x.device) if taps is None else taps.to(x.dtype)
    p0, p1 = padding(factor)
    y = x.reshape(b * c, 1, h, w)
    y = F.pad(y, (0, 0, p0, p1), mode="reflect")
    y = F.conv2d(y, k.reshape(1, 1, -1, 1), stride=(factor, 1))
    y = F.pad(y, (p0, p1, 0, 0), mode="reflect")
    y = F.conv2d(y, k.reshape(1, 1, 1, -1), stride=(1, factor))
    return y.reshape(b, c, h // factor, w // factor)
