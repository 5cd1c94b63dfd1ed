"""StyleGAN2's up-layer tail (FIR after the stride-2 transposed conv, + noise, + bias, leaky ReLU, gain)
three ways, forward and forward + backward, at the 1024 px generator's up-layer shapes:

    python benchmarks/bench_fir_nhwc.py --json fir_nhwc.json      # GPU: bf16, batch 1 and 16
    python benchmarks/bench_fir_nhwc.py --smoke                    # CPU: a tiny shape, fp32

  nchw-separate  today's default: the CUDA extension's tiled NCHW FIR, the noise add, bias_act
  nhwc-separate  today's channels-last path: the same ops on NHWC tensors (the general NHWC FIR)
  nhwc-fused     fir_bias_act (Triton): one pass forward, one backward with the bias and
                 noise-strength gradient sums
x is the transposed conv's (B, C, R+1, R+1) output (2 r + 1 from r = R / 2), the result (B, C, R, R);
the noise map (R, R) and its strength are shared, the bias (C,). Each case: median of CUDA-event timings after warm-up,
GB/s with each tensor read or written once (forward: x, y, the noise map; backward adds dy, y, dx),
the share of the copy bandwidth that is (peaks of microbench.py), the largest kernel of one
profiled call, and the largest difference from nchw-separate (output, then dx) in float32 units.
With --smoke the fused op runs under the Triton interpreter (no GPU). Timing only; no assertion.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

if not torch.cuda.is_available():  # before triton is imported: the kernels then run interpreted
    os.environ.setdefault("TRITON_INTERPRET", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from microbench import add_case_args, plan, skipped, timed, top_kernel, write_json  # noqa: E402

from rlse_fast.ops.fir_act import fir_bias_act, separate_ops  # noqa: E402
from rlse_fast.ops.upfirdn2d import setup_filter  # noqa: E402

# (name, channels, output px): the up-layers of config-f at 1024 px
SHAPES = [("sg2-1024-up-32", 32, 1024), ("sg2-512-up-64", 64, 512), ("sg2-256-up-128", 128, 256),
          ("sg2-128-up-256", 256, 128)]
SMOKE_SHAPES = [("smoke-up-4", 4, 8)]
VARIANTS = ("nchw-separate", "nhwc-separate", "nhwc-fused")
DIRECTIONS = ("forward", "fwd+bwd")


def case(shape, batch, variant, direction, device, dtype):
    """(fn, output fn for the comparison, bytes) of one case."""
    _, c, res = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, c, res + 1, res + 1, generator=gen).to(device, dtype)
    if variant != "nchw-separate":
        x = x.contiguous(memory_format=torch.channels_last)
    noise = torch.randn(res, res, generator=gen).to(device)
    strength = torch.tensor(0.3, device=device)
    bias = (torch.randn(c, generator=gen) * 0.1).to(device)
    f = setup_filter([1, 3, 3, 1]).to(device)
    dy = torch.randn(batch, c, res, res, generator=gen).to(device, dtype)
    def forward(x, strength, bias):
        if variant == "nhwc-fused":
            return fir_bias_act(x, f, 1, 4, noise, strength, bias, impl="triton")
        return separate_ops(x, f, 1, 4, noise, strength, bias)  # 'auto' would fuse NHWC

    leaves = [t.detach().requires_grad_(True) for t in (x, strength, bias)]

    def both():
        y = forward(*leaves)
        return y, torch.autograd.grad(y, leaves, dy)

    def fwd():
        with torch.no_grad():
            return forward(x, strength, bias)

    size = torch.finfo(dtype).bits // 8
    nx, ny = x.numel(), dy.numel()
    fwd_bytes = size * (nx + ny) + 4 * noise.numel()
    run = fwd if direction == "forward" else both
    nbytes = fwd_bytes if direction == "forward" else fwd_bytes + size * (2 * ny + nx) + 4 * noise.numel()
    return run, both, nbytes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_case_args(p, "2", 1, "a tiny shape")
    args = p.parse_args(argv)
    device, smoke, dtype, shapes, batches, reps, gpu, peak = plan(args, SHAPES, SMOKE_SHAPES, "2", 1)
    t0 = time.perf_counter()
    rows = []
    print(f"{gpu}, {dtype}, reps {reps}, copy bandwidth {peak[1] / 1e12 if peak else '-'} TB/s")
    print(f"{'shape':<18}{'B':>3} {'direction':<10}{'variant':<15}{'us':>10}{'GB/s':>8}{'roof%':>7}{'diff y':>9}"
          f"{'diff dx':>9}  top kernel")
    for shape in shapes:
        for batch in batches:
            base = None
            for direction in DIRECTIONS:
                for variant in VARIANTS:
                    row = {"shape": shape[0], "batch": batch, "direction": direction, "variant": variant}
                    if args.budget_s and time.perf_counter() - t0 > args.budget_s:
                        rows.append(dict(row, skipped="budget"))
                        continue
                    try:
                        run, both, nbytes = case(shape, batch, variant, direction, device, dtype)
                        secs = timed(run, device, reps, warmup=1 if smoke else 3)
                        kernel, share = top_kernel(run, device)
                        diff_y = diff_dx = None
                        if direction == "forward":
                            y, (dx, _, _) = both()
                            y, dx = y.float(), dx.float()
                            if variant == "nchw-separate":
                                base = (y, dx)
                            elif base is not None:
                                diff_y = (y - base[0]).abs().max().item()
                                diff_dx = (dx - base[1]).abs().max().item()
                            del y, dx
                    except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
                        rows.append(skipped(row, exc, device))
                        continue
                    roof = nbytes / peak[1] / secs if peak else None
                    row.update(seconds=secs, gbps=nbytes / secs / 1e9, roofline_share=roof, bytes=nbytes,
                               top_kernel=kernel, top_kernel_share=share, max_abs_diff_y=diff_y,
                               max_abs_diff_dx=diff_dx)
                    rows.append(row)
                    print(f"{shape[0]:<18}{batch:>3} {direction:<10}{variant:<15}{secs * 1e6:>10.1f}{row['gbps']:>8.0f}"
                          f"{(f'{100 * roof:.0f}' if roof else '-'):>7}"
                          f"{(f'{diff_y:.1e}' if diff_y is not None else '-'):>9}"
                          f"{(f'{diff_dx:.1e}' if diff_dx is not None else '-'):>9}  {kernel} ({100 * share:.0f}%)",
                          flush=True)
            base = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
    write_json(args.json, "bench_fir_nhwc.py", argv,
               {"device": gpu, "dtype": str(dtype), "torch": torch.__version__, "peaks": peak, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
