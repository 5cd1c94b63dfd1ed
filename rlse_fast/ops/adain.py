"""StyleGAN (v1)'s layer epilogue as one op: noise, bias, leaky ReLU, instance norm, AdaIN.

y = scale * instnorm(lrelu(x + noise * strength + bias)) + shift, per sample and channel, with
instnorm(v) = (v - mean_hw v) * rsqrt(mean_hw (v - mean_hw v)^2 + 1e-8) (TF StyleGAN's epsilon; the
leaky ReLU has slope 0.2 and no gain). Written out it is seven elementwise passes and two
reductions over the activation (and about 30 ops backward); the native kernels (C++ on the CPU,
Triton on the GPU; `NativeAdaIN`) read x twice and write y once, and the backward needs only two
plane sums (see `NativeAdaIN`).
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from . import dispatch
from .bias_act import bias_act

EPS = 1e-8
ALPHA = 0.2


def _per_channel(t: torch.Tensor, batch: int, x: torch.Tensor) -> torch.Tensor:
    """(C,) or (B, C) -> (B or 1, C, 1, 1) in x's dtype."""
    t = t.to(x.dtype)
    return t.reshape(1 if t.ndim == 1 else batch, -1, 1, 1)


def _adain_epilogue_ref(x, noise, strength, bias, scale, shift, eps=EPS):
    """Plain-PyTorch reference. x (B, C, H, W); noise (B or 1, 1, H, W) or None; strength and bias
    (C,) or (B, C); scale and shift (B, C)."""
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
    fn = dispatch.pick("adain_epilogue", impl, x)
    if fn is None:
        return _adain_epilogue_ref(x, noise, strength, bias, scale, shift)
    return fn(x, noise, strength, bias, scale, shift)


def plane_params(x, noise, strength, bias, scale, shift):
    """The kernels' per-plane inputs: strength (None without noise), bias, scale and shift as
    contiguous (B * C,) vectors in the accumulation dtype (float64 for float64 x, else float32)."""
    batch, c = x.shape[:2]
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32

    def flat(t):
        return t.to(acc).expand(batch, c).reshape(-1).contiguous()

    return (flat(strength) if noise is not None else None), flat(bias), flat(scale), flat(shift)


class NativeAdaIN(torch.autograd.Function):
    """The epilogue over a native backend: `kernels.forward(x, noise, strength, bias, scale, shift)`
    -> (y, stats (B, C, 2) = per-plane (mean, rstd)) and `kernels.backward(dy, x, noise, strength,
    bias, scale, stats)` -> (du (x's dtype), sums (4, B, C) = per-plane (sum dy, sum dy * x_hat,
    sum du, sum du * noise)), with du the gradient of u = x + noise * strength + bias. Each sum is
    a contiguous (B, C) row, so a per-sample bias or strength (a fused Adam's leaf) gets its gradient
    without a copy. Per-plane
    inputs come from `plane_params`; x and noise contiguous, noise (B or 1, 1, H, W) or None.
    Everything else is a reduction of those sums; the noise map's gradient (a sum over channels)
    is formed only when the noise requires it."""

    @staticmethod
    def forward(ctx, kernels, x, noise, strength, bias, scale, shift):
        x = x.contiguous()
        n = noise.contiguous() if noise is not None else None
        planes = plane_params(x, n, strength, bias, scale, shift)
        y, stats = kernels.forward(x, n, *planes)
        ctx.kernels = kernels
        ctx.meta = [(t.ndim, t.dtype) if t is not None else None for t in (strength, bias, scale, shift)]
        ctx.save_for_backward(x, n, *planes[:3], stats)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, n, s, b, sc, stats = ctx.saved_tensors
        strength, bias, scale, shift = ctx.meta
        need = ctx.needs_input_grad
        du, sums = ctx.kernels.backward(dy.contiguous(), x, n, s, b, sc, stats)

        def fit(t, like):  # sum a per-sample gradient over the batch where the input was shared
            ndim, dtype = like
            return (t.sum(0) if ndim == 1 else t).to(dtype)

        dnoise = dstrength = None
        if n is not None and need[2]:
            batch, c = x.shape[:2]
            dnoise = torch.einsum("bchw,bc->bhw", du.to(s.dtype), s.reshape(batch, c)).unsqueeze(1)
            if n.shape[0] == 1 and batch > 1:
                dnoise = dnoise.sum(0, keepdim=True)
            dnoise = dnoise.to(n.dtype)
        if n is not None and need[3]:
            dstrength = fit(sums[3], strength)
        dbias = fit(sums[2], bias) if need[4] else None
        dscale = sums[1].to(scale[1]) if need[5] else None
        dshift = sums[0].to(shift[1]) if need[6] else None
        return None, du if need[1] else None, dnoise, dstrength, dbias, dscale, dshift
