"""Reading faces and writing results: RGB in [0, 1], atomic writes."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Any PNG/JPEG/WebP (any mode) -> (3, H, W) float32 RGB in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise UserError(f"input image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the image ({str(exc).splitlines()[0][:120]}); use a PNG, JPEG or WebP file") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255


def to_uint8(img01: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8."""
    return (img01.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call write(tmp_path) and rename the result to `path`; never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix + ".part", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_image(img01: torch.Tensor, path: str | os.PathLike, size: int | None = None) -> None:
    """(3, H, W) in [0, 1] -> an image file (format from the suffix), optionally resized to size x size."""
    from PIL import Image

    path = Path(path)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"{path}: unknown output format; use .png, .jpg or .webp")
    im = Image.fromarray(to_uint8(img01))
    if size is not None and size != im.width:
        im = im.resize((size, size), Image.LANCZOS)
    kwargs = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    atomic_write(path, lambda tmp: im.save(tmp, format=fmt, **kwargs))


def save_json(obj, path: str | os.PathLike) -> None:
    text = json.dumps(obj, indent=1)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
