"""Triton per-face convolution with StyleGAN2's layer epilogue (kernels:
triton_kernels/perface_conv_act.py), registered as impl 'triton' of `perface_conv_bias_act`.

Usable and taken by 'auto' exactly where the per-face convolution is (`triton_perface_conv`:
RLSE_PERFACE_CONV=triton). Forward: one launch, the epilogue on the fp32 accumulator. Backward: one
pass for the activation's gradient (dpre, from the saved output or, with a clamp, the int8 code)
that also sums it per pixel over the channels and per channel over blocks of pixels, the per-face
conv's input- and weight-gradient kernels on dpre, and the bias, strength and noise-map gradients
from those partial sums in a fixed order (deterministic, no atomics).
"""
from __future__ import annotations

import torch
import triton
from torch.autograd.function import once_differentiable

from . import dispatch
from .fir_act import noise_map
from .triton_kernels.perface_conv_act import act_grad_kernel, conv_act_forward_kernel
from .triton_ops import RANK
from .triton_perface_conv import (
    _empty_like_layout,
    _launch_flags,
    _roles,
    auto_usable,
    conv_transposed,
    conv_wgrad,
    gemm_blocks,
    operands,
    packed,
    usable,
)

ACT_TILE = 1024  # elements of an activation-gradient program's [pixels, channels] tile: 8 a thread
ACT_MAX_C = 64  # channels a program loads at once; it walks the rest in steps of that
ACT_WARPS = 4


def _vector(t, x, n=1):
    """t as a contiguous fp32 vector (or ones(n) for None) and its per-face stride."""
    if t is None:
        return torch.ones(n, dtype=torch.float32, device=x.device), 0
    v = t.reshape(-1).float().contiguous()
    return v, 0 if v.numel() == 1 else 1


