"""Triton kernels of the NHWC FIR with StyleGAN2's layer epilogue (definition: rlse_fast/ops/fir_act.py).

Tensors are NHWC (all channels of a pixel contiguous), offsets within one image int32 (fewer
registers than int64 addresses; the wrapper checks that an image has fewer than 2**31 elements).
The filter is separable with at most 4 taps a side (StyleGAN2's [1, 3, 3, 1] / 8), written as
correlation taps hx[0..4), hy[0..4) (zeros past the filter's length), so y[o] = sum_t h[t] x[o + t - p0]
along each axis, p0 in [0, 3].

A program owns a strip of RH output rows by TW pixels by BC channels and walks down it: each input
row is loaded once from memory and filtered horizontally (4 loads of the row, shifted by a pixel,
that the L1 cache serves), and the last four filtered rows stay in registers, so the vertical taps
cost no loads. The strip's 3-row halo is the only reread (3 / RH). Without shared memory in Triton,
this rolling window is how the filter gets both its horizontal and vertical reuse.

Forward: y = clamp(lrelu(fir(x) + noise[b, o] * strength[b] + bias[b, c], alpha) * act_gain); with a
clamp, an int8 code per element (0: gradient blocked by the clamp, 1: slope 1, 2: slope alpha) for the
backward, which otherwise reads the slope off the sign of the saved y.

Backward: the transposed filter is the same correlation with the taps reversed and p0' = 3 - p0, run
over dpre = dy * slope * act_gain formed as each dy row is loaded. The same pass sums dpre (bias
gradient), dpre * noise (noise-strength gradient) and, on request, dpre over the channels (noise-map
gradient): each dpre element is counted once, by the program whose strip and columns own it (the
unshifted load of rows r0 .. r0 + RH), into per-program partials that a second small reduction adds in
a fixed order, so the result is deterministic.
"""
import triton
import triton.language as tl

from .rounding import round_bf16


@triton.jit
def _taps(t_ptr, REV: tl.constexpr, F64: tl.constexpr):
    """The 4 taps at t_ptr, reversed for the transposed filter."""
    acc = tl.float64 if F64 else tl.float32
    if REV:
        return (tl.load(t_ptr + 3).to(acc), tl.load(t_ptr + 2).to(acc), tl.load(t_ptr + 1).to(acc),
                tl.load(t_ptr).to(acc))
    return tl.load(t_ptr).to(acc), tl.load(t_ptr + 1).to(acc), tl.load(t_ptr + 2).to(acc), tl.load(t_ptr + 3).to(acc)


@triton.jit
def _shifted(ptr, q, n_rows, n_cols, C, cols, ch, chm, s: tl.constexpr, P0: tl.constexpr, F64: tl.constexpr):
    """Row q of an (n_rows, n_cols, C) image at columns cols + s - P0 (zeros outside), as [TW, BC]."""
    c = cols + (s - P0)
    m = ((q >= 0) & (q < n_rows)) & ((c >= 0) & (c < n_cols))[:, None] & chm[None, :]
    v = tl.load(ptr + (q * n_cols + c[:, None]) * C + ch[None, :], mask=m, other=0.0)
    return v.to(tl.float64 if F64 else tl.float32)


@triton.jit
def _hrow(x_ptr, q, H, W, C, cols, ch, chm, h0, h1, h2, h3, P0: tl.constexpr, F64: tl.constexpr):
    """Input row q filtered horizontally."""
    v = h0 * _shifted(x_ptr, q, H, W, C, cols, ch, chm, 0, P0, F64)
    v += h1 * _shifted(x_ptr, q, H, W, C, cols, ch, chm, 1, P0, F64)
    v += h2 * _shifted(x_ptr, q, H, W, C, cols, ch, chm, 2, P0, F64)
    v += h3 * _shifted(x_ptr, q, H, W, C, cols, ch, chm, 3, P0, F64)
    return v


