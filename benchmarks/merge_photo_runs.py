"""Replace some methods' rows of one `photo-eval` run by another run's, then rebuild the report.

    python benchmarks/merge_photo_runs.py BASE NEW... --out OUT [--methods photo photo-s0.5]

For a change that moves only some methods (a new rule of the default pipeline moves `photo` and its
blends, not `photo-all`, the control or Lanczos), NEW runs only those methods (`photo-eval` without
`--restore-all`) on the same (photo, scale) jobs as BASE, and this script puts their rows, and their
face crops, in place of BASE's in a copy at OUT. It refuses to merge when a NEW run lacks one of
BASE's jobs, has other weights, seed or config, or when the methods both runs hold (Lanczos at least)
differ in any number: the rows it keeps must be the ones NEW would have given. OUT's run.json keeps
BASE's settings and records every command in `command`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlse_fast.evaluate.photos import read_rows, rebuild_report, row_key, write_rows  # noqa: E402

SAME = ("seed", "weights", "config")


def _fail(message: str):
    """Refuse with one line on stderr and exit code 2, before anything is written."""
    print(f"merge_photo_runs: {message}", file=sys.stderr)
    raise SystemExit(2)


def merge(base: Path, news: list[Path], out: Path, methods: list[str]) -> list[dict]:
    if out.resolve() == base.resolve() or out.resolve() in [n.resolve() for n in news]:
        _fail("--out must be a new folder, not one of the runs")
    for run in [base, *news]:
        if not (run / "run.json").is_file() or not (run / "metrics.csv").is_file():
            _fail(f"{run} holds no run.json and metrics.csv of a photo-eval run")
    info = json.loads((base / "run.json").read_text())
    rows = read_rows(base / "metrics.csv")
    jobs = {(r["photo"], str(r["scale"])) for r in rows}
    replaced, commands = [], [info["command"]]
    for new in news:
        other = json.loads((new / "run.json").read_text())
        diff = [k for k in SAME if other.get(k) != info.get(k)]
        if diff:
            _fail(f"{new} was run with other {', '.join(diff)} than {base}")
        new_rows = read_rows(new / "metrics.csv")
        shared = {r["method"] for r in new_rows} - set(methods)
        mine = {row_key(r): r for r in rows if r["method"] in shared}
        for r in new_rows:
            if r["method"] in shared and row_key(r) in mine and mine[row_key(r)] != r:
                _fail(f"{new} and {base} disagree on {row_key(r)}: not the same run but for "
                         f"{', '.join(methods)}")
        replaced += [r for r in new_rows if r["method"] in methods]
        commands.append(other["command"])
    have = {(r["photo"], str(r["scale"])) for r in replaced}
    if have != jobs:
        _fail(f"the new runs cover {sorted(have)}, the base run {sorted(jobs)}")
    out.mkdir(parents=True, exist_ok=True)
    merged = [r for r in rows if r["method"] not in methods] + replaced
    write_rows(out / "metrics.csv", merged)
    info["command"] = f"{commands[0]}; then, for {', '.join(methods)}: {'; '.join(commands[1:])}"
    (out / "run.json").write_text(json.dumps(info, indent=1) + "\n")
    images = out / "images"
    shutil.rmtree(images, ignore_errors=True)
    if (base / "images").is_dir():
        shutil.copytree(base / "images", images)
    for crop in list(images.rglob("*.png")):
        if crop.stem.split("_", 1)[1] in methods:
            crop.unlink()
    for new in news:
        for crop in (new / "images").rglob("*.png") if (new / "images").is_dir() else []:
            if crop.stem.split("_", 1)[1] in methods:
                dest = images / crop.relative_to(new / "images")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(crop, dest)
    rebuild_report(out)
    return read_rows(out / "metrics.csv")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", type=Path)
    p.add_argument("new", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--methods", nargs="+", default=["photo", "photo-s0.5"])
    args = p.parse_args()
    rows = merge(args.base, args.new, args.out, args.methods)
    print(f"{args.out}: {len(rows)} rows, {', '.join(args.methods)} from {', '.join(map(str, args.new))}")


if __name__ == "__main__":
    main()
