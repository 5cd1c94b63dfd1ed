"""Reading faces and writing results: RGB in [0, 1], atomic writes."""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
"""What results are written as."""
INPUT_SUFFIXES = IMAGE_SUFFIXES + (".gif", ".bmp", ".tif", ".tiff")
"""What a folder's inputs are picked by: the formats a single input is read in (still images only)."""


# Pillow's own decompression-bomb limit (about 89 Mpx): above it an image is refused from its
# header, before any pixel is decoded.
MAX_PIXELS = 89_478_485


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    with _open(Path(path)) as im:
        return im.size


def load_image(path: str | os.PathLike, max_side: int | None = None, what: str = "") -> torch.Tensor:
    """Any still PNG/JPEG/WebP/GIF/BMP/TIFF -> (3, H, W) float32 RGB in [0, 1], each mode read with its real range.

    16-bit ('I;16*', and 'I' holding 0..65535) is divided by 65535; float ('F') must already be in
    [0, 1]; transparency (RGBA, LA, PA, P with a transparent colour) is composited on white; the
    EXIF orientation is applied. Anything else Pillow cannot convert to RGB is refused. max_side:
    refuse a larger image from its header, before decoding (`what` says why in the message).
    """
    from PIL import ImageOps

    path = Path(path)
    with _open(path) as im:
        w, h = im.size
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            raise UserError(f"{path}: an animated image ({frames} frames); save the frame to restore as a PNG")
        if max_side is not None and max(w, h) > max_side:
            raise UserError(f"{path}: the image is {w}x{h}, larger than the {max_side} px {what or 'allowed'}; "
                            f"give the aligned face crop, downscaled")
        try:
            im.load()
            im = ImageOps.exif_transpose(im)
            arr = _to_rgb01(im, path)
        except UserError:
            raise
        except (OSError, ValueError, SyntaxError) as exc:
            raise UserError(f"{path}: cannot read the image ({_first_line(exc)}); use a PNG, JPEG or WebP file") from None
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float()


def _open(path: Path):
    """Image.open (header only) with Pillow's errors and bomb warning turned into one-line refusals."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except FileNotFoundError:
        raise UserError(f"input image not found: {path}") from None
    except Image.DecompressionBombError:
        raise UserError(f"{path}: the image has more than {MAX_PIXELS:,} pixels; give the aligned face crop, downscaled") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"{path}: cannot read the image ({_first_line(exc)}); use a PNG, JPEG or WebP file") from None
    if im.width * im.height > MAX_PIXELS:
        im.close()
        raise UserError(f"{path}: the image is {im.width}x{im.height}, more than {MAX_PIXELS:,} pixels; "
                        f"give the aligned face crop, downscaled")
    return im


def _to_rgb01(im, path: Path) -> np.ndarray:
    """A loaded Pillow image -> (H, W, 3) float32 in [0, 1]."""
    from PIL import Image

    mode = im.mode
    if mode.startswith("I;16"):
        return np.repeat(np.asarray(im).astype(np.float32)[..., None] / 65535, 3, axis=2)
    if mode == "I":
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise UserError(f"{path}: a 32-bit integer image with values {a.min()}..{a.max()}, outside 0..65535; "
                            "save it as 8- or 16-bit")
        return np.repeat(a.astype(np.float32)[..., None] / 65535, 3, axis=2)
    if mode == "F":
        a = np.asarray(im, dtype=np.float32)
        if a.size and not (np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1):
            raise UserError(f"{path}: a float image must hold values in [0, 1], this one has "
                            f"{np.nanmin(a):.4g}..{np.nanmax(a):.4g}; save it as 8- or 16-bit")
        return np.repeat(a[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
    try:
        rgb = im.convert("RGB")
    except ValueError:
        raise UserError(f"{path}: cannot read images of mode {mode!r}; save it as RGB or grayscale") from None
    return np.asarray(rgb, dtype=np.float32) / 255


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:120]


def check_writable(path: str | os.PathLike) -> None:
    """Refuse, before any work, an output location that cannot be written: the nearest existing
    folder of `path` gets a trial file (removed again), so nothing is left behind."""
    path = Path(path).absolute()
    parent = path if path.is_dir() else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"cannot write {path}: {parent} is a file, not a folder; choose another output location")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".rlse-write-check.", dir=parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise UserError(f"cannot write to {parent} ({exc.strerror or exc}); choose another output location") from None


def to_uint8(img01: torch.Tensor) -> np.ndarray:
    """(3, H, W), clamped to [0, 1] -> (H, W, 3) uint8."""
    return (img01.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call write(tmp_path) and rename the result to `path`; never leaves a half-written file.

    A write that fails (read-only file system, disk full) is one line, exit code 2."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix + ".part", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise UserError(f"cannot write {path} ({exc.strerror or _first_line(exc)}); "
                            "free space or choose another output location") from None
        raise


def save_image(img01: torch.Tensor, path: str | os.PathLike, size: int | None = None) -> None:
    """(3, H, W), clamped to [0, 1] -> an image file (format from the suffix), optionally resized to size x size."""
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
