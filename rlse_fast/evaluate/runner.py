"""The evaluation loop: faces x scales x methods -> metrics.csv (+ sample images), resumable.

With ground truth (`--hr`): each HR face (RGB, square) is resized to `hr_size` (PIL bicubic with
antialiasing, as the prior's training faces were made; skipped when it already has that size),
downscaled by PULSE's bicubic (`downsample.bicubic_downsample_ref`) and rounded to 8 bits: the LR
input. Every method turns the LR input into an `hr_size` face, rounded to 8 bits as saving it would,
and is scored against the HR face: PSNR and SSIM on the Y channel and on RGB, LPIPS, identity (dlib's face-recognition distance, `metrics/identity.py`, where dlib is
installed) and the PSNR of
its own downscaled output against the LR input (how well it explains the input).

Without ground truth (`--lr`, real low-resolution faces): each image is downscaled to
hr_size / scale (PULSE's bicubic for a power-of-two ratio, else PIL bicubic), super-resolved, and its
output scored with NIQE. NIQE needs 96x96 pixels at least; smaller outputs are first upscaled with
PIL bicubic to `niqe_size` (the smallest power-of-two multiple of hr_size >= 96), for every method
alike.

Methods: 'bicubic' and 'bilinear' upsample the LR input with PIL (Keys a = -0.5 bicubic, as MATLAB's
imresize), 'pulse' is `RLSEConfig.from_mode('pulse')`, 'rlse-nosem' the RLSE config without L_s,
'rlse-noft' the RLSE config without the generator's fine-tuning (opt-in: not in the default list),
'rlse' the full method; 'rlse-floor', 'rlse-noisefloor', 'rlse-last', 'rlse-ls5', 'rlse-lg5000',
'rlse-lg20000' and 'rlse-half' are the real-face variants of `GAN_MODES` (opt-in). The GAN methods
run the engine (`engine.select.run`) on --batch faces at a time, every face from the same seed, with the
generator moved into the test set's frame (`frames`).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..downsample import bicubic_downsample_ref, max_factor
from ..engine.objective import TERMS
from ..engine.select import pick_engine
from ..errors import UserError
from ..imageio import atomic_write
from . import csv_table
from .csv_table import read_rows
from .inputs import downscale, list_faces, load_uint8, pil_resize, to01, to_u8
from .methods import COLUMNS, DEFAULT_METHODS, GAN_MODES, METHODS, UPSAMPLERS


@dataclass
class EvalOptions:
    """One evaluation; converted from the CLI flags in `commands/eval.py`."""

    out: Path
    hr_dir: Path | None = None
    """Folder of ground-truth faces (mutually exclusive with lr_dir)."""
    lr_dir: Path | None = None
    """Folder of real low-resolution faces without ground truth: NIQE only."""
    scales: list[int] = field(default_factory=lambda: [8])
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    weights: str | None = None
    n: int | None = None
    """First n faces (sorted by name); None: all."""
    seed: int = 0
    steps: int = 100
    hr_size: int | None = None
    """Side of the HR faces after resizing; None: the generator's resolution (else the images' own)."""
    frame: str = "auto"
    """The generator's frame: 'auto' (from the weights), 'none', or a name in frames.FRAMES."""
    hr_frame: str = "celeba"
    """The frame of the evaluation faces."""
    device: str = "auto"
    impl: str = "auto"
    engine: str = "auto"
    """'eager', 'fast' or 'auto' (fast on CUDA), as `rlse-fast sr --engine`."""
    precision: str = "auto"
    """'fp32', 'bf16' (fast engine only) or 'auto' (bf16 with the fast engine on CUDA)."""
    graphs: bool = True
    batch: int = 1
    """Faces optimised together by the GAN methods (results equal one at a time up to float rounding, which
    the optimiser can amplify)."""
    gaussian_samples: int | None = None
    grid: int = 8
    """Faces whose images are saved for the report's grid."""
    lpips: bool = True
    identity: bool = True
    """Score identity where dlib and its models are present (a note on stderr otherwise)."""
    threads: int | None = None
    quiet: bool = False
    command: str = ""


