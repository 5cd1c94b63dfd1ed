"""Triton kernels of the per-face convolution (definition: `ops.perface_conv._perface_conv2d_ref`).

Three implicit GEMMs, each with the face on grid axis 2 and its own weight pointer, so one launch
covers every face with no grouped-conv detour. Activations are read and written through their four
strides, so NHWC (channels-last: the channel is the contiguous axis of every tile) and NCHW both run
as they are; weights through five strides (face, reduction channel, output channel, kh, kw), so a
transposed view needs no copy. Products accumulate in fp32.

- `conv_forward_kernel`: y[b, o, p] = sum_{i, tap} x[b, i, p * S + tap - P] w[b, o, i, tap].
  A program owns a BLOCK_M pixels x BLOCK_N output channels tile; its K loop runs over the taps and,
  inside each tap, over BLOCK_K input channels (one [BLOCK_M, BLOCK_K] gather of x, one
  [BLOCK_K, BLOCK_N] tile of w, one dot).
- `convt_kernel` (not "transposed": profile_buckets would file that name under layout transposes):
  y[b, o, q] = sum over i and the taps with q = p * S - P + tap of
  x[b, i, p] w[b, i, o, tap]. Split by output phase (q mod S): within a phase only the taps
  congruent to it contribute, so each program runs KH * KW / S^2 dense taps instead of masking out
  (S^2 - 1) / S^2 of the work. Grid axis 0 covers phases x pixel tiles of a phase.
- `conv_wgrad_kernel`: dw[b, o, i, tap] = sum_p dy[b, o, p] x[b, i, p * S + tap - P]. M = output
  channels, N = input channels, one tap per program, and a K loop over the pixels: up to 1M of them
  at 1024 px, so the pixels are split (split-K) over grid axis 1; each split writes its fp32 partial
  tile and the caller sums the splits in a fixed order (deterministic, no atomics).
The input gradient of a conv is the transposed kernel on dy; that of a transposed conv is the
forward kernel on dy; the weight gradient of a transposed conv is the wgrad kernel with x and dy
swapping roles.
"""
import triton
import triton.language as tl

from .rounding import round_bf16


@triton.jit
def _store(y_ptr, acc, offs, mask, OUT_BF16: tl.constexpr):
    if OUT_BF16:
        acc = round_bf16(acc)
    tl.store(y_ptr + offs, acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _mma(acc, a, b, IEEE: tl.constexpr, UPCAST: tl.constexpr):
    """acc + a @ b. UPCAST (the interpreter, whose bf16 dot is wrong): the operands in fp32 first,
    the same products (exact in fp32 for 16-bit inputs) and the same fp32 accumulation."""
    if UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, acc, input_precision="ieee" if IEEE else "tf32")


