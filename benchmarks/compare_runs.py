"""Paired comparison of two `rlse-fast eval` runs on the same faces, e.g. the fast engine in bf16
against the eager fp32 baseline ("quality must not move"):

    rlse-fast eval --hr DIR --out runs/eager --engine eager --precision fp32 ...
    rlse-fast eval --hr DIR --out runs/fast  --engine fast  --precision bf16 ...
    python benchmarks/compare_runs.py runs/fast runs/eager [--json out.json]

or of two methods of one run (a variant against RLSE, say):

    python benchmarks/compare_runs.py runs/a runs/a --methods rlse-lg5000 rlse

For every metric and loss column, over the (image, scale, method) rows both runs have: each run's
mean, and the mean of the paired difference A - B with its 95% t-interval (rlse_fast.evaluate.stats).
An interval that contains 0 means no difference was detected at this many faces.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlse_fast.evaluate.csv_table import read_rows  # noqa: E402
from rlse_fast.evaluate.stats import mean_ci, paired_ci  # noqa: E402

COLUMNS = ("psnr_y", "ssim_y", "lpips", "psnr_rgb", "ssim_rgb", "niqe", "lr_psnr_y", "best_loss", "loss_pixel",
           "loss_semantic", "loss_geocross", "best_step", "seconds")


def _fail(message: str):
    """Bad input: one line on stderr, exit code 2."""
    print(f"compare_runs: {message}", file=sys.stderr)
    raise SystemExit(2)


def _rows(run: Path) -> dict:
    path = run / "metrics.csv"
    if not path.is_file():
        _fail(f"{path} does not exist; give the --out folders of two `rlse-fast eval` runs")
    return {(r["image"], r["scale"], r["method"]): r for r in read_rows(path)}


def finite_values(rows: dict, column: str) -> dict:
    """key -> float(row[column]) for the rows where that is a finite number."""
    out = {}
    for key, row in rows.items():
        try:
            v = float(row.get(column, ""))
        except ValueError:
            continue
        if math.isfinite(v):
            out[key] = v
    return out


def compare(a: Path, b: Path, methods: tuple[str, str] | None = None) -> dict:
    """methods=(MA, MB): pair run A's MA rows with run B's MB rows (same image and scale)."""
    ra, rb = _rows(a), _rows(b)
    if methods:
        name = " vs ".join(methods)
        ra = {(i, s, name): r for (i, s, m), r in ra.items() if m == methods[0]}
        rb = {(i, s, name): r for (i, s, m), r in rb.items() if m == methods[1]}
    keys = sorted(set(ra) & set(rb))
    if not keys:
        what = f"rows of {methods[0]} in A and {methods[1]} in B" if methods else "(image, scale, method) row"
        _fail(f"the two runs share no {what}; check the folders and the method names in their metrics.csv")
    result = {"a": str(a), "b": str(b), "rows": len(keys), "methods": sorted({k[2] for k in keys}),
              "scales": sorted({int(k[1]) for k in keys}), "columns": {}}
    for col in COLUMNS:
        va = {k: v for k, v in finite_values(ra, col).items() if k in keys}
        vb = {k: v for k, v in finite_values(rb, col).items() if k in keys}
        if not va or not vb:
            continue
        d = paired_ci(va, vb)
        result["columns"][col] = {"a": mean_ci(va.values()).mean, "b": mean_ci(vb.values()).mean,
                                  "diff": d.mean, "diff_half": d.half, "n": d.n,
                                  "max_abs_diff": max(abs(va[k] - vb[k]) for k in va if k in vb)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="eval output folder A")
    parser.add_argument("b", type=Path, help="eval output folder B (the baseline)")
    parser.add_argument("--methods", nargs=2, metavar=("MA", "MB"),
                        help="compare method MA of run A with method MB of run B (A and B may be one folder)")
    parser.add_argument("--json", type=Path, help="also write the comparison here")
    args = parser.parse_args()
    res = compare(args.a, args.b, tuple(args.methods) if args.methods else None)
    print(f"A = {res['a']}\nB = {res['b']}\n{res['rows']} paired rows, methods {', '.join(res['methods'])}, "
          f"scales {res['scales']}\n")
    print("| column | A | B | A - B (95% interval) | max abs diff |\n|---|---|---|---|---|")
    for col, c in res["columns"].items():
        half = "" if math.isnan(c["diff_half"]) else f" ± {c['diff_half']:.4g}"
        print(f"| {col} | {c['a']:.4g} | {c['b']:.4g} | {c['diff']:+.4g}{half} | {c['max_abs_diff']:.4g} |")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