# ----------------------------------------------------------------------------- results file


def write_rows(path: Path, rows: list[dict]) -> None:
    order = {m: i for i, m in enumerate(METHODS)}
    csv_table.write_rows(path, rows, COLUMNS, lambda r: (int(r["scale"]), r["image"], order.get(r["method"], 99)))


# ----------------------------------------------------------------------------- the run


def check_options(opt: EvalOptions) -> None:
    if (opt.hr_dir is None) == (opt.lr_dir is None):
        raise UserError("give exactly one of --hr DIR (faces with ground truth) or --lr DIR (real low-res faces, NIQE only)")
    unknown = [m for m in opt.methods if m not in METHODS]
    if unknown or not opt.methods:
        raise UserError(f"unknown method {', '.join(unknown) or '(none)'}; choose from {','.join(METHODS)}")
    if len(set(opt.methods)) != len(opt.methods):
        raise UserError("--methods lists a method twice; list each once")
    for s in opt.scales:
        if s < 2 or s & (s - 1):
            raise UserError(f"--scale must be powers of two >= 2 (e.g. 8 16), got {s}")
    if opt.steps < 1:
        raise UserError("--steps must be >= 1")
    if opt.n is not None and opt.n < 1:
        raise UserError("--n must be >= 1")
    if opt.hr_size is not None and opt.hr_size < 2:
        raise UserError("--hr-size must be >= 2")
    if opt.batch < 1:
        raise UserError("--batch must be >= 1")


