"""Triton kernels of the fused bicubic downscale + per-sample squared error (definition in
csrc/common/downsample_loss.h: taps k[0..ntaps), stride s, reflect padding pad0 before and
pad1 = ntaps - s - pad0 after, each smaller than the image).

Forward: a program per (plane, low-res row i, block of BLOCK_J low-res columns) accumulates, for
each vertical tap t, k[t] times the [BLOCK_J, KS] tile of the reflected row's pixels under each
output's horizontal window; the horizontal taps then reduce the tile. It writes diff = D - x (the
only global output besides one partial sum per program).

Backward: a program per [BY, BX] tile of dy. For the bicubic layout (ntaps = 4 s, pad0 = pad1 =
3 s / 2, or the identity) every low-res index whose window covers pixel Y, through any reflection,
lies in the 4 consecutive indices from i0 = clamp((Y + pad0) // s - 3, 0, max(h - 4, 0)); the
effective weight of each sums the taps over the reflection images of Y (Y, -Y, 2 (H - 1) - Y when
inside the padded range). Then dy[Y, X] = 2 g[b] sum_{n, m} wv_n(Y) wh_m(X) diff[i0 + n, j0 + m].
"""
import triton
import triton.language as tl

from .rounding import round_bf16


@triton.jit
def _reflect(q, n):
    q = tl.where(q < 0, -q, q)
    return tl.where(q > n - 1, 2 * (n - 1) - q, q)


