"""L_s: distances between discriminator features of the generated and the target low-resolution faces.

The StyleGAN2 discriminator accepts images at its own resolution only, so both low-resolution images
enter it bicubic-upsampled to that size. Upsampling both with the same smooth filter compares like
with like and keeps the input close to the (blurry) faces D has seen, where nearest-neighbour blocks
or zero insertion would excite its high-frequency features instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .models.stylegan2 import Discriminator


def block_names(D: Discriminator, count: int) -> list[str]:
    """The last `count` discriminator blocks (before the minibatch-stddev epilogue, so faces in a
    batch never see each other)."""
    return [f"b{res}" for res in D.block_resolutions[-count:]]


def to_discriminator(lr01: torch.Tensor, resolution: int) -> torch.Tensor:
    """(B, 3, h, w) in [0, 1] -> (B, 3, R, R) in [-1, 1], bicubic-upsampled."""
    x = lr01 * 2 - 1
    if x.shape[-1] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False)


def features(D: Discriminator, lr01: torch.Tensor, names: list[str]) -> list[torch.Tensor]:
    """Outputs of the named blocks for low-resolution images in [0, 1]; stops after the last one."""
    x = None
    img = to_discriminator(lr01, D.img_resolution)
    out = []
    for res in D.block_resolutions:
        x = getattr(D, f"b{res}")(x, img)
        if f"b{res}" in names:
            out.append(x)
            if len(out) == len(names):
                break
    return out


def semantic_loss(feats: list[torch.Tensor], target: list[torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """Sum over blocks of the per-face L1 distance; (B,)."""
    total = 0
    for a, b in zip(feats, target):
        d = (a - b).abs().flatten(1)
        total = total + (d.mean(1) if reduction == "mean" else d.sum(1))
    return total
