"""Triton kernels of the per-face convolution with StyleGAN2's layer epilogue fused (definition:
`ops.perface_conv_act._perface_conv_bias_act_ref`).

- `conv_act_forward_kernel`: the per-face conv's tile (`perface_conv._conv_tile`, stride 1), then,
  in the fp32 accumulator before the one store: + noise[b, p] * strength[b] (a unit noise map per
  face or shared, broadcast over the channels), + bias[b, o] (shared or per face), leaky ReLU,
  x act_gain, clamp; one rounding to the output dtype. With a clamp it also writes an int8 code per
  element (0: the clamp blocks the gradient, 1: slope 1, 2: slope alpha), decided from the same
  fp32 value the output came from; without one the backward takes the slope from the sign of the
  saved output, as bias_act does.
- `act_grad_kernel`: dpre = dy x slope x act_gain over the memory that dy and the saved output (or
  code) share, and in the same pass the sums the epilogue's gradients need (per pixel over the
  channels, per channel over a block of pixels); the conv's backward kernels then run on dpre.
"""
import triton
import triton.language as tl

from .perface_conv import _conv_tile, _store
from .rounding import round_bf16


@triton.jit
def conv_act_forward_kernel(x_ptr, w_ptr, n_ptr, s_ptr, bias_ptr, y_ptr, code_ptr, H, W, OH, OW, CI, CO,
                            PAD_H, PAD_W, sxb, sxc, sxh, sxw, swb, swi, swo, swh, sww, syb, syc, syh, syw,
                            n_bstride, s_bstride, bias_bstride, alpha, act_gain, clamp,
                            KH: tl.constexpr, KW: tl.constexpr,
                            BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                            IEEE: tl.constexpr, UPCAST: tl.constexpr, OUT_BF16: tl.constexpr,
                            HAS_NOISE: tl.constexpr, HAS_BIAS: tl.constexpr, CLAMP: tl.constexpr):
    """n: the (B or 1, OH, OW) unit noise map, s: the (B or 1,) strengths, bias: (B or 1, CO), all
    fp32; *_bstride: 0 when shared by the faces."""
    acc, b, offs_m, offs_n, oh, ow, m_ok, n_ok = _conv_tile(
        x_ptr, w_ptr, H, W, OH, OW, CI, CO, PAD_H, PAD_W, sxb, sxc, sxh, sxw, swb, swi, swo, swh, sww,
        1, KH, KW, BLOCK_M, BLOCK_N, BLOCK_K, IEEE, UPCAST)
    if HAS_NOISE:
        noise = tl.load(n_ptr + b * n_bstride + offs_m, mask=m_ok, other=0.0) * tl.load(s_ptr + b * s_bstride)
        acc = acc + noise[:, None]
    if HAS_BIAS:
        acc = acc + tl.load(bias_ptr + b * bias_bstride + offs_n, mask=n_ok, other=0.0)[None, :]
    v = tl.where(acc < 0, acc * alpha, acc) * act_gain
    offs = b * syb + (oh * syh + ow * syw)[:, None] + offs_n[None, :] * syc
    mask = m_ok[:, None] & n_ok[None, :]
    if CLAMP:
        code = tl.where((v >= -clamp) & (v <= clamp), tl.where(acc > 0, 1, 2), 0)
        tl.store(code_ptr + offs, code.to(tl.int8), mask=mask)
        v = tl.where(v > clamp, clamp, tl.where(v < -clamp, -clamp, v))
    _store(y_ptr, v, offs, mask, OUT_BF16)


@triton.jit
def act_grad_kernel(dy_ptr, ref_ptr, dpre_ptr, pix_ptr, part_ptr, P, C, sb, sc, sp, alpha, act_gain,
                    CLAMP: tl.constexpr, OUT_BF16: tl.constexpr, NEED_PIX: tl.constexpr, NEED_PART: tl.constexpr,
                    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """dy, ref (the saved output, slope alpha where it is not positive, or with CLAMP the code) and
    dpre share (B, C, P) strides sb, sc, sp (P = OH * OW pixels, NHWC or NCHW). A program owns
    BLOCK_P pixels of face b (grid: (pixel blocks, B)) and walks all their channels, so it also
    writes each pixel's sum over the channels (pix, (B, P): the noise's gradients) and its own
    per-channel partial sums (part, (B, pixel blocks, C): the bias's); sums of the stored (rounded)
    values, as the separate ops sum their dx."""
    b = tl.program_id(1).to(tl.int64)
    offs_p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = offs_p < P
    row = tl.zeros([BLOCK_P], tl.float32)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        c_ok = c < C
        mask = p_ok[:, None] & c_ok[None, :]
        offs = b * sb + offs_p[:, None] * sp + c[None, :] * sc
        g = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        ref = tl.load(ref_ptr + offs, mask=mask, other=0)
        if CLAMP:
            v = tl.where(ref == 1, g, tl.where(ref == 2, g * alpha, 0.0))
        else:
            v = tl.where(ref.to(tl.float32) > 0, g, g * alpha)
        v = v * act_gain
        if OUT_BF16:
            v = round_bf16(v)
        v = v.to(dpre_ptr.dtype.element_ty)
        tl.store(dpre_ptr + offs, v, mask=mask)
        v = v.to(tl.float32)
        if NEED_PIX:
            row += tl.sum(v, axis=1)
        if NEED_PART:
            tl.store(part_ptr + (b * tl.num_programs(0) + tl.program_id(0)) * C + c, tl.sum(v, axis=0), mask=c_ok)
    if NEED_PIX:
        tl.store(pix_ptr + b * P + offs_p, row, mask=p_ok)