def run_eval(opt: EvalOptions) -> dict:
    """Run (or resume) the evaluation and write metrics.csv, summary.md and report.html under opt.out."""
    from .. import launch
    from ..faces import frames as frames_mod
    from . import report

    check_options(opt)
    has_gt = opt.hr_dir is not None
    faces = list_faces(opt.hr_dir if has_gt else opt.lr_dir, opt.n)
    gan_methods = [m for m in opt.methods if m in GAN_MODES]
    from ..session import EngineOptions, Session

    device = launch.start(opt.device, threads=opt.threads)  # under torchrun: this rank's GPU or share of the cores
    fast, precision = pick_engine(opt.engine, opt.precision, device)

    session = gan = G = None
    src_frame = dst_frame = None
    if gan_methods:
        # No config to check against: each method has its own, checked here.
        options = EngineOptions(opt.weights, None, str(device), opt.engine, opt.precision, opt.graphs, opt.impl,
                                opt.gaussian_samples, opt.quiet)
        session = Session.open(options, in_turn=launch.in_turn, fit=False)
        gan, G = session.gan, session.G
        if any(GAN_MODES[m].get("semantic", True) and GAN_MODES[m]["mode"] == "rlse" for m in gan_methods) \
                and session.D is None:
            raise UserError("these weights hold no discriminator, which 'rlse' needs for L_s; drop it from --methods")
        dst_frame = frames_mod.FRAMES[opt.hr_frame]
        if opt.frame == "auto":
            src_frame = frames_mod.weights_frame(gan, opt.weights)
            if src_frame is None and not opt.quiet:
                print("note: the generator's frame is unknown (no 'frame' metadata, not ffhq/celeba64); no warp",
                      file=sys.stderr)
        elif opt.frame != "none":
            src_frame = frames_mod.FRAMES[opt.frame]
    first = load_uint8(faces[0])
    hr_size = opt.hr_size or (G.img_resolution if G is not None else first.shape[0])
    if G is not None and hr_size != G.img_resolution:
        raise UserError(f"--hr-size {hr_size} differs from the generator's {G.img_resolution}px; the GAN methods "
                        f"make {G.img_resolution}px faces, so use --hr-size {G.img_resolution} (the default)")

    for s in opt.scales:
        if hr_size % s:
            raise UserError(f"--scale {s} does not divide the HR size {hr_size}px; use a smaller scale or another --hr-size")
        if s > max_factor(hr_size):  # the downscaler pads by 1.5x the factor, inside the image
            raise UserError(f"--scale {s} is too large for {hr_size}px faces (x{max_factor(hr_size)} at most: the "
                            "downscaler needs faces larger than 1.5x the factor); use a smaller scale or a larger --hr-size")
    niqe_size = hr_size
    while niqe_size < 96:
        niqe_size *= 2

    run_info = {
        "command": opt.command, "mode": "hr" if has_gt else "lr",
        "data": str((opt.hr_dir or opt.lr_dir).resolve()), "faces": len(faces), "scales": opt.scales,
        "methods": opt.methods, "hr_size": hr_size, "niqe_size": None if has_gt else niqe_size,
        "seed": opt.seed, "steps": opt.steps, "device": str(device), "impl": opt.impl,
        "engine": "fast" if fast else "eager", "precision": precision, "graphs": fast and opt.graphs,
        "batch": opt.batch, "ranks": launch.current().size,
        "threads": torch.get_num_threads(), "hr_frame": opt.hr_frame, "frame": opt.frame,
        "frame_warp": frames_mod.describe(src_frame, dst_frame) if gan_methods else "no GAN method: no warp",
        "weights": None if gan is None else {
            "path": gan.path, "sha256": gan.sha256, "format": gan.source_format,
            "kimg": gan.metadata.get("kimg"), "resolution": G.img_resolution},
        "configs": {},
        "identity": has_gt and opt.identity and _identity_available(),
    }
    cfgs = {}
    if gan_methods:
        from ..config import RLSEConfig

        overrides = {"steps": opt.steps}
        if opt.gaussian_samples:
            overrides["gaussian_samples"] = opt.gaussian_samples
        for m in gan_methods:
            spec = dict(GAN_MODES[m])
            fraction = spec.pop("steps_fraction", 1.0)
            cfgs[m] = RLSEConfig.from_mode(**spec, **{**overrides, "steps": max(1, round(opt.steps * fraction))})
            run_info["configs"][m] = cfgs[m].to_dict()
    _check_resume(opt.out, run_info)
    if gan_methods:  # the default weights' notice: after the checks, never before an input error
        from .. import weights as weights_mod

        weights_mod.tell_default(opt.weights, opt.quiet)

    # Under torchrun each rank writes its rows to its own part file, merged by rank 0 at the end (and
    # by the next run's open() if this one is killed); in a single process, metrics.csv directly.
    table = launch.ShardedTable(opt.out / "metrics.csv", read_rows, write_rows, key=_row_key)
    if launch.is_main():
        from ..imageio import save_json

        save_json(run_info, opt.out / "run.json")
    rows = table.open()
    done = {_row_key(r) for r in rows}
    todo = [(f, s, m) for f in faces for s in opt.scales for m in opt.methods if (f.name, s, m) not in done]

    lpips = None
    if has_gt and opt.lpips and todo:
        from ..metrics import LPIPS

        try:
            lpips = LPIPS.from_checkpoint().to(device)
        except UserError as exc:
            raise UserError(f"{exc}; or pass --no-lpips") from None
    identity = None
    if run_info["identity"] and todo:
        from ..metrics.identity import Identity

        identity = Identity.from_cache()
    elif has_gt and opt.identity and not opt.quiet:
        print("note: no identity column (needs pip install 'rlse-fast[identity]' and rlse-fast fetch-assets)",
              file=sys.stderr)
    if todo and gan_methods:
        session.prepare_fit(launch.in_turn)
        G_framed = frames_mod.framed(G, src_frame, dst_frame)

    job = launch.FolderJob(len(todo), "run", quiet=opt.quiet, desc="eval")  # the whole job's bar, on rank 0
    bar = job.bar
    grid_names = {f.name for f in faces[:opt.grid]}
    pending = set(todo)
    # Under torchrun a rank takes whole faces (their rows and images are its own files).
    mine = job.shard([f for f in faces if any((f, s, m) in pending for s in opt.scales for m in opt.methods)])
    # Faces go in chunks of --batch: per chunk and scale, each GAN method optimises the chunk's faces
    # in one batch (each face as if alone), then every face is scored; metrics.csv is rewritten after
    # every chunk, so an interrupted run resumes there.
    for start in range(0, len(mine), opt.batch):
        chunk = mine[start:start + opt.batch]
        if not chunk:
            continue
        imgs = {face: load_uint8(face) for face in chunk}
        for scale in [s for s in opt.scales if any((f, s, m) in pending for f in chunk for m in opt.methods)]:
            lr_size = hr_size // scale
            pairs = {}  # face -> (hr, lr, image folder, kept for the grid)
            for face in chunk:
                if not any((face, scale, m) in pending for m in opt.methods):
                    continue
                if has_gt:
                    hr = pil_resize(imgs[face], hr_size, "bicubic")
                    lr = downscale(hr, lr_size)
                else:
                    hr, lr = None, downscale(imgs[face], lr_size)
                img_dir = opt.out / "images" / f"x{scale}" / face.stem
                keep = face.name in grid_names
                if keep:
                    _save(lr, img_dir / "lr.png")
                    if hr is not None:
                        _save(hr, img_dir / "hr.png")
                pairs[face] = (hr, lr, img_dir, keep)
            for method in opt.methods:
                batch = [f for f in pairs if (f, scale, method) in pending]
                if not batch:
                    continue
                bar.set_postfix_str(f"{batch[0].name}{f' +{len(batch) - 1}' if len(batch) > 1 else ''} x{scale} {method}")
                if method in UPSAMPLERS:
                    outs, extras = [], []
                    for face in batch:
                        t0 = time.perf_counter()
                        outs.append(pil_resize(pairs[face][1], hr_size, method))
                        extras.append({"seconds": time.perf_counter() - t0})
                else:
                    lr_batch = torch.cat([to01(pairs[f][1]) for f in batch]).to(device)
                    res = session.run(lr_batch, seeds=opt.seed, cfg=cfgs[method], G=G_framed)
                    outs, extras = [], []
                    for i in range(len(batch)):
                        outs.append(to_u8(res.images[i:i + 1]))
                        best = res.history[res.best_step[i]]  # the unweighted loss terms of the kept iterate
                        extras.append({"seconds": res.seconds / len(batch), "best_step": res.best_step[i],
                                       "best_loss": float(res.best_loss[i]),
                                       **{f"loss_{name}": best[name][i] for name, _, _ in TERMS}})
                for face, out, extra in zip(batch, outs, extras):
                    hr, lr, img_dir, keep = pairs[face]
                    row = {"image": face.name, "scale": scale, "method": method, **extra}
                    row.update(score(out, hr, lr, lpips, device, niqe_size, identity))
                    table.add(row)
                    pending.discard((face, scale, method))
                    if keep:
                        _save(out, img_dir / f"{method}.png")
                    bar.update(1)
        table.flush()
    job.finish()  # under torchrun: waits for every rank
    rows = table.close()  # rank 0 writes metrics.csv
    if not rows:
        raise UserError(f"nothing to report in {opt.out}")
    if launch.is_main():
        report.write_all(opt.out, run_info, read_rows(opt.out / "metrics.csv"))
    return run_info


