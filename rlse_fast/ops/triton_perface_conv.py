"""Triton per-face convolution (kernels: triton_kernels/perface_conv.py), registered as impl 'triton'
of `perface_conv2d`.

Usable as the other Triton ops (`triton_ops.usable`): on CUDA tensors, and on CPU tensors only under
the interpreter and by name. 'auto' takes it only when RLSE_PERFACE_CONV=triton (`perface_conv.ENV`):
until a GPU measurement says it beats cuDNN, the grouped conv stays the default.
"""
from __future__ import annotations

import torch
import triton
from torch.autograd.function import once_differentiable

from . import dispatch
from .layout import is_nhwc, taps_last
from .perface_conv import auto_enabled
from .triton_kernels.perface_conv import conv_forward_kernel, convt_kernel, conv_wgrad_kernel
from .triton_ops import RANK, _interpreting, usable as triton_usable

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
CPU_SMS = 1  # the interpreter runs the programs one after another: no split of the reduction pays there
MAX_SPLITS = 1024


def usable(x: torch.Tensor) -> bool:
    return triton_usable(x) and x.dtype in DTYPES


def auto_usable(x: torch.Tensor) -> bool:
    """Only when asked for (RLSE_PERFACE_CONV=triton): on CUDA, or on the CPU under the interpreter
    (two explicit settings: how the tests run a network on it)."""
    return auto_enabled() and x.dtype in DTYPES and (x.is_cuda or (x.device.type == "cpu" and _interpreting()))


def gemm_blocks(m: int, n: int, k: int, dtype: torch.dtype) -> tuple[int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, warps, stages) of a tile for an m x n x k product: 16-bit at most
    128 x 32 or 64 x 128 by 64 deep, or 128 x 64 by 32; fp32 64 x 128 by 32; at least 16 each way
    (tl.dot's minimum), no wider than needed. Compiled for sm_90, every tile of 16-128 x 16-128 x
    16-64 for each kernel (`python tests/triton_sm90_perface.py`): 4 warps spill the gathered
    operands of a 64 x 128 or 128 x 32 bf16 tile (stack frames of 400-1200 bytes); at 8, only
    128 x 64 x 64, 128 x 128 x 64 and 128 x 128 x 32 keep a stack frame. fp32 (FMA, not tensor
    cores: the tests' and eager's precision) runs one stage of 64 rows: pipelined, or with 32 rows,
    some of its tiles got a stack frame of 8-16 bytes."""
    fp32 = dtype == torch.float32
    bn = min(128, max(16, triton.next_power_of_2(n)))
    bm = 64 if fp32 else min(128 if m >= 4096 and bn <= 64 else 64, max(16, triton.next_power_of_2(m)))
    bk = min(32 if fp32 or (bm, bn) == (128, 64) else 64, max(16, triton.next_power_of_2(k)))
    return bm, bn, bk, 8 if bm * bn >= 2048 else 4, 1 if fp32 else 3


def _ieee(x: torch.Tensor) -> bool:
    """fp32 products in full precision, unless cuDNN's convs (the reference) may use TF32 here."""
    return x.dtype == torch.float32 and not (x.is_cuda and torch.backends.cudnn.allow_tf32)


def _launch_flags(blocks, x: torch.Tensor, out_bf16: bool) -> dict:
    """The constexprs and launch options every kernel takes, from `gemm_blocks`' result."""
    bm, bn, bk, warps, stages = blocks
    return dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, IEEE=_ieee(x), UPCAST=_interpreting(), OUT_BF16=out_bf16,
                num_warps=warps, num_stages=stages)


def _roles(w: torch.Tensor, reduce_dim: int) -> tuple[int, ...]:
    """w's strides as the kernels take them: (face, reduction channel, output channel, kh, kw).
    reduce_dim 2: w (B, C_out, C_in, k, k), a conv; 1: w (B, C_in, C_out, k, k), a transposed conv."""
    sb, s1, s2, sh, sw = w.stride()
    return (sb, s2, s1, sh, sw) if reduce_dim == 2 else (sb, s1, s2, sh, sw)


def _empty_like_layout(like: torch.Tensor, shape, dtype=None) -> torch.Tensor:
    fmt = torch.channels_last if is_nhwc(like) else torch.contiguous_format
    return torch.empty(shape, dtype=dtype or like.dtype, device=like.device, memory_format=fmt)


