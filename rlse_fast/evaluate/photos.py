"""The photo protocol: ground truth for `rlse-fast photo`, from real photos.

Each photo is cropped to a multiple of the scale s, downscaled by s (Pillow bicubic, antialiased),
restored by the photo pipeline with --upscale s, and scored against the original. Faces are the ones
MTCNN finds on the ORIGINAL photo at least `MIN_FACE` x s px wide (so they stay at or above the
detector's 12 px window once downscaled); each face's region is its detector box widened to a square
of 1.2 x its larger side, clipped to the photo. Per face and method: PSNR-Y and SSIM-Y on the region
(8-bit, MATLAB's Y), LPIPS on the region resized to LPIPS_SIDE px (bicubic, both images alike: AlexNet
needs more than the faces' 30-80 px), and identity (dlib's distance, landmarks from the original;
`metrics/identity.py`); per photo the same over the whole image (identity excepted).

Methods: 'lanczos' (Pillow's Lanczos upscaling of the downscaled photo: the pipeline's own background),
'photo' (the pipeline with its defaults, strength included), 'photo-s<k>' (the same fit pasted at strength k: a blend, no
new fit) and 'photo-all' (`--restore all` at strength 1: every face restored, a second fit; 'photo-all-s<k>' its blends;
'photo-all-p0' the same faces pasted without back-projection; 'lanczos-p' the control: the Lanczos faces
back-projected in the same places, no generator) and, for
weights the protocol has measured (`faces.decide.PROTOCOL`), 'photo-rules': the size rules and
checks without that measurement, at strength 1 (what unmeasured weights get). A face the pipeline
keeps, or does not find on the downscaled photo, is the Lanczos one: its difference is exactly 0.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import launch
from ..errors import UserError
from ..faces.decide import default_strength, measurement
from ..faces.detect import detect
from ..faces.paste import upscale_photo
from ..faces.photo_io import read_photo
from ..faces.pipeline import composite, fit_faces
from ..imageio import atomic_write, save_json
from ..metrics import LPIPS, identity as identity_mod, psnr_batch, ssim_batch, uint8_to_tensor
from . import csv_table, photos_report
from .csv_table import read_rows
from .inputs import IMAGE_SUFFIXES
from .photos_report import BUCKETS

MIN_FACE = 12.0
"""The detector's smallest window: a face must keep this width in the downscaled photo."""
REGION = 1.2
LPIPS_SIDE = 128
COLUMNS = ("photo", "scale", "face", "method", "width_in", "bucket", "psnr_y", "ssim_y", "lpips", "identity",
           "restored", "reason", "consistency_db", "fit_identity")


@dataclass
class PhotoEvalOptions:
    """One protocol run; converted from `rlse-fast photo-eval`'s flags in one place."""

    photos: Path
    """A photo or a folder of photos (the originals: the ground truth)."""
    out: Path
    scales: list[int] = field(default_factory=lambda: [2, 4])
    strengths: list[float] = field(default_factory=list)
    """Extra strengths pasted from the same fit ('photo-s<k>' rows)."""
    restore_all: bool = False
    """Also run `--restore all` ('photo-all' rows: a second fit)."""
    max_faces: int | None = None
    """Per photo and scale, the N widest faces kept by the pipeline's detector (None: all)."""
    seed: int = 0
    quiet: bool = False
    command: str = ""


def list_photos(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path} is neither a photo nor a folder; pass the original photos")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise UserError(f"{path} holds no .png/.jpg/.jpeg/.webp photos; pass a folder of photos")
    return files


def bucket(width: float) -> str:
    return next(name for lo, hi, name in BUCKETS if lo <= width < hi)


