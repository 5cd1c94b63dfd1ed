"""Face image folders as one cached uint8 tensor, for training the prior.

Every image is cropped to a square box around the face and resized (bicubic, antialiased) to the
training resolution once; the result (N, 3, R, R) uint8 is cached as a single file so that later
runs skip JPEG decoding. `pack_faces` writes the crops as one small file of JPEGs (`pack.py`: a
data set that travels with the checkout to a machine without the image folder); `load_faces` reads
either. The default crop matches the evaluation framing of `celeba128_test`
(eye centre at about 0.37 H, eye distance about 0.28 W) on CelebA aligned faces: a 72x72 box
(at 89x109, scaled with the image size), horizontally centred, 29.5 px from the top. It was found
by matching the mean training crop to the mean test image (RMS difference about 6/255).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import UserError
from ..home import home
from ..imageio import atomic_write
from .pack import PACK_SUFFIX, load_packed, write_pack

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class CropSpec:
    """Square crop as fractions of the image size, so the same framing works at any scale."""

    size: float = 72 / 89
    """Side of the square as a fraction of the image width."""
    top: float = 29.5 / 109
    """Top edge as a fraction of the image height (the box is centred horizontally)."""

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        side = min(self.size * width, width, height)
        top = min(max(self.top * height, 0.0), height - side)
        left = (width - side) / 2
        return left, top, left + side, top + side


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in `folder`, sorted by name (a packed file: itself); UserError if there are none."""
    root = Path(folder)
    if root.suffix == PACK_SUFFIX and root.is_file():
        return [root]
    if not root.is_dir():
        raise UserError(f"data folder {str(root)!r} does not exist; pass a folder of face images "
                        "(e.g. ../shared/data/celeba_train)")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"data folder {str(root)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                        "pass a folder of face images")
    return files


def cache_dir() -> Path:
    return home() / "datasets"


def cache_path(files: list[Path], resolution: int, crop: CropSpec) -> Path:
    """A file name that changes whenever the folder, its files, the resolution or the crop change."""
    h = hashlib.sha256()
    h.update(str(files[0].parent.resolve()).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    h.update(f"{resolution}:{crop.size:.6f}:{crop.top:.6f}".encode())
    return cache_dir() / f"{files[0].parent.name}-{resolution}px-{h.hexdigest()[:12]}.pt"


def decode_image(path: Path, resolution: int, crop: CropSpec) -> np.ndarray:
    """One image -> (3, R, R) uint8."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im = im.resize((resolution, resolution), Image.BICUBIC, box=crop.box(*im.size), reducing_gap=None)
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()


def pack_faces(folder: str | os.PathLike, resolution: int, out: str | os.PathLike, quality: int = 90,
               crop: CropSpec = CropSpec(), progress: bool = True) -> dict:
    """The crops of `folder` at `resolution` -> one packed file (`pack.write_pack`); its summary."""
    faces = load_faces(folder, resolution, crop, progress=progress)
    meta = {"crop": f"{crop.size:.6f},{crop.top:.6f}", "source": Path(folder).name}
    return write_pack(faces, out, quality=quality, metadata=meta, progress=progress)


def load_faces(folder: str | os.PathLike, resolution: int, crop: CropSpec = CropSpec(),
               use_cache: bool = True, progress: bool = True) -> torch.Tensor:
    """All images of `folder` (or of a `pack_faces` file) -> (N, 3, R, R) uint8, decoded once and
    cached (see `cache_path`)."""
    if Path(folder).suffix == PACK_SUFFIX and Path(folder).is_file():
        return load_packed(folder, resolution)
    files = list_images(folder)
    path = cache_path(files, resolution, crop)
    if use_cache and path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a corrupt cache is rebuilt, never fatal
            pass

    out = np.empty((len(files), 3, resolution, resolution), dtype=np.uint8)
    for i, f in enumerate(tqdm(files, desc=f"decoding {Path(folder).name}", unit="img", disable=not progress)):
        try:
            out[i] = decode_image(f, resolution, crop)
        except OSError as exc:
            raise UserError(f"cannot read image {str(f)!r} ({exc}); remove it from the data folder") from None
    faces = torch.from_numpy(out)
    if use_cache:
        atomic_write(path, lambda tmp: torch.save(faces, tmp))
    return faces


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, R, R) -> float32 in [-1, 1]."""
    return batch.to(torch.float32) / 127.5 - 1


class FaceSampler:
    """Endless shuffled minibatches from a uint8 tensor, with random horizontal flips.

    Owns its generator, so its state goes into the training checkpoint.
    """

    def __init__(self, faces: torch.Tensor, batch: int, seed: int = 0, flip: bool = True):
        if len(faces) < batch:
            raise UserError(f"the data folder has {len(faces)} images, fewer than the batch size {batch}; "
                            "add images or lower --batch")
        self.faces = faces
        self.batch = batch
        self.flip = flip
        self.gen = torch.Generator().manual_seed(seed)
        self._order = torch.randperm(len(faces), generator=self.gen)
        self._pos = 0

    def next(self) -> torch.Tensor:
        """(B, 3, R, R) float32 in [-1, 1]."""
        if self._pos + self.batch > len(self._order):
            self._order = torch.randperm(len(self.faces), generator=self.gen)
            self._pos = 0
        idx = self._order[self._pos:self._pos + self.batch]
        self._pos += self.batch
        x = to_float(self.faces[idx])
        if self.flip:
            mask = torch.rand(self.batch, generator=self.gen) < 0.5
            x = torch.where(mask[:, None, None, None], x.flip(3), x)
        return x

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "order": self._order.clone(), "pos": self._pos}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self._order = state["order"]
        self._pos = int(state["pos"])