def act_tiles(channels: int) -> tuple[int, int]:
    """(BLOCK_P pixels, BLOCK_C channels) of an activation-gradient program: ACT_TILE elements."""
    bc = min(triton.next_power_of_2(channels), ACT_MAX_C)
    return max(1, ACT_TILE // bc), bc


def act_grad(dy, ref, alpha, act_gain, clamp, need_pixels, need_channels):
    """(dpre in dy's dtype and layout, its (B, OH * OW) fp32 sums over the channels or None, its
    (B, pixel blocks, C) fp32 partial sums over the pixels or None)."""
    batch, c, oh, ow = dy.shape
    sb, sc, sh, sw = dy.stride()
    if sh != ow * sw:
        raise ValueError("act_grad: the pixels of dy must be one run in memory (NCHW or NHWC)")
    bp, bc = act_tiles(c)
    grid = (triton.cdiv(oh * ow, bp), batch)
    dpre = torch.empty_like(dy)
    pix = torch.empty(batch, oh * ow, dtype=torch.float32, device=dy.device) if need_pixels else None
    part = torch.empty(batch, grid[0], c, dtype=torch.float32, device=dy.device) if need_channels else None
    act_grad_kernel[grid](dy, ref, dpre, dpre if pix is None else pix, dpre if part is None else part, oh * ow, c,
                          sb, sc, sw, alpha, act_gain, CLAMP=clamp >= 0, OUT_BF16=dy.dtype == torch.bfloat16,
                          NEED_PIX=need_pixels, NEED_PART=need_channels, BLOCK_P=bp, BLOCK_C=bc,
                          num_warps=ACT_WARPS)
    return dpre, pix, part


class _PerFaceConvAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, noise, strength, bias, padding, alpha, act_gain, clamp):
        batch, ci, h, wd = x.shape
        w5 = packed(w, batch)
        co, kh, kw = w5.shape[1], w5.shape[-2], w5.shape[-1]
        ph, pw = padding
        oh, ow = h + 2 * ph - kh + 1, wd + 2 * pw - kw + 1
        y = _empty_like_layout(x, (batch, co, oh, ow))
        code = torch.empty_like(y, dtype=torch.int8) if clamp >= 0 else None
        n = noise_map(noise, (oh, ow)).float().contiguous() if noise is not None else None
        s, s_step = _vector(strength, x)
        b = bias.float().reshape(-1, co).contiguous() if bias is not None else None
        blocks = gemm_blocks(oh * ow, co, ci, x.dtype)
        grid = (triton.cdiv(oh * ow, blocks[0]), triton.cdiv(co, blocks[1]), batch)
        conv_act_forward_kernel[grid](
            x, w5, y if n is None else n, s, y if b is None else b, y, y if code is None else code,
            h, wd, oh, ow, ci, co, ph, pw, *x.stride(), *_roles(w5, 2), *y.stride(),
            0 if n is None or n.shape[0] == 1 else oh * ow, s_step, 0 if b is None or b.shape[0] == 1 else co,
            alpha, act_gain, max(clamp, 0.0), KH=kh, KW=kw, HAS_NOISE=n is not None, HAS_BIAS=b is not None,
            CLAMP=clamp >= 0, **_launch_flags(blocks, x, y.dtype == torch.bfloat16))
        ctx.save_for_backward(x, w5, y if code is None else code, n, s)
        ctx.args = (padding, alpha, act_gain, clamp, w.ndim == 4)
        ctx.meta = [None if t is None else (t.shape, t.dtype) for t in (noise, strength, bias)]
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, w5, ref, n, s = ctx.saved_tensors
        padding, alpha, act_gain, clamp, shared = ctx.args
        noise_meta, strength_meta, bias_meta = ctx.meta
        need = ctx.needs_input_grad
        if dy.stride() != ref.stride():  # one pass over memory that dy and ref share
            dy = torch.empty_like(ref, dtype=dy.dtype).copy_(dy)
        dpre, per_pixel, part = act_grad(dy, ref, alpha, act_gain, clamp, need_pixels=n is not None and
                                         (need[2] or need[3]), need_channels=need[4])
        dx = dw = dnoise = dstrength = dbias = None
        if need[0]:
            dx = conv_transposed(dpre, w5, 1, padding, reduce_dim=1, out_hw=tuple(x.shape[2:]), like=x)
        if need[1]:
            dw = conv_wgrad(dpre, x, 1, padding, w5, shared)
        if per_pixel is not None:  # (B, OH * OW): the noise is one value a pixel
            if need[2]:
                dnoise = per_pixel * s.reshape(-1, 1)
                if noise_meta[0].numel() == n.shape[1] * n.shape[2]:
                    dnoise = dnoise.sum(0)  # one map shared by the faces
                dnoise = dnoise.reshape(noise_meta[0]).to(noise_meta[1])
            if need[3]:
                dstrength = (per_pixel * n.reshape(n.shape[0], -1)).sum(1)
                if s.numel() == 1:
                    dstrength = dstrength.sum()
                dstrength = dstrength.reshape(strength_meta[0]).to(strength_meta[1])
        if need[4]:
            dbias = part.sum(1)  # the pixel blocks' partials in a fixed order
            dbias = (dbias.sum(0) if len(bias_meta[0]) == 1 else dbias).to(bias_meta[1])
        return dx, dw, dnoise, dstrength, dbias, None, None, None, None


def perface_conv_bias_act(x, w, padding, noise, strength, bias, alpha, act_gain, clamp):
    """Triton perface_conv_bias_act; arguments as rlse_fast.ops.perface_conv_act.perface_conv_bias_act
    (checked there). Under autocast the conv runs in the autocast dtype, as perface_conv2d's does."""
    x, w = operands(x, w)
    for t, name in ((noise, "noise"), (strength, "strength"), (bias, "bias")):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} must be on {x.device} like x, got {t.device}")
    if noise is None:
        strength = None
    clamp = float(-1 if clamp is None else clamp)
    return _PerFaceConvAct.apply(x, w, noise, strength, bias, padding, alpha, act_gain, clamp)


# The same usability and the same 'auto' switch as the per-face conv this op fuses.
dispatch.register("perface_conv_bias_act", "triton", perface_conv_bias_act, usable, RANK, auto_usable=auto_usable)
