"""The fine-tuning Adam step: torch's foreach ops (the unfused update, nine passes over the weights)
vs the fused kernel both engines run (`rlse_fast.engine.fast._adam_`, one pass).

    pytest benchmarks/bench_adam.py [-k cpu|cuda] [--benchmark-json out.json]

RLSE fine-tunes a per-face copy of every synthesis weight, so this step scales with the batch:
CPU cases use the bundled celeba64 prior's shapes (4.2 M weights at batch 4) on one thread, CUDA
cases config-f's (1024 px; 463 M weights at batch 16). Gradients are random: the time does not
depend on the values.
"""
from __future__ import annotations

import os

import pytest
import torch

from rlse_fast.engine.fused_adam import BETAS, EPS, _adam_
from rlse_fast.memory import keep_freed_memory
from rlse_fast.models.stylegan2 import Generator, GeneratorConfig

MEMORY_KEPT = keep_freed_memory()  # as the rlse-fast command does: the foreach temporaries reuse memory

CELEBA64 = GeneratorConfig(z_dim=128, w_dim=128, img_resolution=64, mapping_layers=2, channel_base=2048,
                           channel_max=128)
CONFIG_F = GeneratorConfig()
CPU_THREADS = int(os.environ.get("RLSE_BENCH_CPU_THREADS", "1"))


def adam_state(g_cfg: GeneratorConfig, batch: int, device) -> list[list[torch.Tensor]]:
    """[params, grads, exp_avgs, exp_avg_sqs] shaped as `batch` per-face copies of the synthesis weights."""
    with torch.device("meta"):
        shapes = [p.shape for p in Generator(g_cfg).synthesis.parameters()]
    gen = torch.Generator(device=device).manual_seed(0)
    params = [torch.randn(batch, *s, device=device, generator=gen) for s in shapes]
    grads = [torch.randn_like(p) for p in params]
    return [params, grads, [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]]


def unfused_adam_(params, grads, exp_avgs, exp_avg_sqs, lr: float, step: int) -> None:
    """torch.optim.Adam's arithmetic on foreach ops (what the fast engine ran before the fused kernel)."""
    b1, b2 = BETAS
    torch._foreach_lerp_(exp_avgs, grads, 1 - b1)
    torch._foreach_mul_(exp_avg_sqs, b2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - b2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, (1 - b2**step) ** 0.5)
    torch._foreach_add_(denom, EPS)
    update = torch._foreach_mul(exp_avgs, -lr / (1 - b1**step))
    torch._foreach_div_(update, denom)
    torch._foreach_add_(params, update)


def _bench(benchmark, kind: str, g_cfg: GeneratorConfig, batch: int, device: str) -> None:
    params, grads, m, v = adam_state(g_cfg, batch, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    lr_dtype = torch.float64 if device == "cpu" else torch.float32  # as FastLoop's table
    step, lr = torch.ones((), device=device), torch.full((), 5e-5, device=device, dtype=lr_dtype)
    if kind == "fused":
        def call():
            _adam_(params, grads, m, v, step, lr)
            sync()
    else:
        def call():
            unfused_adam_(params, grads, m, v, 5e-5, 1)
            sync()
    millions = sum(p.numel() for p in params) / 1e6
    benchmark.group = f"fine-tuning Adam step, {g_cfg.img_resolution} px synthesis x {batch} faces ({millions:.1f} M weights, {device})"
    benchmark.extra_info.update({"device": device, "batch": batch, "weights_m": round(millions, 2), "kind": kind,
                                 "memory_kept": MEMORY_KEPT})
    call()
    benchmark.pedantic(call, rounds=15, warmup_rounds=2, iterations=1)


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("kind", ["foreach", "fused"])
def test_adam_cpu(benchmark, kind, batch):
    threads = torch.get_num_threads()
    torch.set_num_threads(CPU_THREADS)
    try:
        _bench(benchmark, kind, CELEBA64, batch, "cpu")
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("kind", ["foreach", "fused"])
def test_adam_cuda(benchmark, kind, batch):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    _bench(benchmark, kind, CONFIG_F, batch, "cuda")
