"""`rlse-fast sr --fit`: a face crop of any size or aspect made into a valid input.

The crop is padded to a square (its edge pixels replicated, split evenly on both sides, so no
black band enters the optimisation's pixel loss) and resized with Pillow's Lanczos filter to the
valid input size nearest to the square's side (in ratio; ties go to the smaller size, so a face is
never enlarged when it could be reduced). Valid sizes are the generator's resolution divided by a
power of two the downscaler takes (2 .. `downsample.max_factor`), or exactly resolution / --scale.
A crop larger than the largest valid size is refused (`check_crop`): shrinking it would throw away
more of its pixels than the generator gives back, so the "super-resolved" face could hold fewer.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from ..imageio import to_uint8
from .align import valid_sizes


def nearest_size(side: int, resolution: int) -> int:
    return min(valid_sizes(resolution), key=lambda d: (abs(math.log(d / side)), d))


def check_crop(w: int, h: int, resolution: int) -> None:
    """UserError (exit 2) for a crop larger than the largest input the weights take (resolution / 2)."""
    largest = valid_sizes(resolution)[0]
    if max(w, h) > largest:
        raise UserError(f"the crop is {w}x{h}, larger than the {largest} px faces that {resolution} px weights take: "
                        f"--fit would shrink it to {largest} px, losing detail it has, and make a {resolution} px face. "
                        "For a face in a larger picture use `rlse-fast photo`; for large faces, weights of a higher "
                        "resolution (--weights ffhq)")


def fit_crop(img: torch.Tensor, resolution: int, scale: int | None = None) -> tuple[torch.Tensor, str | None]:
    """(3, H, W) in [0, 1] -> ((3, s, s), a one-line note of what was done, or None when nothing was)."""
    _, h, w = img.shape
    side = max(h, w)
    size = resolution // scale if scale else nearest_size(side, resolution)
    if h == w == size:
        return img, None
    steps = []
    if h != w:
        top, left = (side - h) // 2, (side - w) // 2
        img = torch.nn.functional.pad(img[None], (left, side - w - left, top, side - h - top), mode="replicate")[0]
        steps.append(f"padded to {side}x{side} (edge pixels replicated)")
    if side != size:
        im = Image.fromarray(to_uint8(img)).resize((size, size), Image.LANCZOS)
        img = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255
        steps.append(f"resized to {size}x{size} (Lanczos)")
    return img, f"{w}x{h} {' and '.join(steps)}: x{resolution // size} to {resolution}px"
