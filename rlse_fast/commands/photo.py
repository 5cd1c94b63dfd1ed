"""`rlse-fast photo IN OUT`: find every face in a photo, super-resolve it, paste it back."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..engine.select import pick_engine
from ..errors import UserError
from ..imageio import atomic_write, save_image, save_json
from .engine_options import add_engine_args, build_config, load_session, validate_engine_args
from .help_format import DefaultsOnce


def register(sub) -> None:
    p = sub.add_parser(
        "photo", help="super-resolve every face in a whole photo (or a folder of photos) and paste them back",
        formatter_class=DefaultsOnce,
        description="Detect faces with 5 landmarks (MTCNN, offline: run `rlse-fast fetch-assets` once), align "
                    "each to the generator's frame, super-resolve them in batches, and paste them back into the "
                    "photo upscaled by --upscale with a feathered mask, each back-projected onto the photo (the "
                    "output, downscaled again, gives back the input). Only faces are super-resolved: the rest "
                    "of the photo is resampled with Pillow's Lanczos filter. A face is restored only where it cannot "
                    "come out worse (--restore auto): faces that would have to be shrunk, faces larger than the "
                    "generator's output (unless the photo protocol measured the weights winning there, as for the "
                    "bundled celeba64), faces at sizes the protocol found the weights losing at "
                    "(docs/photo-protocol.md), failed fits and faces that became someone else keep the resized "
                    "original. Grey and sepia photos keep their own tint. Writes OUT, a JSON sidecar beside it "
                    "(per face: box, landmarks, score, input size, scale, seed, loss, seconds, the decision "
                    "and its reason; per stage: seconds) and with --save-faces a folder OUT-stem_faces/ of aligned "
                    "inputs and outputs. A photo with no face writes nothing and exits 1. IN may be a folder: OUT is "
                    "then a folder; a rerun keeps the photos made with the same settings, and those made with other "
                    "settings stop the run unless --overwrite.")
    p.add_argument("input", metavar="IN", help="photo (PNG/JPEG/WebP), or a folder of photos")
    p.add_argument("output", metavar="OUT", help="output photo (.png/.jpg/.webp), or a folder when IN is one")
    p.add_argument("--min-face", type=float, default=12.0,
                   help="smallest face width in pixels to detect (12 at least: the detector's window)")
    p.add_argument("--min-score", type=float, default=0.8,
                   help="lowest detector score kept (0.7-1; lower finds more faces and more false ones)")
    p.add_argument("--max-faces", type=int, default=None, help="keep only the N widest faces (default: all)")
    p.add_argument("--upscale", type=int, default=None,
                   help="output size factor (default: 2-4 from the faces' sizes, capped at 64 MP of output)")
    p.add_argument("--restore", choices=("auto", "all", "none"), default="auto",
                   help="auto: restore a face only where the generator can add detail and the result stays "
                        "consistent with its input and the same person (otherwise keep the resized original; "
                        "the sidecar says why per face); all: restore every face the weights can take; none: keep all")
    p.add_argument("--strength", type=float, default=None,
                   help="per-face blend of the resized original (0, bit for bit) and the result (1) "
                        "(default: the photo protocol's choice for the weights: 1, and 0.25 for the bundled celeba64 "
                        "with --back-project 0; docs/photo-protocol.md)")
    p.add_argument("--back-project", type=int, default=10, metavar="STEPS",  # faces.project.STEPS
                   help="steps of back-projection of each restored face onto the photo: the output, downscaled "
                        "again, must give back the input, so the face keeps who it is and gains only detail "
                        "(default 10; 0: paste the generator's face as it is; docs/photo-protocol.md)")
    p.add_argument("--save-faces", action="store_true", help="also write each face's aligned input and output")
    p.add_argument("--html", action="store_true",
                   help="also write OUT-stem.html (the photo with its boxes, before/after, each face input -> "
                        "output) and the images it shows in a folder OUT-stem_files/ beside it: keep them together")
    add_engine_args(p)
    p.set_defaults(batch=8)
    p.add_argument("--overwrite", action="store_true",
                   help="folder mode: redo photos already done (by default those made with the same settings are "
                        "kept and those made with other settings stop the run)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or notices")
    p.set_defaults(func=run)


def _check(args) -> None:
    from ..faces.pipeline import check_options

    check_options(args.min_face, args.min_score, args.max_faces, args.upscale, args.restore, args.strength, cli=True,
                  back_project=args.back_project)


def run(args) -> int:
    from .. import assets, launch, weights as weights_mod
    from ..errors import RunFailure
    from ..faces.mtcnn import ASSET_NAMES
    from ..faces.photo_io import read_photo
    from ..faces.pipeline import identity_check, restore_photo
    from . import folder_job, sr_jobs  # the same IN/OUT rules as sr: file -> file, folder -> folder

    _check(args)
    validate_engine_args(args)
    cfg = build_config(args)
    jobs, is_folder = folder_job.plan(Path(args.input), Path(args.output), args.quiet)
    for name in ASSET_NAMES:
        assets.require(name, "MTCNN face-detector weights")
    args.device = str(launch.start(args.device, threads=args.threads))  # under torchrun: this rank's GPU or share of the cores
    todo, kept = jobs, []
    if is_folder:  # what a rerun keeps: decided from the weights' hash, before any network is loaded
        common = _common(args, cfg, launch.in_turn(lambda: _weights_sha256(args)))
        todo, kept = sr_jobs.select(jobs, common, args.overwrite, recorded=recorded_settings)
    if not todo:
        if not args.quiet:
            print(f"all {len(jobs)} photos already done in {args.output}")
        return 0
    session = load_session(args, cfg)  # under torchrun rank 0 fills the download and fit caches first
    checks, identity = identity_check(session.gan.sha256, args.restore, args.back_project)
    if checks and identity is None and not args.quiet and launch.is_main():
        print("note: no identity check (pip install 'rlse-fast[identity]' and rlse-fast fetch-assets add it)",
              file=sys.stderr)
    common = _common(args, cfg, session.gan.sha256)
    job = launch.FolderJob(len(todo), "photo", is_folder, args.quiet)
    for src, dst in job.shard(todo):
        job.update(1)
        try:
            rgb = read_photo(src)
        except UserError as exc:
            job.skip(exc)
            continue
        weights_mod.tell_default(args.weights, args.quiet)  # once, after a photo was read
        start = time.perf_counter()
        bar = tqdm(unit="face", desc=src.name, leave=False, disable=args.quiet or not launch.is_main())

        def progress(done, total, bar=bar):
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            result = restore_photo(rgb, session, min_face=args.min_face, max_faces=args.max_faces,
                                   upscale=args.upscale, seed=args.seed, batch=args.batch,
                                   min_score=args.min_score, restore=args.restore, strength=args.strength,
                                   identity=identity, on_batch=progress, back_project=args.back_project)
        except (RuntimeError, ValueError) as exc:
            bar.close()
            if not is_folder:
                raise RunFailure(f"{src.name}: {str(exc).splitlines()[0]}") from None
            job.fail([src.name], str(exc).splitlines()[0])
            continue
        bar.close()
        # Faces kept by a rule still make a photo (the summary says why); faces too small for the weights do not.
        if not result.faces or all(f.reason.startswith("kept: too small") for f in result.faces):
            h, w = rgb.shape[:2]
            why = (f"no face of {args.min_face:g} px or wider found in {src.name} ({w}x{h})" if not result.faces
                   else f"the {len(result.faces)} face(s) found in {src.name} are too small for these weights")
            lower = "a lower --min-face (12 at least), or " if not result.faces and args.min_face > 12 else ""
            msg = (f"{why}; nothing written. Try {lower}a larger or sharper scan of the photo "
                   "(faces need ~12 px between brow and chin)")
            if not is_folder:
                raise RunFailure(msg)
            job.say(msg)
            job.failed += 1
            continue
        _write(args, src, dst, rgb, result, session, time.perf_counter() - start, sr_jobs.settings(src, common))
        if not is_folder and not args.quiet:
            print(f"wrote {dst} ({result.summary()}; x{result.upscale:g}, "
                  f"{time.perf_counter() - start:.1f} s: " +
                  ", ".join(f"{k} {v:.1f} s" for k, v in result.stages.items()) + ")")
    failed = job.finish()  # under torchrun: waits for every rank
    if is_folder and not args.quiet and launch.is_main():
        print(f"{len(todo) - failed} photos written to {args.output}, {len(kept)} already done, "
              f"{failed} failed or without faces")
    return 1 if failed else 0


SETTINGS = ("min_face", "min_score", "max_faces", "upscale", "restore", "strength", "back_project")
"""The photo flags that decide a result, besides the engine's (seed, config, weights, engine, precision)."""


