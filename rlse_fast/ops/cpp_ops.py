"""The C++ CPU kernels (extension `rlse_fast._C`) behind autograd Functions, registered as 'cpp'.

Imported lazily by `dispatch._load_natives()` on the first op call, never at package import. When
the extension is missing, 'auto' falls back to the reference and impl='cpp' raises one line saying
how to rebuild.

`native_impls(ext)` wraps any compiled module that exposes the four functions of
csrc/bindings_cpu.cpp (bias_act, upfirdn2d, downsample_loss, downsample_loss_backward) with the same
signatures; `rlse_fast.ops.cuda_ops` reuses it for `rlse_fast._cuda`. Every backward pass runs the
same extension: bias_act with grad=1, upfirdn2d with up/down swapped and the filter flipped,
downsample_loss with its own transposed kernel. `modulate` (StyleGAN2's weight modulation and
demodulation, fused) and `adain_epilogue` (StyleGAN v1's layer epilogue) have CPU kernels only, each
with its own backward kernel (`modulate_impl`, `adain_impl`).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.autograd.function import once_differentiable

from ..downsample import cached_taps, check_factor
from . import dispatch
from .adain import ALPHA, EPS, NativeAdaIN
from .bias_act import backward_refs, resolve
from .layout import is_nhwc
from .modulate import kernel_inputs, weight_grad
from .upfirdn2d import _parse_padding, _parse_scaling

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
REBUILD = "reinstall with `pip install --no-build-isolation .`"
RANK = 20


def _acc(dtype: torch.dtype) -> torch.dtype:
    """The kernels' accumulation dtype: float64 for float64 tensors, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _none(like: torch.Tensor) -> torch.Tensor:
    # The extensions take an empty tensor for an absent optional one.
    return torch.empty(0, dtype=like.dtype, device=like.device)


def _dense(x: torch.Tensor) -> torch.Tensor:
    """x if the upfirdn2d bindings take it as is (contiguous, or 4-D channels-last: NHWC in and out,
    so that cuDNN's convolutions around it skip their layout conversions), else a contiguous copy."""
    if x.is_contiguous() or is_nhwc(x):
        return x
    return x.contiguous()


