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


def backward_from_stats(dy, x, noise, strength, bias, scale, stats, alpha=ALPHA):
    """Gradients of the epilogue from the forward's per-plane (mean, rstd) stats (B, C, 2), in
    float32: (dx, dnoise, dstrength, dbias, dscale, dshift), each reduced to its input's shape.
    The native forward kernels share this backward (elementwise passes and plane reductions)."""
    batch, c = x.shape[:2]
    mean, rstd = stats[..., 0, None, None], stats[..., 1, None, None]
    u = x.float() + _per_channel(bias, batch, x.float())
    if noise is not None:
        u = u + noise.float() * _per_channel(strength, batch, x.float())
    xhat = (torch.where(u > 0, u, u * alpha) - mean) * rstd
    g = dy.float()
    dscale = (g * xhat).sum((2, 3))
    dshift = g.sum((2, 3))
    dxhat = g * _per_channel(scale, batch, g)
    dv = rstd * (dxhat - dxhat.mean((2, 3), keepdim=True) - xhat * (dxhat * xhat).mean((2, 3), keepdim=True))
    du = torch.where(u > 0, dv, dv * alpha)

    def fit(t, like):  # sum a per-sample gradient over the batch where the input was shared
        return t.sum(0) if like.ndim == 1 else t

    dnoise = dstrength = None
    if noise is not None:
        dstrength = fit((du * noise.float()).sum((2, 3)), strength).to(strength.dtype)
        dnoise = (du * _per_channel(strength, batch, du)).sum(1, keepdim=True)
        if noise.shape[0] == 1 and batch > 1:
            dnoise = dnoise.sum(0, keepdim=True)
        dnoise = dnoise.to(noise.dtype)
    dbias = fit(du.sum((2, 3)), bias).to(bias.dtype)
    return du.to(x.dtype), dnoise, dstrength, dbias, dscale.to(scale.dtype), dshift.to(scale.dtype)