def _weights_sha256(args) -> str:
    from ..checkpoints import sha256_file
    from ..weights import resolve

    return sha256_file(resolve(args.weights, quiet=args.quiet))


def _common(args, cfg, weights_sha256: str) -> dict:
    """What decides a photo's result besides its bytes (`sr_jobs.settings` adds the input's hash)."""
    from ..devices import pick_device

    fast, precision = pick_engine(args.engine, args.precision, pick_device(args.device))
    return {"seed": args.seed, "config": cfg.to_dict(), "weights_sha256": weights_sha256,
            "engine": "fast" if fast else "eager", "precision": precision,
            **{name: getattr(args, name) for name in SETTINGS}}


def recorded_settings(sidecar: dict, new: dict):
    """The settings a photo's sidecar records. One written before sidecars recorded them is read from
    its other fields; what it does not hold (the input's hash, --upscale as given) is taken as unchanged."""
    from .sr_jobs import recorded_settings as sr_recorded

    if "settings" in sidecar:
        return sr_recorded(sidecar, new)
    old = {"input_sha256": new["input_sha256"], "seed": sidecar["seed"], "config": sidecar["config"],
           "weights_sha256": sidecar["weights"]["sha256"], "engine": sidecar["engine"],
           "precision": sidecar["precision"], **{name: sidecar.get(name) for name in SETTINGS}}
    for name in ("upscale", "restore", "strength"):  # as given on the command line, which it did not record
        old[name] = new[name]
    return sr_recorded({"settings": old}, new)


