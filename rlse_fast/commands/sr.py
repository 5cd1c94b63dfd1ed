"""`rlse-fast sr IN OUT`: super-resolve one face or a folder of faces."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
    p.add_argument("--weights", default=None,
                   help="weights file (.pkl/.pt/.safetensors) or a name: ffhq, ffhq512, ffhq256, celeba64 "
                        "(default: ffhq if downloaded, else the bundled celeba64)")
    p.add_argument("--scale", type=int, default=None,
                   help="upscaling factor, a power of two (default: the generator's resolution / the input's)")
    p.add_argument("--mode", choices=["rlse", "pulse"], default="rlse", help="rlse (the paper) or pulse (baseline)")
    p.add_argument("--no-semantic", action="store_true", help="ablation: drop the discriminator loss L_s")
    p.add_argument("--no-finetune", action="store_true", help="ablation: keep the generator's weights fixed")
    p.add_argument("--semantic-input", choices=["auto", "native", "upsampled"], default="auto",
                   help="how the low-res images enter D for L_s: native (their own resolution's fromRGB; StyleGAN v1 "
                        "only), upsampled (bicubic to D's size), auto (native on StyleGAN v1, upsampled on StyleGAN2)")
    p.add_argument("--pixel-loss", choices=["norm", "mse"], default=None,
                   help="L_p as the paper's L2 norm or PULSE's clamped MSE (default: the mode's)")
    p.add_argument("--w-pixel", type=float, default=None, help="weight of L_p (default: the mode's, 100)")
    p.add_argument("--w-semantic", type=float, default=None, help="weight of L_s (default: the mode's, rlse 0.5)")
    p.add_argument("--w-geocross", type=float, default=None, help="weight of L_g (default: the mode's, rlse 500, pulse 0.05)")
    p.add_argument("--steps", type=int, default=100, help="iterations per face")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial latent and noise (per face)")
    p.add_argument("--batch", type=int, default=1, help="faces optimised together (results do not depend on it)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to run")
    p.add_argument("--impl", choices=["auto", "ref", "cpp", "cuda", "triton"], default="auto",
                   help="kernel implementation (ref: plain PyTorch)")
    p.add_argument("--engine", choices=["auto", "eager", "fast"], default="auto",
                   help="fast: static buffers, CUDA graphs, optional bf16 (same results in fp32); "
                        "auto: fast on CUDA, eager on CPU. The eager fp32 baseline: --engine eager --impl ref")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="bf16 autocast with fp32 weights and optimizer state (fast engine); auto: bf16 on CUDA, else fp32")
    p.add_argument("--no-graphs", action="store_true", help="fast engine without CUDA graph replay")
    p.add_argument("--gaussian-samples", type=int, default=None,
                   help="mapping samples for the latent Gaussian fit (default 1,000,000; cached per weights file)")
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
    from ..config import RLSEConfig
    from ..errors import UserError
    from ..explore import prepare_fit
    from ..fast import pick_device, pick_engine
    from ..fast import run as run_engine
    from ..imageio import load_image, save_image, save_json

    if args.steps < 1 or args.batch < 1:
        raise UserError("--steps and --batch must be >= 1")
    overrides = {"steps": args.steps, "semantic_input": getattr(args, "semantic_input", "auto")}
    if args.pixel_loss:
        overrides["pixel_loss"] = args.pixel_loss
    if args.gaussian_samples:
        overrides["gaussian_samples"] = args.gaussian_samples
    for name in ("w_pixel", "w_semantic", "w_geocross"):
        if getattr(args, name) is not None:
            if getattr(args, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must be >= 0")
            overrides[name] = getattr(args, name)
    cfg = RLSEConfig.from_mode(args.mode, semantic=not args.no_semantic, finetune=not args.no_finetune, **overrides)
    jobs, is_folder = _jobs(args)
    device = pick_device(args.device)
    fast, precision = pick_engine(args.engine, args.precision, device)

    gan = load_gan(weights_mod.resolve(args.weights, quiet=args.quiet))
    if cfg.semantic and gan.discriminator is None:
        raise UserError("these weights hold no discriminator, which the rlse mode's L_s needs; "
                        "use --no-semantic or --mode pulse, or weights with a discriminator")
    if cfg.semantic and cfg.semantic_input == "native" and not hasattr(gan.discriminator, "reachable"):
        raise UserError("--semantic-input native needs a progressive StyleGAN v1 discriminator (a fromRGB at every "
                        "resolution); these weights' StyleGAN2 D takes only upsampled images: use --semantic-input upsampled")
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


def _step_saver(root: Path, stems: list[str], factor: int):
    from ..downsample import bicubic_downsample_ref
    from ..imageio import save_image

    def save(step, img01, losses):
        lr = bicubic_downsample_ref(img01, factor)
        for i, stem in enumerate(stems):
            save_image(img01[i], root / stem / f"{step:04d}_hr.png")
            save_image(lr[i], root / stem / f"{step:04d}_lr.png")

    return save
