"""Issue 18's comparison: on real low-resolution faces (an `rlse-fast eval --lr` run), NIQE of every
method, paired against PULSE and against RLSE, on the half of the faces used to pick a variant, on
the other half (the reported result), and on all of them.

    rlse-fast eval --lr ../shared/data/wider_lr_real --scale 4 8 -n 100 --batch 4 --threads 2 \\
        --methods bicubic,pulse,rlse,rlse-floor,rlse-noisefloor,rlse-ls5,rlse-lg5000,rlse-lg20000,rlse-half \\
        --weights celeba64 --out docs/eval/wider_lr_real_variants
    python benchmarks/real_variants.py docs/eval/wider_lr_real_variants [--json out.json]

The faces are split by name order (the order eval takes them): the first half picks, the second
reports. The pick is the RLSE variant with the lowest mean NIQE difference to PULSE on the first
half, over both scales; it is adopted only if its interval against PULSE excludes zero in RLSE's
favour on the second half at every scale. Lower NIQE is better.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlse_fast.evaluate.runner import METHODS, read_rows  # noqa: E402
from rlse_fast.evaluate.stats import mean_ci, paired_ci  # noqa: E402

BASELINES = ("bicubic", "bilinear", "pulse", "rlse-noft", "rlse-nosem", "rlse")


def _table(rows: list[dict], key: str) -> dict:
    """(scale, method) -> {image: the column's value}, finite values only (upsamplers have no losses)."""
    out = {}
    for r in rows:
        try:
            v = float(r[key])
        except (KeyError, ValueError):
            continue
        if math.isfinite(v):
            out.setdefault((int(r["scale"]), r["method"]), {})[r["image"]] = v
    return out


def analyse(run: Path) -> dict:
    path = run / "metrics.csv"
    if not path.is_file():
        print(f"real_variants: {path} does not exist; give the --out folder of an `rlse-fast eval --lr` run",
              file=sys.stderr)
        raise SystemExit(2)
    rows = read_rows(path)
    niqe, lr_psnr, geocross = (_table(rows, k) for k in ("niqe", "lr_psnr_y", "loss_geocross"))
    scales = sorted({s for s, _ in niqe})
    methods = [m for m in METHODS if any((s, m) in niqe for s in scales)]
    images = sorted({img for d in niqe.values() for img in d})
    half = len(images) // 2
    splits = {"pick": set(images[:half]), "report": set(images[half:]), "all": set(images)}

    def sub(d, keys):
        return {k: v for k, v in d.items() if k in keys}

    result = {"run": str(run), "faces": len(images), "scales": scales, "methods": methods, "split": {
        "pick": f"the first {half} faces by name", "report": f"the other {len(images) - half}"}, "by_scale": {}}
    for s in scales:
        per = {}
        for m in methods:
            if (s, m) not in niqe:
                continue
            entry = {"niqe": {}, "minus_pulse": {}, "minus_rlse": {},
                     "lr_psnr_y": mean_ci(lr_psnr.get((s, m), {}).values()).mean,
                     # L_g of the kept iterate, unweighted: how far apart the W+ rows ended.
                     "geocross": mean_ci(geocross[(s, m)].values()).mean if (s, m) in geocross else None}
            steps = [int(r["best_step"]) for r in rows if int(r["scale"]) == s and r["method"] == m and r.get("best_step")]
            if steps:
                entry["kept_last_iterate"] = sum(b == max(steps) for b in steps) / len(steps)
            for name, keys in splits.items():
                mine = sub(niqe[(s, m)], keys)
                ci = mean_ci(mine.values())
                entry["niqe"][name] = [ci.mean, ci.half, ci.n]
                for base, col in (("pulse", "minus_pulse"), ("rlse", "minus_rlse")):
                    if m != base and (s, base) in niqe:
                        d = paired_ci(mine, sub(niqe[(s, base)], keys))
                        entry[col][name] = [d.mean, d.half, d.n]
            per[m] = entry
        result["by_scale"][str(s)] = per
    variants = [m for m in methods if m not in BASELINES]
    score = {m: sum(result["by_scale"][str(s)][m]["minus_pulse"]["pick"][0] for s in scales) / len(scales)
             for m in variants if all(m in result["by_scale"][str(s)] for s in scales)}
    pick = min(score, key=score.get) if score else None
    result["pick"] = pick
    result["pick_score"] = score
    if pick:
        wins = [result["by_scale"][str(s)][pick]["minus_pulse"]["report"] for s in scales]
        result["pick_beats_pulse_on_report_half"] = all(d[0] + d[1] < 0 for d in wins)
    return result


def markdown(res: dict) -> str:
    lines = [f"Faces: {res['faces']} ({res['split']['pick']} pick the variant; {res['split']['report']} report it). "
             "NIQE, lower is better; differences paired, mean ± 95% half-width.", ""]
    for s in res["scales"]:
        lines += [f"**{s}x**", "",
                  "| method | NIQE (all) | − PULSE, pick half | − PULSE, report half | − PULSE, all | − RLSE, all "
                  "| LR PSNR-Y (dB) | L_g |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for m, e in res["by_scale"][str(s)].items():
            def f(x):
                return "" if not x else f"{x[0]:+.2f} ± {x[1]:.2f}"
            n = e["niqe"]["all"]
            lines.append(f"| {m} | {n[0]:.2f} ± {n[1]:.2f} | {f(e['minus_pulse'].get('pick'))} | "
                         f"{f(e['minus_pulse'].get('report'))} | {f(e['minus_pulse'].get('all'))} | "
                         f"{f(e['minus_rlse'].get('all'))} | {e['lr_psnr_y']:.1f} | "
                         f"{'' if e.get('geocross') is None else format(e['geocross'], '.1f')} |")
        lines.append("")
    if res["pick"]:
        verdict = "beats" if res["pick_beats_pulse_on_report_half"] else "does not beat"
        lines.append(f"Picked on the first half: `{res['pick']}`; on the second half it {verdict} PULSE at every scale "
                     "(interval excluding zero).")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="the --out folder of an `rlse-fast eval --lr` run")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    res = analyse(args.run)
    print(markdown(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
