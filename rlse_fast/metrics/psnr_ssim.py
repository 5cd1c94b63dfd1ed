"""PSNR and SSIM as face-SR papers report them (FSRNet, DIC, SPARNet), plus RGB variants.

- channel="y": the Y of MATLAB-style YCbCr, Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 on
  0..255 RGB, kept in floating point (not rounded back to 8 bits).
- channel="rgb": all three channels; PSNR from the MSE over every value, SSIM the mean of the
  per-channel SSIMs.
- SSIM: 11x11 Gaussian window, sigma 1.5, population (biased) covariance, data range 255,
  K1 = 0.01, K2 = 0.03, averaged over the "valid" region (5 pixels in from each edge). This equals
  scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255) and the reference MATLAB ssim_index.
- PSNR: 10 log10(255^2 / MSE); +inf for identical images.

Two entry points per metric: `psnr(a, b)` / `ssim(a, b)` on (H, W, 3) uint8 arrays, returning a float,
and `psnr_batch(x, y)` / `ssim_batch(x, y)` on (B, 3, H, W) float tensors in [-1, 1], returning a
(B,) float64 tensor (tensors are quantised to 8 bits first, see `pixels`). All math is float64.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .pixels import check_batch, check_uint8_image, tensor_to_255

_Y_WEIGHTS = (65.481, 128.553, 24.966)
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # 11 taps: scikit-image's truncate=3.5 gives int(3.5 * 1.5 + 0.5) = 5
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
CHANNELS = ("y", "rgb")


def rgb_to_y(x255: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB on 0..255 -> (B, 1, H, W) MATLAB YCbCr luma on 16..235 (float)."""
    r, g, b = x255[:, 0:1], x255[:, 1:2], x255[:, 2:3]
    return 16.0 + (_Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b) / 255.0


def _select(x255: torch.Tensor, channel: str, crop_border: int) -> torch.Tensor:
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    out = rgb_to_y(x255) if channel == "y" else x255
    if crop_border:
        out = out[..., crop_border:-crop_border, crop_border:-crop_border]
    return out


def _pair_255(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_batch(x, "x")
    check_batch(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return tensor_to_255(x), tensor_to_255(y.to(x.device))


def _psnr_255(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = (a - b).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(255.0**2 / mse)  # mse == 0 gives +inf, as intended


def _gaussian_1d(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    t = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=dtype, device=device)
    w = torch.exp(-(t**2) / (2 * _SSIM_SIGMA**2))
    return w / w.sum()


def _ssim_255(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per image of (B, C, H, W) float64 tensors on 0..255; C channels averaged."""
    n, c, h, w = a.shape
    if min(h, w) < 2 * _SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {h}x{w}")
    g = _gaussian_1d(a.dtype, a.device)
    # Five moments of both images, each channel its own group, filtered separably ("valid").
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    k = 5 * c
    stack = F.conv2d(stack, g.view(1, 1, -1, 1).expand(k, 1, -1, 1), groups=k)
    stack = F.conv2d(stack, g.view(1, 1, 1, -1).expand(k, 1, 1, -1), groups=k)
    mu_a, mu_b, e_aa, e_bb, e_ab = stack.split(c, dim=1)
    var_a = e_aa - mu_a * mu_a
    var_b = e_bb - mu_b * mu_b
    cov = e_ab - mu_a * mu_b
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a * mu_a + mu_b * mu_b + _C1) * (var_a + var_b + _C2)
    return (num / den).flatten(1).mean(1)


def psnr_batch(x: torch.Tensor, y: torch.Tensor, channel: str = "y", crop_border: int = 0) -> torch.Tensor:
    """PSNR in dB of each pair; x, y (B, 3, H, W) float in [-1, 1]; returns (B,) float64 (+inf if equal)."""
    a, b = _pair_255(x, y)
    return _psnr_255(_select(a, channel, crop_border), _select(b, channel, crop_border))


def ssim_batch(x: torch.Tensor, y: torch.Tensor, channel: str = "y", crop_border: int = 0) -> torch.Tensor:
    """SSIM of each pair; x, y (B, 3, H, W) float in [-1, 1]; returns (B,) float64 in [-1, 1]."""
    a, b = _pair_255(x, y)
    return _ssim_255(_select(a, channel, crop_border), _select(b, channel, crop_border))


def _pair_uint8(a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    check_uint8_image(a, "a")
    check_uint8_image(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    as_t = lambda img: torch.from_numpy(np.array(img, dtype=np.float64)).permute(2, 0, 1)[None]
    return as_t(a), as_t(b)


def psnr(a: np.ndarray, b: np.ndarray, channel: str = "y", crop_border: int = 0) -> float:
    """PSNR in dB of two (H, W, 3) uint8 RGB images (+inf if identical)."""
    ta, tb = _pair_uint8(a, b)
    return float(_psnr_255(_select(ta, channel, crop_border), _select(tb, channel, crop_border))[0])


def ssim(a: np.ndarray, b: np.ndarray, channel: str = "y", crop_border: int = 0) -> float:
    """SSIM of two (H, W, 3) uint8 RGB images (1.0 if identical)."""
    ta, tb = _pair_uint8(a, b)
    return float(_ssim_255(_select(ta, channel, crop_border), _select(tb, channel, crop_border))[0])
