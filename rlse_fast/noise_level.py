"""The noise level of an image, estimated from the image alone (Immerkaer 1996, "Fast noise variance
estimation", CVIU 64(2)): the image filtered by the difference of two Laplacians,

    [[1, -2, 1], [-2, 4, -2], [1, -2, 1]],

which cancels constant, linear and most smooth structure; for white Gaussian noise of deviation
sigma, sigma = sqrt(pi / 2) / (6 (H - 2) (W - 2)) * sum |filtered|. Edges and texture also pass the
filter, so on a small face the estimate is an upper bound of the noise rather than the noise itself.

Used by L_p's floor (`pixel_loss`, `--pixel-floor auto`): how far from the input a face may stay
before the pixel loss stops pulling.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_MASK = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))


def estimate(images01: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) images in [0, 1] -> (B,) noise deviation in 8-bit levels (0-255), the mean of
    the channels' estimates. H and W must be at least 3."""
    b, c, h, w = images01.shape
    if h < 3 or w < 3:
        raise ValueError(f"the noise estimate needs images of 3x3 pixels or more, got {h}x{w}")
    x = images01.detach().float().reshape(b * c, 1, h, w) * 255.0
    mask = torch.tensor(_MASK, dtype=x.dtype, device=x.device).view(1, 1, 3, 3)
    r = F.conv2d(x, mask)
    sigma = math.sqrt(math.pi / 2) * r.abs().sum((1, 2, 3)) / (6.0 * (h - 2) * (w - 2))
    return sigma.view(b, c).mean(1)
