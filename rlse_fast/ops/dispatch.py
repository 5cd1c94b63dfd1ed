"""Picks the implementation of an op: 'ref' (plain PyTorch) or a native one.

Native implementations register themselves here (see the kernel modules); `auto` takes the
fastest one available for the tensor's device, or the reference when there is none.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import threading
from typing import Callable

import torch

# op name -> impl name -> (function, predicate(tensor) -> usable)
_REGISTRY: dict[str, dict[str, tuple[Callable, Callable[[torch.Tensor], bool]]]] = {}
# (op name, impl name) -> predicate(tensor) -> taken by 'auto', when it differs from usable
_AUTO_USABLE: dict[tuple[str, str], Callable[[torch.Tensor], bool]] = {}
# op name -> impl names in order of preference for 'auto'
_AUTO_ORDER: dict[str, list[str]] = {}

IMPLS = ("auto", "ref", "cpp", "cuda", "triton")


def register(op: str, impl: str, fn: Callable, usable: Callable[[torch.Tensor], bool], rank: int,
             auto_usable: Callable[[torch.Tensor], bool] | None = None) -> None:
    """Make `impl` of `op` available; `auto` tries the lowest rank first.

    `usable(x)`: the implementation can run on x (asked for by name). `auto_usable(x)` (default:
    `usable`): 'auto' should take it for x, i.e. it is faster than the reference there.
    Ranks in use: 'cuda' 0, 'triton' 10 (GPU tensors), 'cpp' 20 (CPU tensors).
    """
    _REGISTRY.setdefault(op, {})[impl] = (fn, usable)
    _AUTO_USABLE[(op, impl)] = auto_usable or usable
    _RANKS[(op, impl)] = rank
    _AUTO_ORDER[op] = sorted(_REGISTRY[op], key=lambda name: _RANKS[(op, name)])


_RANKS: dict[tuple[str, str], int] = {}
# impl name -> one-line reason it is missing (e.g. the extension was not built)
_UNAVAILABLE: dict[str, str] = {}


def mark_unavailable(impl: str, reason: str) -> None:
    """Record why `impl` is missing; asking for it by name raises `reason` (one line, with the fix)."""
    _UNAVAILABLE[impl] = reason


# What impl='auto' means in the current context (see `using`).
_DEFAULT: contextvars.ContextVar[str] = contextvars.ContextVar("rlse_fast_default_impl", default="auto")


@contextlib.contextmanager
def using(impl: str):
    """Inside the block, every op called with impl='auto' (the networks' layers call them so) runs
    `impl` (an op `impl` has no kernel for takes 'auto'); explicit choices are kept. using('auto') changes nothing. E.g. using('ref') for the
    eager baseline, or for double backward (R1), which the native backward passes do not support.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        yield
        return
    token = _DEFAULT.set(impl)
    try:
        yield
    finally:
        _DEFAULT.reset(token)


def pick(op: str, impl: str, x: torch.Tensor) -> Callable | None:
    """Return the function for `impl`, or None for the reference."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    from_block = impl == "auto" and _DEFAULT.get() != "auto"
    if impl == "auto":
        impl = _DEFAULT.get()
    if impl == "ref":
        return None
    _load_natives()
    table = _REGISTRY.get(op, {})
    if from_block and impl not in table and impl not in _UNAVAILABLE:
        # `using(impl)` runs impl wherever it has a kernel; an op it has none for (upfirdn2d under
        # 'triton', modulate under 'cuda') takes the best implementation there is.
        impl = "auto"
    if impl == "auto":
        for name in _AUTO_ORDER.get(op, []):
            if _AUTO_USABLE[(op, name)](x):
                return table[name][0]
        return None
    if impl not in table:
        why = _UNAVAILABLE.get(impl, f"implementation {impl!r} is not available in this build")
        raise RuntimeError(f"{op}: {why} (impl 'auto' takes what this installation has; `rlse-fast kernels` lists it)")
    fn, usable = table[impl]
    if not usable(x):
        raise RuntimeError(f"{op}: implementation {impl!r} cannot run on a {x.device.type} {x.dtype} tensor; "
                           "impl 'auto' picks one that can")
    return fn


_loaded = False
_lock = threading.Lock()

# (impl, module): each module registers its ops when imported. cuda_ops and triton_ops are optional.
_NATIVE_MODULES = (
    ("cpp", "rlse_fast.ops.cpp_ops"),
    ("cuda", "rlse_fast.ops.cuda_ops"),
    ("triton", "rlse_fast.ops.triton_ops"),
    ("triton", "rlse_fast.ops.triton_fir"),
    ("triton", "rlse_fast.ops.triton_perface_conv"),
    ("triton", "rlse_fast.ops.triton_perface_conv_act"),
)


def _load_natives() -> None:
    """Import the native wrappers once, on first use (never at package import)."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        for impl, module in _NATIVE_MODULES:
            try:
                importlib.import_module(module)
            except ImportError as exc:  # module or its compiled extension / triton is absent
                _UNAVAILABLE.setdefault(impl, f"implementation {impl!r} is not available: {exc}")
            except Exception as exc:  # noqa: BLE001 - a broken optional backend must not break the others
                _UNAVAILABLE.setdefault(impl, f"implementation {impl!r} failed to load ({type(exc).__name__}: {exc})")
        _loaded = True


def auto_choice(op: str, x: torch.Tensor) -> str:
    """The name of the implementation impl='auto' runs for `op` on tensors like x ('ref' if none)."""
    fn = pick(op, "auto", x)
    return next((name for name, (f, _) in _REGISTRY.get(op, {}).items() if f is fn), "ref")


def report(devices: list[str] | None = None) -> dict:
    """What this installation has: each implementation's state ('available' or why not) and, per
    device and dtype, the implementation 'auto' takes for each op. devices: default 'cpu', plus
    'cuda' when a GPU is visible."""
    _load_natives()
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    impls = {}
    for impl in IMPLS[2:]:
        if any(impl in table for table in _REGISTRY.values()):
            impls[impl] = "available"
        else:
            impls[impl] = _UNAVAILABLE.get(impl, "not available in this build")
    auto: dict[str, dict[str, dict[str, str]]] = {}
    for device in devices:
        auto[device] = {}
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            x = torch.empty(1, dtype=dtype, device=device)
            auto[device][str(dtype).removeprefix("torch.")] = {op: auto_choice(op, x) for op in sorted(_REGISTRY)}
    return {"impls": impls, "auto": auto}
