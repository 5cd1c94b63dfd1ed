"""Triton implementations of bias_act, the fused downsample_loss, the fused weight modulation and
StyleGAN v1's layer epilogue (adain_epilogue, forward and backward kernels over
`ops.adain.NativeAdaIN`), registered as impl 'triton'.

Importing this module raises ImportError when triton is not installed. The kernels live in
`triton_kernels/`. upfirdn2d has no Triton version: its CUDA kernel (shared-memory tiles) covers the
GPU and a Triton port would not beat it; the NHWC FIR fused with StyleGAN2's layer epilogue
(`fir_bias_act`) is Triton, in `triton_fir.py`.

Usable on CUDA tensors; on CPU tensors only under the Triton interpreter (TRITON_INTERPRET=1 set
before triton is imported, as the tests do) and only when asked for by name (impl='triton'):
`auto` never sends a CPU tensor to the interpreter, which is orders of magnitude slower than the
C++ kernels or the reference.
"""
from __future__ import annotations

import os
import sys
import warnings

import torch
import triton
from torch.autograd.function import once_differentiable

from ..downsample import cached_taps
from . import dispatch
from .adain import ALPHA, EPS, NativeAdaIN
from .bias_act import backward_refs, resolve
from .downsample_loss import _check
from .layout import taps_last as taps_last_view
from .modulate import _modulate_ref, kernel_inputs, weight_grad
from .triton_kernels.adain import (
    adain_backward_kernel,
    adain_backward_sums_kernel,
    adain_forward_kernel,
    adain_tile_stats_kernel,
)
from .triton_kernels.bias_act import bias_act_kernel
from .triton_kernels.downsample_loss import downsample_diff_kernel, downsample_loss_backward_kernel
from .triton_kernels.modulate import modulate_backward_kernel, modulate_kernel

# 'auto' tries the lowest rank first: after the CUDA kernels (0), before the C++ ones (20, CPU only).
RANK = 10

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
BLOCK = 1024  # elements per bias_act program
# Warps of a downsample_loss backward program (a 16 x 64 tile of dy). Compiled for sm_90, 4 warps need
# 196 registers a thread in fp32 (222 in bf16): 8 warps resident per SM; 8 need 108 (148): 16.
DS_BACKWARD_WARPS = 8


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _asked_by_name() -> bool:
    """True when dispatch.pick is resolving impl='triton' (not 'auto').

    dispatch calls usable(x) with the tensor only, for 'auto' and for an explicit name alike; the
    caller's `impl` tells them apart.
    """
    frame = sys._getframe(1)
    for _ in range(4):
        if frame is None:
            return False
        if frame.f_code.co_name == "pick" and "impl" in frame.f_locals:
            return frame.f_locals["impl"] == "triton"
        frame = frame.f_back
    return False


def usable(x: torch.Tensor) -> bool:
    if not isinstance(x, torch.Tensor) or x.dtype not in DTYPES:
        return False
    if x.is_cuda:
        return True
    return x.device.type == "cpu" and _interpreting() and _asked_by_name()


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# --- bias_act --------------------------------------------------------------------------------------