def _identity_available() -> bool:
    from ..metrics import identity

    return identity.available()


def _row_key(row: dict) -> tuple:
    return row["image"], int(row["scale"]), row["method"]


def score(out: np.ndarray, hr: np.ndarray | None, lr: np.ndarray, lpips, device, niqe_size: int,
          identity=None) -> dict:
    """Scores of one 8-bit output (H, W, 3) against the HR face (or NIQE without one)."""
    from ..metrics import psnr_batch, ssim_batch

    o = to01(out).double() * 2 - 1
    scale = out.shape[0] // lr.shape[0]
    lr_hat = bicubic_downsample_ref(to01(out).double(), scale) * 2 - 1
    row = {"lr_psnr_y": float(psnr_batch(lr_hat, to01(lr).double() * 2 - 1, "y")[0])}
    if hr is None:
        from ..metrics.niqe import niqe

        row["niqe"] = niqe(pil_resize(out, niqe_size, "bicubic"))
        return row
    h = to01(hr).double() * 2 - 1
    row.update(psnr_y=float(psnr_batch(o, h, "y")[0]), ssim_y=float(ssim_batch(o, h, "y")[0]),
               psnr_rgb=float(psnr_batch(o, h, "rgb")[0]), ssim_rgb=float(ssim_batch(o, h, "rgb")[0]))
    if lpips is not None:
        with torch.no_grad():
            row["lpips"] = float(lpips(o.float().to(device), h.float().to(device))[0])
    if identity is not None:
        row["identity"] = identity.distance(hr, out)
    return row


