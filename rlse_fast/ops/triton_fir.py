"""Triton implementation of `fir_bias_act` on NHWC tensors (kernels: triton_kernels/fir_nhwc.py),
registered as impl 'triton'.

The kernels take a separable filter of at most 4 taps a side with leading paddings in [0, 3], which
covers StyleGAN2's up-layer (4 taps, padding 1) and any filter2d with such a filter; anything else
(a 2-D filter that is no outer product, longer filters, a filter that requires grad) runs the
separate ops, as impl='auto' would. 'auto' takes this kernel for channels-last CUDA tensors only:
an NCHW tensor is served better by the tiled NCHW FIR of the CUDA extension plus bias_act.
Importing this module raises ImportError when triton is not installed.
"""
from __future__ import annotations

import torch
import triton
from torch.autograd.function import once_differentiable
from torch.utils.weak import WeakIdKeyDictionary

from . import dispatch
from .fir_act import check_args, noise_map, output_size, separate_ops
from .layout import is_nhwc
from .triton_kernels.fir_nhwc import fir_act_backward_kernel, fir_act_forward_kernel
from .triton_ops import DTYPES, RANK, usable
from .upfirdn2d import _parse_padding, separable_form

TAPS = 4  # taps a side the kernels hold
TILE = 1024  # elements of a program's [TW, BC] row tile: 8 a thread at 4 warps
MAX_BC = 128  # channels a program takes; wider layers split over programs
# Warps of a forward / backward program. Compiled for sm_90 at the layers' shapes (tests/triton_sm90.py),
# the backward's eight shifted loads a row (dy and y) need about 250 registers a thread at 4 warps,
# 160 at 8 (80 with the divisibility a launch specialises): 8 keeps more warps resident per SM.
WARPS = 4
BACKWARD_WARPS = 8


