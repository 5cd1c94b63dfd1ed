"""One RLSE iteration: the eager engine vs the fast one, per-face latency, faces/s and TFLOP/s.

    pytest benchmarks/bench_iteration.py --benchmark-json benchmarks/results/iteration-<date>.json

Engines: 'eager' is the baseline, `engine.eager.super_resolve` with the reference ops everywhere
(`ops_impl('ref')`), fp32, no graphs; 'fast' is `rlse_fast.engine.fast` (impl='auto': the native kernels
when built) in fp32 or bf16, with CUDA graphs on a GPU.

CUDA (skipped without one): random-weight config-f networks at 1024 (64 px input, 16x) and 256
(32 px input, 8x), batch 1, 4, 16. Each case runs a few iterations only and extrapolates to the
100 of a face: 'iter_s' is the steady-state time of one iteration of the whole batch, 'per_face_s'
= 100 * iter_s / batch, 'latency_100_s' = set-up and first iterations as measured + the rest at
iter_s, 'faces_per_s' = batch / (100 * iter_s), 'tflops' = rlse_fast.flops count / iter_s.
- fast: warm-up and capture happen before timing; the timed call replays `k` iterations and
  synchronises once (pytest-benchmark's stats are per call of k iterations).
- eager: the timed call is a whole `super_resolve` of `n` steps (it syncs every step anyway);
  iter_s is the median interval between its on_step calls (the first one, with lazy
  initialisation, left out).
A case that runs out of GPU memory, or starts after RLSE_BENCH_BUDGET_S seconds (default 240) of
this module, is skipped with the reason. RLSE_BENCH_LOG=path appends each case's numbers as a JSON
line as soon as it is measured (kept even if the run is killed).

CPU (runs everywhere), one thread (RLSE_BENCH_CPU_THREADS): a random 64 px generator (channels up
to 128), 16 px input, batch 2, 4 iterations; and the bundled celeba64 prior as `rlse-fast sr` runs
it (8 px to 64 px), batch 1 and 4, 5 iterations: eager with the reference ops (the baseline) and
with the C++ kernels (what the command runs on a CPU), and the fast engine.
"""
from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlse_fast import flops, gaussian_fit  # noqa: E402
from rlse_fast.config import RLSEConfig  # noqa: E402
from rlse_fast.engine.eager import super_resolve  # noqa: E402
from rlse_fast.engine.fast import FastLoop, ops_impl, super_resolve_fast  # noqa: E402
from rlse_fast.memory import keep_freed_memory  # noqa: E402
from rlse_fast.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig  # noqa: E402
from rlse_fast.ops import dispatch  # noqa: E402

START = time.monotonic()
MEMORY_KEPT = keep_freed_memory()  # as the rlse-fast command does (rlse_fast/memory.py)
BUDGET_S = float(os.environ.get("RLSE_BENCH_BUDGET_S", "240"))
LOG = os.environ.get("RLSE_BENCH_LOG")
STEPS = 100  # a face's iterations, for the extrapolations


def _log(record: dict) -> None:
    if LOG:
        with open(LOG, "a") as fh:
            fh.write(json.dumps(record) + "\n")


def _native_ops(device: str) -> dict:
    """Which implementation 'auto' picks for each op on this device."""
    x = torch.zeros(1, device=device)
    return {op: dispatch.auto_choice(op, x) for op in ("bias_act", "upfirdn2d", "downsample_loss")}


def _networks(res: int, device: str, g_cfg: GeneratorConfig | None = None, d_cfg: DiscriminatorConfig | None = None):
    g_cfg = g_cfg or GeneratorConfig(img_resolution=res)
    d_cfg = d_cfg or DiscriminatorConfig(img_resolution=res)
    torch.manual_seed(0)
    G = Generator(g_cfg).eval().requires_grad_(False).to(device)
    D = Discriminator(d_cfg).eval().requires_grad_(False).to(device)
    fit = gaussian_fit.compute(G, 4096, device=device)
    return G, D, {k: v.to(device) for k, v in fit.items()}


