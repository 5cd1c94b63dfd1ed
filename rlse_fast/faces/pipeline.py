"""The photo pipeline as a Python API: detect -> align -> decide -> super-resolve (batched) -> check -> paste.

    from rlse_fast.session import Session
    from rlse_fast.faces.pipeline import restore_photo
    from rlse_fast.faces.photo_io import read_photo
    result = restore_photo(read_photo("group.jpg"), Session.load("celeba64"))
    # result.image: (H*u, W*u, 3) uint8; result.faces: per-face records; result.stages: seconds

Only faces are super-resolved; the rest of the photo is resampled by Pillow's Lanczos filter, and so is
every face `decide.py` keeps (too large for the generator, a failed fit, another person).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import UserError
from ..metrics import identity as identity_mod
from .frames import FFHQ, weights_frame
from .align import Alignment, align, lr_size, warp_face
from .chroma import is_monochrome, tint_curve
from .decide import CONSISTENT_DB, RESTORE, check, consistency_db, default_strength, identity_distance, measurement, plan
from .detect import MIN_SCORE, Face, detect
from .paste import paste, upscale_photo
from .project import MAX_STEPS as MAX_BACK_PROJECT, STEPS as BACK_PROJECT

def check_options(min_face: float, min_score: float, max_faces: int | None, upscale: float | None,
                  restore: str, strength: float | None, cli: bool, back_project: int = BACK_PROJECT) -> None:
    """One-line UserErrors for restore_photo's options, named as the command's flags (`cli`) or as
    Restorer.photo's keywords."""
    def name(n: str) -> str:
        return "--" + n.replace("_", "-") if cli else n

    if min_face < 12:
        raise UserError(f"{name('min_face')} must be >= 12 (the detector's smallest window), got {min_face:g}")
    if not 0.7 <= min_score <= 1:
        raise UserError(f"{name('min_score')} must be in 0.7-1 (the detector keeps nothing below 0.7), got {min_score:g}")
    if max_faces is not None and max_faces < 1:
        raise UserError(f"{name('max_faces')} must be >= 1")
    if upscale is not None and not 1 <= upscale <= 8:
        raise UserError(f"{name('upscale')} must be 1-8, got {upscale}")
    if restore not in RESTORE:
        raise UserError(f"{name('restore')} must be one of {', '.join(RESTORE)}, got {restore!r}")
    if strength is not None and not 0 <= strength <= 1:
        raise UserError(f"{name('strength')} must be in 0-1 (0: the resized original, 1: the result), "
                        f"got {strength:g}")
    if not 0 <= back_project <= MAX_BACK_PROJECT:
        raise UserError(f"{name('back_project')} must be 0-{MAX_BACK_PROJECT} steps (0: no back-projection), "
                        f"got {back_project}")


def identity_check(weights_sha256: str | None, restore: str, back_project: int = BACK_PROJECT):
    """photo's post-fit identity check: (whether it applies: `restore` 'auto' with weights whose faces can
    be fitted at all; the Identity model, or None where it does not apply or dlib or its files are missing)."""
    m = measurement(weights_sha256, back_project > 0)
    applies = restore == "auto" and (m is None or m.wins != ())  # (): no face is ever fitted
    return applies, identity_mod.Identity.from_cache() if applies and identity_mod.available() else None


MAX_OUTPUT_PIXELS = 64_000_000
"""The default --upscale is capped so the written photo stays under this many pixels."""


