"""Reading whole photos: `imageio.load_image`'s rules (EXIF rotation, every mode at its real range,
alpha on white, corrupt files refused in one line) plus a pixel limit checked from the header."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..imageio import image_size, load_image

MAX_PIXELS = 50_000_000
"""Photos above this many pixels are refused from their header, before any decoding (decompression bombs)."""


def read_photo(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A photo file -> (H, W, 3) uint8 RGB, upright. UserError (exit 2) for a missing, unreadable or
    corrupt file, or one over `max_pixels`."""
    path = Path(path)
    w, h = image_size(path)
    if w * h > max_pixels:
        raise UserError(f"{path}: {w}x{h} is {w * h / 1e6:.0f} MP, over the {max_pixels / 1e6:.0f} MP "
                        "limit; downscale the photo or crop the faces' region first")
    rgb01 = load_image(path)
    return (rgb01.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
