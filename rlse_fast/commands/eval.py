"""`rlse-fast eval`: bicubic, bilinear, PULSE and RLSE on a folder of faces; metrics.csv, summary.md, report.html."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ..evaluate.runner import DEFAULT_METHODS, METHODS, EvalOptions, rebuild_report, run_eval
from .engine_options import BATCH_HELP, add_engine_args, validate_engine_args
from .help_format import DefaultsOnce

EVAL_HELPS = {
    "weights": "weights file or name (ffhq, ffhq512, ffhq256, celeba64); default as in `sr`",
    "seed": "seed of the initial latent and noise, the same for every face",
    "steps": "iterations per face of the GAN methods",
    "engine": "as in `sr`: auto is fast on CUDA, eager on CPU",
    "precision": "as in `sr`: auto is bf16 with the fast engine on CUDA, else fp32",
}


def register(sub) -> None:
    p = sub.add_parser(
        "eval", help="score super-resolution methods on a folder of faces and write a report",
        formatter_class=DefaultsOnce,
        description="With --hr: resize each face to the generator's resolution, bicubic-downscale it by each "
                    "--scale, super-resolve it with each method and score PSNR/SSIM (Y and RGB) and LPIPS "
                    "against it. With --lr (real low-resolution faces, no ground truth): NIQE of the outputs. "
                    "Writes OUT/metrics.csv (one row per image x method x scale), OUT/summary.md, "
                    "OUT/report.html with sample images and charts. Runs again on the same OUT resume: faces "
                    "already in metrics.csv are skipped. A file OUT/notes.md, if present, goes into summary.md.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--hr", metavar="DIR", help="folder of ground-truth faces (square, aligned)")
    src.add_argument("--lr", metavar="DIR", help="folder of real low-resolution faces: NIQE only")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder")
    p.add_argument("--scale", type=int, nargs="+", default=[8], help="upscaling factors (powers of two)")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated subset of {','.join(METHODS)} (rlse-noft: RLSE without fine-tuning)")
    p.add_argument("-n", "--n", type=int, default=None,
                   help="evaluate the first N faces (sorted by name); default all. Under torchrun write -n: "
                        "torchrun's own parser takes --n for an abbreviation of its options")
    p.add_argument("--hr-size", type=int, default=None,
                   help="resize the HR faces to this side first (default: the generator's resolution)")
    p.add_argument("--frame", default="auto", choices=["auto", "none", "ffhq", "celeba"],
                   help="the generator's face frame; auto: from the weights (ffhq for the official weights, "
                        "celeba for the bundled prior); the generator's output is warped into --hr-frame")
    p.add_argument("--hr-frame", default="celeba", choices=["ffhq", "celeba"],
                   help="the frame of the evaluation faces (celeba128_test: celeba)")
    p.add_argument("--grid", type=int, default=8, help="faces whose images are saved for the report's grid")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS (e.g. when its weights are not fetched)")
    p.add_argument("--no-identity", action="store_true",
                   help="skip the identity distance (dlib's face recognition; skipped anyway without dlib)")
    add_engine_args(p, batch_help="faces optimised together by the GAN methods: " + BATCH_HELP.split(": ", 1)[1],
                    objective=False, helps=EVAL_HELPS)
    p.add_argument("--report-only", action="store_true",
                   help="only rewrite summary.md and report.html from OUT's metrics.csv and run.json")
    p.add_argument("--quiet", action="store_true", help="no progress bar or notices")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.report_only:
        rebuild_report(Path(args.out))
        if not args.quiet:
            print(f"wrote {Path(args.out) / 'summary.md'}, {Path(args.out) / 'report.html'}")
        return 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    validate_engine_args(args)
    opt = EvalOptions(
        out=Path(args.out), hr_dir=Path(args.hr) if args.hr else None, lr_dir=Path(args.lr) if args.lr else None,
        scales=args.scale, methods=methods, weights=args.weights, n=args.n, seed=args.seed, steps=args.steps,
        hr_size=args.hr_size, frame=args.frame, hr_frame=args.hr_frame, device=args.device, impl=args.impl,
        engine=args.engine, precision=args.precision, graphs=not args.no_graphs, batch=args.batch,
        gaussian_samples=args.gaussian_samples, grid=args.grid, lpips=not args.no_lpips, identity=not args.no_identity, threads=args.threads,
        quiet=args.quiet, command=_command_line())
    run_eval(opt)
    from ..launch import is_main

    if not args.quiet and is_main():
        print(f"wrote {opt.out / 'metrics.csv'}, {opt.out / 'summary.md'}, {opt.out / 'report.html'}")
    return 0


def _command_line() -> str:
    """The command as typed (for the report); empty when called in-process by another program."""
    argv = sys.argv[1:]
    return "rlse-fast " + " ".join(shlex.quote(a) for a in argv) if "eval" in argv else ""