@triton.jit
def _strip(pid, C, Ho, Wo, n_rb, n_xb, n_cb, RH: tl.constexpr, TW: tl.constexpr, BC: tl.constexpr):
    """(batch index, first row, columns, channels, channel mask) of program pid: channel blocks
    fastest, then column blocks, row strips, batch (neighbouring programs share halo rows in L2)."""
    cb = pid % n_cb
    t = pid // n_cb
    xb = t % n_xb
    t = t // n_xb
    rb = t % n_rb
    b = t // n_rb
    ch = cb * BC + tl.arange(0, BC)
    return b, rb * RH, xb * TW + tl.arange(0, TW), ch, ch < C


@triton.jit
def fir_act_forward_kernel(x_ptr, t_ptr, n_ptr, s_ptr, b_ptr, y_ptr, code_ptr, C, H, W, Ho, Wo, n_rb, n_xb, n_cb,
                           n_bstride, s_bstride, b_bstride, alpha, act_gain, clamp,
                           PX0: tl.constexpr, PY0: tl.constexpr, HAS_NOISE: tl.constexpr, HAS_BIAS: tl.constexpr,
                           CLAMP: tl.constexpr, F64: tl.constexpr, OUT_BF16: tl.constexpr,
                           RH: tl.constexpr, TW: tl.constexpr, BC: tl.constexpr):
    acc = tl.float64 if F64 else tl.float32
    b, r0, cols, ch, chm = _strip(tl.program_id(0), C, Ho, Wo, n_rb, n_xb, n_cb, RH, TW, BC)
    b64 = b.to(tl.int64)
    x_img = x_ptr + b64 * H * W * C
    y_img = y_ptr + b64 * Ho * Wo * C
    hx0, hx1, hx2, hx3 = _taps(t_ptr, False, F64)
    hy0, hy1, hy2, hy3 = _taps(t_ptr + 4, False, F64)
    bias = tl.zeros([BC], acc)
    if HAS_BIAS:
        bias = tl.load(b_ptr + b * b_bstride + ch, mask=chm, other=0.0).to(acc)
    strength = 0.0
    if HAS_NOISE:
        strength = tl.load(s_ptr + b * s_bstride).to(acc)
    colm = cols < Wo
    w0 = _hrow(x_img, r0 - PY0, H, W, C, cols, ch, chm, hx0, hx1, hx2, hx3, PX0, F64)
    w1 = _hrow(x_img, r0 + 1 - PY0, H, W, C, cols, ch, chm, hx0, hx1, hx2, hx3, PX0, F64)
    w2 = _hrow(x_img, r0 + 2 - PY0, H, W, C, cols, ch, chm, hx0, hx1, hx2, hx3, PX0, F64)
    for k in range(tl.minimum(RH, Ho - r0)):
        o = r0 + k
        w3 = _hrow(x_img, o + 3 - PY0, H, W, C, cols, ch, chm, hx0, hx1, hx2, hx3, PX0, F64)
        v = hy0 * w0 + hy1 * w1 + hy2 * w2 + hy3 * w3
        if HAS_NOISE:
            nv = tl.load(n_ptr + b64 * n_bstride + o * Wo + cols, mask=colm, other=0.0).to(acc)
            v += (nv * strength)[:, None]
        v += bias[None, :]
        z = tl.where(v > 0, v, v * alpha) * act_gain
        off = (o * Wo + cols[:, None]) * C + ch[None, :]
        m = colm[:, None] & chm[None, :]
        if CLAMP:
            code = tl.where((z >= -clamp) & (z <= clamp), tl.where(v > 0, 1, 2), 0).to(tl.int8)
            tl.store(code_ptr + b64 * Ho * Wo * C + off, code, mask=m)
            z = tl.minimum(tl.maximum(z, -clamp), clamp)
        if OUT_BF16:
            z = round_bf16(z)
        tl.store(y_img + off, z.to(y_ptr.dtype.element_ty), mask=m)
        w0 = w1
        w1 = w2
        w2 = w3