def _launch_bias_act(x, b, xref, yref, grad, dim, code, alpha, gain, clamp):
    y = torch.empty_like(x, memory_format=torch.contiguous_format)
    n = x.numel()
    if n == 0:
        return y
    step = 1
    for size in x.shape[dim + 1:]:
        step *= size
    grid = (triton.cdiv(n, BLOCK),)
    bias_act_kernel[grid](
        x, x if b is None else b, x if xref is None else xref, x if yref is None else yref, y, n,
        step if b is not None else 1, b.numel() if b is not None else 1, alpha, gain, clamp,
        GRAD=grad, ACT=code, HAS_B=b is not None and (grad == 0 or xref is not None),
        HAS_XREF=xref is not None, CLAMP=clamp >= 0, F64=x.dtype == torch.float64,
        OUT_BF16=y.dtype == torch.bfloat16, BLOCK=BLOCK)
    return y


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, dim, code, alpha, gain, clamp):
        y = _launch_bias_act(x, b, None, None, 0, dim, code, alpha, gain, clamp)
        use_x, use_y = backward_refs(code, alpha, clamp)
        ctx.save_for_backward(x if use_x else None, b if use_x else None, y if use_y else None)
        ctx.args = (dim, code, alpha, gain, clamp)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, b, y = ctx.saved_tensors
        dim, code, alpha, gain, clamp = ctx.args
        dx = _launch_bias_act(dy.contiguous(), b, x, y, 1, dim, code, alpha, gain, clamp)
        db = None
        if ctx.needs_input_grad[1]:
            dims = [i for i in range(dx.ndim) if i != dim]
            db = (dx.sum(dims, dtype=_acc(dx.dtype)) if dims else dx.to(_acc(dx.dtype))).to(dx.dtype)
        return dx if ctx.needs_input_grad[0] else None, db, None, None, None, None, None


def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None):
    """Triton bias_act; arguments as rlse_fast.ops.bias_act."""
    spec, alpha, gain, clamp = resolve(act, alpha, gain, clamp)
    if x.ndim == 0:
        raise ValueError("bias_act: x must have at least one dimension")
    dim = dim % x.ndim
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias must have shape ({x.shape[dim]},), got {tuple(b.shape)}")
        if b.device != x.device:
            raise ValueError(f"bias must be on {x.device} like x, got {b.device}")
        b = b.to(x.dtype).contiguous()  # the kernel reads the bias in x's dtype (StyleGAN2 casts b too)
    return _BiasAct.apply(x.contiguous(), b, dim, spec.code, alpha, gain, clamp)


# --- downsample_loss -------------------------------------------------------------------------------


def _check_loss_args(y: torch.Tensor, x: torch.Tensor, factor: int) -> None:
    """The public op's checks, plus what the kernel needs: one device, room for the reflect padding."""
    _check(y, x, factor)
    if x.device != y.device:
        raise ValueError(f"x must be on {y.device} like y, got {x.device}")
    H, W = y.shape[2:]
    pad = 3 * factor - 3 * factor // 2 if factor > 1 else 0
    if min(H, W) <= pad:
        raise ValueError(f"image size {H}x{W} is too small for factor {factor} (reflect padding {pad} "
                         "needs a larger image)")