def conv(x, w, stride, padding, reduce_dim, like=None):
    """The direct convolution of each face: (B, C, H, W) -> (B, C_out, OH, OW), in `like`'s layout.
    padding: (top/bottom, left/right)."""
    batch, ci, h, wd = x.shape
    co, kh, kw = w.shape[3 - reduce_dim], w.shape[-2], w.shape[-1]
    ph, pw = padding
    oh, ow = (h + 2 * ph - kh) // stride + 1, (wd + 2 * pw - kw) // stride + 1
    y = _empty_like_layout(x if like is None else like, (batch, co, oh, ow), x.dtype)
    blocks = gemm_blocks(oh * ow, co, ci, x.dtype)
    grid = (triton.cdiv(oh * ow, blocks[0]), triton.cdiv(co, blocks[1]), batch)
    conv_forward_kernel[grid](x, w, y, h, wd, oh, ow, ci, co, ph, pw, *x.stride(), *_roles(w, reduce_dim),
                              *y.stride(), STRIDE=stride, KH=kh, KW=kw,
                              **_launch_flags(blocks, x, y.dtype == torch.bfloat16))
    return y


def conv_transposed(x, w, stride, padding, reduce_dim, out_hw=None, like=None):
    """The transposed convolution of each face, phase by phase; out_hw: the output size (default
    conv_transpose2d's, (H - 1) * stride - 2 * padding + k; larger when it is an input gradient)."""
    batch, ci, h, wd = x.shape
    co, kh, kw = w.shape[3 - reduce_dim], w.shape[-2], w.shape[-1]
    ph, pw = padding
    oh, ow = out_hw or ((h - 1) * stride - 2 * ph + kh, (wd - 1) * stride - 2 * pw + kw)
    y = _empty_like_layout(x if like is None else like, (batch, co, oh, ow), x.dtype)
    qh, qw = triton.cdiv(oh, stride), triton.cdiv(ow, stride)
    blocks = gemm_blocks(qh * qw, co, ci, x.dtype)
    m_tiles = triton.cdiv(qh * qw, blocks[0])
    grid = (stride * stride * m_tiles, triton.cdiv(co, blocks[1]), batch)
    convt_kernel[grid](x, w, y, h, wd, oh, ow, ci, co, ph, pw, qw, m_tiles, *x.stride(),
                                 *_roles(w, reduce_dim), *y.stride(), STRIDE=stride, KH=kh, KW=kw,
                                 **_launch_flags(blocks, x, y.dtype == torch.bfloat16))
    return y


def wgrad_splits(tiles: int, npix: int, bk: int, sms: int) -> tuple[int, int]:
    """(splits, pixels per split) of the weight gradient's reduction: enough programs for about
    four per multiprocessor, each split a whole number of BLOCK_K steps."""
    steps = triton.cdiv(npix, bk)
    splits = max(1, min(steps, MAX_SPLITS, triton.cdiv(4 * sms, tiles)))
    chunk = triton.cdiv(steps, splits) * bk
    return triton.cdiv(npix, chunk), chunk


def _grad_buffer(like: torch.Tensor, splits: int, dtype: torch.dtype) -> tuple[torch.Tensor, list[int]]:
    """An empty (splits, *like.shape) tensor whose weight dims (1-4) are ordered in memory as like's,
    and that order (like's dims, outermost first)."""
    order = sorted(range(1, 5), key=lambda d: -like.stride(d))  # stable: a tie keeps the dims' order
    mem = torch.empty((splits, like.shape[0], *[like.shape[d] for d in order]), dtype=dtype, device=like.device)
    return mem, order


def _unorder(t: torch.Tensor, order: list[int]) -> torch.Tensor:
    """t, whose last four dims are the weight's in `order`, as a view with the weight's dims in place."""
    lead = t.ndim - 4
    return t.permute(*range(lead), *(lead + order.index(d) for d in range(1, 5)))


