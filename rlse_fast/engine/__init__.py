"""The RLSE engine: one objective (`objective`) and two drivers of it, eager (`eager`, the readable
loop) and fast (`fast`: static buffers, CUDA graphs, bf16 autocast), chosen by `select`.

Below it: the networks (`models`), the kernels (`ops`), the downscaler and the Gaussian fit; above
it: the session that loads weights for it, and the commands.
"""
from .eager import prepare_fit, super_resolve
from .fast import FastLoop, FastOptions, super_resolve_fast
from .objective import LOSS_NAMES, TERMS, Objective
from .result import Result
from .select import ENGINES, pick_engine, run

__all__ = ["ENGINES", "FastLoop", "FastOptions", "LOSS_NAMES", "Objective", "Result", "TERMS", "pick_engine",
           "prepare_fit", "run", "super_resolve", "super_resolve_fast"]
