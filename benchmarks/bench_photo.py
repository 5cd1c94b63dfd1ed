"""End-to-end `rlse-fast photo` on one shared group photo, timed per stage, with an HTML before/after page.

    python benchmarks/bench_photo.py [--photo four_researchers.jpg] [--steps 20] [--weights celeba64]
        [--page /tmp/photo-page/page.html] [--out benchmarks/results/cpu-photo-stages-2026-12-03.json]

Runs detect -> align -> super-resolve (batched) -> paste through `faces.pipeline.restore_photo` with the
given weights (default: the bundled celeba64 prior) and few steps (quality is not the point here: the
time per step is the same at 100 steps, so super-resolve seconds scale linearly). The page is written
outside the repository by default: it holds images from the shared photos, which must not be committed.
Check it with `python benchmarks/check_report.py PAGE`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHOTOS = ROOT.parent / "shared" / "data" / "photos"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", default="four_researchers.jpg")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--weights", default="celeba64")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--gaussian-samples", type=int, default=100_000)
    ap.add_argument("--page", default="/tmp/photo-page/page.html")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    from rlse_fast.config import RLSEConfig
    from rlse_fast.faces.page import write_page
    from rlse_fast.faces.photo_io import read_photo
    from rlse_fast.faces.pipeline import restore_photo
    from rlse_fast.session import Session

    path = PHOTOS / args.photo
    if not path.is_file():
        sys.exit(f"{path} is absent")
    t = time.perf_counter()
    rgb = read_photo(path)
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    cfg = RLSEConfig(steps=args.steps, gaussian_samples=args.gaussian_samples)
    session = Session.load(args.weights, cfg, device=args.device)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    result = restore_photo(rgb, session, batch=args.batch)
    total = time.perf_counter() - t
    done = [f for f in result.faces if f.sr is not None]
    stages = {"read": round(read_s, 3), "load_weights_and_fit": round(load_s, 3), **result.stages,
              "total_pipeline": round(total, 3)}
    summary = {"photo": args.photo, "size": list(rgb.shape[1::-1]), "faces": len(result.faces),
               "super_resolved": len(done), "input_sizes": sorted({f.lr_size for f in done}),
               "upscale": result.upscale, "weights": args.weights, "steps": args.steps, "batch": args.batch,
               "device": str(session.device), "engine": "fast" if session.fast else "eager",
               "torch": torch.__version__, "threads": torch.get_num_threads(), "stages_seconds": stages,
               "super_resolve_seconds_per_face_step": round(result.stages["super_resolve"] / max(1, len(done)) / args.steps, 4)}
    print(json.dumps(summary, indent=1))
    page = write_page(Path(args.page), rgb, result, f"rlse-fast photo: {args.photo}", stages)
    print(f"page: {page}")
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
