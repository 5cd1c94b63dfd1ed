"""Triton kernel of StyleGAN v1's layer epilogue (definition: rlse_fast/ops/adain.py).

One program per (sample b, channel c) plane of H*W elements, in BLOCK chunks: pass 1 sums
v = lrelu(x + noise * strength + bias) for the mean, pass 2 sums (v - mean)^2 for the variance
(two passes: no cancellation), pass 3 writes scale * (v - mean) * rstd + shift. v is recomputed
from x each pass (three reads, one write, where the reference makes about nine passes). The
per-plane mean and rstd are stored for the backward pass.
"""
import triton
import triton.language as tl


@triton.jit
def _v(x_ptr, n_ptr, base, nbase, off, m, strength, bias, alpha, HAS_NOISE: tl.constexpr):
    u = tl.load(x_ptr + base + off, mask=m, other=0.0).to(tl.float32)
    if HAS_NOISE:
        u += tl.load(n_ptr + nbase + off, mask=m, other=0.0).to(tl.float32) * strength
    u += bias
    return tl.where(u > 0, u, u * alpha)


@triton.jit
def adain_forward_kernel(x_ptr, n_ptr, s_ptr, b_ptr, sc_ptr, sh_ptr, y_ptr, stats_ptr, C, HW,
                         n_bstride, s_bstride, b_bstride, eps, alpha,
                         HAS_NOISE: tl.constexpr, BLOCK: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    bi = r // C
    c = r % C
    base = r * HW
    nbase = bi * n_bstride
    strength = 0.0
    if HAS_NOISE:
        strength = tl.load(s_ptr + bi * s_bstride + c).to(tl.float32)
    bias = tl.load(b_ptr + bi * b_bstride + c).to(tl.float32)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, HW, BLOCK):
        off = start + tl.arange(0, BLOCK)
        m = off < HW
        v = _v(x_ptr, n_ptr, base, nbase, off, m, strength, bias, alpha, HAS_NOISE)
        acc += tl.where(m, v, 0.0)
    mean = tl.sum(acc, axis=0) / HW
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, HW, BLOCK):
        off = start + tl.arange(0, BLOCK)
        m = off < HW
        d = _v(x_ptr, n_ptr, base, nbase, off, m, strength, bias, alpha, HAS_NOISE) - mean
        acc += tl.where(m, d * d, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(acc, axis=0) / HW + eps)
    tl.store(stats_ptr + 2 * r, mean)
    tl.store(stats_ptr + 2 * r + 1, rstd)
    scale = tl.load(sc_ptr + r).to(tl.float32) * rstd
    shift = tl.load(sh_ptr + r).to(tl.float32)
    for start in range(0, HW, BLOCK):
        off = start + tl.arange(0, BLOCK)
        m = off < HW
        v = _v(x_ptr, n_ptr, base, nbase, off, m, strength, bias, alpha, HAS_NOISE)
        tl.store(y_ptr + base + off, ((v - mean) * scale + shift).to(y_ptr.dtype.element_ty), mask=m)
