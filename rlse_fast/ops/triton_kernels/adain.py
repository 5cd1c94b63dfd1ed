"""Triton kernels of StyleGAN v1's layer epilogue (definition: rlse_fast/ops/adain.py).

Every kernel runs on a grid of (plane r = b * C + c, tile t of BLOCK elements of the plane's H*W),
so a 1024 px layer at batch 1 (16 planes) still spreads over thousands of programs; the plane
reductions are split: each tile writes its partial sums to `part` (planes, T, 2) and the next kernel
combines the T partials of its plane (T <= a few hundred: a negligible reread).

Forward, two kernels: `adain_tile_stats_kernel` writes each tile's sum of
v = lrelu(x + noise * strength + bias) and its sum of squares about the tile's own mean;
`adain_forward_kernel` combines them (Chan's parallel variance: no cancellation), writes the plane's
(mean, rstd) for the backward pass from tile 0, and y = scale * (v - mean) * rstd + shift.
Two reads of x and one write of y.

Backward, with g = dy, x_hat = (v - mean) * rstd and N = H*W: the whole gradient needs only the
plane sums G = sum g and P = sum g * x_hat, since
    dv = rstd * scale * (g - G / N - x_hat * P / N),   du = lrelu'(u) * dv.
`adain_backward_sums_kernel` writes the tiles' partial G and P; `adain_backward_kernel` combines
them, writes du and the tiles' partial sums of du and du * noise (for the bias and noise-strength
gradients), and (G, P) = (dshift, dscale) from tile 0. Two reads of x and dy, one write of dx.

Per-plane parameters (strength, bias, scale, shift) come as (B * C,) float32 vectors (float64 for
float64 x), expanded by the wrapper; noise is read in its own dtype with batch stride n_bstride.
"""
import triton
import triton.language as tl


@triton.jit
def _u(x_ptr, n_ptr, base, nbase, off, m, strength, bias, HAS_NOISE: tl.constexpr, F64: tl.constexpr):
    """u = x + noise * strength + bias in the accumulation type (masked lanes: bias)."""
    acc = tl.float64 if F64 else tl.float32
    u = tl.load(x_ptr + base + off, mask=m, other=0.0).to(acc)
    if HAS_NOISE:
        u += tl.load(n_ptr + nbase + off, mask=m, other=0.0).to(acc) * strength
    return u + bias


@triton.jit
def _plane(r, C, HW, n_bstride, s_ptr, b_ptr, HAS_NOISE: tl.constexpr):
    """(element offset of plane r, noise offset, strength, bias)."""
    bi = r // C
    strength = 0.0
    if HAS_NOISE:
        strength = tl.load(s_ptr + r)
    return r * HW, bi * n_bstride, strength, tl.load(b_ptr + r)


@triton.jit
def _combine(part_ptr, r, T, HW, BLOCK: tl.constexpr, T_BLOCK: tl.constexpr):
    """The plane's (sum, M2 about the plane mean) from its T tiles' (sum, M2 about the tile mean)."""
    ti = tl.arange(0, T_BLOCK)
    tm = ti < T
    sums = tl.load(part_ptr + (r * T + ti) * 2, mask=tm, other=0.0)
    m2s = tl.load(part_ptr + (r * T + ti) * 2 + 1, mask=tm, other=0.0)
    cnt = tl.maximum(tl.minimum(HW - ti * BLOCK, BLOCK), 1).to(sums.dtype)
    total = tl.sum(sums, axis=0)
    mean = total / HW
    d = sums / cnt - mean
    return mean, tl.sum(tl.where(tm, m2s + cnt * d * d, 0.0), axis=0)