def _record(benchmark, case: dict, iter_s: float, first_s: float, first_steps: int, G, D, cfg, batch, factor):
    f = flops.for_config(G, D, cfg, batch=batch, factor=factor)
    info = {
        **case, "iter_s": iter_s, "per_face_s": STEPS * iter_s / batch, "faces_per_s": batch / (STEPS * iter_s),
        "latency_100_s": first_s + (STEPS - first_steps) * iter_s, "setup_and_first_steps_s": first_s,
        "first_steps": first_steps, "flops_per_iter": f.total, "tflops": f.total / iter_s / 1e12,
        "flops": f.as_dict(),
    }
    if torch.cuda.is_available() and case.get("device") == "cuda":
        info["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        info["gpu"] = torch.cuda.get_device_name()
    benchmark.extra_info.update(info)
    _log({"name": benchmark.name, **info})
    return info


def _time_eager(benchmark, G, D, lr, cfg, fit, seeds, steps, sync):
    """Whole `super_resolve` calls; per-iteration time from the on_step intervals."""
    marks = []

    def on_step(step, img, losses):
        sync()
        marks.append(time.perf_counter())

    def call():
        marks.clear()
        t0 = time.perf_counter()
        with ops_impl("ref"):
            super_resolve(G, D, lr, cfg, fit, seeds=seeds, impl="ref", on_step=on_step)
        sync()
        call.first = marks[0] - t0
        call.intervals = [b - a for a, b in zip(marks[1:], marks[2:])] or [marks[-1] - marks[0]]

    benchmark.pedantic(call, rounds=1, iterations=1)
    return statistics.median(call.intervals), call.first


def _time_fast(benchmark, G, D, lr, cfg, fit, seeds, precision, k, rounds, sync, graphs=True, impl="auto",
               **options):
    """Warm up and capture, then time `rounds` calls of `k` iterations each. options: FastLoop's."""
    t0 = time.perf_counter()
    loop = FastLoop(G, D, lr, cfg, fit, seeds=seeds, impl=impl, precision=precision, graphs=graphs, **options)
    warm = loop.options.warmup + 1 if loop.capture.enabled else 2
    for _ in range(warm):
        loop.step()
    sync()
    first = time.perf_counter() - t0
    # A failed capture falls back to eager steps; time those and say so (tests/test_fast_cuda.py fails on it).
    graph = {"graphed": loop.capture.graph is not None, "graph_error": loop.capture.error}

    def call():
        for _ in range(k):
            loop.step()
        sync()

    try:
        benchmark.pedantic(call, rounds=rounds, iterations=1)
        iter_s = benchmark.stats.stats.median / k
    finally:
        loop.close()
    return iter_s, first, warm, graph


# ----------------------------------------------------------------------------- CUDA

# (resolution, batch, engine, precision). First what the next decision needs, so that the time
# limit cuts the rest: the 256 px pair (it also compiles the bf16 Triton kernels), then the per-face
# Triton conv + fused FIR ('fast-pf') beside today's fast bf16 at 1024 px, batch 1 and 16, and the
# eager baseline at batch 1 (the issue's "x eager" ratio); then the other variants, cheapest first.
# Variants of the fast engine, to decide its defaults: 'fast-cl' channels_last=True (D and G in
# NHWC, G one face at a time); 'fast-bench' cudnn_benchmark=True (cuDNN times its algorithms during the
# warm-up; the default until the H200 run of 2026-12-04 measured the same iterations for 0.9-3.2 s more set-up);
# 'fast-pf': channels-last with the per-face Triton convolution (RLSE_PERFACE_CONV=triton: the batch runs
# whole in NHWC), the fused NHWC FIR epilogue in the up-layers and every style affine in one product
# (packed_styles); 'fast-ps': today's fast engine with packed_styles only (layout-independent), so that
# a slower 'fast-pf' can be told apart from the affines' share.
ENGINE_OPTIONS = {"fast": {}, "fast-cl": {"channels_last": True}, "fast-bench": {"cudnn_benchmark": True},
                  "fast-pf": {"channels_last": True, "fused_fir": True, "packed_styles": True},
                  "fast-ps": {"packed_styles": True}}
ENGINE_ENV = {"fast-pf": {"RLSE_PERFACE_CONV": "triton"}}
CUDA_CASES = [
    (256, 1, "eager", "fp32"), (256, 1, "fast", "bf16"),
    (1024, 1, "fast", "bf16"), (1024, 1, "fast-pf", "bf16"), (1024, 16, "fast", "bf16"), (1024, 16, "fast-pf", "bf16"),
    (1024, 1, "eager", "fp32"), (1024, 16, "fast-ps", "bf16"),
    (256, 1, "fast", "fp32"), (256, 4, "eager", "fp32"), (256, 4, "fast", "bf16"),
    (256, 16, "eager", "fp32"), (256, 16, "fast", "bf16"), (256, 16, "fast", "fp32"),
    (1024, 1, "fast", "fp32"), (1024, 1, "fast-cl", "bf16"), (1024, 1, "fast-bench", "bf16"),
    (1024, 4, "eager", "fp32"), (1024, 4, "fast", "bf16"), (1024, 4, "fast-cl", "bf16"), (1024, 4, "fast-pf", "bf16"),
    (1024, 4, "fast-bench", "bf16"),
    (1024, 16, "fast", "fp32"), (1024, 16, "eager", "fp32"),
]
_NETS: dict = {}


def _cuda_nets(res):
    if res not in _NETS:
        _NETS.clear()
        gc.collect()
        torch.cuda.empty_cache()
        _NETS[res] = _networks(res, "cuda")
    return _NETS[res]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("res,batch,engine,precision", CUDA_CASES,
                         ids=[f"{r}px-b{b}-{e}-{p}" for r, b, e, p in CUDA_CASES])
def test_iteration_cuda(benchmark, monkeypatch, res, batch, engine, precision):
    if time.monotonic() - START > BUDGET_S:
        pytest.skip(f"time budget of {BUDGET_S:.0f} s (RLSE_BENCH_BUDGET_S) used up")
    for name, value in ENGINE_ENV.get(engine, {}).items():
        monkeypatch.setenv(name, value)
    benchmark.group = f"iteration {res}px batch {batch} (cuda)"
    gc.collect()  # the previous case's buffers and graph pool
    torch.cuda.empty_cache()
    G, D, fit = _cuda_nets(res)
    factor = 16 if res == 1024 else 8
    lr = torch.rand(batch, 3, res // factor, res // factor, device="cuda",
                    generator=torch.Generator("cuda").manual_seed(0))
    cfg = RLSEConfig(steps=STEPS)
    seeds = list(range(batch))
    sync = torch.cuda.synchronize
    big = res == 1024 and batch >= 4
    case = {"device": "cuda", "resolution": res, "batch": batch, "engine": engine, "precision": precision,
            "ops": _native_ops("cuda") if engine != "eager" else "ref", "torch": torch.__version__,
            "env": ENGINE_ENV.get(engine, {})}
    torch.cuda.reset_peak_memory_stats()
    try:
        if engine == "eager":
            n = 4 if big else 6
            iter_s, first = _time_eager(benchmark, G, D, lr, RLSEConfig(steps=n), fit, seeds, n, sync)
            case["measured_steps"] = n
            _record(benchmark, case, iter_s, first, 1, G, D, cfg, batch, factor)
        else:
            k, rounds = (2, 3) if big else (5, 3)
            iter_s, first, warm, graph = _time_fast(benchmark, G, D, lr, cfg, fit, seeds, precision, k, rounds, sync,
                                                    **ENGINE_OPTIONS[engine])
            case.update(graph, measured_steps=k * rounds)
            _record(benchmark, case, iter_s, first, warm, G, D, cfg, batch, factor)
    except torch.cuda.OutOfMemoryError as exc:
        gc.collect()
        torch.cuda.empty_cache()
        _log({"name": f"{res}px-b{batch}-{engine}-{precision}", "skipped": "out of memory"})
        pytest.skip(f"out of GPU memory: {str(exc).splitlines()[0][:120]}")


# ----------------------------------------------------------------------------- CPU

CPU_G = GeneratorConfig(z_dim=128, w_dim=128, img_resolution=64, mapping_layers=2, channel_base=2048, channel_max=128)
CPU_D = DiscriminatorConfig(img_resolution=64, channel_base=2048, channel_max=128)
CPU_STEPS = 4
CPU_BATCH = 2
CPU_THREADS = int(os.environ.get("RLSE_BENCH_CPU_THREADS", "1"))
"""One thread by default: steadier numbers on a shared machine (the kernels' OpenMP included)."""


@pytest.fixture(scope="module")
def cpu_setup():
    G, D, fit = _networks(64, "cpu", CPU_G, CPU_D)
    lr = torch.rand(CPU_BATCH, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    return G, D, fit, lr


def _cpu_runs(benchmark, G, D, lr, cfg, fit, engine: str, impl: str) -> float:
    """Times whole runs of cfg.steps iterations on CPU_THREADS threads (set-up included: it is small
    here); returns the time of one iteration. engine 'eager' runs every op as `impl`."""
    seeds = list(range(lr.shape[0]))
    if engine == "eager":
        def call():
            with ops_impl(impl):
                super_resolve(G, D, lr, cfg, fit, seeds=seeds, impl=impl)
    else:
        def call():
            super_resolve_fast(G, D, lr, cfg, fit, seeds=seeds, impl=impl, precision="fp32", graphs=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(CPU_THREADS)
    try:
        try:
            call()  # warm-up, and a native extension that does not work here is a skip, not a timing
        except (RuntimeError, AttributeError) as exc:
            pytest.skip(f"impl={impl} does not run here: {str(exc).splitlines()[0][:120]}")
        benchmark.pedantic(call, rounds=3, iterations=1)
    finally:
        torch.set_num_threads(threads)
    return benchmark.stats.stats.median / cfg.steps


@pytest.mark.parametrize("engine,impl", [("eager", "ref"), ("fast", "ref"), ("fast", "auto")],
                         ids=["eager-ref", "fast-ref", "fast-auto"])
def test_iteration_cpu(benchmark, cpu_setup, engine, impl):
    """Whole runs of CPU_STEPS iterations (set-up included: it is small here)."""
    G, D, fit, lr = cpu_setup
    cfg = RLSEConfig(steps=CPU_STEPS)
    benchmark.group = f"iteration 64px batch {CPU_BATCH} x {CPU_STEPS} steps (cpu)"
    iter_s = _cpu_runs(benchmark, G, D, lr, cfg, fit, engine, impl)
    case = {"device": "cpu", "resolution": 64, "batch": CPU_BATCH, "engine": engine, "precision": "fp32",
            "impl": impl, "ops": _native_ops("cpu") if impl == "auto" else "ref", "threads": CPU_THREADS,
            "memory_kept": MEMORY_KEPT}
    _record(benchmark, case, iter_s, 0.0, 0, G, D, cfg, CPU_BATCH, 4)


# The bundled prior (rlse_fast/data/celeba64.safetensors), as `rlse-fast sr` runs it on a CPU: 8 px
# faces to 64 px (8x), RLSE defaults. Whole runs of PRIOR_STEPS iterations, extrapolated to 100.
PRIOR_STEPS = 5


@pytest.fixture(scope="module")
def prior_setup():
    from rlse_fast.checkpoints import load_gan
    from rlse_fast.engine.eager import prepare_fit
    from rlse_fast.weights import bundled_path

    gan = load_gan(bundled_path("celeba64"))
    G = gan.generator.eval().requires_grad_(False)
    D = gan.discriminator.eval().requires_grad_(False)
    return G, D, prepare_fit(gan, RLSEConfig())


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("engine,impl", [("eager", "ref"), ("eager", "auto"), ("fast", "auto")],
                         ids=["eager-ref", "eager-auto", "fast-auto"])
def test_iteration_cpu_prior(benchmark, prior_setup, engine, impl, batch):
    """eager-ref: the baseline; eager-auto: what `rlse-fast sr` runs on a CPU (the eager loop with
    the C++ kernels); fast-auto: the fast engine (static buffers; no graphs or autocast on CPU)."""
    G, D, fit = prior_setup
    cfg = RLSEConfig(steps=PRIOR_STEPS)
    lr = torch.rand(batch, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    benchmark.group = f"bundled celeba64 prior, 8x, batch {batch} x {PRIOR_STEPS} steps (cpu)"
    iter_s = _cpu_runs(benchmark, G, D, lr, cfg, fit, engine, impl)
    case = {"device": "cpu", "weights": "celeba64", "resolution": 64, "batch": batch, "engine": engine,
            "precision": "fp32", "impl": impl, "ops": _native_ops("cpu") if impl == "auto" else "ref",
            "threads": CPU_THREADS, "memory_kept": MEMORY_KEPT}
    _record(benchmark, case, iter_s, 0.0, 0, G, D, cfg, batch, 8)
