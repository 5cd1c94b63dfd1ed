"""StyleGAN2's upsampling-layer tail as one op: FIR filter, noise, bias, leaky ReLU, gain, clamp.

    y = clamp(lrelu(upfirdn2d(x, f, padding=padding, gain=gain) + noise * strength + bias, alpha) * act_gain)

which is what a synthesis layer with up=2 does after its stride-2 transposed convolution (4x4 filter,
padding 1, gain 4, alpha 0.2, act_gain sqrt(2)). `_fir_bias_act_ref` is the definition of correctness:
today's reference ops composed in the order the layer runs them (the noise map times the strength in
float32, cast to x's dtype and added; then bias_act). The Triton kernels (`triton_fir.py`) take
channels-last tensors and do the whole tail in one pass forward and one backward.
"""
from __future__ import annotations

import math

import torch

from . import dispatch
from .bias_act import bias_act
from .upfirdn2d import _parse_padding, filter_size, upfirdn2d

SQRT2 = math.sqrt(2)  # StyleGAN2's gain after the leaky ReLU


def output_size(x: torch.Tensor, f: torch.Tensor, padding) -> tuple[int, int]:
    """(Ho, Wo) of the filter's output (up = down = 1)."""
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = filter_size(f)
    return x.shape[2] + py0 + py1 - fh + 1, x.shape[3] + px0 + px1 - fw + 1


def noise_map(noise: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A noise map (Ho, Wo) or (B or 1, 1, Ho, Wo) as (B or 1, Ho, Wo), checked against the output size."""
    if noise.ndim not in (2, 4) or tuple(noise.shape[-2:]) != tuple(size) or (noise.ndim == 4 and noise.shape[1] != 1):
        raise ValueError(f"noise must be ({size[0]}, {size[1]}) or (B or 1, 1, {size[0]}, {size[1]}), "
                         f"got {tuple(noise.shape)}")
    return noise.reshape(-1, *size)


def check_args(x, noise, strength, bias):
    """The shapes every implementation takes: x (B, C, H, W); strength a scalar or one per sample;
    bias (C,) or (B, C)."""
    if x.ndim != 4:
        raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
    batch, channels = x.shape[:2]
    if noise is not None and noise.ndim == 4 and noise.shape[0] not in (1, batch):
        raise ValueError(f"noise must hold 1 or {batch} maps, got shape {tuple(noise.shape)}")
    if noise is not None and strength is not None and strength.numel() not in (1, batch):
        raise ValueError(f"strength must hold 1 or {batch} values, got shape {tuple(strength.shape)}")
    if bias is not None and tuple(bias.shape) not in ((channels,), (batch, channels)):
        raise ValueError(f"bias must be ({channels},) or ({batch}, {channels}), got {tuple(bias.shape)}")


def separate_ops(x, f, padding, gain, noise, strength, bias, alpha=0.2, act_gain=SQRT2, clamp=None,
                 impl="auto"):
    """The op as the layer runs it without the fused kernels: upfirdn2d, the noise add and bias_act,
    each with `impl` (arguments as `fir_bias_act`)."""
    check_args(x, noise, strength, bias)
    return noise_bias_act(upfirdn2d(x, f, padding=padding, gain=gain, impl=impl), noise, strength, bias, alpha,
                          act_gain, clamp, impl)


def noise_bias_act(y, noise, strength, bias, alpha=0.2, act_gain=SQRT2, clamp=None, impl="auto"):
    """A synthesis layer's epilogue on its conv (or FIR) output y, as separate ops: the noise map
    times the strength in float32, cast to y's dtype and added, then bias_act with `impl`."""
    if noise is not None:
        n = noise_map(noise, y.shape[2:]).unsqueeze(1)
        if strength is not None:
            n = n * strength.reshape(-1, 1, 1, 1)
        y = y + n.to(y.dtype)
    if bias is not None and bias.ndim == 2:
        y, bias = y + bias.to(y.dtype)[:, :, None, None], None
    return bias_act(y, None if bias is None else bias.to(y.dtype), act="lrelu", alpha=alpha, gain=act_gain,
                    clamp=clamp, impl=impl)


def _fir_bias_act_ref(x, f, padding=0, gain=1, noise=None, strength=None, bias=None, alpha=0.2,
                      act_gain=SQRT2, clamp=None):
    """Plain-PyTorch reference; arguments as `fir_bias_act`."""
    return separate_ops(x, f, padding, gain, noise, strength, bias, alpha, act_gain, clamp, "ref")


def fir_bias_act(x, f, padding=0, gain=1, noise=None, strength=None, bias=None, alpha=0.2, act_gain=SQRT2,
                 clamp=None, impl="auto"):
    """Filter, add noise and bias, leaky ReLU, gain, clamp.

    x: (B, C, H, W), channels-last for the fast path (the output keeps x's layout there);
    f: StyleGAN2's separable filter (2-D outer product or 1-D taps); padding: int, [x, y] or
    [x0, x1, y0, y1]; gain: the filter's gain (4 after a stride-2 transposed conv);
    noise: None or a unit map (Ho, Wo) / (B or 1, 1, Ho, Wo), times strength (a scalar tensor or (B,));
    bias: None, (C,) or per sample (B, C); alpha: the leaky ReLU's slope; act_gain: the gain after
    it; clamp: None or a bound. impl: 'auto', 'ref', 'triton', or another implementation name for
    the separate ops.
    """
    fn = dispatch.pick("fir_bias_act", impl, x) if impl in ("auto", "ref", "triton") else None
    if fn is None:
        return separate_ops(x, f, padding, gain, noise, strength, bias, alpha, act_gain, clamp, impl)
    return fn(x, f, padding, gain, noise, strength, bias, alpha, act_gain, clamp)
