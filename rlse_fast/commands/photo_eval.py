"""`rlse-fast photo-eval PHOTOS --out DIR`: the photo protocol (ground truth for `photo`)."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ..errors import UserError
from .engine_options import add_engine_args, build_config, load_session, validate_engine_args
from .help_format import DefaultsOnce


def register(sub) -> None:
    p = sub.add_parser(
        "photo-eval", help="score `photo` against Lanczos on real photos downscaled and restored (ground truth)",
        formatter_class=DefaultsOnce,
        description="For each photo and --scale s: downscale the photo by s, restore it with the photo pipeline "
                    "(--upscale s and the pipeline's defaults) and with Lanczos, and score every face the "
                    "detector finds on the original (at least 12 x s px wide) against the original: PSNR-Y, "
                    "SSIM-Y, LPIPS and dlib identity distance, and the whole photo. Writes OUT/metrics.csv, "
                    "summary.md and summary.json (paired differences against Lanczos by face size, with 95% "
                    "intervals), report.html and the faces' crops under OUT/images/. Runs again on the same OUT "
                    "resume; under torchrun each rank takes whole photos. Needs dlib: "
                    "pip install 'rlse-fast[identity]', then rlse-fast fetch-assets.")
    p.add_argument("photos", metavar="PHOTOS", help="an original photo, or a folder of them")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder")
    p.add_argument("--scale", type=int, nargs="+", default=[2, 4], help="downscaling factors (2, 3, 4 or 8)")
    p.add_argument("--strengths", default="",
                   help="comma-separated extra --strength values pasted from the same fit (rows photo-s<k>)")
    p.add_argument("--restore-all", action="store_true",
                   help="also run `photo --restore all` (rows photo-all; a second fit per photo)")
    p.add_argument("--max-faces", type=int, default=None, help="per photo, restore only the N widest faces")
    p.add_argument("--report-only", action="store_true",
                   help="only rewrite summary.md, summary.json and report.html from OUT's metrics.csv and run.json")
    add_engine_args(p)
    p.set_defaults(batch=8)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import assets, launch
    from ..evaluate.photos import PhotoEvalOptions, run_photo_eval
    from ..faces.mtcnn import ASSET_NAMES

    if args.report_only:
        from ..evaluate.photos import rebuild_report

        rebuild_report(Path(args.out))
        return 0
    try:
        strengths = [float(k) for k in args.strengths.split(",") if k.strip()]
    except ValueError:
        raise UserError(f"--strengths takes numbers in 0-1 separated by commas, got {args.strengths!r}") from None
    validate_engine_args(args)
    cfg = build_config(args)
    for name in ASSET_NAMES:
        assets.require(name, "MTCNN face-detector weights")
    opt = PhotoEvalOptions(photos=Path(args.photos), out=Path(args.out), scales=args.scale, strengths=strengths,
                           restore_all=args.restore_all, max_faces=args.max_faces, seed=args.seed,
                           quiet=args.quiet, command="rlse-fast " + " ".join(shlex.quote(a) for a in sys.argv[1:])
                           if "photo-eval" in sys.argv else "")
    from ..evaluate.photos import check_options, eligible, list_photos

    check_options(opt)
    jobs = eligible(list_photos(opt.photos), opt.scales)  # bad input refused before the weights load
    args.device = str(launch.start(args.device))
    session = launch.in_turn(lambda: load_session(args, cfg))
    run_photo_eval(opt, session, jobs)
    if not args.quiet and launch.is_main():
        print(f"wrote {opt.out / 'metrics.csv'}, {opt.out / 'summary.md'}, {opt.out / 'report.html'}")
    return 0