def tiles(channels: int, out_h: int, out_w: int) -> tuple[int, int, int]:
    """(RH rows per strip, TW pixels, BC channels) of a program. All of a pixel's channels up to
    MAX_BC; strips of 32 rows where the image is tall (the 3-row halo costs 9% extra reads), shorter
    on small images so that a batch-1 layer still fills the GPU."""
    bc = min(triton.next_power_of_2(channels), MAX_BC)
    tw = max(1, min(triton.next_power_of_2(out_w), TILE // bc))
    rh = 32 if out_h >= 512 else (16 if out_h >= 64 else 8)
    return rh, tw, bc


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# filter tensor -> (its version, gain, dtype, device, taps (8,) or None when the kernels cannot take it)
_TAPS = WeakIdKeyDictionary()


def kernel_taps(f: torch.Tensor, gain: float, dtype: torch.dtype, device) -> torch.Tensor | None:
    """The correlation taps [hx0..hx3, hy0..hy3] of filter f with the gain on the x taps, zeros past
    the filter's length; None for a filter the kernels do not take. Cached per filter tensor (and
    gain and dtype) until it changes in place, so a CUDA graph replays no host work."""
    hit = _TAPS.get(f)
    key = (f._version, float(gain), dtype, str(device))
    if hit is not None and hit[0] == key:
        return hit[1]
    taps = None
    g = separable_form(f) if f.ndim == 2 else f
    if g.ndim == 1 and 1 <= g.shape[0] <= TAPS and not f.requires_grad:
        h = g.detach().to(device=device, dtype=dtype).flip(0)  # upfirdn2d convolves; the kernels correlate
        h = torch.nn.functional.pad(h, [0, TAPS - h.shape[0]])
        taps = torch.cat([h * gain, h]).contiguous()
        if f.is_cuda and torch.cuda.is_current_stream_capturing():
            return taps  # not cached: made inside the graph, it lives in the graph's pool
    _TAPS[f] = (key, taps)
    return taps


class _FirBiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, noise, strength, bias, taps, pads, size, alpha, act_gain, clamp):
        batch, c, h, w = x.shape
        ho, wo = size
        px0, py0 = pads
        xn = x.permute(0, 2, 3, 1).contiguous()
        y = torch.empty([batch, ho, wo, c], dtype=x.dtype, device=x.device)
        code = torch.empty([batch, ho, wo, c], dtype=torch.int8, device=x.device) if clamp >= 0 else None
        n = noise_map(noise, size).contiguous() if noise is not None else None
        s = _strength(strength, x) if noise is not None else None
        rh, tw, bc = tiles(c, ho, wo)
        n_rb, n_xb, n_cb = triton.cdiv(ho, rh), triton.cdiv(wo, tw), triton.cdiv(c, bc)
        grid = (batch * n_rb * n_xb * n_cb,)
        if grid[0]:
            fir_act_forward_kernel[grid](
                xn, taps, y if n is None else n, y if s is None else s, y if bias is None else bias.contiguous(), y,
                y if code is None else code, c, h, w, ho, wo, n_rb, n_xb, n_cb,
                0 if n is None or n.shape[0] == 1 else ho * wo, 0 if s is None or s.numel() == 1 else 1,
                0 if bias is None or bias.ndim == 1 else c, alpha, act_gain, clamp,
                PX0=px0, PY0=py0, HAS_NOISE=n is not None, HAS_BIAS=bias is not None, CLAMP=clamp >= 0,
                F64=x.dtype == torch.float64, OUT_BF16=x.dtype == torch.bfloat16, RH=rh, TW=tw, BC=bc,
                num_warps=WARPS)
        out = y.permute(0, 3, 1, 2)
        ctx.save_for_backward(out if code is None else code, n, s, taps)
        ctx.args = (pads, size, (h, w), alpha, act_gain, clamp)
        ctx.meta = [None if t is None else (t.shape, t.dtype) for t in (noise, strength, bias)]
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        ref, n, s, taps = ctx.saved_tensors
        (px0, py0), (ho, wo), (h, w), alpha, act_gain, clamp = ctx.args
        noise_meta, strength_meta, bias_meta = ctx.meta
        need = ctx.needs_input_grad
        batch, c = dy.shape[:2]
        if clamp < 0:
            ref = ref.permute(0, 2, 3, 1)  # the saved y, NHWC
        dyn = dy.permute(0, 2, 3, 1).contiguous()
        acc = _acc(dy.dtype)
        dx = torch.empty([batch, h, w, c], dtype=dy.dtype, device=dy.device)
        rh, tw, bc = tiles(c, ho, wo)
        n_rb, n_xb, n_cb = triton.cdiv(max(h, ho), rh), triton.cdiv(max(w, wo), tw), triton.cdiv(c, bc)
        grid = (batch * n_rb * n_xb * n_cb,)
        pb = torch.empty([batch, n_rb * n_xb, c], dtype=acc, device=dy.device)
        ps = torch.empty([batch, n_rb * n_xb * n_cb], dtype=acc, device=dy.device)
        need_dn = n is not None and need[1]
        dn = torch.empty([batch, n_cb, ho, wo], dtype=acc, device=dy.device) if need_dn else pb
        if grid[0]:
            fir_act_backward_kernel[grid](
                dyn, ref, taps, dyn if n is None else n, dyn if s is None else s, dx, pb, ps, dn,
                c, h, w, ho, wo, n_rb, n_xb, n_cb, 0 if n is None or n.shape[0] == 1 else ho * wo,
                0 if s is None or s.numel() == 1 else 1, alpha, act_gain,
                PX0=px0, PY0=py0, HAS_NOISE=n is not None, NEED_DN=need_dn, CLAMP=clamp >= 0,
                F64=acc == torch.float64, OUT_BF16=dy.dtype == torch.bfloat16, RH=rh, TW=tw, BC=bc,
                num_warps=BACKWARD_WARPS)
        dnoise = dstrength = dbias = None
        if need_dn:
            dnoise = dn.sum(1)
            if noise_meta[0].numel() == ho * wo or (len(noise_meta[0]) == 4 and noise_meta[0][0] == 1):
                dnoise = dnoise.sum(0)  # one map shared by the batch
            dnoise = dnoise.reshape(noise_meta[0]).to(noise_meta[1])
        if n is not None and strength_meta is not None and need[2]:
            dstrength = ps.sum(1)
            if s.numel() == 1:
                dstrength = dstrength.sum()
            dstrength = dstrength.reshape(strength_meta[0]).to(strength_meta[1])
        if bias_meta is not None and need[3]:
            dbias = pb.sum(1)
            if len(bias_meta[0]) == 1:
                dbias = dbias.sum(0)
            dbias = dbias.to(bias_meta[1])
        return (dx.permute(0, 3, 1, 2) if need[0] else None, dnoise, dstrength, dbias,
                None, None, None, None, None, None)


def _strength(strength, x):
    """The strength as a contiguous (1,) or (B,) vector in the accumulation dtype (1 without one)."""
    if strength is None:
        return torch.ones(1, dtype=_acc(x.dtype), device=x.device)
    return strength.reshape(-1).to(_acc(x.dtype)).contiguous()


def fir_bias_act(x, f, padding, gain, noise, strength, bias, alpha, act_gain, clamp):
    """Triton fir_bias_act; arguments as rlse_fast.ops.fir_act.fir_bias_act."""
    check_args(x, noise, strength, bias)
    px0, _, py0, _ = _parse_padding(padding)
    size = output_size(x, f, padding)
    for t, name in ((noise, "noise"), (strength, "strength"), (bias, "bias")):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} must be on {x.device} like x, got {t.device}")
    if noise is not None:
        noise_map(noise, size)
    if max(x[0].numel(), size[0] * size[1] * x.shape[1]) >= 2**31:
        raise ValueError(f"fir_bias_act: an image of {x.shape[1]} x {max(x.shape[2], size[0])} x "
                         f"{max(x.shape[3], size[1])} elements is too large for the kernels' int32 offsets; "
                         "use impl='auto' on NCHW tensors")
    taps = kernel_taps(f, gain, _acc(x.dtype), x.device) if f is not None else None
    if taps is None or not (0 <= px0 < TAPS and 0 <= py0 < TAPS) or min(size) < 1:
        return separate_ops(x, f, padding, gain, noise, strength, bias, alpha, act_gain, clamp, "auto")
    clamp = float(-1 if clamp is None else clamp)
    return _FirBiasAct.apply(x, noise, strength, bias, taps, (px0, py0), size, float(alpha), float(act_gain), clamp)


def auto_usable(x: torch.Tensor) -> bool:
    return x.is_cuda and x.dtype in DTYPES and is_nhwc(x)


dispatch.register("fir_bias_act", "triton", fir_bias_act, usable, RANK, auto_usable=auto_usable)