@triton.jit
def _conv_tile(x_ptr, w_ptr, H, W, OH, OW, CI, CO, PAD_H, PAD_W,
               sxb, sxc, sxh, sxw, swb, swi, swo, swh, sww,
               STRIDE: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
               IEEE: tl.constexpr, UPCAST: tl.constexpr):
    """This program's fp32 [BLOCK_M pixels, BLOCK_N output channels] tile of the convolution, with
    its face, pixel rows and columns, output channels and masks."""
    b = tl.program_id(2).to(tl.int64)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_ok = offs_m < OH * OW
    n_ok = offs_n < CO
    oh = offs_m // OW
    ow = offs_m % OW
    x_base = x_ptr + b * sxb
    w_base = w_ptr + b * swb + offs_n[None, :] * swo
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    # One flat K loop over (tap, channel block), which Triton software-pipelines as a whole.
    cb = tl.cdiv(CI, BLOCK_K)
    for t in range(KH * KW * cb):
        tap = t // cb
        ci = (t % cb) * BLOCK_K + offs_k
        ih = oh * STRIDE + tap // KW - PAD_H
        iw = ow * STRIDE + tap % KW - PAD_W
        pix_ok = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        c_ok = ci < CI
        a = tl.load(x_base + (ih * sxh + iw * sxw)[:, None] + ci[None, :] * sxc, mask=pix_ok[:, None] & c_ok[None, :],
                    other=0.0)
        w = tl.load(w_base + (tap // KW) * swh + (tap % KW) * sww + ci[:, None] * swi,
                    mask=c_ok[:, None] & n_ok[None, :], other=0.0)
        acc = _mma(acc, a, w, IEEE, UPCAST)
    return acc, b, offs_m, offs_n, oh, ow, m_ok, n_ok


@triton.jit
def conv_forward_kernel(x_ptr, w_ptr, y_ptr, H, W, OH, OW, CI, CO, PAD_H, PAD_W,
                        sxb, sxc, sxh, sxw, swb, swi, swo, swh, sww, syb, syc, syh, syw,
                        STRIDE: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                        IEEE: tl.constexpr, UPCAST: tl.constexpr, OUT_BF16: tl.constexpr):
    acc, b, _, offs_n, oh, ow, m_ok, n_ok = _conv_tile(
        x_ptr, w_ptr, H, W, OH, OW, CI, CO, PAD_H, PAD_W, sxb, sxc, sxh, sxw, swb, swi, swo, swh, sww,
        STRIDE, KH, KW, BLOCK_M, BLOCK_N, BLOCK_K, IEEE, UPCAST)
    offs = b * syb + (oh * syh + ow * syw)[:, None] + offs_n[None, :] * syc
    _store(y_ptr, acc, offs, m_ok[:, None] & n_ok[None, :], OUT_BF16)


@triton.jit
def convt_kernel(x_ptr, w_ptr, y_ptr, H, W, OH, OW, CI, CO, PAD_H, PAD_W, QW, M_TILES,
                           sxb, sxc, sxh, sxw, swb, swi, swo, swh, sww, syb, syc, syh, syw,
                           STRIDE: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
                           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                           IEEE: tl.constexpr, UPCAST: tl.constexpr, OUT_BF16: tl.constexpr):
    """QW: output columns of a phase, cdiv(OW, S); M_TILES: pixel tiles of a phase."""
    b = tl.program_id(2).to(tl.int64)
    phase = tl.program_id(0) // M_TILES
    rh = phase // STRIDE
    rw = phase % STRIDE
    offs_m = (tl.program_id(0) % M_TILES) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    qh = offs_m // QW
    qw = offs_m % QW
    oh = rh + qh * STRIDE
    ow = rw + qw * STRIDE
    m_ok = (qw < QW) & (oh < OH) & (ow < OW)
    n_ok = offs_n < CO
    x_base = x_ptr + b * sxb
    w_base = w_ptr + b * swb + offs_n[None, :] * swo
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    # The taps of this phase: kh = kh0 + S * j with oh + P - kh divisible by S; the input row is then
    # qh + (rh + P - kh) / S. One flat K loop over (tap of the phase, channel block).
    kh0 = (rh + PAD_H) % STRIDE
    kw0 = (rw + PAD_W) % STRIDE
    ntw = tl.cdiv(KW - kw0, STRIDE)
    cb = tl.cdiv(CI, BLOCK_K)
    for t in range(tl.cdiv(KH - kh0, STRIDE) * ntw * cb):
        tap = t // cb
        kh = kh0 + (tap // ntw) * STRIDE
        kw = kw0 + (tap % ntw) * STRIDE
        ci = (t % cb) * BLOCK_K + offs_k
        ih = qh + (rh + PAD_H - kh) // STRIDE
        iw = qw + (rw + PAD_W - kw) // STRIDE
        pix_ok = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        c_ok = ci < CI
        a = tl.load(x_base + (ih * sxh + iw * sxw)[:, None] + ci[None, :] * sxc, mask=pix_ok[:, None] & c_ok[None, :],
                    other=0.0)
        w = tl.load(w_base + kh * swh + kw * sww + ci[:, None] * swi, mask=c_ok[:, None] & n_ok[None, :], other=0.0)
        acc = _mma(acc, a, w, IEEE, UPCAST)
    offs = b * syb + (oh * syh + ow * syw)[:, None] + offs_n[None, :] * syc
    _store(y_ptr, acc, offs, m_ok[:, None] & n_ok[None, :], OUT_BF16)


@triton.jit
def conv_wgrad_kernel(g_ptr, x_ptr, out_ptr, H, W, OH, OW, CI, CO, PAD_H, PAD_W, N_TILES, CHUNK, SPLITS,
                      sgb, sgc, sgh, sgw, sxb, sxc, sxh, sxw, sos, sob, soo, soi, soh, sow,
                      STRIDE: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                      IEEE: tl.constexpr, UPCAST: tl.constexpr, OUT_BF16: tl.constexpr):
    """g: the (B, CO, OH, OW) output gradient; x: the (B, CI, H, W) input. out: (SPLITS, B, CO, CI,
    KH, KW) through its six strides (the weight's own layout, so that a channels-last weight's
    gradient is stored a row of channels at a time), fp32 partial sums (or the result itself when
    SPLITS == 1). CHUNK: pixels per split, a multiple of BLOCK_K."""
    b = tl.program_id(2).to(tl.int64)
    tap = tl.program_id(1) // SPLITS
    split = tl.program_id(1) % SPLITS
    kh = tap // KW
    kw = tap % KW
    offs_m = (tl.program_id(0) // N_TILES) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = (tl.program_id(0) % N_TILES) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_ok = offs_m < CO
    n_ok = offs_n < CI
    g_base = g_ptr + b * sgb + offs_m[:, None] * sgc
    x_base = x_ptr + b * sxb + offs_n[None, :] * sxc
    npix = OH * OW
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for p0 in range(split * CHUNK, tl.minimum(split * CHUNK + CHUNK, npix), BLOCK_K):
        p = p0 + offs_k
        p_ok = p < npix
        oh = p // OW
        ow = p % OW
        ih = oh * STRIDE + kh - PAD_H
        iw = ow * STRIDE + kw - PAD_W
        pix_ok = p_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        g = tl.load(g_base + (oh * sgh + ow * sgw)[None, :], mask=m_ok[:, None] & p_ok[None, :], other=0.0)
        x = tl.load(x_base + (ih * sxh + iw * sxw)[:, None], mask=pix_ok[:, None] & n_ok[None, :], other=0.0)
        acc = _mma(acc, g, x, IEEE, UPCAST)
    offs = split * sos + b * sob + kh * soh + kw * sow + offs_m[:, None] * soo + offs_n[None, :] * soi
    _store(out_ptr, acc, offs, m_ok[:, None] & n_ok[None, :], OUT_BF16)
