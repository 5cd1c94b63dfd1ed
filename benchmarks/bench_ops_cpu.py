"""CPU kernels ('cpp') against the plain-PyTorch references ('ref') at StyleGAN2 / RLSE shapes.

    pytest benchmarks/bench_ops_cpu.py --benchmark-json benchmarks/results/cpu-ops-<date>.json
    python benchmarks/bench_ops_cpu.py [--rounds 30] [--dtypes float32,bfloat16,float16] [--isa base] [--ops modulate]

Each pytest-benchmark group holds one op, shape and pass (fwd, or fwd+bwd) for both
implementations. On a shared machine, load from other processes comes in bursts of seconds, which
can land on one implementation's block of rounds and not the other's; the script mode therefore
alternates ref and cpp round by round and reports the minimum of each, the most robust estimate of
what each one costs. RLSE_BENCH_THREADS=n sets torch's (and so the kernels') OpenMP thread count.
--dtypes adds rows in other dtypes (the reference then runs in that dtype too); --isa picks the
kernels' build (csrc/cpu/cpu_isa.h: 'avx2' where the CPU has it, else 'base').
Timing only: correctness is tests/test_ops_cpu_fir.py and tests/test_ops_cpu_layers.py.
"""
from __future__ import annotations

import argparse
import os
import time

import pytest
import torch

from rlse_fast.ops import bias_act, downsample2d, modulate, setup_filter, upsample2d
from rlse_fast.memory import keep_freed_memory
from rlse_fast.ops.adain import adain_epilogue
from rlse_fast.ops.downsample_loss import downsample_loss

# As the rlse-fast command does: freed memory is reused, not page-faulted in again on every call
# (rlse_fast/memory.py; RLSE_KEEP_MEMORY=0 measures glibc's default, where the faults dominate).
MEMORY_KEPT = keep_freed_memory()

if os.environ.get("RLSE_BENCH_THREADS"):
    torch.set_num_threads(int(os.environ["RLSE_BENCH_THREADS"]))

IMPLS = ["ref", "cpp"]
PASSES = ["fwd", "fwd+bwd"]
SG2_SHAPES = [(4, 512, 32, 32), (1, 64, 256, 256), (1, 32, 512, 512)]
FILTER = setup_filter([1, 3, 3, 1])


def _name(shape):
    return "x".join(map(str, shape))