@triton.jit
def _dpre(dy_img, ref_img, q, Ho, Wo, C, cols, ch, chm, alpha, act_gain, s: tl.constexpr, P0: tl.constexpr,
          CLAMP: tl.constexpr, F64: tl.constexpr):
    """The pre-activation gradient of row q at columns cols + s - P0: dy times the slope (from the
    clamp code, or the sign of y) times the activation gain."""
    g = _shifted(dy_img, q, Ho, Wo, C, cols, ch, chm, s, P0, F64)
    r = _shifted(ref_img, q, Ho, Wo, C, cols, ch, chm, s, P0, F64)
    if CLAMP:
        slope = tl.where(r == 1, 1.0, tl.where(r == 2, alpha, 0.0))
    else:
        slope = tl.where(r > 0, 1.0, alpha)
    return g * slope * act_gain


@triton.jit
def _drow(dy_img, ref_img, q, Ho, Wo, C, cols, ch, chm, alpha, act_gain, h0, h1, h2, h3, P0: tl.constexpr,
          CLAMP: tl.constexpr, F64: tl.constexpr):
    """(dpre of row q filtered horizontally with the reversed taps, dpre at the unshifted columns)."""
    d0 = _dpre(dy_img, ref_img, q, Ho, Wo, C, cols, ch, chm, alpha, act_gain, 0, P0, CLAMP, F64)
    d1 = _dpre(dy_img, ref_img, q, Ho, Wo, C, cols, ch, chm, alpha, act_gain, 1, P0, CLAMP, F64)
    d2 = _dpre(dy_img, ref_img, q, Ho, Wo, C, cols, ch, chm, alpha, act_gain, 2, P0, CLAMP, F64)
    d3 = _dpre(dy_img, ref_img, q, Ho, Wo, C, cols, ch, chm, alpha, act_gain, 3, P0, CLAMP, F64)
    own = d0 if P0 == 0 else (d1 if P0 == 1 else (d2 if P0 == 2 else d3))
    return h0 * d0 + h1 * d1 + h2 * d2 + h3 * d3, own


@triton.jit
def _reduce_row(own, q, r0, Ho, Wo, cols, n_ptr, b64, n_bstride, sum_b, sum_s, dn_ptr, strength,
                RH: tl.constexpr, HAS_NOISE: tl.constexpr, NEED_DN: tl.constexpr, F64: tl.constexpr):
    """Add row q's dpre (when this strip owns the row) to the bias and strength sums; write the
    row's channel sum times strength for the noise-map gradient."""
    acc = tl.float64 if F64 else tl.float32
    owned = (q >= r0) & (q < r0 + RH) & (q < Ho)
    ownf = tl.where(owned, 1.0, 0.0).to(acc)
    sum_b += own * ownf
    if HAS_NOISE:
        colm = (cols < Wo) & owned
        nv = tl.load(n_ptr + b64 * n_bstride + q * Wo + cols, mask=colm, other=0.0).to(acc)
        sum_s += own * nv[:, None]
        if NEED_DN:
            tl.store(dn_ptr + q * Wo + cols, tl.sum(own, axis=1) * strength, mask=colm)
    return sum_b, sum_s


