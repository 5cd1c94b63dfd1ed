"""The GPU table of docs/gpu.md from a `benchmarks/gpu_check.sh` summary: seconds per face for each
resolution and batch, eager fp32 against the fast engine (fp32, bf16, and bf16 channels-last where
the run has it), the speed-up of fast bf16 over eager, faces per second, TFLOP/s, and the
end-to-end time of the batch in bf16 (set-up, warm-up and capture included, as `rlse-fast sr` pays
it once per process).

    python benchmarks/gpu_table.py benchmarks/results/NVIDIA-H100-80GB-HBM3-2026-11-28.json

A cell the run did not measure (skipped for time or memory, or not in that run's cases) is empty.
Exit 2, with a one-line message, when the file is not such a summary.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COLUMNS = [("eager", "fp32"), ("fast", "fp32"), ("fast", "bf16"), ("fast-cl", "bf16"), ("fast-pf", "bf16"),
           ("fast-ps", "bf16"), ("fast-nobench", "bf16"), ("fast-bench", "bf16")]
HEADS = ["eager fp32 s / face", "fast fp32", "fast bf16", "fast bf16 channels-last",
         "fast bf16 per-face conv + fused FIR + packed styles", "fast bf16 packed styles",
         "fast bf16 no cuDNN timing", "fast bf16 cuDNN timing"]
OPTIONAL = {"fast-cl", "fast-pf", "fast-ps", "fast-nobench", "fast-bench"}
"""Variants shown only where the run has them (channels-last and no cuDNN timing from 2026-11-28
on; cuDNN timing from 2026-12-04 on, when no timing became the default; the per-face Triton conv
with the fused NHWC FIR, and the packed style affines, from the first GPU run after 2026-12-07)."""
END_TO_END = {"fast-nobench": "end to end, no cuDNN timing", "fast-bench": "end to end, cuDNN timing"}
"""The cuDNN-timing variant's end-to-end column: what its set-up costs."""


def records(summary: dict) -> dict[tuple, dict]:
    """(resolution, batch, engine, precision) -> the iteration benchmark's record."""
    out = {}
    for r in summary.get("iteration_records") or []:
        if "iter_s" in r:
            out[(r["resolution"], r["batch"], r["engine"], r["precision"])] = r
    return out


def table(summary: dict) -> str:
    recs = records(summary)
    if not recs:
        raise ValueError("no iteration records in this summary (did the iter stage run?)")
    engines = {k[2] for k in recs}
    cols = [c for c in COLUMNS if c[0] not in OPTIONAL or c[0] in engines]
    heads = [h for c, h in zip(COLUMNS, HEADS) if c in cols]
    extra = [e for e in END_TO_END if e in engines]
    lines = [f"| px, batch | {' | '.join(heads)} | bf16 vs eager | faces / s (bf16) | TFLOP/s (bf16) "
             "| batch end to end, s (bf16) |" + "".join(f" {END_TO_END[e]} |" for e in extra),
             "|---" * (len(cols) + 5 + len(extra)) + "|"]
    for res, batch in sorted({(k[0], k[1]) for k in recs}, key=lambda rb: (-rb[0], rb[1])):
        cells = []
        for engine, precision in cols:
            r = recs.get((res, batch, engine, precision))
            cells.append(f"{r['per_face_s']:.2f}" if r else "")
        eager, bf16 = recs.get((res, batch, "eager", "fp32")), recs.get((res, batch, "fast", "bf16"))
        speedup = f"{eager['per_face_s'] / bf16['per_face_s']:.1f}x" if eager and bf16 else ""
        fps = f"{bf16['faces_per_s']:.2f}" if bf16 else ""
        tflops = f"{bf16['tflops']:.1f}" if bf16 else ""
        latency = f"{bf16['latency_100_s']:.1f}" if bf16 else ""
        line = f"| {res}, {batch} | {' | '.join(cells)} | {speedup} | {fps} | {tflops} | {latency} |"
        for e in extra:
            r = recs.get((res, batch, e, "bf16"))
            line += f" {r['latency_100_s']:.1f} |" if r else " |"
        lines.append(line)
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("summary", help="the <gpu>-<date>.json that gpu_check.sh wrote")
    args = p.parse_args(argv)
    try:
        summary = json.loads(Path(args.summary).read_text())
        if not isinstance(summary, dict):
            raise ValueError("not a gpu_check summary (expected a JSON object)")
        print(f"{summary.get('gpu', '?')}, {summary.get('date', '?')}")
        print(table(summary))
    except (OSError, ValueError, KeyError) as exc:
        print(f"gpu_table: {args.summary}: {exc}; give the <gpu>-<date>.json that benchmarks/gpu_check.sh wrote",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
