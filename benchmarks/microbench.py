"""What the GPU microbenchmarks share: the cards' measured peaks, the timer, the largest kernel of one
call, the common command line (smoke / batches / shapes / reps / budget / json), a skipped case's row
and the JSON they write. Used by bench_conv_layouts.py and bench_fir_nhwc.py."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlse_fast.imageio import atomic_write  # noqa: E402

# Measured ceilings (/work/.library/device/KINDS.md): bf16 matrix product, device-to-device copy.
PEAKS = {"H200": (790e12, 4.3e12), "H100": (798e12, 3.0e12)}


def add_case_args(p: argparse.ArgumentParser, smoke_batches: str, smoke_reps: int, smoke_what: str) -> None:
    p.add_argument("--smoke", action="store_true", help=f"CPU smoke run: {smoke_what}, fp32, batch {smoke_batches}")
    p.add_argument("--batches", default=None, help=f"default 1,16 (smoke: {smoke_batches})")
    p.add_argument("--shapes", default=None, help="comma-separated shape names (default: all)")
    p.add_argument("--reps", type=int, default=None, help=f"timed calls per case (default 10; smoke {smoke_reps})")
    p.add_argument("--budget-s", type=float, default=None, help="start no case after this many seconds")
    p.add_argument("--json", default=None, help="write the rows here")


def plan(args, shapes, smoke_shapes, smoke_batches: str, smoke_reps: int):
    """(device, smoke, dtype, shapes, batches, reps, gpu name, peaks) from add_case_args' flags."""
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    smoke = args.smoke or device.type == "cpu"
    dtype = torch.float32 if smoke else torch.bfloat16
    chosen = smoke_shapes if smoke else shapes
    if args.shapes:
        chosen = [s for s in chosen if s[0] in args.shapes.split(",")]
    batches = [int(b) for b in (args.batches or (smoke_batches if smoke else "1,16")).split(",")]
    reps = args.reps or (smoke_reps if smoke else 10)
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAKS.items() if k in gpu), None)
    return device, smoke, dtype, chosen, batches, reps, gpu, peak


def skipped(row: dict, exc: BaseException, device) -> dict:
    """The row of a case that could not run (out of memory, no kernel), with the first line of why."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return dict(row, skipped=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")


def write_json(path: str | None, script: str, argv, doc: dict) -> None:
    if not path:
        return
    args = argv if argv is not None else sys.argv[1:]
    doc = {"command": f"python benchmarks/{script} " + " ".join(args), **doc}
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1)))
    print(f"wrote {path}")


def timed(fn, device, reps, warmup):
    """Median seconds of fn over reps calls (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        else:
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def top_kernel(fn, device):
    """(name, share of the device time) of the largest kernel (CPU op without CUDA) of one call."""
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.profiler.profile(activities=acts) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    cuda = device.type == "cuda"
    rows = [(e.key, e.self_device_time_total if cuda else e.self_cpu_time_total) for e in prof.key_averages()]
    rows = [r for r in rows if r[1] > 0 and not r[0].startswith(("cudaLaunch", "cuLaunch", "cudaStream", "cudaEvent"))]
    if not rows:
        return None, 0.0
    name, t = max(rows, key=lambda r: r[1])
    return name[:120], t / sum(r[1] for r in rows)
