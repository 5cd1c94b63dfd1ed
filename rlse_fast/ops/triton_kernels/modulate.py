"""Triton kernels of the fused weight modulation (definition in csrc/common/modulate.h).

One program per (sample b, output channel o): the row of I x K weights (K = kh * kw taps) is held
as a [BLOCK_I, BLOCK_K] tile, multiplied by the sample's styles (one per input channel, broadcast
over the taps), reduced and scaled in registers. Forward writes the modulated row, as (B, O, I, kh,
kw) memory or (TAPS_LAST) as the per-face convolution's (B, O, kh, kw, I), and the demodulation
coefficient d[b, o]; backward reads the gradient through its five strides (whatever layout the
convolution's weight gradient has), recomputes the modulated row, reduces it against the gradient,
writes the weight gradient and the row's per-input-channel partial sums of the style gradient
(summed over the output channels by the caller).
"""
import triton
import triton.language as tl

from .rounding import round_bf16


@triton.jit
def _row(w_ptr, s_ptr, O, I, K, w_bstride, BLOCK_I: tl.constexpr, BLOCK_K: tl.constexpr, F64: tl.constexpr):
    """This program's row r = b * O + o: its [BLOCK_I, BLOCK_K] tile's mask and offsets, the weights
    (in the accumulation type) and the sample's styles (one per input channel)."""
    acc_t = tl.float64 if F64 else tl.float32
    r = tl.program_id(0).to(tl.int64)
    b = r // O
    o = r % O
    i = tl.arange(0, BLOCK_I)
    k = tl.arange(0, BLOCK_K)
    m = (i[:, None] < I) & (k[None, :] < K)
    off = i[:, None] * K + k[None, :]
    w = tl.load(w_ptr + b * w_bstride + o * I * K + off, mask=m, other=0.0).to(acc_t)
    s = tl.load(s_ptr + b * I + i, mask=i < I, other=0.0).to(acc_t)
    return r, i, k, m, off, w, s


@triton.jit
def modulate_kernel(w_ptr, s_ptr, out_ptr, d_ptr, O, I, K, w_bstride, eps,
                    DEMOD: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_K: tl.constexpr, F64: tl.constexpr,
                    OUT_BF16: tl.constexpr, TAPS_LAST: tl.constexpr):
    r, i, k, m, off, w, s = _row(w_ptr, s_ptr, O, I, K, w_bstride, BLOCK_I, BLOCK_K, F64)
    ws = w * s[:, None]
    if DEMOD:
        d = 1.0 / tl.sqrt(tl.sum(tl.sum(ws * ws, axis=1), axis=0) + eps)
        tl.store(d_ptr + r, d)
        ws = ws * d
    if OUT_BF16:
        ws = round_bf16(ws)
    if TAPS_LAST:
        off = k[None, :] * I + i[:, None]
    tl.store(out_ptr + r * I * K + off, ws.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def modulate_backward_kernel(g_ptr, w_ptr, s_ptr, d_ptr, dw_ptr, part_ptr, O, I, K, KW, w_bstride,
                             sg_b, sg_o, sg_i, sg_h, sg_w,
                             DEMOD: tl.constexpr, NEED_DW: tl.constexpr, NEED_DS: tl.constexpr,
                             BLOCK_I: tl.constexpr, BLOCK_K: tl.constexpr, F64: tl.constexpr,
                             OUT_BF16: tl.constexpr):
    r, i, k, m, off, w, s = _row(w_ptr, s_ptr, O, I, K, w_bstride, BLOCK_I, BLOCK_K, F64)
    g_off = (r // O) * sg_b + (r % O) * sg_o + i[:, None] * sg_i + (k // KW * sg_h + k % KW * sg_w)[None, :]
    g = tl.load(g_ptr + g_off, mask=m, other=0.0).to(w.dtype)
    if DEMOD:
        ws = w * s[:, None]
        d = tl.load(d_ptr + r).to(w.dtype)
        t = tl.sum(tl.sum(g * ws, axis=1), axis=0)
        dws = d * g - (d * d * d * t) * ws
    else:
        dws = g
    if NEED_DS:
        tl.store(part_ptr + r * I + i, tl.sum(dws * w, axis=1), mask=i < I)
    if NEED_DW:
        dw = dws * s[:, None]
        if OUT_BF16:
            dw = round_bf16(dw)
        tl.store(dw_ptr + r * I * K + off, dw.to(dw_ptr.dtype.element_ty), mask=m)
