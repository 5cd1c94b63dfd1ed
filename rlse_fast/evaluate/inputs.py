"""The evaluation's inputs: the face folder, square 8-bit faces, and the resamplings that make the
HR and LR images (PIL bicubic/bilinear as the prior's faces were made; PULSE's bicubic for the
power-of-two downscales the methods see)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..downsample import bicubic_downsample_ref
from ..errors import UserError
from ..imageio import INPUT_SUFFIXES as IMAGE_SUFFIXES  # a folder's faces: what a single input may be
from ..imageio import load_image


def list_faces(folder: Path, n: int | None) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; pass a folder of face images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise UserError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); pass a folder of face images")
    return files[:n] if n else files


def load_uint8(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a square image."""
    img = load_image(path)
    if img.shape[1] != img.shape[2]:
        raise UserError(f"{path.name}: faces must be square (aligned and cropped), got {img.shape[2]}x{img.shape[1]}")
    return (img * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def pil_resize(img: np.ndarray, size: int, method: str = "bicubic") -> np.ndarray:
    from PIL import Image

    if img.shape[0] == size and img.shape[1] == size:
        return img
    resample = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[method]
    return np.asarray(Image.fromarray(img).resize((size, size), resample, reducing_gap=None))


def to01(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1)[None].float() / 255


def to_u8(x01: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] -> (H, W, 3) uint8, rounded as saving would."""
    return (x01[0].detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def downscale(img: np.ndarray, lr_size: int) -> np.ndarray:
    """PULSE's bicubic for a power-of-two ratio, else PIL bicubic; 8-bit result."""
    ratio, rem = divmod(img.shape[0], lr_size)
    if rem == 0 and ratio & (ratio - 1) == 0:
        return to_u8(bicubic_downsample_ref(to01(img).double(), ratio).float())
    return pil_resize(img, lr_size, "bicubic")
