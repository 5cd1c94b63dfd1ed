"""`rlse-fast photo IN OUT`: find every face in a photo, super-resolve it, paste it back."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .engine_options import add_engine_args, build_config, load_session, validate_engine_args
from .help_format import DefaultsOnce


def register(sub) -> None:
    p = sub.add_parser(
        "photo", help="super-resolve every face in a whole photo (or a folder of photos) and paste them back",
        formatter_class=DefaultsOnce,
        description="Detect faces with 5 landmarks (MTCNN, offline: run `rlse-fast fetch-assets` once), align "
                    "each to the generator's frame, super-resolve them in batches, and paste them back into the "
                    "photo upscaled by --upscale with a feathered mask. Only faces are super-resolved: the rest "
                    "of the photo is resampled with Pillow's Lanczos filter. Writes OUT, a JSON sidecar beside it "
                    "(per face: box, landmarks, score, input size, scale, seed, loss, seconds; per stage: "
                    "seconds) and with --save-faces a folder OUT-stem_faces/ of aligned inputs and outputs. "
                    "A photo with no face writes nothing and exits 1. IN may be a folder: OUT is then a folder, "
                    "and photos already done (image and sidecar present) are skipped.")
    p.add_argument("input", metavar="IN", help="photo (PNG/JPEG/WebP), or a folder of photos")
    p.add_argument("output", metavar="OUT", help="output photo (.png/.jpg/.webp), or a folder when IN is one")
    p.add_argument("--min-face", type=float, default=12.0,
                   help="smallest face width in pixels to detect (12 at least: the detector's window)")
    p.add_argument("--min-score", type=float, default=0.8,
                   help="lowest detector score kept (0.7-1; lower finds more faces and more false ones)")
    p.add_argument("--max-faces", type=int, default=None, help="keep only the N widest faces (default: all)")
    p.add_argument("--upscale", type=int, default=None,
                   help="output size factor (default: 2-4 from the faces' sizes, capped at 64 MP of output)")
    p.add_argument("--save-faces", action="store_true", help="also write each face's aligned input and output")
    p.add_argument("--html", action="store_true",
                   help="also write OUT-stem.html (the photo with its boxes, before/after, each face input -> "
                        "output) and the images it shows in a folder OUT-stem_files/ beside it: keep them together")
    add_engine_args(p)
    p.set_defaults(batch=8)
    p.add_argument("--quiet", action="store_true", help="no progress bars or notices")
    p.set_defaults(func=run)


def _check(args) -> None:
    from ..errors import UserError

    if args.min_face < 12:
        raise UserError(f"--min-face must be >= 12 (the detector's smallest window), got {args.min_face:g}")
    if not 0.7 <= args.min_score <= 1:
        raise UserError(f"--min-score must be in 0.7-1 (the detector keeps nothing below 0.7), got {args.min_score:g}")
    if args.max_faces is not None and args.max_faces < 1:
        raise UserError("--max-faces must be >= 1")
    if args.upscale is not None and not 1 <= args.upscale <= 8:
        raise UserError(f"--upscale must be 1-8, got {args.upscale}")


def run(args) -> int:
    from tqdm import tqdm

    from .. import launch
    from .. import weights as weights_mod
    from ..errors import RunFailure, UserError
    from ..faces.mtcnn import ASSET_NAMES
    from ..imageio import check_writable
    from ..faces.photo_io import read_photo
    from ..faces.pipeline import restore_photo
    from ..metrics import assets
    from . import sr_jobs  # the same IN/OUT rules as sr: file -> file, folder -> folder

    _check(args)
    validate_engine_args(args)
    cfg = build_config(args)
    jobs, is_folder = sr_jobs.plan(Path(args.input), Path(args.output))
    check_writable(args.output)
    for name in ASSET_NAMES:
        assets.require(name, "MTCNN face-detector weights")
    todo = [(s, d) for s, d in jobs if not (is_folder and d.exists() and d.with_suffix(".json").exists())]
    if not todo:
        if not args.quiet:
            print(f"all {len(jobs)} photos already done in {args.output}")
        return 0
    args.device = str(launch.start(args.device, threads=args.threads))  # under torchrun: this rank's GPU or share of the cores
    session = launch.in_turn(lambda: load_session(args, cfg))  # rank 0 fills the download and fit caches first
    failed = 0
    photos = launch.Progress(total=len(todo), unit="photo", disable=args.quiet or not is_folder)  # whole job, rank 0
    for src, dst in launch.shard(todo):  # under torchrun: this rank's share of the photos not done yet
        photos.update(1)
        try:
            rgb = read_photo(src)
        except UserError as exc:
            if not is_folder:
                raise
            photos.write(f"skipped: {exc}", file=sys.stderr)
            failed += 1
            continue
        weights_mod.tell_default(args.weights, args.quiet, write=photos.write)  # once, after a photo was read
        start = time.perf_counter()
        bar = tqdm(unit="face", desc=src.name, leave=False, disable=args.quiet or not launch.is_main())

        def progress(done, total, bar=bar):
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            result = restore_photo(rgb, session, min_face=args.min_face, max_faces=args.max_faces,
                                   upscale=args.upscale, seed=args.seed, batch=args.batch,
                                   min_score=args.min_score, on_batch=progress)
        except (RuntimeError, ValueError) as exc:
            bar.close()
            if not is_folder:
                raise RunFailure(f"{src.name}: {str(exc).splitlines()[0]}") from None
            photos.write(f"failed {src.name}: {str(exc).splitlines()[0]}", file=sys.stderr)
            failed += 1
            continue
        bar.close()
        done = [f for f in result.faces if f.sr is not None]
        if not done:
            h, w = rgb.shape[:2]
            why = (f"no face of {args.min_face:g} px or wider found in {src.name} ({w}x{h})" if not result.faces
                   else f"the {len(result.faces)} face(s) found in {src.name} are too small for these weights")
            lower = "a lower --min-face (12 at least), or " if not result.faces and args.min_face > 12 else ""
            msg = (f"{why}; nothing written. Try {lower}a larger or sharper scan of the photo "
                   "(faces need ~12 px between brow and chin)")
            if not is_folder:
                raise RunFailure(msg)
            photos.write(msg, file=sys.stderr)
            failed += 1
            continue
        _write(args, src, dst, rgb, result, session, time.perf_counter() - start)
        if not is_folder and not args.quiet:
            print(f"wrote {dst} ({len(done)} face(s) super-resolved, x{result.upscale:g}, "
                  f"{time.perf_counter() - start:.1f} s: " +
                  ", ".join(f"{k} {v:.1f} s" for k, v in result.stages.items()) + ")")
    photos.close()  # under torchrun: waits for every rank
    failed, = launch.total(failed)
    if is_folder and not args.quiet and launch.is_main():
        print(f"{len(todo) - failed} photos written to {args.output}, {len(jobs) - len(todo)} already done, "
              f"{failed} failed or without faces")
    return 1 if failed else 0


def _write(args, src: Path, dst: Path, rgb, result, session, seconds: float) -> None:
    """Face crops first, then the photo, then the sidecar last (a folder run's marker of a finished photo)."""
    import torch
    from PIL import Image

    from ..imageio import atomic_write, save_image, save_json

    if args.save_faces:
        folder = dst.with_name(dst.stem + "_faces")
        for i, f in enumerate(result.faces):
            if f.sr is not None:
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
        "max_faces": args.max_faces, "seed": args.seed, "batch": args.batch,
        "weights": {"path": session.gan.path, "sha256": session.gan.sha256, "format": session.gan.source_format},
        "config": session.cfg.to_dict(), "device": str(session.device), "impl": session.impl,
        "threads": torch.get_num_threads(),
        "engine": "fast" if session.fast else "eager", "precision": session.precision,
        "torch": torch.__version__, "stages": result.stages, "seconds": round(seconds, 3),
        "faces": [f.to_dict(res) for f in result.faces],
        "note": "faces are super-resolved; the rest of the photo is only resampled (Pillow Lanczos)",
    }, dst.with_suffix(".json"))