@triton.jit
def downsample_diff_kernel(y_ptr, x_ptr, k_ptr, diff_ptr, part_ptr, H, W, h, w, s, pad0, ntaps, n_jb,
                           BLOCK_J: tl.constexpr, KS: tl.constexpr, F64: tl.constexpr):
    acc_t = tl.float64 if F64 else tl.float32
    pid = tl.program_id(0)
    jb = pid % n_jb
    row = pid // n_jb
    i = row % h
    plane = (row // h).to(tl.int64)
    j = jb * BLOCK_J + tl.arange(0, BLOCK_J)
    u = tl.arange(0, KS)
    jm = j < w
    um = u < ntaps
    cols = _reflect(j[:, None] * s + u[None, :] - pad0, W)
    m2 = jm[:, None] & um[None, :]
    y_plane = y_ptr + plane * H * W
    acc = tl.zeros([BLOCK_J, KS], acc_t)
    for t in range(0, ntaps):
        r = _reflect(i * s + t - pad0, H)
        kt = tl.load(k_ptr + t).to(acc_t)
        v = tl.load(y_plane + r * W + cols, mask=m2, other=0.0).to(acc_t)
        acc += kt * v
    kh = tl.load(k_ptr + u, mask=um, other=0.0).to(acc_t)
    out = tl.sum(acc * kh[None, :], axis=1)
    lo = plane * h * w + i * w + j
    xv = tl.load(x_ptr + lo, mask=jm, other=0.0).to(acc_t)
    d = tl.where(jm, out - xv, 0.0)
    tl.store(diff_ptr + lo, d, mask=jm)
    tl.store(part_ptr + pid, tl.sum(d * d, axis=0))


@triton.jit
def _tap(k_ptr, q, valid, i, n_lo, s, pad0, ntaps):
    """Weight of low-res index i for the reflection image q (0 where it does not cover q)."""
    t = q + pad0 - i * s
    ok = valid & (t >= 0) & (t < ntaps) & (i < n_lo)
    return tl.load(k_ptr + t, mask=ok, other=0.0)


@triton.jit
def _window(k_ptr, p, n, n_lo, s, pad0, pad1, ntaps, i_max):
    """For pixels p: the first of 4 low-res indices and their 4 effective weights."""
    i0 = tl.minimum(tl.maximum((p + pad0) // s - 3, 0), i_max)
    inside = p < n
    q1 = -p
    v1 = inside & (p >= 1) & (p <= pad0)
    q2 = 2 * (n - 1) - p
    v2 = inside & (p <= n - 2) & (p >= n - 1 - pad1)
    w0 = _tap(k_ptr, p, inside, i0, n_lo, s, pad0, ntaps) + _tap(k_ptr, q1, v1, i0, n_lo, s, pad0, ntaps) \
        + _tap(k_ptr, q2, v2, i0, n_lo, s, pad0, ntaps)
    w1 = _tap(k_ptr, p, inside, i0 + 1, n_lo, s, pad0, ntaps) + _tap(k_ptr, q1, v1, i0 + 1, n_lo, s, pad0, ntaps) \
        + _tap(k_ptr, q2, v2, i0 + 1, n_lo, s, pad0, ntaps)
    w2 = _tap(k_ptr, p, inside, i0 + 2, n_lo, s, pad0, ntaps) + _tap(k_ptr, q1, v1, i0 + 2, n_lo, s, pad0, ntaps) \
        + _tap(k_ptr, q2, v2, i0 + 2, n_lo, s, pad0, ntaps)
    w3 = _tap(k_ptr, p, inside, i0 + 3, n_lo, s, pad0, ntaps) + _tap(k_ptr, q1, v1, i0 + 3, n_lo, s, pad0, ntaps) \
        + _tap(k_ptr, q2, v2, i0 + 3, n_lo, s, pad0, ntaps)
    return i0, w0, w1, w2, w3


@triton.jit
def _row(d_plane, i, wi, j0, c0, c1, c2, c3, h, w, rows_ok, cols_ok):
    """wi[:, None] * sum_m c_m[None, :] * diff[i, j0 + m] over a [BY, BX] tile."""
    rm = (rows_ok & (i < h))[:, None]
    base = d_plane + i[:, None] * w
    r = c0[None, :] * tl.load(base + j0[None, :], mask=rm & (cols_ok & (j0 < w))[None, :], other=0.0)
    r += c1[None, :] * tl.load(base + (j0 + 1)[None, :], mask=rm & (cols_ok & (j0 + 1 < w))[None, :], other=0.0)
    r += c2[None, :] * tl.load(base + (j0 + 2)[None, :], mask=rm & (cols_ok & (j0 + 2 < w))[None, :], other=0.0)
    r += c3[None, :] * tl.load(base + (j0 + 3)[None, :], mask=rm & (cols_ok & (j0 + 3 < w))[None, :], other=0.0)
    return wi[:, None] * r


@triton.jit
def downsample_loss_backward_kernel(diff_ptr, g_ptr, k_ptr, dy_ptr, C, H, W, h, w, s, pad0, pad1, ntaps,
                                    ih_max, jw_max, n_yb, n_xb, BY: tl.constexpr, BX: tl.constexpr,
                                    OUT_BF16: tl.constexpr):
    pid = tl.program_id(0)
    xb = pid % n_xb
    t = pid // n_xb
    yb = t % n_yb
    plane = (t // n_yb).to(tl.int64)
    Y = yb * BY + tl.arange(0, BY)
    X = xb * BX + tl.arange(0, BX)
    ym = Y < H
    xm = X < W
    i0, a0, a1, a2, a3 = _window(k_ptr, Y, H, h, s, pad0, pad1, ntaps, ih_max)
    j0, c0, c1, c2, c3 = _window(k_ptr, X, W, w, s, pad0, pad1, ntaps, jw_max)
    d_plane = diff_ptr + plane * h * w
    acc = _row(d_plane, i0, a0, j0, c0, c1, c2, c3, h, w, ym, xm)
    acc += _row(d_plane, i0 + 1, a1, j0, c0, c1, c2, c3, h, w, ym, xm)
    acc += _row(d_plane, i0 + 2, a2, j0, c0, c1, c2, c3, h, w, ym, xm)
    acc += _row(d_plane, i0 + 3, a3, j0, c0, c1, c2, c3, h, w, ym, xm)
    g = tl.load(g_ptr + plane // C)
    out = acc * (2 * g)
    if OUT_BF16:
        out = round_bf16(out)
    tl.store(dy_ptr + plane * H * W + Y[:, None] * W + X[None, :], out.to(dy_ptr.dtype.element_ty),
             mask=ym[:, None] & xm[None, :])