class _DownsampleLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, x, factor):
        acc = _acc(y.dtype)
        taps, pad0 = cached_taps(factor, acc, str(y.device))
        B, C, H, W = y.shape
        h, w = H // factor, W // factor
        ntaps = taps.numel()
        ks = triton.next_power_of_2(ntaps)
        block_j = min(triton.next_power_of_2(w), max(1, 4096 // ks))
        n_jb = triton.cdiv(w, block_j)
        grid = (B * C * h * n_jb,)
        diff = torch.empty([B, C, h, w], dtype=acc, device=y.device)
        part = torch.empty(grid, dtype=acc, device=y.device)
        if grid[0]:
            downsample_diff_kernel[grid](y, x, taps, diff, part, H, W, h, w, factor, pad0, ntaps, n_jb,
                                        BLOCK_J=block_j, KS=ks, F64=acc == torch.float64, num_warps=8)
        ctx.save_for_backward(diff)
        ctx.args = (factor, H, W, y.dtype)
        # Partials are per program in (plane, row, block) order: a fixed-order sum per sample.
        return part.view(B, -1).sum(1) if part.numel() else torch.zeros(B, dtype=acc, device=y.device)

    @staticmethod
    @once_differentiable
    def backward(ctx, gloss):
        (diff,) = ctx.saved_tensors
        factor, H, W, dtype = ctx.args
        gloss = gloss.to(diff.dtype).contiguous()
        dy = dx = None
        if ctx.needs_input_grad[0]:
            taps, pad0 = cached_taps(factor, diff.dtype, str(diff.device))
            B, C, h, w = diff.shape
            ntaps = taps.numel()
            by, bx = 16, 64
            n_yb, n_xb = triton.cdiv(H, by), triton.cdiv(W, bx)
            dy = torch.empty([B, C, H, W], dtype=dtype, device=diff.device)
            grid = (B * C * n_yb * n_xb,)
            if grid[0]:
                downsample_loss_backward_kernel[grid](
                    diff, gloss, taps, dy, C, H, W, h, w, factor, pad0, ntaps - factor - pad0, ntaps,
                    max(h - 4, 0), max(w - 4, 0), n_yb, n_xb, BY=by, BX=bx,
                    OUT_BF16=dtype == torch.bfloat16, num_warps=DS_BACKWARD_WARPS)
        if ctx.needs_input_grad[1]:
            dx = diff * (-2 * gloss).reshape(-1, 1, 1, 1)
        return dy, dx, None


def downsample_loss(y, x, factor):
    """Triton downsample_loss; arguments as rlse_fast.ops.downsample_loss. Returns (B,) float32
    (float64 for float64 y)."""
    _check_loss_args(y, x, factor)
    return _DownsampleLoss.apply(y.contiguous(), x.to(_acc(y.dtype)).contiguous(), factor)


# --- modulate --------------------------------------------------------------------------------------

MODULATE_MAX_TILE = 16384  # elements of a program's [BLOCK_I, BLOCK_K] row tile; larger rows: reference
MODULATE_ERROR: str | None = None
"""Why the kernels were given up in this process (a failed compile on a new GPU, say), else None."""


def _modulate_tile(in_channels: int, taps: int) -> tuple[int, int]:
    return triton.next_power_of_2(in_channels), triton.next_power_of_2(taps)


def modulate_warps(tile: int) -> int:
    """Warps per program for a row tile of `tile` elements. Compiled for sm_90 (tests/triton_sm90.py),
    the backward kernel's 512 x 16 tile (512 input channels, 3 x 3 taps) needs 248 registers a
    thread at 8 warps, which is one program per SM; at 16 it needs 128, spilling nothing either way."""
    return 4 if tile <= 2048 else (8 if tile <= 4096 else 16)


class _Modulate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, styles, demodulate, eps, out_dtype, taps_last):
        w5, s = kernel_inputs(weight, styles)
        batch = s.shape[0]
        _, O, I, kh, kw = w5.shape
        K = kh * kw
        acc = _acc(w5.dtype)
        out_dtype = out_dtype or w5.dtype
        if taps_last:  # (B, O, kh, kw, I) memory, returned as its (B, O, I, kh, kw) view
            out = torch.empty([batch, O, kh, kw, I], dtype=out_dtype, device=w5.device).permute(0, 1, 4, 2, 3)
        else:
            out = torch.empty([batch, O, I, kh, kw], dtype=out_dtype, device=w5.device)
        d = torch.empty([batch, O] if demodulate else [1], dtype=acc, device=w5.device)
        bi, bk = _modulate_tile(I, K)
        wstride = 0 if w5.shape[0] == 1 else O * I * K
        modulate_kernel[(batch * O,)](w5, s, out, d, O, I, K, wstride, eps, DEMOD=demodulate, BLOCK_I=bi,
                                      BLOCK_K=bk, F64=acc == torch.float64, OUT_BF16=out_dtype == torch.bfloat16,
                                      TAPS_LAST=taps_last, num_warps=modulate_warps(bi * bk))
        ctx.save_for_backward(w5, s, d)
        ctx.args = (demodulate, eps, weight.ndim, styles.dtype)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        w5, s, d = ctx.saved_tensors
        demodulate, eps, weight_ndim, styles_dtype = ctx.args
        need_dw, need_ds = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_dw or need_ds):
            return None, None, None, None, None, None
        # g in the output's dtype and whatever layout it came in (the per-face convolution's weight
        # gradient comes in its weight's): the kernel converts as it loads, through g's strides.
        batch, O, I, kh, kw = g.shape
        K = kh * kw
        acc = _acc(w5.dtype)
        dw = torch.empty(g.shape, dtype=w5.dtype, device=g.device) if need_dw else g
        part = torch.empty([batch, O, I] if need_ds else [1], dtype=acc, device=g.device)
        bi, bk = _modulate_tile(I, K)
        wstride = 0 if w5.shape[0] == 1 else O * I * K
        try:
            modulate_backward_kernel[(batch * O,)](
                g, w5, s, d, dw, part, O, I, K, kw, wstride, *g.stride(), DEMOD=demodulate, NEED_DW=need_dw,
                NEED_DS=need_ds, BLOCK_I=bi, BLOCK_K=bk, F64=acc == torch.float64, OUT_BF16=w5.dtype == torch.bfloat16,
                num_warps=modulate_warps(bi * bk))
        except Exception as exc:  # noqa: BLE001 - as in `modulate`: the reference's gradients instead
            if not _kernel_failure(exc):
                raise
            _give_up(exc)
            with torch.enable_grad():
                w_, s_ = w5.detach().requires_grad_(need_dw), s.detach().requires_grad_(need_ds)
                grads = iter(torch.autograd.grad(_modulate_ref(w_, s_, demodulate, eps).to(g.dtype), [
                    t for t, need in ((w_, need_dw), (s_, need_ds)) if need], g))
            dw = next(grads) if need_dw else None
            part = next(grads).unsqueeze(1) if need_ds else None
        dw = weight_grad(dw, weight_ndim, w5.shape[0]) if need_dw else None
        ds = part.sum(1).to(styles_dtype) if need_ds else None
        return dw, ds, None, None, None, None


