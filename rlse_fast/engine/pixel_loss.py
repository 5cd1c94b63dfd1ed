"""L_p, the pixel loss, in its two readings, with an optional floor.

'norm' is the paper's eq. 3, ||down_s(y) - x||_2 per face on `pixel_scale` intensities; 'mse' is
PULSE's per-face mean squared error of [0, 1] images, clamped below at eps. PULSE's clamp makes
its pixel loss stop pulling once the residual is small (eps 2e-3 is an RMS residual of 11.4 of 255
levels); the paper's norm pulls until the face reproduces the input exactly, the input's noise,
blur and compression included. The floor gives the norm reading the same stop, per face:
L_p = max(||down_s(y) - x||_2, floor), the floor being an RMS residual per low-resolution value in
8-bit levels (`RLSEConfig.pixel_floor`): a number, 'pulse' (PULSE's eps as such an RMS, 11.4) or
'auto' (the input's own noise level, `noise_level.estimate`). Below the floor the gradient of L_p
is zero. Both drivers compute L_p here, through `objective`.
"""
from __future__ import annotations

import math

import torch

from .. import noise_level

PULSE_EPS = 2e-3
"""PULSE's clamp of its per-face MSE ([0, 1] images)."""
PULSE_FLOOR_LEVELS = 255.0 * math.sqrt(PULSE_EPS)
"""PULSE's eps as an RMS residual in 8-bit levels (11.40)."""


def floor_levels(pixel_floor, lr_images: torch.Tensor) -> torch.Tensor | None:
    """(B,) floor of each face in 8-bit levels RMS, or None without one (0)."""
    if pixel_floor == "auto":
        return noise_level.estimate(lr_images)
    value = PULSE_FLOOR_LEVELS if pixel_floor == "pulse" else float(pixel_floor)
    if value == 0:
        return None
    return torch.full((lr_images.shape[0],), value, device=lr_images.device)


def floor_for(cfg, lr_images: torch.Tensor) -> torch.Tensor | None:
    """(B,) floor of the 'norm' L_p for these inputs, in L_p's own units; None without a floor."""
    if cfg.pixel_loss != "norm":
        return None
    levels = floor_levels(cfg.pixel_floor, lr_images)
    if levels is None:
        return None
    # An RMS of r levels over n values is a norm of r * sqrt(n) levels.
    return (levels / 255.0 * cfg.pixel_scale * math.sqrt(lr_images[0].numel())).float()


def pixel_loss(sse: torch.Tensor, numel: int, cfg, floor: torch.Tensor | None) -> torch.Tensor:
    """(B,) L_p from the per-face sum of squared differences of [0, 1] images over `numel` values."""
    if cfg.pixel_loss == "norm":
        pixel = (sse + 1e-12).sqrt() * cfg.pixel_scale
        return pixel if floor is None else torch.maximum(pixel, floor.to(pixel.dtype))
    return (sse / numel).clamp(min=cfg.eps)