@dataclass
class FaceResult:
    face: Face
    alignment: Alignment
    lr_size: int | None
    """Input size it was super-resolved from (None: kept before any fit, see `reason`)."""
    seed: int
    reason: str = ""
    """The decision in words ("restored", "kept: larger than the generator's 64 px", ...)."""
    restored: bool = False
    """Whether the result went into the photo (else the face is the resized original)."""
    lr: torch.Tensor | None = None
    """(3, s, s) in [0, 1]: the aligned input."""
    sr: torch.Tensor | None = None
    """(3, R, R) in [0, 1]: the generator's output (also kept when a check refused it)."""
    loss: float | None = None
    consistency_db: float | None = None
    """PSNR-Y of the output downscaled to the input's size against the input."""
    identity: float | None = None
    """dlib identity distance between the enlarged input and the output (None: not measured)."""
    seconds: float = 0.0
    pasted_box: tuple | None = None

    def to_dict(self, resolution: int) -> dict:
        d = self.face.to_dict()
        d.update({"aligned_side": round(self.alignment.side, 2),
                  "alignment": [[round(float(v), 6) for v in row] for row in self.alignment.matrix],
                  "input_size": self.lr_size, "scale": resolution // self.lr_size if self.lr_size else None,
                  "seed": self.seed, "loss": self.loss, "seconds": round(self.seconds, 3),
                  "restored": self.restored, "reason": self.reason,
                  "consistency_db": None if self.consistency_db is None else round(self.consistency_db, 2),
                  "identity_distance": None if self.identity is None else round(self.identity, 4),
                  "pasted_box": list(self.pasted_box) if self.pasted_box else None})
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
    strength: float = 1.0
    back_project: int = BACK_PROJECT
    """Back-projection steps of each restored face onto the photo (`project.py`)."""
    monochrome: bool = False
    """The input was grey or toned: faces kept its chroma (`chroma.py`)."""
    identity_check: bool = False
    """Whether the identity check ran (dlib installed and its models fetched)."""

    def summary(self) -> str:
        """'5 faces restored, 2 kept: larger than the generator's 64 px' (counts per reason)."""
        return summarize(self.faces)


def summarize(faces: list[FaceResult]) -> str:
    restored = sum(f.restored for f in faces)
    kept: dict[str, int] = {}
    for f in faces:
        if not f.restored:
            why = f.reason.removeprefix("kept: ")
            why = why.split(" (")[0] if why.startswith(("the fit failed", "another person", "too small")) else why
            kept[why] = kept.get(why, 0) + 1
    parts = [f"{restored} face{'s' if restored != 1 else ''} restored"]
    parts += [f"{n} kept: {why}" for why, n in sorted(kept.items(), key=lambda kv: -kv[1])]
    return ", ".join(parts)


def default_upscale(rgb: np.ndarray, faces: list[Face], resolution: int, sides: list[float],
                    max_pixels: int = MAX_OUTPUT_PIXELS) -> int:
    """The factor that brings the median face's aligned square to the generator's resolution,
    rounded and held to 2..4, then lowered while the output would pass `max_pixels` (down to 1)."""
    h, w = rgb.shape[:2]
    u = int(np.clip(round(resolution / float(np.median(sides))), 2, 4)) if sides else 2
    while u > 1 and h * w * u * u > max_pixels:
        u -= 1
    return u