def modulate(weight, styles, demodulate=True, eps=1e-8, out_dtype=None, taps_last=False):
    """Triton modulate; arguments as rlse_fast.ops.modulate (the kernel writes out_dtype in the
    asked layout). Rows too long for one program's tile, and every call after the kernels once
    failed to build or run here (`MODULATE_ERROR`, with a warning), take the reference."""
    def reference():
        out = _modulate_ref(weight, styles, demodulate, eps)
        out = out if out_dtype is None else out.to(out_dtype)
        return taps_last_view(out) if taps_last else out

    bi, bk = _modulate_tile(weight.shape[-3], weight.shape[-2] * weight.shape[-1])
    if styles.device != weight.device:
        raise ValueError(f"styles must be on {weight.device} like weight, got {styles.device}")
    if out_dtype is not None and out_dtype not in DTYPES:
        raise ValueError(f"out_dtype must be one of {DTYPES}, got {out_dtype}")
    if MODULATE_ERROR is not None or bi * bk > MODULATE_MAX_TILE:
        return reference()
    try:
        return _Modulate.apply(weight, styles, bool(demodulate), float(eps), out_dtype, bool(taps_last))
    except Exception as exc:  # noqa: BLE001 - a compiler or driver failure: keep the run going
        if not _kernel_failure(exc):
            raise
        _give_up(exc)
        return reference()


modulate.takes_layout = True  # rlse_fast.ops.modulate passes out_dtype and taps_last through


def _kernel_failure(exc: Exception) -> bool:
    """An error of the kernel itself (its compile or launch), not of the arguments, of memory or of
    a CUDA graph capture in progress (which the fast engine handles)."""
    if isinstance(exc, (ValueError, TypeError, torch.OutOfMemoryError)):
        return False
    return not (torch.cuda.is_available() and torch.cuda.is_current_stream_capturing())


def _give_up(exc: Exception) -> None:
    global MODULATE_ERROR
    MODULATE_ERROR = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    warnings.warn(f"the Triton modulate kernel failed ({MODULATE_ERROR}); using the reference", RuntimeWarning)


# --- adain_epilogue (StyleGAN v1) -------------------------------------------------------------------

# Elements of a plane per program: 16 planes of a 1024 px layer at batch 1 make 4,096 programs.
ADAIN_BLOCK = 4096


