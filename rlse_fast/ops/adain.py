"""StyleGAN (v1)'s layer epilogue as one op: noise, bias, leaky ReLU, instance norm, AdaIN.

y = scale * instnorm(lrelu(x + noise * strength + bias)) + shift, per sample and channel, with
instnorm(v) = (v - mean_hw v) * rsqrt(mean_hw (v - mean_hw v)^2 + 1e-8) (TF StyleGAN's epsilon; the
leaky ReLU has slope 0.2 and no gain). Written out it is seven elementwise passes and two
reductions over the activation; a native kernel does it in one read and one write per element.
"""
from __future__ import annotations

import torch

EPS = 1e-8
ALPHA = 0.2


def _per_channel(t: torch.Tensor, batch: int, x: torch.Tensor) -> torch.Tensor:
    """(C,) or (B, C) -> (B or 1, C, 1, 1) in x's dtype."""
    t = t.to(x.dtype)
    return t.reshape(1 if t.ndim == 1 else batch, -1, 1, 1)


def _adain_epilogue_ref(x, noise, strength, bias, scale, shift, eps=EPS):
    """Plain-PyTorch reference. x (B, C, H, W); noise (B or 1, 1, H, W) or None; strength and bias
    (C,) or (B, C); scale and shift (B, C)."""
    from .bias_act import bias_act

    batch = x.shape[0]
    if noise is not None:
        x = x + noise.to(x.dtype) * _per_channel(strength, batch, x)
    if bias.ndim == 1:
        x = bias_act(x, bias.to(x.dtype), act="lrelu", alpha=ALPHA, gain=1.0, impl="ref")
    else:
        x = bias_act(x + _per_channel(bias, batch, x), None, act="lrelu", alpha=ALPHA, gain=1.0, impl="ref")
    x = x - x.mean(dim=(2, 3), keepdim=True)
    x = x * (x.square().mean(dim=(2, 3), keepdim=True) + eps).rsqrt()
    return x * _per_channel(scale, batch, x) + _per_channel(shift, batch, x)


def adain_epilogue(x, noise, strength, bias, scale, shift, impl: str = "auto"):
    """See the module docstring; impl: 'auto', 'ref' or a native implementation name."""
    from . import dispatch

    fn = dispatch.pick("adain_epilogue", impl, x)
    if fn is None:
        return _adain_epilogue_ref(x, noise, strength, bias, scale, shift)
    return fn(x, noise, strength, bias, scale, shift)