def native_impls(ext) -> dict[str, Callable]:
    """The op functions ({'bias_act', 'upfirdn2d', 'downsample_loss'}) over the extension `ext`.

    Signatures are those `dispatch.pick` callers use: bias_act(x, b, dim, act, alpha, gain, clamp),
    upfirdn2d(x, f, up, down, padding, flip_filter, gain), downsample_loss(y, x, factor).
    """

    class BiasAct(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, b, dim, code, alpha, gain, clamp):
            y = ext.bias_act(x, _none(x) if b is None else b, _none(x), _none(x), 0, dim, code, alpha, gain, clamp)
            use_x, use_y = backward_refs(code, alpha, clamp)
            keep_b = use_x or ctx.needs_input_grad[1]  # for the x + b rule, or for db's size
            ctx.save_for_backward(x if use_x else None, b if keep_b else None, y if use_y else None)
            ctx.args = (dim, code, alpha, gain, clamp)
            return y

        @staticmethod
        @once_differentiable
        def backward(ctx, dy):
            x, b, y = ctx.saved_tensors
            dim, code, alpha, gain, clamp = ctx.args
            need_db = ctx.needs_input_grad[1]
            dy = dy.contiguous()
            if code == 1 and gain == 1 and clamp < 0:
                dx = dy
                dims = [i for i in range(dx.ndim) if i != dim]
                db = (dx.sum(dims) if dims else dx.clone()) if need_db else None  # sum([]) would sum all
            else:
                e = _none(dy)
                dx, db = ext.bias_act_backward(dy, e if b is None else b, e if x is None else x, e if y is None else y,
                                               dim, code, alpha, gain, clamp, need_db)
            return dx if ctx.needs_input_grad[0] else None, db if need_db else None, None, None, None, None, None

    def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None):
        spec, alpha, gain, clamp = resolve(act, alpha, gain, clamp)
        if b is not None:
            if b.ndim != 1 or b.shape[0] != x.shape[dim]:
                raise ValueError(f"bias must have shape ({x.shape[dim]},), got {tuple(b.shape)}")
            b = b.to(x.dtype).contiguous()  # the kernels take one dtype (StyleGAN2 casts b too)
        if b is None and spec.code == 1 and gain == 1 and clamp < 0:
            return x
        dim = dim % x.ndim if x.ndim else 0
        return BiasAct.apply(x.contiguous(), b, dim, spec.code, alpha, gain, clamp)

    class Upfirdn2d(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, f, up, down, pad, flip, gain):
            y = ext.upfirdn2d(x, f, up[0], up[1], down[0], down[1], *pad, flip, gain)
            ctx.save_for_backward(f)
            ctx.args = (up, down, pad, flip, gain, x.shape)
            return y

        @staticmethod
        def backward(ctx, dy):
            (f,) = ctx.saved_tensors
            (upx, upy), (downx, downy), (px0, px1, py0, py1), flip, gain, x_shape = ctx.args
            if not ctx.needs_input_grad[0]:
                return (None,) * 7
            ih, iw = x_shape[2], x_shape[3]
            oh, ow = dy.shape[2], dy.shape[3]
            fw, fh = f.shape[-1], f.shape[0]
            # The transpose: dx[i] sums fc[k] dy[o] over o*down + k - p0 == i*up, which is upfirdn2d
            # with up and down swapped and the correlation taps reversed (flip toggled); the leading
            # pad is f - p0 - 1 and the trailing one makes the output exactly the input's size.
            pad = (
                fw - px0 - 1, iw * upx - ow * downx + px0 - upx + 1,
                fh - py0 - 1, ih * upy - oh * downy + py0 - upy + 1,
            )
            dx = Upfirdn2d.apply(_dense(dy), f, (downx, downy), (upx, upy), pad, not flip, gain)
            return dx, None, None, None, None, None, None

    def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
        if x.ndim != 4:
            raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
        up, down, pad = _parse_scaling(up), _parse_scaling(down), _parse_padding(padding)
        if f is None:  # made on the device: a host-to-device copy cannot be captured in a CUDA graph
            f = torch.ones(1, 1, device=x.device, dtype=_acc(x.dtype))
        if f.requires_grad and torch.is_grad_enabled():
            raise RuntimeError("upfirdn2d: the native kernels do not differentiate w.r.t. the filter f; use impl='ref'")
        if f.ndim not in (1, 2):
            raise ValueError(f"filter must be 1-D or 2-D, got shape {tuple(f.shape)}")
        f = f.detach().to(device=x.device, dtype=_acc(x.dtype)).contiguous()
        return Upfirdn2d.apply(_dense(x), f, up, down, pad, bool(flip_filter), float(gain))

    class DownsampleLoss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, y, x, factor, taps, pad0):
            acc = _acc(y.dtype)
            keep = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
            loss, diff = ext.downsample_loss(y, x.to(acc).contiguous(), taps, factor, pad0, keep)
            ctx.save_for_backward(diff if keep else None)
            ctx.args = (taps, factor, pad0, y.shape[2], y.shape[3], y.dtype, x.dtype)
            return loss

        @staticmethod
        @once_differentiable
        def backward(ctx, gloss):
            (diff,) = ctx.saved_tensors
            taps, factor, pad0, H, W, y_dtype, x_dtype = ctx.args
            gloss = gloss.to(diff.dtype).contiguous()
            dy = dx = None
            if ctx.needs_input_grad[0]:
                dy = ext.downsample_loss_backward(diff, gloss, taps, factor, pad0, H, W, y_dtype)
            if ctx.needs_input_grad[1]:
                dx = (diff * (-2 * gloss).reshape(-1, 1, 1, 1)).to(x_dtype)
            return dy, dx, None, None, None

    def downsample_loss(y, x, factor):
        check_factor(factor)
        taps, pad0 = cached_taps(factor, _acc(y.dtype), str(y.device))
        return DownsampleLoss.apply(y.contiguous(), x, factor, taps, pad0)

    return {"bias_act": bias_act, "upfirdn2d": upfirdn2d, "downsample_loss": downsample_loss}


