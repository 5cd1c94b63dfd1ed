"""What the faces `photo` keeps would have given: the evidence behind photo's rules, from one run.

    python benchmarks/photo_kept_faces.py RUN [--method photo-all]

RUN is a `photo-eval --restore-all` folder. For every face, the default pipeline (`photo`) took a
decision (restored, or kept for a reason); the same face restored anyway (`photo-all`: every face
fitted, no checks, back-projected) and the control (`lanczos-p`) are in the same run. This prints,
per scale and per `photo` decision, the paired difference of `photo-all` and of the control against
Lanczos on exactly those faces (mean ± 95% t-interval: PSNR-Y, LPIPS, dlib identity distance), then
the same for every fitted face by the fit's own consistency with its input (`consistency_db`, the
quantity of the consistency check) and by the fit's identity distance to its input
(`fit_identity`, the identity check's): where a rule's threshold sits against where faces come out
worse.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlse_fast.evaluate.csv_table import read_rows  # noqa: E402
from rlse_fast.evaluate.stats import paired_ci  # noqa: E402

METRICS = (("psnr_y", 2), ("lpips", 3), ("identity", 3))
CONSISTENCY_BINS = ((0, 25), (25, 27), (27, 30), (30, 33), (33, 99))
IDENTITY_BINS = ((0, 0.4), (0.4, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 9))


def faces(rows: list[dict]) -> dict:
    """{(photo, scale, face, method): row} for the per-face rows."""
    return {(r["photo"], str(r["scale"]), str(r["face"]), r["method"]): r for r in rows if r["face"] != "all"}


def reason_group(reason: str) -> str:
    """The decision without its numbers: 'kept: the fit failed (28.1 dB < 30 dB ...)' -> 'kept: the fit failed'."""
    return reason.split("(")[0].strip() or "?"


def paired(by: dict, keys: list[tuple], method: str, col: str):
    a = {k: float(by[(*k, method)][col]) for k in keys if by.get((*k, method), {}).get(col)}
    b = {k: float(by[(*k, "lanczos")][col]) for k in keys if by.get((*k, "lanczos"), {}).get(col)}
    return paired_ci(a, b)


def line(label: str, by: dict, keys: list[tuple], method: str) -> str:
    cells = []
    for col, digits in METRICS:
        cells.append(f"{paired(by, keys, method, col).fmt(digits)} ({paired(by, keys, 'lanczos-p', col).fmt(digits)})")
    return f"| {label} | {len(keys)} | " + " | ".join(cells) + " |"


def table(rows: list[dict], method: str = "photo-all") -> str:
    by = faces(rows)
    head = (f"| {{}} | faces | Δ PSNR-Y (dB), {method} (control) | Δ LPIPS | Δ identity |\n"
            "|---|---:|---:|---:|---:|")
    out = []
    for scale in sorted({k[1] for k in by}, key=int):
        keys = [k[:3] for k in by if k[1] == scale and k[3] == "photo"]
        out.append(f"\nx{scale}: the faces by `photo`'s decision, {method} and the control against Lanczos\n")
        out.append(head.format("decision"))
        groups: dict[str, list] = {}
        for k in keys:
            groups.setdefault(reason_group(by[(*k, "photo")].get("reason", "")), []).append(k)
        out += [line(g, by, ks, method) for g, ks in sorted(groups.items())]
        for col, bins, name in (("consistency_db", CONSISTENCY_BINS, "fit consistency (dB)"),
                                ("fit_identity", IDENTITY_BINS, "fit identity distance")):
            fitted = [k for k in keys if by.get((*k, method), {}).get(col)]
            out.append(f"\nx{scale}: every face {method} fitted, by its {name}\n")
            out.append(head.format(name))
            for lo, hi in bins:
                ks = [k for k in fitted if lo <= float(by[(*k, method)][col]) < hi]
                if ks:
                    out.append(line(f"{lo:g}-{hi:g}", by, ks, method))
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--method", default="photo-all")
    args = p.parse_args()
    path = args.run / "metrics.csv"
    if not path.is_file():
        print(f"photo_kept_faces: {path} does not exist: give a photo-eval --restore-all folder", file=sys.stderr)
        raise SystemExit(2)
    print(table(read_rows(path), args.method))


if __name__ == "__main__":
    main()
