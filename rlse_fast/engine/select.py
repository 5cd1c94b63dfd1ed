"""Which driver runs the objective: the command-line choices (--engine, --precision) resolved, and
the one call every command makes (`run`)."""
from __future__ import annotations

from typing import Callable

import torch

from ..config import RLSEConfig
from ..errors import UserError
from .eager import super_resolve as super_resolve_eager
from .fast import super_resolve_fast
from .fast_options import PRECISIONS
from .result import Result

ENGINES = ("auto", "eager", "fast")


def pick_engine(engine: str, precision: str, device: torch.device | str) -> tuple[bool, str]:
    """Resolve the command-line choices: (fast, precision). engine 'auto' is the fast engine on CUDA
    and the eager one elsewhere; precision 'auto' is bf16 with the fast engine on CUDA, else fp32.
    A choice that cannot run (bf16 without the fast engine) is a UserError."""
    if engine not in ENGINES:
        raise UserError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if precision not in PRECISIONS + ("auto",):
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS + ('auto',))}, got {precision!r}")
    cuda = torch.device(device).type == "cuda"
    fast = engine == "fast" or (engine == "auto" and cuda)
    if precision == "auto":
        precision = "bf16" if fast and cuda else "fp32"
    if precision == "bf16" and not fast:
        raise UserError("--precision bf16 needs the fast engine (--engine fast)")
    return fast, precision


def run(G, D, lr_images: torch.Tensor, cfg: RLSEConfig, fit: dict[str, torch.Tensor], seeds: int | list[int] = 0,
        impl: str = "auto", fast: bool = False, precision: str = "fp32", graphs: bool = True,
        on_step: Callable[[int, torch.Tensor, dict], None] | None = None) -> Result:
    """The engine every command calls: the eager `eager.super_resolve` (fast=False; precision must
    be fp32, graphs is moot) or `fast.super_resolve_fast` (fast=True)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not fast:
        if precision != "fp32":
            raise ValueError("--precision bf16 needs the fast engine (--engine fast)")
        return super_resolve_eager(G, D, lr_images, cfg, fit, seeds=seeds, impl=impl, on_step=on_step)
    return super_resolve_fast(G, D, lr_images, cfg, fit, seeds=seeds, impl=impl, precision=precision,
                              graphs=graphs, on_step=on_step)