def _write(args, src: Path, dst: Path, rgb, result, session, seconds: float, settings: dict) -> None:
    """Face crops first, then the photo, then the sidecar last (a folder run's marker of a finished photo)."""
    from PIL import Image

    if args.save_faces:
        folder = dst.with_name(dst.stem + "_faces")
        for i, f in enumerate(result.faces):
            if f.sr is not None:  # kept ones too: the output that a check refused is worth seeing
                save_image(f.lr, folder / f"face{i:03d}_input_{f.lr_size}px.png")
                save_image(f.sr, folder / f"face{i:03d}_output.png")
    if args.html:
        from ..faces.page import write_page

        write_page(dst.with_suffix(".html"), rgb, result, f"rlse-fast photo: {src.name}")
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}[dst.suffix.lower()]
    im = Image.fromarray(result.image)
    kwargs = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    atomic_write(dst, lambda tmp: im.save(tmp, format=fmt, **kwargs))
    res = session.resolution
    save_json({
        "input": str(src), "output": str(dst), "input_size": [int(rgb.shape[1]), int(rgb.shape[0])],
        "output_size": [int(result.image.shape[1]), int(result.image.shape[0])], "upscale": result.upscale,
        "frame": result.frame, "resolution": res, "detector": "mtcnn", "min_face": args.min_face, "min_score": args.min_score,
        "max_faces": args.max_faces, "seed": args.seed, "batch": args.batch, "settings": settings,
        "weights": {"path": session.gan.path, "sha256": session.gan.sha256, "format": session.gan.source_format},
        "config": session.cfg.to_dict(), "device": str(session.device), "impl": session.impl,
        "threads": torch.get_num_threads(),
        "engine": "fast" if session.fast else "eager", "precision": session.precision,
        "torch": torch.__version__, "stages": result.stages, "seconds": round(seconds, 3),
        "restore": args.restore, "strength": result.strength, "back_project": result.back_project,
        "monochrome": result.monochrome,
        "identity_check": result.identity_check, "summary": result.summary(),
        "faces": [f.to_dict(res) for f in result.faces],
        "note": "restored faces are super-resolved; kept faces and the rest of the photo are only resampled "
                "(Pillow Lanczos)",
    }, dst.with_suffix(".json"))