def conv_wgrad(g, x, stride, padding, like, shared, splits=None):
    """The weight gradient of y = conv(x, w): g (B, C_out, OH, OW), x (B, C_in, H, W) -> (B, C_out,
    C_in, kh, kw) ((C_out, C_in, kh, kw), summed over the faces, when shared), in the dtype and
    memory layout of like, the (B, C_out, C_in, kh, kw) weight (its taps-last layout: the gradient
    reaches `modulate`'s backward in the layout that it wrote). splits: force the split-K count
    (tests); default from the device's multiprocessors."""
    batch, co, oh, ow = g.shape
    ci, h, wd = x.shape[1:]
    (kh, kw), (ph, pw), dtype = like.shape[-2:], padding, like.dtype
    taps = kh * kw
    blocks = gemm_blocks(co, ci, oh * ow, g.dtype)
    bm, bn, bk = blocks[:3]
    n_tiles = triton.cdiv(ci, bn)
    tiles = batch * taps * triton.cdiv(co, bm) * n_tiles
    sms = torch.cuda.get_device_properties(g.device).multi_processor_count if g.is_cuda else CPU_SMS
    if splits is None:
        splits, chunk = wgrad_splits(tiles, oh * ow, bk, sms)
    else:
        chunk = triton.cdiv(triton.cdiv(oh * ow, bk), splits) * bk
        splits = triton.cdiv(oh * ow, chunk)
    direct = splits == 1 and not shared
    mem, order = _grad_buffer(like, splits, dtype if direct else torch.float32)
    out = _unorder(mem, order)
    grid = (triton.cdiv(co, bm) * n_tiles, taps * splits, batch)
    conv_wgrad_kernel[grid](g, x, out, h, wd, oh, ow, ci, co, ph, pw, n_tiles, chunk, splits, *g.stride(),
                            *x.stride(), *out.stride(), STRIDE=stride, KH=kh, KW=kw,
                            **_launch_flags(blocks, g, direct and dtype == torch.bfloat16))
    if direct:
        return out[0]
    # A fixed-order sum of the splits' (and, for a shared weight, the faces') fp32 partials.
    return _unorder(mem.sum((0, 1) if shared else 0).to(dtype), order)


class _PerFaceConv(torch.autograd.Function):
    """Forward and both gradients from the three kernels: a conv's input gradient is the transposed
    conv of dy with the same weight, a transposed conv's is the conv of dy; the weight gradient of a
    transposed conv is that of the conv with x and dy swapping roles."""

    @staticmethod
    def forward(ctx, x, w, stride, padding, transposed):
        w5 = packed(w, x.shape[0])
        ctx.save_for_backward(x, w5)
        ctx.args = (stride, padding, transposed, w.ndim == 4)
        if transposed:
            return conv_transposed(x, w5, stride, padding, reduce_dim=1)
        return conv(x, w5, stride, padding, reduce_dim=2)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, w5 = ctx.saved_tensors
        stride, padding, transposed, shared = ctx.args
        dx = dw = None
        if ctx.needs_input_grad[0]:
            if transposed:
                dx = conv(dy, w5, stride, padding, reduce_dim=2, like=x)
            else:
                dx = conv_transposed(dy, w5, stride, padding, reduce_dim=1, out_hw=tuple(x.shape[2:]), like=x)
        if ctx.needs_input_grad[1]:
            dw = conv_wgrad(x, dy, stride, padding, w5, shared) if transposed else \
                conv_wgrad(dy, x, stride, padding, w5, shared)
        return dx, dw, None, None, None


def packed(w: torch.Tensor, batch: int) -> torch.Tensor:
    """w as a (B, A, C, k, k) view whose channel axis C (or A) has unit stride, copied to
    (B, A, k, k, C) memory when neither has (the layout of a channels-last conv weight): both
    kernels then read whole rows of a weight tile, in either role. A shared (A, C, k, k) weight
    becomes a view with face stride 0."""
    w5 = w if w.ndim == 5 else w.unsqueeze(0)
    if w5.stride(2) != 1 and w5.stride(1) != 1:
        w5 = taps_last(w5)
    return w5.expand(batch, *w5.shape[1:])


def operands(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x and w as the kernels take them: under autocast both in the autocast dtype, as F.conv2d's
    are; otherwise they must share a dtype and a device."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        x, w = x.to(dtype), w.to(dtype)
    if w.dtype != x.dtype or w.device != x.device:
        raise ValueError(f"w ({w.dtype}, {w.device}) must have x's dtype and device ({x.dtype}, {x.device})")
    return x, w


def perface_conv2d(x, w, stride=1, padding=0, transposed=False):
    """Triton per-face conv; arguments as rlse_fast.ops.perface_conv2d (checked there)."""
    x, w = operands(x, w)
    return _PerFaceConv.apply(x, w, stride, padding, transposed)


dispatch.register("perface_conv2d", "triton", perface_conv2d, usable, RANK, auto_usable=auto_usable)
