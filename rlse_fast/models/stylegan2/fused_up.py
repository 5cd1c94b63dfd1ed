"""StyleGAN2's synthesis layers on channels-last activations with their tails fused.

- The up-layer: modulate -> the stride-2 transposed conv (grouped, or per face) -> `fir_bias_act`
  (4x4 FIR, noise, bias, leaky ReLU, gain, clamp in one pass forward and one backward), instead of
  the FIR, the noise add and `bias_act` as separate passes.
- The 3x3 layer, where the per-face conv is chosen (RLSE_PERFACE_CONV=triton): modulate ->
  `perface_conv_bias_act` (the conv with noise, bias, leaky ReLU, gain and clamp applied to its
  accumulator before the one store), instead of the conv, the noise add and `bias_act`.

Off unless a block runs under `using(impl)`: the fast engine's `FastOptions.fused_fir` (with
`channels_last`). The values are the separate ops' up to float rounding.
"""
from __future__ import annotations

import contextlib
import contextvars

import torch
import torch.nn.functional as F

from ...ops import modulate, perface_conv
from ...ops.fir_act import fir_bias_act
from ...ops.perface_conv_act import perface_conv_bias_act

# The fir_bias_act implementation the up-layers use, or None: the separate ops.
_IMPL: contextvars.ContextVar[str | None] = contextvars.ContextVar("rlse_fast_fused_up", default=None)
FIR_PADDING = (1, 1, 1, 1)  # the FIR's after a 3x3 stride-2 transposed conv with padding 1 and 4 taps


@contextlib.contextmanager
def using(impl: str | None):
    """Inside the block, up-layers on channels-last activations run fused with `impl` ('auto',
    'triton', ...); None changes nothing."""
    token = _IMPL.set(impl)
    try:
        yield
    finally:
        _IMPL.reset(token)


def applies(layer, x: torch.Tensor, fused_modconv: bool) -> bool:
    """The layer is one this path covers (config-f's: up 2, 3x3 weights, padding 1, a 4-tap filter),
    x is channels-last, and a block asked for it. float16 keeps the separate path (its
    pre-normalisation of the weights lives in `modulated_conv2d`)."""
    return (_IMPL.get() is not None and layer.up == 2 and fused_modconv and x.ndim == 4
            and x.dtype != torch.float16 and x.is_contiguous(memory_format=torch.channels_last)
            and layer.weight.shape[-1] == 3 and layer.padding == 1 and layer.resample_filter.shape[-1] == 4)


def applies_conv(layer, x: torch.Tensor, fused_modconv: bool) -> bool:
    """A layer without up-sampling, channels-last x, the per-face conv chosen for it, and a block
    that asked (float16 keeps the separate path, as in `applies`)."""
    return (_IMPL.get() is not None and layer.up == 1 and fused_modconv and x.ndim == 4 and x.dtype != torch.float16
            and x.is_contiguous(memory_format=torch.channels_last) and perface_conv.chosen(x))


def _layer_inputs(layer, x, w, noise_mode, noise, params):
    """(styles, strength (scalar or (B,)), unit noise map or None, weight) of a layer's call."""
    styles = layer.styles(w, params)
    strength = params.get("noise_strength")
    strength = layer.noise_strength if strength is None else strength.reshape(-1)
    return styles, strength, layer.unit_noise(x, noise_mode, noise), params.get("weight", layer.weight)


def forward_conv(layer, x, w, noise_mode="const", noise=None, params=None, gain=1.0):
    """`SynthesisLayer.forward` for a layer that `applies_conv`: same arguments and result. The
    noise map and its strength go in raw, so that the kernel forms the strength's gradient."""
    params = params or {}
    styles, strength, noise, weight = _layer_inputs(layer, x, w, noise_mode, noise, params)
    wm = modulate(weight, styles, demodulate=True, out_dtype=x.dtype, taps_last=True)
    clamp = layer.conv_clamp * gain if layer.conv_clamp is not None else None
    return perface_conv_bias_act(x, wm, layer.padding, noise, strength if noise is not None else None,
                                 params.get("bias", layer.bias), act_gain=layer.act_gain * gain, clamp=clamp,
                                 impl=_IMPL.get())


def forward(layer, x, w, noise_mode="const", noise=None, params=None, gain=1.0):
    """`SynthesisLayer.forward` for a layer that `applies`: same arguments and result."""
    params = params or {}
    styles, strength, noise, weight = _layer_inputs(layer, x, w, noise_mode, noise, params)
    batch, in_channels, h, w_ = x.shape
    out_channels, _, kh, kw = weight.shape[-4:]
    # conv2d_resample's up path for groups = faces: the per-face weights as a transposed conv's
    # (I, O) pairs, no flip, no padding (the FIR's padding does the rest).
    per_face = perface_conv.chosen(x)
    # taps_last: the per-face conv takes modulate's (B, O, kh, kw, I) memory as it is (I has unit
    # stride in the transposed view too).
    wm = modulate(weight, styles, demodulate=True, out_dtype=x.dtype, taps_last=per_face)
    wm = wm.reshape(batch, out_channels, in_channels, kh, kw).transpose(1, 2)
    if per_face:  # NHWC in and out, all faces in one launch
        y = perface_conv.perface_conv2d(x, wm, stride=2, transposed=True)
    else:
        y = F.conv_transpose2d(x.reshape(1, batch * in_channels, h, w_),
                               wm.reshape(batch * in_channels, out_channels, kh, kw), stride=2, groups=batch)
        y = y.reshape(batch, out_channels, *y.shape[2:])
    clamp = layer.conv_clamp * gain if layer.conv_clamp is not None else None
    return fir_bias_act(y, layer.resample_filter, FIR_PADDING, 4, noise, strength if noise is not None else None,
                        params.get("bias", layer.bias), act_gain=layer.act_gain * gain, clamp=clamp,
                        impl=_IMPL.get())
