"""`rlse-fast sr IN OUT`: super-resolve one face or a folder of faces."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .engine_options import add_engine_args, config_from_args


def register(sub) -> None:
    p = sub.add_parser(
        "sr", help="super-resolve a low-resolution face (or a folder of them)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Super-resolve aligned low-resolution faces with RLSE (or PULSE). IN is an image "
                    "(PNG/JPEG/WebP, square) or a folder of them; OUT is then an image path or a folder. "
                    "A JSON sidecar beside each output records the config, seed, per-step losses, time "
                    "and the weights' sha256.")
    p.add_argument("input", metavar="IN", help="low-resolution face image, or a folder of images")
    p.add_argument("output", metavar="OUT", help="output image (.png/.jpg/.webp), or a folder when IN is one")
    add_engine_args(p)
    p.add_argument("--scale", type=int, default=None,
                   help="upscaling factor, a power of two (default: the generator's resolution / the input's)")
    p.add_argument("--fit", action="store_true",
                   help="take a face crop of any size or aspect: pad it to a square (edge pixels replicated) and "
                        "resize it (Lanczos) to the nearest valid input size (or resolution / --scale), with a note")
    p.add_argument("--size", type=int, default=None, help="resize the output to SIZE x SIZE pixels")
    p.add_argument("--save-steps", metavar="DIR", default=None,
                   help="save every iteration's high- and low-resolution images under DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars or notices")
    p.set_defaults(func=run)


def _jobs(args):
    """[(input path, output path)] and whether IN is a folder."""
    from ..errors import UserError
    from ..imageio import IMAGE_SUFFIXES

    src, dst = Path(args.input), Path(args.output)
    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise UserError(f"IN is a folder, so OUT must be a folder too; {dst} is a file")
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise UserError(f"{src} holds no .png/.jpg/.jpeg/.webp images")
        return [(f, dst / (f.stem + ".png")) for f in files], True
    if not src.exists():
        raise UserError(f"input not found: {src}")
    if dst.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"OUT must end in .png, .jpg or .webp, got {dst.name!r}")
    return [(src, dst)], False


def _check_scale(lr, hr_res: int, scale: int | None, name: str) -> int:
    from ..downsample import max_factor
    from ..errors import UserError

    _, h, w = lr.shape
    largest = max_factor(hr_res)
    if h != w:
        raise UserError(f"{name}: the face must be square (aligned and cropped), got {w}x{h}")
    if scale is not None:
        if scale < 1 or scale & (scale - 1):
            raise UserError(f"--scale must be a power of two, got {scale}")
        if h * scale != hr_res:
            raise UserError(f"{name}: {h}px x{scale} is {h * scale}px, but the weights make {hr_res}px faces; "
                            f"give a {hr_res // scale}px input or --scale {hr_res // h if hr_res % h == 0 else '?'}")
    elif hr_res % h or (hr_res // h) & (hr_res // h - 1) or hr_res // h < 2:
        raise UserError(f"{name}: a {h}px input cannot be upscaled to the weights' {hr_res}px by a power of two >= 2; "
                        f"resize it to {hr_res // 8}px or {hr_res // 16}px")
    scale = scale or hr_res // h
    if scale > largest:  # PULSE's downscaler pads by 1.5x the factor, inside the generated image
        raise UserError(f"{name}: x{scale} is more than the {hr_res}px weights allow (x{largest} at most: the "
                        f"downscaler needs faces larger than 1.5x the factor); give a {hr_res // largest}px or larger input")
    return scale


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from .. import weights as weights_mod
    from ..checkpoints import load_gan
    from ..errors import UserError
    from ..explore import prepare_fit
    from ..fast import pick_device, pick_engine
    from ..fast import run as run_engine
    from ..imageio import load_image, save_image, save_json

    cfg = config_from_args(args)
    jobs, is_folder = _jobs(args)
    device = pick_device(args.device)
    fast, precision = pick_engine(args.engine, args.precision, device)

    gan = load_gan(weights_mod.resolve(args.weights, quiet=args.quiet))
    if cfg.semantic and gan.discriminator is None:
        raise UserError("these weights hold no discriminator, which the rlse mode's L_s needs; "
                        "use --no-semantic or --mode pulse, or weights with a discriminator")
    G = gan.generator.to(device)
    D = gan.discriminator.to(device) if gan.discriminator is not None else None
    fit = prepare_fit(gan, cfg, device=device)

    todo = []
    for src, dst in jobs:
        if is_folder and dst.exists() and dst.with_suffix(".json").exists():
            continue  # done in an earlier run
        todo.append((src, dst))
    failed = 0
    bar = tqdm(total=len(todo), unit="face", disable=args.quiet or not is_folder)

    def process(chunk) -> int:
        """Super-resolve one batch of faces of the same input size; returns how many failed."""
        lr_batch = torch.stack([c[2] for c in chunk]).to(device)
        on_step = _step_saver(Path(args.save_steps), [c[0].stem for c in chunk], chunk[0][3]) if args.save_steps else None
        try:
            result = run_engine(G, D, lr_batch, cfg, fit, seeds=args.seed, impl=args.impl, fast=fast,
                                precision=precision, graphs=not args.no_graphs, on_step=on_step)
        except (RuntimeError, ValueError) as exc:
            if not is_folder:
                raise UserError(str(exc).splitlines()[0]) from None
            tqdm.write(f"failed {', '.join(c[0].name for c in chunk)}: {str(exc).splitlines()[0]}", file=sys.stderr)
            bar.update(len(chunk))
            return len(chunk)
        for i, (src, dst, lr, scale) in enumerate(chunk):
            save_image(result.images[i], dst, size=args.size)
            save_json({
                "input": str(src), "output": str(dst), "scale": scale, "seed": args.seed,
                "weights": {"path": gan.path, "sha256": gan.sha256, "format": gan.source_format},
                "config": cfg.to_dict(), "device": str(device), "impl": args.impl, "batch": len(chunk),
                "engine": "fast" if fast else "eager", "precision": precision,
                "graphs": fast and device.type == "cuda" and not args.no_graphs,
                "seconds": result.seconds / len(chunk), "best_step": result.best_step[i],
                "best_loss": float(result.best_loss[i]),
                "losses": [{k: (v[i] if isinstance(v, list) else v) for k, v in h.items()} for h in result.history],
            }, dst.with_suffix(".json"))
            if not is_folder and not args.quiet:
                print(f"wrote {dst} ({scale}x, {cfg.mode}, {result.seconds:.1f} s, loss {float(result.best_loss[i]):.4g})")
        bar.update(len(chunk))
        return 0

    # A batch holds faces of one input size (a folder may mix 8 px and 16 px faces): each size
    # fills its own batch, run when full, and the partial ones at the end.
    pending: dict[tuple, list] = {}
    for src, dst in todo:
        try:
            lr = load_image(src)
            if args.fit:
                lr = _fitted(lr, G.img_resolution, args, src.name)
            scale = _check_scale(lr, G.img_resolution, args.scale, src.name)
        except UserError as exc:
            if not is_folder:
                raise
            failed += 1
            tqdm.write(f"skipped: {exc}", file=sys.stderr)
            bar.update(1)
            continue
        group = pending.setdefault(tuple(lr.shape), [])
        group.append((src, dst, lr, scale))
        if len(group) == args.batch:
            failed += process(pending.pop(tuple(lr.shape)))
    for group in pending.values():
        failed += process(group)
    bar.close()
    if is_folder and not args.quiet:
        print(f"{len(todo) - failed} faces written to {args.output}, {len(jobs) - len(todo)} already done, {failed} failed")
    return 1 if failed else 0


def _fitted(lr, resolution: int, args, name: str):
    from ..faces.fit import fit_crop

    if args.scale is not None and (args.scale < 2 or args.scale & (args.scale - 1) or resolution % args.scale):
        return lr  # _check_scale says what is wrong with --scale
    lr, note = fit_crop(lr, resolution, args.scale)
    if note and not args.quiet:
        print(f"{name}: {note}", file=sys.stderr)
    return lr


def _step_saver(root: Path, stems: list[str], factor: int):
    from ..downsample import bicubic_downsample_ref
    from ..imageio import save_image

    def save(step, img01, losses):
        lr = bicubic_downsample_ref(img01, factor)
        for i, stem in enumerate(stems):
            save_image(img01[i], root / stem / f"{step:04d}_hr.png")
            save_image(lr[i], root / stem / f"{step:04d}_lr.png")

    return save