def _save(img: np.ndarray, path: Path) -> None:
    from PIL import Image

    atomic_write(path, lambda tmp: Image.fromarray(img).save(tmp, format="PNG", optimize=True))


# What must match for a resumed run to extend an earlier one's metrics.csv.
_RESUME_KEYS = ("mode", "data", "hr_size", "seed", "steps", "hr_frame", "frame_warp", "engine", "precision")
# What a run.json written before a key existed meant by it.
_RESUME_DEFAULTS = {"engine": "eager", "precision": "fp32"}


def rebuild_report(out: Path) -> dict:
    """Write summary.md and report.html again from OUT/run.json and OUT/metrics.csv (nothing is run)."""
    from . import report

    path = out / "run.json"
    if not path.is_file() or not (out / "metrics.csv").is_file():
        raise UserError(f"{out} holds no run.json and metrics.csv of an earlier eval; run the evaluation first")
    info = json.loads(path.read_text())
    rows = read_rows(out / "metrics.csv")
    if not rows:
        raise UserError(f"{out / 'metrics.csv'} has no rows; run the evaluation first")
    report.write_all(out, info, rows)
    return info


def _check_resume(out: Path, info: dict) -> None:
    path = out / "run.json"
    if not path.is_file():
        if (out / "metrics.csv").is_file():
            raise UserError(f"{out} holds a metrics.csv without run.json; use a new --out folder")
        return
    try:
        old = json.loads(path.read_text())
    except ValueError:
        raise UserError(f"{path} is not valid JSON; delete it or use a new --out folder") from None
    diff = [k for k in _RESUME_KEYS if old.get(k, _RESUME_DEFAULTS.get(k)) != info.get(k)
            and not (k == "frame_warp" and "no GAN method" in (str(old.get(k)) + str(info.get(k))))]
    old_w, new_w = old.get("weights") or {}, info.get("weights") or {}
    if old_w.get("sha256") and new_w.get("sha256") and old_w["sha256"] != new_w["sha256"]:
        diff.append("weights")
    for m, cfg in info["configs"].items():
        if m in old.get("configs", {}) and old["configs"][m] != cfg:
            diff.append(f"config of {m}")
    if diff:
        raise UserError(f"{out} holds results of a different run ({', '.join(diff)} changed); "
                        "use a new --out folder, or delete that one to start over")
    # Keep the configs of methods run earlier but not listed now.
    info["configs"] = {**old.get("configs", {}), **info["configs"]}
    info["methods"] = list(dict.fromkeys(old.get("methods", []) + info["methods"]))
    info["scales"] = sorted(set(old.get("scales", [])) | set(info["scales"]))
    info["faces"] = max(int(old.get("faces", 0)), info["faces"])
