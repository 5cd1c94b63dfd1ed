"""Conversions between the two image conventions the metrics accept.

- uint8 arrays (H, W, 3), RGB, 0..255: images as read from / written to disk.
- float tensors (B, 3, H, W), RGB, in [-1, 1]: the generator's output convention.

Metrics that score 8-bit images (PSNR, SSIM, NIQE) quantise tensors exactly as saving them would
(clamp to [-1, 1], map to 0..255, round), so a score on the tensor equals the score on the PNG.
"""
from __future__ import annotations

import numpy as np
import torch


def check_uint8_image(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Return `img` if it is an (H, W, 3) uint8 array, else raise ValueError saying what it is."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        desc = f"{type(img).__name__} {getattr(img, 'dtype', '')} {tuple(getattr(img, 'shape', ()))}"
        raise ValueError(f"{name} must be an (H, W, 3) uint8 RGB array, got {desc}")
    return img


def check_batch(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Return `x` if it is a floating (B, 3, H, W) tensor, else raise ValueError."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4 or x.shape[1] != 3:
        desc = f"{type(x).__name__} {getattr(x, 'dtype', '')} {tuple(getattr(x, 'shape', ()))}"
        raise ValueError(f"{name} must be a float (B, 3, H, W) tensor in [-1, 1], got {desc}")
    return x


def uint8_to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 0..255 -> (1, 3, H, W) float32 in [-1, 1] (x / 127.5 - 1)."""
    check_uint8_image(img)
    # Copy: arrays from PIL are read-only, which torch.from_numpy warns about.
    return torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def tensor_to_255(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> float64 on the 8-bit grid 0..255, as if saved as uint8 images."""
    check_batch(x)
    return ((x.detach().to(torch.float64).clamp(-1.0, 1.0) + 1.0) * 127.5).round()


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8 numpy array."""
    return tensor_to_255(x).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
