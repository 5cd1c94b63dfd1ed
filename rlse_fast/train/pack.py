"""Face crops packed as JPEGs in one safetensors file (suffix .faces): a training set small enough
to travel with the checkout (10,000 faces at 64 px, quality 90: 23 MB against 123 MB raw).

Tensors: 'jpeg' (uint8, every image's JPEG bytes end to end) and 'offsets' (int64, N + 1);
metadata: format, resolution, count, quality, and whatever the writer adds (crop, source).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import UserError
from ..imageio import atomic_write

PACK_SUFFIX = ".faces"
PACK_FORMAT = "rlse-fast packed faces (JPEG)"


def _save(blobs: list[bytes], out: Path, metadata: dict) -> dict:
    from safetensors.torch import save_file

    if out.suffix != PACK_SUFFIX:
        raise UserError(f"the packed data file must end in {PACK_SUFFIX}, got {str(out)!r}")
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    tensors = {"jpeg": torch.frombuffer(bytearray(b"".join(blobs)), dtype=torch.uint8),
               "offsets": torch.from_numpy(offsets.astype(np.int64))}
    meta = {**metadata, "format": PACK_FORMAT, "count": str(len(blobs))}
    atomic_write(out, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return {"path": str(out), "count": len(blobs), "bytes": out.stat().st_size, "quality": meta.get("quality")}


def write_pack(faces: torch.Tensor, out: str | os.PathLike, quality: int = 90, metadata: dict | None = None,
               progress: bool = False) -> dict:
    """faces (N, 3, R, R) uint8 -> a packed file of JPEGs (4:2:0, `quality`); returns its summary."""
    from PIL import Image

    out = Path(out)
    if out.suffix != PACK_SUFFIX:
        raise UserError(f"the packed data file must end in {PACK_SUFFIX}, got {str(out)!r}")
    blobs = []
    for face in tqdm(faces, desc="packing", unit="img", disable=not progress):
        buf = io.BytesIO()
        Image.fromarray(face.permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=quality, subsampling=2)
        blobs.append(buf.getvalue())
    meta = {**(metadata or {}), "resolution": str(faces.shape[-1]), "quality": str(quality)}
    return _save(blobs, out, meta)


def read_pack(path: str | os.PathLike) -> tuple[list[bytes], dict]:
    """A packed file -> (each image's JPEG bytes, metadata); UserError if it is not one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            blob, offsets = f.get_tensor("jpeg").numpy(), f.get_tensor("offsets").tolist()
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise UserError(f"cannot read the packed data file {str(path)!r} ({exc}); pack it again") from None
    if meta.get("format") != PACK_FORMAT:
        raise UserError(f"{str(path)!r} is not a packed face file; make one with benchmarks/pack_faces.py")
    return [blob[offsets[i]:offsets[i + 1]].tobytes() for i in range(len(offsets) - 1)], meta


def load_packed(path: str | os.PathLike, resolution: int) -> torch.Tensor:
    """A packed file -> (N, 3, R, R) uint8; its resolution must be `resolution`."""
    from PIL import Image

    blobs, meta = read_pack(path)
    if int(meta.get("resolution", -1)) != resolution:
        raise UserError(f"{str(path)!r} holds {meta.get('resolution')} px faces, the run trains at {resolution} px; "
                        "pack the faces at the training resolution")
    out = np.empty((len(blobs), 3, resolution, resolution), dtype=np.uint8)
    for i, b in enumerate(blobs):
        with Image.open(io.BytesIO(b)) as im:
            out[i] = np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
    return torch.from_numpy(out)


def subset_pack(path: str | os.PathLike, start: int, count: int, out: str | os.PathLike) -> dict:
    """Images start .. start + count - 1 of a packed file into a new one, bytes copied as they are."""
    blobs, meta = read_pack(path)
    if start < 0 or count < 1 or start + count > len(blobs):
        raise UserError(f"{str(path)!r} holds {len(blobs)} faces; cannot take {count} from {start}")
    return _save(blobs[start:start + count], Path(out), {**meta, "source": f"{meta.get('source', '')}[{start}:{start + count}]"})


__all__ = ["PACK_FORMAT", "PACK_SUFFIX", "load_packed", "read_pack", "subset_pack", "write_pack"]
