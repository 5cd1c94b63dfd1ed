"""StyleGAN2's non-up synthesis layer after modulate, as one op: the per-face convolution (stride 1)
with the layer's epilogue.

    y = clamp(lrelu(perface_conv2d(x, w, padding) + noise * strength + bias, alpha) * act_gain)

`_perface_conv_bias_act_ref` is the definition of correctness: the grouped-conv reference of
`perface_conv2d`, then the noise add and `bias_act` as the layer runs them (`fir_act.noise_bias_act`).
The Triton implementation (`triton_perface_conv_act.py`) applies the epilogue to the conv's fp32
accumulator before its one store; its backward recomputes the activation's gradient from the saved
output and runs the per-face conv's backward kernels on it.
"""
from __future__ import annotations

import torch

from . import dispatch
from .fir_act import SQRT2, check_args, noise_bias_act
from .perface_conv import check, pads, perface_conv2d


def separate_ops(x, w, padding, noise, strength, bias, alpha=0.2, act_gain=SQRT2, clamp=None, impl="auto"):
    """The layer without the fused kernel: `perface_conv2d`, the noise add and bias_act, each with
    `impl` (arguments as `perface_conv_bias_act`)."""
    y = perface_conv2d(x, w, 1, padding, impl=impl if impl in ("auto", "ref", "triton") else "auto")
    return noise_bias_act(y, noise, strength, bias, alpha, act_gain, clamp, impl)


def _perface_conv_bias_act_ref(x, w, padding=1, noise=None, strength=None, bias=None, alpha=0.2, act_gain=SQRT2,
                               clamp=None):
    """Plain-PyTorch reference; arguments as `perface_conv_bias_act`."""
    return separate_ops(x, w, padding, noise, strength, bias, alpha, act_gain, clamp, "ref")


def check_epilogue(x: torch.Tensor, w: torch.Tensor, padding, noise, strength, bias) -> None:
    """The shapes every implementation takes (the conv's, then the epilogue's against the output)."""
    check(x, w, 1, padding, False)
    ph, pw = pads(padding)
    out = torch.empty(x.shape[0], w.shape[-4], x.shape[2] + 2 * ph - w.shape[-2] + 1,
                      x.shape[3] + 2 * pw - w.shape[-1] + 1, device="meta")
    check_args(out, noise, strength, bias)


def perface_conv_bias_act(x, w, padding=1, noise=None, strength=None, bias=None, alpha=0.2, act_gain=SQRT2,
                          clamp=None, impl="auto"):
    """Per-face conv, noise, bias, leaky ReLU, gain, clamp.

    x: (B, C_in, H, W), channels-last for the fast path (the output keeps x's layout); w: (B, C_out,
    C_in, kh, kw) per face (or shared), e.g. `modulate(..., taps_last=True)`'s; padding: an int or
    (top/bottom, left/right); noise: None or a unit map (Ho, Wo) / (B or 1, 1, Ho, Wo), times
    strength (a scalar tensor or (B,)); bias: None, (C_out,) or per face (B, C_out); alpha: the leaky
    ReLU's slope; act_gain: the gain after it; clamp: None or a bound. Differentiable w.r.t. x, w,
    noise, strength and bias. impl: 'auto' (the Triton kernel where `perface_conv2d` would take it),
    'ref', 'triton', or another implementation name for the separate ops.
    """
    check_epilogue(x, w, padding, noise, strength, bias)
    fn = dispatch.pick("perface_conv_bias_act", impl, x) if impl in ("auto", "ref", "triton") else None
    if fn is None:
        return separate_ops(x, w, padding, noise, strength, bias, alpha, act_gain, clamp, impl)
    return fn(x, w, pads(padding), noise, strength, bias, float(alpha), float(act_gain), clamp)
