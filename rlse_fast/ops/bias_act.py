"""Fused bias + activation + gain + clamp, the StyleGAN2 building block.

`bias_act(x, b, dim, act, alpha, gain, clamp, impl)` adds the bias `b` along `dim`, applies the
activation, multiplies by `gain` and clamps to [-clamp, clamp]. `_bias_act_ref` is the definition
of correctness; every kernel is tested against it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from . import dispatch
from .layout import is_nhwc


@dataclass(frozen=True)
class Activation:
    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float
    code: int  # the id the native kernels use


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, alpha: x, 0.0, 1.0, 1),
    "relu": Activation(lambda x, alpha: F.relu(x), 0.0, math.sqrt(2), 2),
    "lrelu": Activation(lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2), 3),
}


def resolve(act: str, alpha: float | None, gain: float | None, clamp: float | None):
    """Fill the activation's defaults: returns (spec, alpha, gain, clamp) with clamp -1 for none."""
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}")
    spec = ACTIVATIONS[act]
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    clamp = float(-1 if clamp is None else clamp)
    return spec, alpha, gain, clamp


def backward_refs(code: int, alpha: float, clamp: float) -> tuple[bool, bool]:
    """Which forward tensors the native backward passes keep: (use_x, use_y).

    The slope of relu/lrelu comes from the sign of y, as in StyleGAN2's op (y is usually kept anyway
    as the next layer's input), unless alpha < 0 or there is a clamp: then from x + b, which also
    gives the clamp mask without the rounding of a low-precision y. Linear needs neither.
    """
    use_x = clamp >= 0 or (code == ACTIVATIONS["lrelu"].code and alpha < 0)
    return use_x, code != ACTIVATIONS["linear"].code and not use_x


def _bias_act_ref(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None):
    """Plain-PyTorch reference. x: any shape; b: (x.shape[dim],) or None."""
    spec, alpha, gain, clamp = resolve(act, alpha, gain, clamp)
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias must have shape ({x.shape[dim]},), got {tuple(b.shape)}")
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None, impl="auto"):
    """Bias, activation, gain and clamp in one op.

    x: tensor of any shape; b: 1-D bias of length x.shape[dim] or None; act: 'linear', 'relu' or
    'lrelu' (alpha defaults to 0.2); gain defaults to the activation's (sqrt(2) for relu/lrelu);
    clamp: None or a non-negative bound. impl: 'auto', 'ref', or a native implementation name.
    """
    fn = dispatch.pick("bias_act", impl, x)
    if fn is None:
        return _bias_act_ref(x, b, dim, act, alpha, gain, clamp)
    return run_native(fn, x, b, dim, act, alpha, gain, clamp)


def run_native(fn, x, b, dim, act, alpha, gain, clamp):
    """Call a native bias_act `fn`. A channels-last x runs as its NHWC view, which is contiguous
    with the channels innermost: the kernels take it as it is (bias along the last dim), and
    permuting back keeps the output channels-last (no layout copies either way)."""
    if dim in (1, -3) and is_nhwc(x):
        return fn(x.permute(0, 2, 3, 1), b, 3, act, alpha, gain, clamp).permute(0, 3, 1, 2)
    return fn(x, b, dim, act, alpha, gain, clamp)
