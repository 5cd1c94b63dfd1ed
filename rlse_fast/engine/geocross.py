"""PULSE's geodesic cross loss on the W+ rows: pulls the rows of each latent toward each other."""
from __future__ import annotations

import torch


def geocross(w: torch.Tensor) -> torch.Tensor:
    """w: (B, n, d) W+ latents -> (B,) per-face loss.

    For every pair of rows the angle 2*atan2(|a-b|, |a+b|) is taken; the loss is
    mean(angle^2) * d / 8, as in PULSE (which wrote it for n=18, d=512). Zero for n = 1.
    """
    b, n, d = w.shape
    if n == 1:
        return w.new_zeros(b)
    x = w.reshape(b, 1, n, d)
    y = w.reshape(b, n, 1, d)
    a = ((x - y).pow(2).sum(-1) + 1e-9).sqrt()
    c = ((x + y).pow(2).sum(-1) + 1e-9).sqrt()
    angle = 2 * torch.atan2(a, c)
    return (angle.pow(2) * d).mean((1, 2)) / 8.0