def fit_faces(rgb: np.ndarray, session, min_face: float = 12.0, max_faces: int | None = None,
              upscale: float | None = None, seed: int = 0, batch: int = 8, min_score: float = MIN_SCORE,
              restore: str = "auto", identity=None, on_batch=None,
              protocol: bool = True, back_project: int = BACK_PROJECT) -> tuple[list[FaceResult], float, str, dict]:
    """Detect, align, decide and super-resolve: (faces, upscale, frame name, stage seconds); nothing
    is pasted yet (`composite`). `identity`: a `metrics.identity.Identity` for the identity check, or None.
    `protocol`: apply the photo protocol's measurements of these weights (`decide.PROTOCOL`), the one of
    their faces pasted with `back_project` steps or without."""
    stages = {}
    t = time.perf_counter()
    faces = detect(rgb, min_face=min_face, max_faces=max_faces, device="cpu", min_score=min_score)
    stages["detect"] = time.perf_counter() - t

    res = session.resolution
    frame = weights_frame(session.gan, session.spec) or FFHQ
    t = time.perf_counter()
    photo = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255
    aligned = [align(face.landmarks, frame) for face in faces]
    if upscale is None:
        upscale = default_upscale(rgb, faces, res, [a.side for a in aligned if lr_size(a.side, res) is not None])
    results = []
    measured = measurement(getattr(session.gan, "sha256", None), back_project > 0) if protocol else None
    consistent = measured.consistent_db if measured is not None else CONSISTENT_DB  # check()'s bar
    for i, (face, a) in enumerate(zip(faces, aligned)):
        p = plan(a.side, upscale, res, restore, measured, back_project > 0)
        r = FaceResult(face, a, p.input_size, seed + i, reason=p.reason)
        if p.input_size is not None:
            r.lr = warp_face(photo, a, p.input_size)
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
    t = time.perf_counter()
    for r in todo:
        if restore == "all":  # measured for the record, not acted on
            r.restored, r.consistency_db = True, consistency_db(r.sr, r.lr)
            r.identity = identity_distance(r.sr, r.lr, identity) if identity is not None else None
        else:
            r.restored, r.reason, r.consistency_db, r.identity = check(r.sr, r.lr, identity, consistent)
    stages["check"] = time.perf_counter() - t
    return results, float(upscale), frame.name, stages


def composite(rgb: np.ndarray, faces: list[FaceResult], upscale: float, strength: float = 1.0,
              monochrome: bool | None = None, back_project: int = BACK_PROJECT, control: bool = False) -> np.ndarray:
    """The photo resampled by `upscale` with every restored face pasted at `strength` (0: the resized
    original bit for bit, 1: the result), each back-projected onto `rgb` in `back_project` steps
    (`project.py`; 0: as the generator made it). `monochrome` (None: measured on `rgb`): faces keep the
    photo's own tint. `control`: paste the resized original itself in the restored faces' places (with
    `back_project`, the projection without the generator: the photo protocol's control). Sets each
    face's pasted_box."""
    canvas = upscale_photo(rgb, upscale)
    mono = is_monochrome(rgb) if monochrome is None else monochrome
    tint = tint_curve(rgb) if mono else None
    for r in faces:
        r.pasted_box = None
        if r.restored and r.sr is not None:
            r.pasted_box = paste(canvas, None if control else r.sr, r.alignment, canvas.shape[1] / rgb.shape[1],
                                 strength, tint, rgb, back_project)
    return canvas


def restore_photo(rgb: np.ndarray, session, min_face: float = 12.0, max_faces: int | None = None,
                  upscale: float | None = None, seed: int = 0, batch: int = 8, min_score: float = MIN_SCORE,
                  restore: str = "auto", strength: float | None = None, identity=None,
                  on_batch=None, back_project: int = BACK_PROJECT) -> PhotoResult:
    """(H, W, 3) uint8 photo -> PhotoResult. Face i (top to bottom, left to right) gets seed `seed + i`.
    `session`: a `session.Session`; `restore`: 'auto' (the rules of `decide.py`), 'all' or 'none';
    `strength` in [0, 1]: per-face blend of the resized original (0) and the result (1); None: the
    weights' default (`decide.default_strength`, from the photo protocol);
    `identity`: a `metrics.identity.Identity` for the identity check (None: no such check).
    on_batch(done, total): progress callback. `back_project`: steps of back-projection of each restored
    face onto the photo (`project.py`; 0: pasted as the generator made it)."""
    faces, upscale, frame, stages = fit_faces(rgb, session, min_face, max_faces, upscale, seed, batch, min_score,
                                              restore, identity, on_batch, back_project=back_project)
    if strength is None:
        strength = default_strength(getattr(session.gan, "sha256", None), back_project > 0)
    t = time.perf_counter()
    mono = is_monochrome(rgb)
    canvas = composite(rgb, faces, upscale, strength, mono, back_project)
    stages["paste"] = time.perf_counter() - t
    return PhotoResult(canvas, upscale, faces, frame, {k: round(v, 3) for k, v in stages.items()},
                       strength, back_project, mono, identity is not None)