@triton.jit
def adain_tile_stats_kernel(x_ptr, n_ptr, s_ptr, b_ptr, part_ptr, C, HW, T, n_bstride, alpha,
                            HAS_NOISE: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    t = tl.program_id(1)
    base, nbase, strength, bias = _plane(r, C, HW, n_bstride, s_ptr, b_ptr, HAS_NOISE)
    off = t * BLOCK + tl.arange(0, BLOCK)
    m = off < HW
    u = _u(x_ptr, n_ptr, base, nbase, off, m, strength, bias, HAS_NOISE, F64)
    v = tl.where(m, tl.where(u > 0, u, u * alpha), 0.0)
    s = tl.sum(v, axis=0)
    cnt = tl.minimum(HW - t * BLOCK, BLOCK)
    d = tl.where(m, v - s / cnt, 0.0)
    tl.store(part_ptr + (r * T + t) * 2, s)
    tl.store(part_ptr + (r * T + t) * 2 + 1, tl.sum(d * d, axis=0))


@triton.jit
def adain_forward_kernel(x_ptr, n_ptr, s_ptr, b_ptr, sc_ptr, sh_ptr, y_ptr, part_ptr, stats_ptr, C, HW, T,
                         n_bstride, eps, alpha, HAS_NOISE: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr,
                         T_BLOCK: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    t = tl.program_id(1)
    base, nbase, strength, bias = _plane(r, C, HW, n_bstride, s_ptr, b_ptr, HAS_NOISE)
    mean, m2 = _combine(part_ptr, r, T, HW, BLOCK, T_BLOCK)
    rstd = 1.0 / tl.sqrt(m2 / HW + eps)
    if t == 0:
        tl.store(stats_ptr + 2 * r, mean)
        tl.store(stats_ptr + 2 * r + 1, rstd)
    scale = tl.load(sc_ptr + r) * rstd
    shift = tl.load(sh_ptr + r)
    off = t * BLOCK + tl.arange(0, BLOCK)
    m = off < HW
    u = _u(x_ptr, n_ptr, base, nbase, off, m, strength, bias, HAS_NOISE, F64)
    v = tl.where(u > 0, u, u * alpha)
    tl.store(y_ptr + base + off, ((v - mean) * scale + shift).to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def _xhat(x_ptr, n_ptr, stats_ptr, s_ptr, b_ptr, r, t, C, HW, n_bstride, alpha, HAS_NOISE: tl.constexpr,
          F64: tl.constexpr, BLOCK: tl.constexpr):
    """(offsets, mask, u, x_hat, rstd, noise offset) of tile t of plane r."""
    base, nbase, strength, bias = _plane(r, C, HW, n_bstride, s_ptr, b_ptr, HAS_NOISE)
    mean = tl.load(stats_ptr + 2 * r)
    rstd = tl.load(stats_ptr + 2 * r + 1)
    off = t * BLOCK + tl.arange(0, BLOCK)
    m = off < HW
    u = _u(x_ptr, n_ptr, base, nbase, off, m, strength, bias, HAS_NOISE, F64)
    return base + off, m, u, (tl.where(u > 0, u, u * alpha) - mean) * rstd, rstd, nbase + off


@triton.jit
def adain_backward_sums_kernel(g_ptr, x_ptr, n_ptr, s_ptr, b_ptr, stats_ptr, part_ptr, C, HW, T, n_bstride, alpha,
                               HAS_NOISE: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    t = tl.program_id(1)
    idx, m, u, xhat, rstd, nidx = _xhat(x_ptr, n_ptr, stats_ptr, s_ptr, b_ptr, r, t, C, HW, n_bstride, alpha,
                                        HAS_NOISE, F64, BLOCK)
    g = tl.load(g_ptr + idx, mask=m, other=0.0).to(xhat.dtype)
    tl.store(part_ptr + (r * T + t) * 2, tl.sum(g, axis=0))
    tl.store(part_ptr + (r * T + t) * 2 + 1, tl.sum(tl.where(m, g * xhat, 0.0), axis=0))


@triton.jit
def adain_backward_kernel(g_ptr, x_ptr, n_ptr, s_ptr, b_ptr, sc_ptr, stats_ptr, part_ptr, dx_ptr, dpart_ptr,
                          sums_ptr, C, HW, T, n_bstride, alpha, HAS_NOISE: tl.constexpr, F64: tl.constexpr,
                          BLOCK: tl.constexpr, T_BLOCK: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    t = tl.program_id(1)
    ti = tl.arange(0, T_BLOCK)
    tm = ti < T
    gsum = tl.sum(tl.load(part_ptr + (r * T + ti) * 2, mask=tm, other=0.0), axis=0)
    psum = tl.sum(tl.load(part_ptr + (r * T + ti) * 2 + 1, mask=tm, other=0.0), axis=0)
    if t == 0:
        tl.store(sums_ptr + 2 * r, gsum)
        tl.store(sums_ptr + 2 * r + 1, psum)
    idx, m, u, xhat, rstd, nidx = _xhat(x_ptr, n_ptr, stats_ptr, s_ptr, b_ptr, r, t, C, HW, n_bstride, alpha,
                                        HAS_NOISE, F64, BLOCK)
    g = tl.load(g_ptr + idx, mask=m, other=0.0).to(xhat.dtype)
    dv = (rstd * tl.load(sc_ptr + r)) * (g - gsum / HW - xhat * (psum / HW))
    du = tl.where(m, tl.where(u > 0, dv, dv * alpha), 0.0)
    tl.store(dx_ptr + idx, du.to(dx_ptr.dtype.element_ty), mask=m)
    tl.store(dpart_ptr + (r * T + t) * 2, tl.sum(du, axis=0))
    if HAS_NOISE:
        noise = tl.load(n_ptr + nidx, mask=m, other=0.0).to(du.dtype)
        tl.store(dpart_ptr + (r * T + t) * 2 + 1, tl.sum(du * noise, axis=0))
