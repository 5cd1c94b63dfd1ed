"""The photo pipeline as a Python API: detect -> align -> super-resolve (batched) -> paste.

    from rlse_fast.session import Session
    from rlse_fast.faces.pipeline import restore_photo
    from rlse_fast.faces.photo_io import read_photo
    result = restore_photo(read_photo("group.jpg"), Session.load("celeba64"))
    # result.image: (H*u, W*u, 3) uint8; result.faces: per-face records; result.stages: seconds

Only faces are super-resolved; the rest of the photo is resampled by Pillow's Lanczos filter.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .frames import FFHQ, weights_frame
from .align import Alignment, align, lr_size, warp_face
from .detect import MIN_SCORE, Face, detect
from .paste import paste, upscale_photo

MAX_OUTPUT_PIXELS = 64_000_000
"""The default --upscale is capped so the written photo stays under this many pixels."""


@dataclass
class FaceResult:
    face: Face
    alignment: Alignment
    lr_size: int | None
    """Input size it was super-resolved from (None: too small, skipped)."""
    seed: int
    lr: torch.Tensor | None = None
    """(3, s, s) in [0, 1]: the aligned input."""
    sr: torch.Tensor | None = None
    """(3, R, R) in [0, 1]: the generator's output."""
    loss: float | None = None
    seconds: float = 0.0
    pasted_box: tuple | None = None

    def to_dict(self, resolution: int) -> dict:
        d = self.face.to_dict()
        d.update({"aligned_side": round(self.alignment.side, 2),
                  "alignment": [[round(float(v), 6) for v in row] for row in self.alignment.matrix],
                  "input_size": self.lr_size, "scale": resolution // self.lr_size if self.lr_size else None,
                  "seed": self.seed, "loss": self.loss, "seconds": round(self.seconds, 3),
                  "pasted_box": list(self.pasted_box) if self.pasted_box else None})
        if self.lr_size is None:
            d["skipped"] = "too small for these weights"
        return d


@dataclass
class PhotoResult:
    image: np.ndarray
    """(round(H*u), round(W*u), 3) uint8: the restored photo."""
    upscale: float
    faces: list[FaceResult]
    frame: str
    stages: dict = field(default_factory=dict)
    """Seconds per stage: detect, align, super_resolve, paste (and upscale: the background resampling)."""


def default_upscale(rgb: np.ndarray, faces: list[Face], resolution: int, sides: list[float],
                    max_pixels: int = MAX_OUTPUT_PIXELS) -> int:
    """The factor that brings the median face's aligned square to the generator's resolution,
    rounded and held to 2..4, then lowered while the output would pass `max_pixels` (down to 1)."""
    h, w = rgb.shape[:2]
    u = int(np.clip(round(resolution / float(np.median(sides))), 2, 4)) if sides else 2
    while u > 1 and h * w * u * u > max_pixels:
        u -= 1
    return u


def restore_photo(rgb: np.ndarray, session, min_face: float = 12.0, max_faces: int | None = None,
                  upscale: float | None = None, seed: int = 0, batch: int = 8, min_score: float = MIN_SCORE,
                  on_batch=None) -> PhotoResult:
    """(H, W, 3) uint8 photo -> PhotoResult. Face i (top to bottom, left to right) gets seed `seed + i`.
    `session`: a `session.Session`. on_batch(done, total): progress callback."""
    stages = {}
    t = time.perf_counter()
    faces = detect(rgb, min_face=min_face, max_faces=max_faces, device="cpu", min_score=min_score)
    stages["detect"] = time.perf_counter() - t

    res = session.resolution
    frame = weights_frame(session.gan, session.spec) or FFHQ
    t = time.perf_counter()
    photo = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255
    results = []
    for i, face in enumerate(faces):
        a = align(face.landmarks, frame)
        size = lr_size(a.side, res)
        r = FaceResult(face, a, size, seed + i)
        if size is not None:
            r.lr = warp_face(photo, a, size)
        results.append(r)
    stages["align"] = time.perf_counter() - t

    t = time.perf_counter()
    todo = [r for r in results if r.lr is not None]
    by_size: dict[int, list[FaceResult]] = {}
    for r in todo:
        by_size.setdefault(r.lr_size, []).append(r)
    done = 0
    for size, group in sorted(by_size.items()):
        for k in range(0, len(group), batch):
            chunk = group[k:k + batch]
            out = session.run(torch.stack([r.lr for r in chunk]), [r.seed for r in chunk])
            for j, r in enumerate(chunk):
                r.sr = out.images[j].detach().float().cpu()
                r.loss = float(out.best_loss[j])
                r.seconds = out.seconds / len(chunk)
            done += len(chunk)
            if on_batch:
                on_batch(done, len(todo))
    stages["super_resolve"] = time.perf_counter() - t

    if upscale is None:
        upscale = default_upscale(rgb, faces, res, [r.alignment.side for r in todo])
    t = time.perf_counter()
    canvas = upscale_photo(rgb, upscale)
    stages["upscale"] = time.perf_counter() - t
    t = time.perf_counter()
    for r in results:
        if r.sr is not None:
            r.pasted_box = paste(canvas, r.sr, r.alignment, canvas.shape[1] / rgb.shape[1])
    stages["paste"] = time.perf_counter() - t
    return PhotoResult(canvas, float(upscale), results, frame.name, {k: round(v, 3) for k, v in stages.items()})
