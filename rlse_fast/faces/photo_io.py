"""Reading whole photos: EXIF rotation honoured, any mode to 8-bit RGB, huge images refused before decoding."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserError

MAX_PIXELS = 50_000_000
"""Photos above this many pixels are refused from their header, before any decoding (decompression bombs)."""


def _to_rgb8(im) -> np.ndarray:
    """A decoded PIL image of any mode -> (H, W, 3) uint8. 16-bit and float modes are scaled, not
    clipped (Pillow's own convert('RGB') clips 16-bit values at 255); alpha is composited on white."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        g = np.clip(a / peak * 255 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = a / 255.0 if a.max() > 1.0 else a
        g = np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
    return np.array(im.convert("RGB"), dtype=np.uint8)


def read_photo(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A photo file -> (H, W, 3) uint8 RGB, upright (EXIF orientation applied). UserError (exit 2) for
    a missing, unreadable or corrupt file, or one over `max_pixels` (checked before decoding)."""
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise UserError(f"{path}: {w}x{h} is {w * h / 1e6:.0f} MP, over the {max_pixels / 1e6:.0f} MP "
                                    "limit; downscale the photo or crop the faces' region first")
                im.load()
                im = ImageOps.exif_transpose(im)
                return _to_rgb8(im)
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"photo not found: {path}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{path}: the image is too large to decode safely (decompression bomb?); "
                        "downscale it first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"{path}: cannot read the photo ({str(exc).splitlines()[0][:120]}); "
                        "use an intact PNG, JPEG or WebP file") from None
