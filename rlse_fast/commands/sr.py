"""`rlse-fast sr IN OUT`: super-resolve one face or a folder of faces."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

from ..downsample import bicubic_downsample_ref, max_factor
from ..errors import UserError
from ..imageio import check_writable, load_image, save_image, save_json
from .engine_options import add_engine_args, build_config, load_session, validate_engine_args
from .help_format import DefaultsOnce

MAX_SIZE = 16384  # --size: a larger output is a typo, not a face


def register(sub) -> None:
    p = sub.add_parser(
        "sr", help="super-resolve a low-resolution face (or a folder of them)",
        formatter_class=DefaultsOnce,
        description="Super-resolve aligned low-resolution faces with RLSE (or PULSE). IN is an image "
                    "(PNG/JPEG/WebP, square) or a folder of them; OUT is then an image path or a folder. "
                    "Faces must be aligned and framed like the generator's training faces (CelebA "
                    "framing for the bundled celeba64 prior, FFHQ framing for the ffhq weights); any "
                    "other crop still gives a face of the generator's kind, but not the input's. The "
                    "output has the generator's resolution (1024 px for ffhq) unless --size. "
                    "A JSON sidecar beside each output records the config, seed, per-step losses, time "
                    "and the weights' sha256; a folder rerun keeps outputs made with the same settings.")
    p.add_argument("input", metavar="IN", help="low-resolution face image, or a folder of images")
    p.add_argument("output", metavar="OUT", help="output image (.png/.jpg/.webp), or a folder when IN is one")
    add_engine_args(p)
    p.add_argument("--scale", type=int, default=None,
                   help="upscaling factor, a power of two >= 2 (default: the generator's resolution / the input's)")
    p.add_argument("--fit", action="store_true",
                   help="take a face crop of any aspect, up to half the generator's resolution in size: pad it to a "
                        "square (edge pixels replicated) and resize it (Lanczos) to the nearest valid input size (or "
                        "resolution / --scale), with a note. A larger crop is refused: use `rlse-fast photo`")
    p.add_argument("--size", type=int, default=None, help="resize the output to SIZE x SIZE pixels")
    p.add_argument("--save-steps", metavar="DIR", default=None,
                   help="save every iteration's high- and low-resolution images under DIR")
    p.add_argument("--overwrite", action="store_true",
                   help="folder mode: redo outputs that already exist (by default those made with the same "
                        "settings are kept and those made with other settings stop the run)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or notices (a single image's result line stays)")
    p.set_defaults(func=run)


def validate(args) -> None:
    """Every option checked before any work (other helpers' options join here; engine flags in
    engine_options.validate_engine_args)."""
    validate_engine_args(args)
    if args.size is not None and args.size < 1:
        raise UserError(f"--size must be >= 1, got {args.size}")
    if args.size is not None and args.size > MAX_SIZE:
        raise UserError(f"--size must be at most {MAX_SIZE}, got {args.size}")
    if args.scale is not None and (args.scale < 2 or args.scale & (args.scale - 1)):
        raise UserError(f"--scale must be a power of two >= 2 (2, 4, 8, ...), got {args.scale}")


def _input_sizes(hr_res: int, largest: int) -> str:
    """'32, 16, 8 or 4 px': the input sizes a generator of hr_res px can upscale."""
    sizes = [hr_res >> k for k in range(1, largest.bit_length()) if hr_res % (1 << k) == 0]
    return (", ".join(map(str, sizes[:-1])) + " or " + str(sizes[-1]) if len(sizes) > 1 else str(sizes[0])) + " px"


def _check_scale(lr, hr_res: int, scale: int | None, name: str) -> int:
    _, h, w = lr.shape
    largest = max_factor(hr_res)
    if h != w:
        raise UserError(f"{name}: the face must be square (aligned and cropped), got {w}x{h}")
    if scale is not None and h * scale != hr_res:
        fix = f" or --scale {hr_res // h}" if hr_res % h == 0 and hr_res // h >= 2 and not (hr_res // h) & (hr_res // h - 1) else ""
        need = hr_res // scale
        raise UserError(f"{name}: {h} px x{scale} is {h * scale} px, but the weights make {hr_res} px faces; "
                        f"give an input of {need} px{fix}")
    if scale is None and (hr_res % h or (hr_res // h) & (hr_res // h - 1) or hr_res // h < 2):
        raise UserError(f"{name}: a {h} px input cannot be upscaled to the weights' {hr_res} px by a power of two >= 2; "
                        f"resize it to {_input_sizes(hr_res, largest)}")
    scale = scale or hr_res // h
    if scale > largest:  # PULSE's downscaler pads by 1.5x the factor, inside the generated image
        raise UserError(f"{name}: x{scale} is more than the {hr_res} px weights allow (x{largest} at most: the "
                        f"downscaler needs faces larger than 1.5x the factor); give an input of {_input_sizes(hr_res, largest)}")
    return scale


def run(args) -> int:
    from .. import launch, weights as weights_mod
    from ..faces.chroma import match_input
    from . import folder_job, sr_jobs

    validate(args)
    cfg = build_config(args)
    jobs, is_folder = folder_job.plan(Path(args.input), Path(args.output), args.quiet)
    if args.save_steps:
        check_writable(args.save_steps)
    args.device = str(launch.start(args.device, threads=args.threads))  # under torchrun: this rank's GPU or share of the cores
    session = load_session(args, cfg, fit=False)
    gan, device, fast, precision = session.gan, session.device, session.fast, session.precision
    hr_res = session.resolution
    common = {"seed": args.seed, "config": cfg.to_dict(), "weights_sha256": gan.sha256,
              "engine": "fast" if fast else "eager", "precision": precision, "size": args.size}
    todo, kept = sr_jobs.select(jobs, common, args.overwrite) if is_folder else (jobs, [])

    def read(src):
        """(lr, scale) of an input; a too-large image is refused from its header, before decoding."""
        if args.fit:  # any size: the header check allows what --fit then resizes
            lr = _fitted(load_image(src, max_side=4096, what="crop for --fit"), hr_res, args, src.name)
        else:
            lr = load_image(src, max_side=hr_res // 2, what=f"input that {hr_res} px weights upscale (x2 at least)")
        return lr, _check_scale(lr, hr_res, args.scale, src.name)

    first = read(todo[0][0]) if todo and not is_folder else None  # a bad single input fails before the fit
    weights_mod.tell_default(args.weights, args.quiet)  # after the checks: never before an input error
    if todo:  # a rerun with everything kept needs no fit; under torchrun one process fills the cache
        session.prepare_fit(launch.in_turn)

    job = launch.FolderJob(len(todo), "face", is_folder, args.quiet)

    def process(chunk) -> None:
        """Super-resolve one batch of faces of the same input size."""
        lr_batch = torch.stack([c[2] for c in chunk]).to(device)
        on_step = _step_saver(Path(args.save_steps), [c[0].stem for c in chunk], chunk[0][3]) if args.save_steps else None
        try:
            result = session.run(lr_batch, seeds=args.seed, on_step=on_step)
        except (RuntimeError, ValueError) as exc:
            if not is_folder:
                raise UserError(str(exc).splitlines()[0]) from None
            job.update(len(chunk))
            job.fail([c[0].name for c in chunk], str(exc).splitlines()[0])
            return
        for i, (src, dst, lr, scale) in enumerate(chunk):
            loss = float(result.best_loss[i])
            if not math.isfinite(loss):
                job.fail([src.name], f"the loss is not finite ({loss}): the weights or the options "
                                     "(--w-*) make the optimisation diverge; nothing written")
                continue
            # Grey in, grey out: a monochrome input keeps its own chroma (faces/chroma.py).
            image, monochrome = match_input(result.images[i], lr)
            save_image(image, dst, size=args.size)
            save_json({
                "input": str(src), "output": str(dst), "scale": scale, "seed": args.seed,
                "settings": sr_jobs.settings(src, common),
                "weights": {"path": gan.path, "sha256": gan.sha256, "format": gan.source_format},
                "config": cfg.to_dict(), "device": str(device), "impl": args.impl, "batch": len(chunk),
                "threads": torch.get_num_threads(),
                "monochrome": monochrome,
                "engine": "fast" if fast else "eager", "precision": precision,
                "graphs": fast and device.type == "cuda" and not args.no_graphs,
                "seconds": result.seconds / len(chunk), "best_step": result.best_step[i],
                "best_loss": loss,
                "losses": [{k: (v[i] if isinstance(v, list) else v) for k, v in h.items()} for h in result.history],
            }, dst.with_suffix(".json"))
            if not is_folder:
                print(f"wrote {dst} ({scale}x, {cfg.mode}, {result.seconds:.1f} s, loss {loss:.4g})")
        job.update(len(chunk))

    # A batch holds faces of one input size (a folder may mix 8 px and 16 px faces): each size
    # fills its own batch, run when full, and the partial ones at the end.
    pending: dict[tuple, list] = {}
    for src, dst in job.shard(todo):
        try:
            lr, scale = first if first is not None else read(src)
        except UserError as exc:
            job.skip(exc)
            job.update(1)
            continue
        group = pending.setdefault(tuple(lr.shape), [])
        group.append((src, dst, lr, scale))
        if len(group) == args.batch:
            process(pending.pop(tuple(lr.shape)))
    for group in pending.values():
        process(group)
    failed = job.finish()  # under torchrun: waits for every rank
    if is_folder and not args.quiet and launch.is_main():
        print(f"{len(todo) - failed} faces written to {args.output}, {len(kept)} kept from an earlier run with "
              f"the same settings, {failed} failed")
    return 1 if failed else 0


def _fitted(lr, resolution: int, args, name: str):
    from ..faces.fit import check_crop, fit_crop

    try:
        check_crop(lr.shape[2], lr.shape[1], resolution)
    except UserError as exc:
        raise UserError(f"{name}: {exc}") from None
    lr, note = fit_crop(lr, resolution, args.scale)
    if note and not args.quiet:
        print(f"{name}: {note}", file=sys.stderr)
    return lr


def _step_saver(root: Path, stems: list[str], factor: int):
    from ..imageio import save_image

    def save(step, img01, losses):
        lr = bicubic_downsample_ref(img01, factor)
        for i, stem in enumerate(stems):
            save_image(img01[i], root / stem / f"{step:04d}_hr.png")
            save_image(lr[i], root / stem / f"{step:04d}_lr.png")

    return save