@triton.jit
def fir_act_backward_kernel(dy_ptr, ref_ptr, t_ptr, n_ptr, s_ptr, dx_ptr, pb_ptr, ps_ptr, dn_ptr,
                            C, H, W, Ho, Wo, n_rb, n_xb, n_cb, n_bstride, s_bstride, alpha, act_gain,
                            PX0: tl.constexpr, PY0: tl.constexpr, HAS_NOISE: tl.constexpr, NEED_DN: tl.constexpr,
                            CLAMP: tl.constexpr, F64: tl.constexpr, OUT_BF16: tl.constexpr,
                            RH: tl.constexpr, TW: tl.constexpr, BC: tl.constexpr):
    """Grid over max(H, Ho) x max(W, Wo), so that every dy element has an owner. pb: (B, tiles, C)
    partial bias sums; ps: (B, tiles * n_cb) partial strength sums; dn: (B, n_cb, Ho, Wo) sums over
    each channel block times the strength."""
    acc = tl.float64 if F64 else tl.float32
    pid = tl.program_id(0)
    b, r0, cols, ch, chm = _strip(pid, C, Ho, Wo, n_rb, n_xb, n_cb, RH, TW, BC)
    b64 = b.to(tl.int64)
    tile = (pid // n_cb) % (n_rb * n_xb)
    dy_img = dy_ptr + b64 * Ho * Wo * C
    ref_img = ref_ptr + b64 * Ho * Wo * C
    dx_img = dx_ptr + b64 * H * W * C
    dn_blk = dn_ptr + (b64 * n_cb + pid % n_cb) * Ho * Wo
    hx0, hx1, hx2, hx3 = _taps(t_ptr, True, F64)
    hy0, hy1, hy2, hy3 = _taps(t_ptr + 4, True, F64)
    QX: tl.constexpr = 3 - PX0
    QY: tl.constexpr = 3 - PY0
    strength = 0.0
    if HAS_NOISE:
        strength = tl.load(s_ptr + b * s_bstride).to(acc)
    sum_b = tl.zeros([TW, BC], acc)
    sum_s = tl.zeros([TW, BC], acc)
    w0, own = _drow(dy_img, ref_img, r0 - QY, Ho, Wo, C, cols, ch, chm, alpha, act_gain, hx0, hx1, hx2, hx3, QX,
                    CLAMP, F64)
    sum_b, sum_s = _reduce_row(own, r0 - QY, r0, Ho, Wo, cols, n_ptr, b64, n_bstride, sum_b, sum_s, dn_blk,
                               strength, RH, HAS_NOISE, NEED_DN, F64)
    w1, own = _drow(dy_img, ref_img, r0 + 1 - QY, Ho, Wo, C, cols, ch, chm, alpha, act_gain, hx0, hx1, hx2, hx3,
                    QX, CLAMP, F64)
    sum_b, sum_s = _reduce_row(own, r0 + 1 - QY, r0, Ho, Wo, cols, n_ptr, b64, n_bstride, sum_b, sum_s, dn_blk,
                               strength, RH, HAS_NOISE, NEED_DN, F64)
    w2, own = _drow(dy_img, ref_img, r0 + 2 - QY, Ho, Wo, C, cols, ch, chm, alpha, act_gain, hx0, hx1, hx2, hx3,
                    QX, CLAMP, F64)
    sum_b, sum_s = _reduce_row(own, r0 + 2 - QY, r0, Ho, Wo, cols, n_ptr, b64, n_bstride, sum_b, sum_s, dn_blk,
                               strength, RH, HAS_NOISE, NEED_DN, F64)
    colm = cols < W
    for k in range(tl.minimum(RH, tl.maximum(H - r0, Ho - r0 + QY - 3))):
        i = r0 + k
        q = i + 3 - QY
        w3, own = _drow(dy_img, ref_img, q, Ho, Wo, C, cols, ch, chm, alpha, act_gain, hx0, hx1, hx2, hx3, QX,
                        CLAMP, F64)
        sum_b, sum_s = _reduce_row(own, q, r0, Ho, Wo, cols, n_ptr, b64, n_bstride, sum_b, sum_s, dn_blk,
                                   strength, RH, HAS_NOISE, NEED_DN, F64)
        v = hy0 * w0 + hy1 * w1 + hy2 * w2 + hy3 * w3
        if OUT_BF16:
            v = round_bf16(v)
        tl.store(dx_img + (i * W + cols[:, None]) * C + ch[None, :], v.to(dx_ptr.dtype.element_ty),
                 mask=(i < H) & colm[:, None] & chm[None, :])
        w0 = w1
        w1 = w2
        w2 = w3
    tl.store(pb_ptr + (b64 * n_rb * n_xb + tile) * C + ch, tl.sum(sum_b, axis=0), mask=chm)
    if HAS_NOISE:
        per_image = n_rb * n_xb * n_cb
        tl.store(ps_ptr + b64 * per_image + pid % per_image, tl.sum(tl.sum(sum_s, axis=1), axis=0))