def _make(op, shape, factor, dtype=torch.float32):
    """(inputs, fn(inputs, impl) -> output) for one case."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(dtype)
    if op == "bias_act":
        b = torch.randn(shape[1], generator=g).to(dtype)
        return [x, b], lambda t, impl: bias_act(t[0], t[1], act="lrelu", impl=impl)
    if op in ("upsample2d", "downsample2d"):
        fn = upsample2d if op == "upsample2d" else downsample2d
        return [x], lambda t, impl: fn(t[0], FILTER, impl=impl)
    if op == "modulate":  # x: per-face weights (B, O, I, 3, 3); the styles get gradients too
        st = (torch.randn(shape[0], shape[2], generator=g) + 1).to(dtype).requires_grad_(True)
        return [x, st], lambda t, impl: modulate(t[0], t[1], impl=impl)
    if op == "adain_epilogue":  # StyleGAN v1's layer epilogue: a constant noise map, per-face parameters
        batch, c = shape[:2]
        noise = torch.randn(1, 1, *shape[2:], generator=g).to(dtype)
        strength, bias, shift = (torch.randn(batch, c, generator=g).requires_grad_(True) for _ in range(3))
        scale = (torch.randn(batch, c, generator=g) + 1).requires_grad_(True)
        return [x, noise, strength, bias, scale, shift], lambda t, impl: adain_epilogue(*t, impl=impl)
    lo = torch.randn(shape[0], shape[1], shape[2] // factor, shape[3] // factor, generator=g).to(dtype)
    return [x, lo], lambda t, impl: downsample_loss(t[0], t[1], factor, impl)


CASES = (  # (op, shape, factor)
    [("bias_act", s, None) for s in SG2_SHAPES]
    + [(k, s, None) for k in ("upsample2d", "downsample2d") for s in SG2_SHAPES]
    + [("downsample_loss", s, f) for f in (8, 16) for s in ((4, 3, 256, 256), (1, 3, 1024, 1024))]
    # per-face weights: the bundled prior's 128-channel layers and config-f's 512-channel ones, 4 faces
    + [("modulate", s, None) for s in ((4, 128, 128, 3, 3), (4, 512, 512, 3, 3))]
    # StyleGAN v1's 1024 px layers at batch 1 and its 256 px ones at batch 4
    + [("adain_epilogue", s, None) for s in ((1, 16, 1024, 1024), (4, 64, 256, 256))]
)


def _step(op, shape, factor, impl, grad_pass, dtype=torch.float32):
    """A no-argument callable running one round."""
    inputs, fn = _make(op, shape, factor, dtype)
    if grad_pass == "fwd":
        def fwd():
            with torch.no_grad():
                fn(inputs, impl)
        return fwd
    x = inputs[0].requires_grad_(True)
    out = fn(inputs, impl)
    dy = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.dtype)

    def fwd_bwd():
        x.grad = None
        fn(inputs, impl).backward(dy)
    return fwd_bwd


def _label(op, factor):
    return f"{op} x{factor}" if factor else op


def _have_cpp() -> bool:
    try:
        import rlse_fast._C  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _have_cpp(), reason="rlse_fast._C is not built (pip install --no-build-isolation .)")
@pytest.mark.parametrize("grad_pass", PASSES)
@pytest.mark.parametrize("op,shape,factor", CASES, ids=[f"{_label(o, f)}-{_name(s)}" for o, s, f in CASES])
@pytest.mark.parametrize("impl", IMPLS)
def test_op(benchmark, impl, op, shape, factor, grad_pass):
    benchmark.group = f"{_label(op, factor)} {_name(shape)} {grad_pass}"
    benchmark.extra_info.update(op=op, shape=list(shape), factor=factor, impl=impl, grad_pass=grad_pass,
                                threads=torch.get_num_threads(), memory_kept=MEMORY_KEPT)
    benchmark(_step(op, shape, factor, impl, grad_pass))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds per implementation (interleaved)")
    parser.add_argument("--json", help="also write the table to this JSON file")
    parser.add_argument("--dtypes", default="float32", help="comma-separated dtypes (default float32)")
    parser.add_argument("--isa", help="the kernels' build: base or avx2 (default: the best this CPU runs)")
    parser.add_argument("--ops", help="comma-separated ops to run (default: all): " + ", ".join(
        dict.fromkeys(op for op, _, _ in CASES)))
    args = parser.parse_args()
    cases = [c for c in CASES if not args.ops or c[0] in args.ops.split(",")]
    from rlse_fast import _C

    if args.isa:
        _C.set_cpu_isa(args.isa)
    dtypes = [getattr(torch, name) for name in args.dtypes.split(",")]
    rows = []
    print(f"threads={torch.get_num_threads()}, rounds={args.rounds}, kernels {_C.cpu_isa()}, "
          f"freed memory kept {MEMORY_KEPT}, min over rounds, ref/cpp alternating")
    print(f"{'op':18s} {'shape':15s} {'dtype':9s} {'pass':8s} {'ref ms':>9s} {'cpp ms':>9s} {'speedup':>8s}")
    for (op, shape, factor), dtype, grad_pass in ((c, d, p) for d in dtypes for c in cases for p in PASSES):
        dname = str(dtype).removeprefix("torch.")
        steps = {impl: _step(op, shape, factor, impl, grad_pass, dtype) for impl in IMPLS}
        best = {impl: float("inf") for impl in IMPLS}
        for _ in range(args.rounds):
            for impl in IMPLS:
                t0 = time.perf_counter()
                steps[impl]()
                best[impl] = min(best[impl], time.perf_counter() - t0)
        ref, cpp = best["ref"] * 1e3, best["cpp"] * 1e3
        print(f"{_label(op, factor):18s} {_name(shape):15s} {dname:9s} {grad_pass:8s} {ref:9.2f} {cpp:9.2f} "
              f"{ref / cpp:7.2f}x", flush=True)
        rows.append(dict(op=op, shape=list(shape), factor=factor, dtype=dname, grad_pass=grad_pass, ref_ms=ref,
                         cpp_ms=cpp, speedup=ref / cpp))
    if args.json:
        import json
        import platform

        meta = dict(threads=torch.get_num_threads(), rounds=args.rounds, statistic="min", torch=torch.__version__,
                    kernels=_C.cpu_isa(), memory_kept=MEMORY_KEPT,
                    machine=platform.processor() or platform.machine(), loadavg=os.getloadavg(),
                    malloc_env={k: v for k, v in os.environ.items() if k.startswith("MALLOC_")})
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
