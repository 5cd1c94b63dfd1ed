"""StyleGAN2's weight modulation and demodulation (the first half of the modulated convolution).

`modulate(weight, styles)` = weight * s (per input channel), scaled per output channel to unit norm:
    ws[b, o, i, :, :] = weight[(b,) o, i, :, :] * styles[b, i]
    out[b, o]         = ws[b, o] / sqrt(sum(ws[b, o]^2) + eps)        (demodulate=True)
With per-face fine-tuned weights every sample has its own (O, I, kh, kw) weight, so this chain of
elementwise ops over B x O x I x kh x kw values (and its backward, about ten such passes unfused)
is a real share of an RLSE iteration; the C++ kernel does each direction in one pass per output
channel. `_modulate_ref` is the definition of correctness (the official StyleGAN2 arithmetic).
"""
from __future__ import annotations

import torch

from . import dispatch
from .layout import taps_last as taps_last_view


def _modulate_ref(weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Plain-PyTorch reference, in the official StyleGAN2 order of operations."""
    batch = styles.shape[0]
    w = (weight if weight.ndim == 5 else weight.unsqueeze(0)) * styles.reshape(batch, 1, -1, 1, 1)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + eps).rsqrt().reshape(batch, -1, 1, 1, 1)
    return w


def kernel_inputs(weight: torch.Tensor, styles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the native kernels take: the weight as (1 or B, O, I, kh, kw) and the styles in its
    dtype, both contiguous."""
    w5 = (weight if weight.ndim == 5 else weight.unsqueeze(0)).contiguous()
    return w5, styles.to(w5.dtype).contiguous()


def weight_grad(dw: torch.Tensor, weight_ndim: int, weight_batch: int) -> torch.Tensor:
    """The kernels' per-sample weight gradient (B, O, I, kh, kw) in the weight's own shape: a shared
    weight ((O, I, kh, kw), or a batch of 1) gets the samples' gradients added up."""
    if weight_ndim == 4:
        return dw.sum(0)
    if weight_batch == 1 and dw.shape[0] > 1:
        return dw.sum(0, keepdim=True)
    return dw


def _check(weight: torch.Tensor, styles: torch.Tensor) -> None:
    if weight.ndim not in (4, 5):
        raise ValueError(f"weight must be (O, I, kh, kw) or (B, O, I, kh, kw), got shape {tuple(weight.shape)}")
    if styles.ndim != 2 or styles.shape[1] != weight.shape[-3]:
        raise ValueError(f"styles must be (B, {weight.shape[-3]}), got shape {tuple(styles.shape)}")
    if weight.ndim == 5 and weight.shape[0] not in (1, styles.shape[0]):
        raise ValueError(f"a per-sample weight must have the styles' batch {styles.shape[0]}, got {weight.shape[0]}")


def modulate(weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True, eps: float = 1e-8,
             impl: str = "auto", out_dtype: torch.dtype | None = None, taps_last: bool = False) -> torch.Tensor:
    """Modulated (and demodulated) convolution weights, (B, O, I, kh, kw).

    weight: (O, I, kh, kw), shared by the batch, or (B, O, I, kh, kw), one per sample; styles: (B, I).
    Differentiable w.r.t. both. out_dtype: the result's dtype (default: weight's), e.g. the
    convolution's bf16 under autocast: the same as casting the result, which the Triton kernel
    does as it stores (and its backward reads the bf16 gradient directly), saving a pass over the
    weights each way. taps_last: the same values stored as (B, O, kh, kw, I) (the result is that
    memory's (B, O, I, kh, kw) view), the layout the per-face convolution reads (`perface_conv2d`
    takes it without its copy); the Triton kernel writes it directly, the other implementations by a
    copy. impl: 'auto', 'ref', 'cpp' (CPU) or 'triton' (GPU).
    """
    _check(weight, styles)
    fn = dispatch.pick("modulate", impl, weight)
    if fn is None:
        out = _modulate_ref(weight, styles, demodulate, eps)
    elif getattr(fn, "takes_layout", False):
        return fn(weight, styles, demodulate, eps, out_dtype, taps_last)
    else:
        out = fn(weight, styles, demodulate, eps)
    out = out if out_dtype is None else out.to(out_dtype)
    return taps_last_view(out) if taps_last else out
