"""Should a newly trained prior replace the bundled `celeba64`? The ship rule, in one command:

    python benchmarks/prior_ship_check.py runs/prior-gpu/returned/prior-64.safetensors

1. Held-out faces: `rlse-fast eval --hr ../shared/data/celeba128_test --scale 8 --methods rlse
   --steps 100 --seed 0 -n 250` with the candidate and with the baseline (default celeba64), then
   the paired differences candidate - baseline with 95% t-intervals (benchmarks/compare_runs.py).
   Passes when RLSE's LPIPS is lower with the interval excluding zero, and PSNR-Y and SSIM-Y are
   not worse beyond their intervals (the upper end of candidate - baseline is >= 0).
2. Photos (`--photos DIR`, default ../shared/data/photos): `rlse-fast photo-eval DIR --restore-all`
   with each prior; the `photo-all` faces (every face restored the same way, back-projected: the
   network compared, not the protocol table that only measured weights have) paired by (photo, scale,
   face); passes when none of LPIPS (lower is better), PSNR-Y, SSIM-Y is worse beyond its interval.
   With --no-photos the verdict stays KEEP with that reason.

Prints SHIP or KEEP with every reason, and writes the comparison to WORK/ship_check.json. The eval
folders are reused (an eval run resumes), so the baseline is computed once per settings.
Exit code 0 for either verdict; 2 for bad input.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from compare_runs import compare, finite_values  # noqa: E402

from rlse_fast.evaluate.csv_table import read_rows  # noqa: E402
from rlse_fast.evaluate.stats import paired_ci  # noqa: E402

LOWER_IS_BETTER = {"lpips"}


def _fail(message: str):
    print(f"prior_ship_check: {message}", file=sys.stderr)
    raise SystemExit(2)


def _run(cmd: list[str], quiet: bool) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    print("+ " + " ".join(cmd), flush=True)
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL if quiet else None)
    if done.returncode != 0:
        _fail(f"this command failed (exit {done.returncode}): {' '.join(cmd)}")


def _slug(weights: str) -> str:
    return Path(weights).stem if Path(weights).suffix else weights


def held_out(args, weights: str, role: str, work: Path) -> Path:
    out = work / f"eval-{role}-{_slug(weights)}-n{args.n}-s{args.steps}"
    _run([sys.executable, "-m", "rlse_fast", "eval", "--hr", args.hr, "--scale", "8", "--methods", "rlse",
          "--steps", str(args.steps), "--seed", "0", "-n", str(args.n), "--weights", weights, "--out", str(out),
          "--grid", "0", "--no-identity", "--device", args.device, "--quiet"], args.quiet)
    return out


def photos(args, weights: str, role: str, work: Path) -> Path:
    out = work / f"photo-all-{role}-{_slug(weights)}"
    _run([sys.executable, "-m", "rlse_fast", "photo-eval", args.photos, "--out", str(out), "--weights", weights,
          "--restore-all", "--device", args.device, "--quiet"], args.quiet)
    return out


PHOTO_METHOD = "photo-all"
"""The photo-eval rows compared: every face restored by the prior, back-projected."""


def _photo_rows(run: Path) -> dict:
    path = run / "metrics.csv"
    if not path.is_file():
        _fail(f"{path} does not exist after photo-eval")
    return {(r["photo"], r["scale"], r["face"]): r for r in read_rows(path)
            if r["method"] == PHOTO_METHOD and r["face"] != "all"}


def compare_photos(cand: Path, base: Path) -> dict:
    a, b = _photo_rows(cand), _photo_rows(base)
    keys = sorted(set(a) & set(b))
    out = {}
    for col in ("lpips", "psnr_y", "ssim_y"):
        va, vb = finite_values(a, col), finite_values(b, col)
        both = [k for k in keys if k in va and k in vb]
        va, vb = {k: va[k] for k in both}, {k: vb[k] for k in both}
        if va:
            d = paired_ci(va, vb)
            out[col] = {"diff": d.mean, "diff_half": d.half, "n": d.n}
    return out


def _interval(c: dict) -> tuple[float, float]:
    half = c["diff_half"] if math.isfinite(c["diff_half"]) else math.inf
    return c["diff"] - half, c["diff"] + half


def verdict(held: dict, photo: dict | None) -> tuple[bool, list[str]]:
    """The ship rule on candidate - baseline differences -> (ship, reasons)."""
    ok, reasons = True, []
    lo, hi = _interval(held["lpips"])
    if hi < 0:
        reasons.append(f"held-out LPIPS better: {held['lpips']['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}] (pass)")
    else:
        ok = False
        reasons.append(f"held-out LPIPS not better with the interval excluding 0: "
                       f"{held['lpips']['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}] (fail)")
    for col in ("psnr_y", "ssim_y"):
        lo, hi = _interval(held[col])
        worse = hi < 0
        ok &= not worse
        reasons.append(f"held-out {col} {held[col]['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}] "
                       f"({'worse beyond its interval: fail' if worse else 'not worse: pass'})")
    if photo is None:
        ok = False
        reasons.append("photo protocol not run (add --photos DIR): cannot ship without it")
    else:
        for col, c in photo.items():
            lo, hi = _interval(c)
            worse = lo > 0 if col in LOWER_IS_BETTER else hi < 0
            ok &= not worse
            reasons.append(f"photos {col} {c['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}] over {c['n']} faces "
                           f"({'worse: fail' if worse else 'not worse: pass'})")
    return ok, reasons


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("candidate", help="the new prior (.safetensors)")
    p.add_argument("--baseline", default="celeba64", help="weights name or file (default celeba64)")
    p.add_argument("--hr", default=str(ROOT.parent / "shared" / "data" / "celeba128_test"))
    p.add_argument("-n", type=int, default=250, help="held-out faces (default 250, all of celeba128_test)")
    p.add_argument("--steps", type=int, default=100)
    default_photos = ROOT.parent / "shared" / "data" / "photos"
    p.add_argument("--photos", default=str(default_photos) if default_photos.is_dir() else None,
                   help="photo folder for `rlse-fast photo-eval` (the photo protocol; default ../shared/data/photos)")
    p.add_argument("--no-photos", action="store_true", help="skip the photo protocol (the verdict is then KEEP)")
    p.add_argument("--work", default="runs/ship-check", help="eval output folders go here")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    if args.no_photos:
        args.photos = None
    if not Path(args.candidate).is_file():
        _fail(f"candidate prior {args.candidate!r} does not exist")
    if not Path(args.hr).is_dir():
        _fail(f"held-out folder {args.hr!r} does not exist (celeba128_test lives in ../shared/data)")
    if args.photos is not None and not Path(args.photos).is_dir():
        _fail(f"photo folder {args.photos!r} does not exist")
    work = Path(args.work)
    cand, base = held_out(args, args.candidate, "new", work), held_out(args, args.baseline, "base", work)
    held = compare(cand, base)["columns"]
    photo = compare_photos(photos(args, args.candidate, "new", work), photos(args, args.baseline, "base", work)) \
        if args.photos else None
    ship, reasons = verdict(held, photo)
    result = {"candidate": args.candidate, "baseline": args.baseline, "n": args.n, "steps": args.steps,
              "held_out": {k: held[k] for k in ("lpips", "psnr_y", "ssim_y")}, "photos": photo,
              "verdict": "SHIP" if ship else "KEEP", "reasons": reasons}
    work.mkdir(parents=True, exist_ok=True)
    (work / "ship_check.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['verdict']}: {args.candidate} against {args.baseline} ({args.n} held-out faces, 8x, "
          f"{args.steps} steps)")
    for r in reasons:
        print(f"  - {r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
