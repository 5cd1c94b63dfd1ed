"""Face image folders as one cached uint8 tensor, for training the prior.

Every image is cropped to a square box around the face and resized (bicubic, antialiased) to the
training resolution once; the result (N, 3, R, R) uint8 is cached as a single file so that later
runs skip JPEG decoding. `pack_faces` writes the crops as one small file of JPEGs (a data set that
travels with the checkout to a machine that does not have the image folder); `load_faces` reads
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

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
PACK_SUFFIX = ".faces"
PACK_FORMAT = "rlse-fast packed faces (JPEG)"


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
    home = os.environ.get("RLSE_FAST_HOME")
    base = Path(home) if home else Path.home() / ".cache" / "rlse-fast"
    return base / "datasets"


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
    """The crops of `folder` at `resolution` -> one safetensors file (suffix .faces) holding their
    JPEG bytes (4:2:0, `quality`) end to end and their offsets; returns its summary."""
    import io

    from PIL import Image
    from safetensors.torch import save_file

    out = Path(out)
    if out.suffix != PACK_SUFFIX:
        raise UserError(f"the packed data file must end in {PACK_SUFFIX}, got {str(out)!r}")
    faces = load_faces(folder, resolution, crop, progress=progress)
    blobs = []
    for face in tqdm(faces, desc="packing", unit="img", disable=not progress):
        buf = io.BytesIO()
        Image.fromarray(face.permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=quality, subsampling=2)
        blobs.append(buf.getvalue())
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    tensors = {"jpeg": torch.frombuffer(bytearray(b"".join(blobs)), dtype=torch.uint8),
               "offsets": torch.from_numpy(offsets.astype(np.int64))}
    meta = {"format": PACK_FORMAT, "resolution": str(resolution), "count": str(len(blobs)), "quality": str(quality),
            "crop": f"{crop.size:.6f},{crop.top:.6f}", "source": Path(folder).name}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"path": str(out), "count": len(blobs), "bytes": out.stat().st_size, "quality": quality}


def load_packed(path: str | os.PathLike, resolution: int) -> torch.Tensor:
    """A `pack_faces` file -> (N, 3, R, R) uint8; its resolution must be `resolution`."""
    import io

    from PIL import Image
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            blob, offsets = f.get_tensor("jpeg").numpy(), f.get_tensor("offsets").tolist()
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise UserError(f"cannot read the packed data file {str(path)!r} ({exc}); pack it again") from None
    if meta.get("format") != PACK_FORMAT:
        raise UserError(f"{str(path)!r} is not a packed face file; make one with benchmarks/pack_faces.py")
    if int(meta.get("resolution", -1)) != resolution:
        raise UserError(f"{str(path)!r} holds {meta.get('resolution')} px faces, the run trains at {resolution} px; "
                        "pack the faces at the training resolution")
    out = np.empty((len(offsets) - 1, 3, resolution, resolution), dtype=np.uint8)
    for i in range(len(out)):
        with Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]].tobytes())) as im:
            out[i] = np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
    return torch.from_numpy(out)


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
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        torch.save(faces, tmp)
        os.replace(tmp, path)
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