def modulate_impl(ext) -> Callable:
    """`modulate(weight, styles, demodulate, eps)` over an extension with modulate /
    modulate_backward (csrc/bindings_cpu.cpp)."""

    class Modulate(torch.autograd.Function):
        @staticmethod
        def forward(ctx, weight, styles, demodulate, eps):
            w5, s = kernel_inputs(weight, styles)
            out, dcoef = ext.modulate(w5, s, demodulate, eps)
            ctx.save_for_backward(w5, s, dcoef)
            ctx.args = (demodulate, weight.ndim, styles.dtype)
            return out

        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            w5, s, dcoef = ctx.saved_tensors
            demodulate, weight_ndim, styles_dtype = ctx.args
            need_dw, need_ds = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
            dw, ds = ext.modulate_backward(g.to(w5.dtype).contiguous(), w5, s, dcoef, demodulate, need_dw, need_ds)
            dw = weight_grad(dw, weight_ndim, w5.shape[0]) if need_dw else None
            return dw, ds.to(styles_dtype) if need_ds else None, None, None

    def modulate(weight, styles, demodulate=True, eps=1e-8):
        return Modulate.apply(weight, styles, bool(demodulate), float(eps))

    return modulate


def adain_impl(ext) -> Callable:
    """`adain_epilogue(x, noise, strength, bias, scale, shift)` over an extension with adain /
    adain_backward (csrc/bindings_cpu.cpp), through `ops.adain.NativeAdaIN`."""
    class Kernels:
        @staticmethod
        def forward(x, n, s, b, sc, sh):
            return ext.adain(x, _none(x) if n is None else n.to(x.dtype), _none(b) if s is None else s, b, sc, sh,
                             EPS, ALPHA)

        @staticmethod
        def backward(dy, x, n, s, b, sc, stats):
            return ext.adain_backward(dy.to(x.dtype), x, _none(x) if n is None else n.to(x.dtype),
                                      _none(b) if s is None else s, b, sc, stats, ALPHA)

    def adain_epilogue(x, noise, strength, bias, scale, shift):
        if x.ndim != 4 or scale.shape != x.shape[:2] or shift.shape != x.shape[:2]:
            raise ValueError(f"adain_epilogue: x (B, C, H, W) with scale and shift (B, C), got {tuple(x.shape)}, "
                             f"{tuple(scale.shape)}, {tuple(shift.shape)}")
        return NativeAdaIN.apply(Kernels, x, noise, strength, bias, scale, shift)

    return adain_epilogue


def _usable(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in DTYPES


# The dtypes for which 'auto' takes the kernel: where it beats the reference on CPU. With the AVX2
# build (csrc/cpu/cpu_isa.h; any x86-64 CPU since 2013) that is every dtype. The baseline build
# converts fp16 in software, which makes fp16 bias_act and downsample_loss (memory-bound; the
# reference's few ATen ops convert in hardware) and bf16 bias_act slower than the reference.
# modulate beats the reference in every dtype on both builds (fwd + bwd of a 4x128x128x3x3 weight,
# one thread: fp32 3.5x / 2.6x, bf16 5.1x / 3.3x, fp16 5.4x / 1.5x with AVX2 / the baseline), and so
# does adain_epilogue (fwd + bwd at v1's 1024 px planes: fp32 4.3x, bf16 3.5x, fp16 4.2x / 1.5x;
# docs/kernels-adain.md).
_ALL_DTYPES = {"bias_act": DTYPES, "upfirdn2d": DTYPES, "downsample_loss": DTYPES, "modulate": DTYPES,
               "adain_epilogue": DTYPES}
_BASE_DTYPES = {
    "adain_epilogue": DTYPES,
    "bias_act": (torch.float32, torch.float64),
    "upfirdn2d": DTYPES,
    "downsample_loss": (torch.float32, torch.float64, torch.bfloat16),
    "modulate": DTYPES,
}


def auto_dtypes(isa: str) -> dict[str, tuple[torch.dtype, ...]]:
    """The dtypes 'auto' sends to the kernels of the build `isa` ('avx2' or 'base'), per op."""
    return _ALL_DTYPES if isa == "avx2" else _BASE_DTYPES


def _register() -> None:
    try:
        from .. import _C
    except ImportError as exc:
        dispatch.mark_unavailable(
            "cpp", f"the C++ extension rlse_fast._C is not built or does not load ({exc}); {REBUILD}")
        return
    auto = auto_dtypes(_C.cpu_isa())  # the build in use when the ops are first called
    impls = native_impls(_C)
    if hasattr(_C, "modulate"):  # an extension built before the op lacks it: the reference runs
        impls["modulate"] = modulate_impl(_C)
    if hasattr(_C, "adain"):
        impls["adain_epilogue"] = adain_impl(_C)
    for op, fn in impls.items():
        dtypes = auto[op]
        dispatch.register(op, "cpp", fn, _usable, RANK,
                          auto_usable=lambda x, dtypes=dtypes: x.device.type == "cpu" and x.dtype in dtypes)


_register()