def region(box, s: int, shape) -> tuple[int, int, int, int]:
    """The scored square around a detector box, in whole multiples of s (so it maps exactly onto the
    downscaled photo), clipped to the image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = REGION * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    h, w = shape[:2]
    a = lambda v, hi: int(min(max(s * round(v / s), 0), hi))
    return a(cx - side / 2, w), a(cy - side / 2, h), a(cx + side / 2, w), a(cy + side / 2, h)


def downscale_photo(hr: np.ndarray, s: int) -> np.ndarray:
    h, w = hr.shape[:2]
    return np.asarray(Image.fromarray(hr).resize((w // s, h // s), Image.BICUBIC))


class Scorer:
    """PSNR-Y, SSIM-Y, LPIPS and identity of one image (or region) against its original."""

    def __init__(self, lpips, identity):
        self.lpips, self.identity = lpips, identity

    def __call__(self, out: np.ndarray, ref: np.ndarray, box=None, whole: bool = False) -> dict:
        if box is not None:
            x0, y0, x1, y1 = box
            o, r = out[y0:y1, x0:x1], ref[y0:y1, x0:x1]
        else:
            o, r = out, ref
        to = uint8_to_tensor(np.ascontiguousarray(o)).double()
        tr = uint8_to_tensor(np.ascontiguousarray(r)).double()
        row = {"psnr_y": float(psnr_batch(to, tr, "y")[0]), "ssim_y": float(ssim_batch(to, tr, "y")[0])}
        if self.lpips is not None:
            if not whole:
                o = np.asarray(Image.fromarray(o).resize((LPIPS_SIDE, LPIPS_SIDE), Image.BICUBIC))
                r = np.asarray(Image.fromarray(r).resize((LPIPS_SIDE, LPIPS_SIDE), Image.BICUBIC))
            with torch.no_grad():
                row["lpips"] = float(self.lpips(uint8_to_tensor(o), uint8_to_tensor(r))[0])
        return row

    def identity_of(self, out: np.ndarray, ref: np.ndarray, face_box) -> float | None:
        return None if self.identity is None else self.identity.distance(ref, out, face_box)


def _match(hr_face, faces, s: int):
    """The pipeline's face (on the downscaled photo) whose box centre lies within half the original
    box's width of the original's centre, or None."""
    c = (np.asarray(hr_face.box[:2]) + np.asarray(hr_face.box[2:])) / 2
    best, dist = None, 0.5 * hr_face.width
    for f in faces:
        d = float(np.hypot(*((np.asarray(f.face.box[:2]) + np.asarray(f.face.box[2:])) / 2 * s - c)))
        if d < dist:
            best, dist = f, d
    return best


def score_photo(name: str, hr: np.ndarray, s: int, session, opt: PhotoEvalOptions, scorer: Scorer,
                identity=None, images: Path | None = None) -> list[dict]:
    """Every row of one photo at scale s (the originals' faces x methods, and the whole photo)."""
    h, w = hr.shape[:2]
    hr = np.ascontiguousarray(hr[:h // s * s, :w // s * s])
    gt_faces = detect(hr, min_face=MIN_FACE * s)
    if not gt_faces:
        return []
    lr = downscale_photo(hr, s)
    outs = {"lanczos": upscale_photo(lr, s)}
    fits = {}

    sha = getattr(session.gan, "sha256", None)

    def variant(name: str, strength: float, **kwargs) -> None:
        """One fit of the pipeline, pasted at `strength` and at each extra strength."""
        faces, _, _, _ = fit_faces(lr, session, max_faces=opt.max_faces, upscale=s, seed=opt.seed,
                                   identity=identity, **kwargs)
        for suffix, k in [("", strength)] + [(f"-s{k:g}", k) for k in opt.strengths]:
            fits[name + suffix] = faces
            outs[name + suffix] = composite(lr, faces, s, k)

    variant("photo", default_strength(sha))
    if opt.restore_all:
        variant("photo-all", 1.0, restore="all")
        # Evidence for back-projection, from the same fit: none, and the projection alone (the Lanczos
        # face projected in the same places: what the generator adds beyond it).
        fits["photo-all-p0"] = fits["lanczos-p"] = fits["photo-all"]
        outs["photo-all-p0"] = composite(lr, fits["photo-all"], s, 1.0, back_project=0)
        outs["lanczos-p"] = composite(lr, fits["photo-all"], s, 1.0, control=True)
        if measurement(sha) is not None:
            rules, _, _, _ = fit_faces(lr, session, max_faces=opt.max_faces, upscale=s, seed=opt.seed,
                                       identity=identity, protocol=False)
            fits["photo-rules"] = rules
            outs["photo-rules"] = composite(lr, rules, s, 1.0)
    rows = []
    for method, out in outs.items():
        assert out.shape == hr.shape, (out.shape, hr.shape)
        rows.append({"photo": name, "scale": s, "face": "all", "method": method, **scorer(out, hr, whole=True)})
        for i, g in enumerate(gt_faces):
            box = region(g.box, s, hr.shape)
            row = {"photo": name, "scale": s, "face": i, "method": method, "width_in": round(g.width / s, 2),
                   "bucket": bucket(g.width / s), **scorer(out, hr, box),
                   "identity": scorer.identity_of(out, hr, g.box)}
            m = _match(g, fits.get(method, []), s)
            if m is not None:
                row.update(restored=int(m.restored), reason=m.reason, consistency_db=m.consistency_db,
                           fit_identity=m.identity)
            elif method != "lanczos":
                row.update(restored=0, reason="not found on the downscaled photo")
            rows.append(row)
            crop = out[box[1]:box[3], box[0]:box[2]]
            # Blends: their fit's crop is enough; a crop equal to Lanczos's (a kept face) is not saved twice.
            if images is not None and "-s" not in method and (
                    method == "lanczos" or not np.array_equal(crop, outs["lanczos"][box[1]:box[3], box[0]:box[2]])):
                _save_crop(crop, images / f"x{s}" / Path(name).stem / f"{i:03d}_{method}.png")
                if method == "lanczos":
                    _save_crop(hr[box[1]:box[3], box[0]:box[2]], images / f"x{s}" / Path(name).stem / f"{i:03d}_original.png")
    return rows


def _save_crop(img: np.ndarray, path: Path) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(np.ascontiguousarray(img)).save(tmp, format="PNG"))


# ----------------------------------------------------------------------------- results file


def write_rows(path: Path, rows: list[dict]) -> None:
    csv_table.write_rows(path, rows, COLUMNS, lambda r: (int(r["scale"]), r["photo"],
                                                         -1 if r["face"] == "all" else int(r["face"]), r["method"]))


def row_key(r: dict) -> tuple:
    """A metrics.csv row's identity: (photo, scale, face, method)."""
    return r["photo"], int(r["scale"]), str(r["face"]), r["method"]


# ----------------------------------------------------------------------------- the run


def check_options(opt: PhotoEvalOptions) -> None:
    for s in opt.scales:
        if s not in (2, 3, 4, 8):
            raise UserError(f"--scale must be 2, 3, 4 or 8, got {s}")
    for k in opt.strengths:
        if not 0 <= k <= 1:
            raise UserError(f"--strengths must lie in 0-1, got {k:g}")
    if opt.max_faces is not None and opt.max_faces < 1:
        raise UserError("--max-faces must be >= 1")


def eligible(photos: list[Path], scales: list[int]) -> list[tuple[Path, int]]:
    """(photo, scale) jobs whose original has a face of at least MIN_FACE x scale px; UserError
    (one line) for a single photo without one, or when no job is left."""
    jobs, widest = [], {}
    for p in photos:
        faces = detect(read_photo(p), min_face=MIN_FACE)
        widest[p] = max((f.width for f in faces), default=0.0)
        jobs += [(p, s) for s in scales if widest[p] >= MIN_FACE * s]
    if not jobs:
        if all(v == 0 for v in widest.values()):
            what = photos[0].name if len(photos) == 1 else f"any of the {len(photos)} photos"
            raise UserError(f"no face found in {what}; the protocol needs photos with faces at least "
                            f"{MIN_FACE * min(scales):g} px wide")
        raise UserError(f"every face is under {MIN_FACE:g} px once downscaled by {'/'.join(map(str, scales))} "
                        f"(the widest is {max(widest.values()):.0f} px; the detector needs {MIN_FACE:g} px): "
                        "use a smaller --scale or photos with larger faces")
    return jobs


def run_photo_eval(opt: PhotoEvalOptions, session, jobs: list[tuple[Path, int]] | None = None) -> dict:
    """Run (or resume) the protocol: OUT/metrics.csv, run.json, summary.md, summary.json, report.html."""
    check_options(opt)
    jobs = jobs or eligible(list_photos(opt.photos), opt.scales)
    if not identity_mod.available():
        raise UserError("the protocol scores identity with dlib: pip install 'rlse-fast[identity]' and run "
                        "`rlse-fast fetch-assets`")
    identity = identity_mod.Identity.from_cache()
    info = {"command": opt.command, "photos": str(opt.photos.resolve()), "scales": opt.scales,
            "strengths": opt.strengths, "restore_all": opt.restore_all, "max_faces": opt.max_faces,
            "seed": opt.seed, "weights": {"path": session.gan.path, "sha256": session.gan.sha256},
            "config": session.cfg.to_dict(), "device": str(session.device), "ranks": launch.current().size,
            "jobs": [[p.name, s] for p, s in jobs]}
    old = opt.out / "run.json"
    if old.is_file():
        prev = json.loads(old.read_text())
        diff = [k for k in ("photos", "strengths", "restore_all", "max_faces", "seed", "weights", "config")
                if prev.get(k) != info[k]]
        if diff:
            raise UserError(f"{opt.out} holds a protocol run with other settings ({', '.join(diff)}); "
                            "use a new --out folder")
    table = launch.ShardedTable(opt.out / "metrics.csv", read_rows, write_rows, key=row_key)
    if launch.is_main():
        save_json(info, old)
    rows = table.open()
    done = {(r["photo"], int(r["scale"])) for r in rows}
    todo = [(p, s) for p, s in jobs if (p.name, s) not in done]
    scorer = Scorer(LPIPS.from_checkpoint().to("cpu") if todo else None, identity)
    bar = launch.Progress(total=len(todo), unit="photo", disable=opt.quiet, desc="photo-eval")
    for p, s in launch.shard(todo):  # under torchrun: whole (photo, scale) jobs per rank
        bar.set_postfix_str(f"{p.name} x{s}")
        for row in score_photo(p.name, read_photo(p), s, session, opt, scorer, identity, opt.out / "images"):
            table.add(row)
        table.flush()
        bar.update(1)
    bar.close()
    table.close()
    if launch.is_main():
        photos_report.write_all(opt.out, info, read_rows(opt.out / "metrics.csv"))
    return info


def rebuild_report(out: Path) -> dict:
    """summary.md, summary.json and report.html again from OUT/run.json and OUT/metrics.csv."""
    if not (out / "run.json").is_file() or not (out / "metrics.csv").is_file():
        raise UserError(f"{out} holds no run.json and metrics.csv of an earlier photo-eval; run it first")
    return photos_report.write_all(out, json.loads((out / "run.json").read_text()), read_rows(out / "metrics.csv"))