def adain_warps(block: int) -> int:
    """Eight elements a thread: compiled for sm_90, 16 per thread (8 warps at 4,096) puts the bf16
    backward at ptxas's 64-register cap with a stack frame; 8 per thread needs 47 registers."""
    return max(1, min(16, block // 256))


def _adain_grid(x):
    batch, c, h, w = x.shape
    hw = h * w
    block = min(ADAIN_BLOCK, triton.next_power_of_2(hw))
    tiles = triton.cdiv(hw, block)
    return (batch * c, tiles), block, tiles, triton.next_power_of_2(tiles)


class _AdaINKernels:
    """The Triton backend of `ops.adain.NativeAdaIN` (kernels: triton_kernels/adain.py)."""

    @staticmethod
    def forward(x, n, s, b, sc, sh):
        grid, block, tiles, t_block = _adain_grid(x)
        y = torch.empty_like(x)
        part = torch.empty(grid[0], tiles, 2, device=x.device, dtype=b.dtype)
        stats = torch.empty(x.shape[0], x.shape[1], 2, device=x.device, dtype=b.dtype)
        hw = x.shape[2] * x.shape[3]
        nb = 0 if n is None or n.shape[0] == 1 else hw
        flags = dict(HAS_NOISE=n is not None, F64=b.dtype == torch.float64, BLOCK=block, num_warps=adain_warps(block))
        adain_tile_stats_kernel[grid](x, x if n is None else n, b if s is None else s, b, part, x.shape[1], hw,
                                      tiles, nb, ALPHA, **flags)
        adain_forward_kernel[grid](x, x if n is None else n, b if s is None else s, b, sc, sh, y, part, stats,
                                   x.shape[1], hw, tiles, nb, EPS, ALPHA, T_BLOCK=t_block, **flags)
        return y, stats

    @staticmethod
    def backward(dy, x, n, s, b, sc, stats):
        grid, block, tiles, t_block = _adain_grid(x)
        hw = x.shape[2] * x.shape[3]
        nb = 0 if n is None or n.shape[0] == 1 else hw
        part = torch.empty(grid[0], tiles, 2, device=x.device, dtype=b.dtype)
        dpart = torch.zeros(grid[0], tiles, 2, device=x.device, dtype=b.dtype)
        sums = torch.empty(grid[0], 2, device=x.device, dtype=b.dtype)
        du = torch.empty_like(x)
        flags = dict(HAS_NOISE=n is not None, F64=b.dtype == torch.float64, BLOCK=block, num_warps=adain_warps(block))
        args = (x, x if n is None else n, b if s is None else s, b)
        adain_backward_sums_kernel[grid](dy, *args, stats, part, x.shape[1], hw, tiles, nb, ALPHA, **flags)
        adain_backward_kernel[grid](dy, *args, sc, stats, part, du, dpart, sums, x.shape[1], hw, tiles, nb, ALPHA,
                                    T_BLOCK=t_block, **flags)
        out = torch.cat([sums.t(), dpart.sum(1).t()], 0)  # (4, planes): each sum one contiguous row
        return du, out.reshape(4, x.shape[0], x.shape[1])


def adain_epilogue(x, noise, strength, bias, scale, shift):
    if x.ndim != 4 or scale.shape != x.shape[:2] or shift.shape != x.shape[:2]:
        raise ValueError(f"adain_epilogue: x (B, C, H, W) with scale and shift (B, C), got {tuple(x.shape)}, "
                         f"{tuple(scale.shape)}, {tuple(shift.shape)}")
    return NativeAdaIN.apply(_AdaINKernels, x, noise, strength, bias, scale, shift)


dispatch.register("adain_epilogue", "triton", adain_epilogue, usable, RANK)
dispatch.register("bias_act", "triton", bias_act, usable, RANK)
dispatch.register("downsample_loss", "triton", downsample_loss, usable, RANK)
dispatch.register("modulate", "triton", modulate, usable, RANK)
