"""StyleGAN (v1) layers shared by its generator and discriminator, through our ops.

NVIDIA's TF StyleGAN stores raw weights and scales them at run time (equalised learning rate):
dense and conv weights by gain / sqrt(fan_in) (gain sqrt 2 before an lrelu, 1 for StyleMod, toRGB
and the last dense layer) times the learning-rate multiplier, biases by the multiplier. The leaky
ReLU itself has no gain in v1 (the sqrt 2 is in the weights), unlike StyleGAN2.

Every weight may be per-sample (a leading batch dim: per-face fine-tuning); a per-sample
convolution runs as one grouped convolution over the batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...ops import bias_act, perface_conv, setup_filter, upfirdn2d
from ...ops.adain import adain_epilogue

SQRT2 = math.sqrt(2)
BLUR = (1, 2, 1)
"""The [1, 2, 1] x [1, 2, 1] / 16 low-pass filter after each upsampling and before each downsampling."""


STYLE_GAIN = 1.0
"""StyleMod's dense layer has no sqrt 2 in its weights."""


def dense_gain(in_features: int, gain=SQRT2, lr_mul=1.0) -> float:
    """The run-time factor on an equalised-lr dense layer's raw weight."""
    return gain / math.sqrt(in_features) * lr_mul


def dense(x, weight, bias, gain=SQRT2, lr_mul=1.0, act="linear"):
    """Equalised-lr dense layer. x (B, in); weight (out, in) or (B, out, in); bias (out,) or (B, out)."""
    w = weight.to(x.dtype) * dense_gain(weight.shape[-1], gain, lr_mul)
    y = torch.einsum("bi,boi->bo", x, w) if w.ndim == 3 else x.matmul(w.t())
    b = bias.to(x.dtype) * lr_mul if lr_mul != 1 else bias.to(x.dtype)
    if b.ndim == 2:
        return bias_act(y + b, None, act=act, gain=1.0)
    return bias_act(y, b, act=act, gain=1.0)


def conv_weight(weight, gain=SQRT2):
    """The run-time weight of an equalised-lr convolution: weight (.., O, I, k, k) * gain / sqrt(fan_in)."""
    fan_in = weight.shape[-3] * weight.shape[-2] * weight.shape[-1]
    return weight * (gain / math.sqrt(fan_in))


def fused_kernel(w):
    """TF's fused resampling kernel: the 3x3 kernel zero-padded to 5x5 and summed over its four 2x2
    shifts -> 4x4 (a 2x2 box convolved with the kernel: nearest resampling folded into the conv)."""
    w = F.pad(w, (1, 1, 1, 1))
    return w[..., 1:, 1:] + w[..., :-1, 1:] + w[..., 1:, :-1] + w[..., :-1, :-1]


def conv2d(x, w, stride=1, padding=0, transpose=False):
    """Convolution with a shared (O, I, k, k) or per-sample (B, O, I, k, k) weight (then grouped, or
    the per-face convolution where chosen)."""
    if w.ndim == 4:
        if transpose:
            return F.conv_transpose2d(x, w.transpose(0, 1), stride=stride, padding=padding)
        return F.conv2d(x, w, stride=stride, padding=padding)
    batch, o, i, kh, kw = w.shape
    if perface_conv.chosen(x):  # one implicit GEMM over the faces (RLSE_PERFACE_CONV=triton)
        wt = w.transpose(1, 2) if transpose else w
        return perface_conv.perface_conv2d(x, wt, stride=stride, padding=padding, transposed=transpose)
    xg = x.reshape(1, batch * x.shape[1], *x.shape[2:])
    if transpose:
        wg = w.transpose(1, 2).reshape(batch * i, o, kh, kw)
        y = F.conv_transpose2d(xg, wg, stride=stride, padding=padding, groups=batch)
    else:
        y = F.conv2d(xg, w.reshape(batch * o, i, kh, kw), stride=stride, padding=padding, groups=batch)
    return y.reshape(batch, o, *y.shape[2:])


_BLUR_CACHE: dict = {}


def blur_filter(device) -> torch.Tensor:
    key = str(torch.device(device))
    f = _BLUR_CACHE.get(key)
    if f is None:
        f = _BLUR_CACHE[key] = setup_filter(list(BLUR)).to(device)
    return f


def blur(x):
    """The [1, 2, 1] blur, 'same' padding (upfirdn2d). The fp32 filter goes in as it is, whatever x's
    dtype: the kernels take it in fp32 and the reference casts it to x's dtype (its taps, k / 16, are
    exact in bf16 and fp16), so a cast here was two per call for nothing, and on a GPU a new tensor
    each call, whose separable form (`upfirdn2d.separable_form`) was never found in its cache."""
    return upfirdn2d(x, blur_filter(x.device), padding=1)


CPU_FUSED_MIN_RESOLUTION = 64
"""On the CPU the layers run fused only from this resolution (G: output, D: input) up. oneDNN runs
the 4x4 kernels slowly on small grids with many channels: forward + both gradients, FFHQ channels,
one face, one thread, fused vs unfused (ms): G 8 px 306 vs 32, 32 px 375 vs 282, 64 px 360 vs 609,
128 px 327 vs 614; D alike (`benchmarks/bench_sg1_fused.py --layers`, docs/kernels-adain.md)."""


def fused_here(resolution: int, device: torch.device) -> bool:
    """Whether a resampling conv at `resolution` runs fused on `device` (everywhere on a GPU)."""
    return device.type != "cpu" or resolution >= CPU_FUSED_MIN_RESOLUTION


def up_conv(x, weight, fused: bool, transposed: bool = False):
    """2x upsampling + 3x3 conv (G), no bias, no blur. weight: raw (.., O, I, 3, 3), shared or per
    sample; transposed: the weight is one of TF's fused layers (from 128 px up), which apply it
    through conv2d_transpose, i.e. spatially flipped relative to the unfused layers' conv.

    fused: TF's 4x4 transposed conv (the 3x3 kernel summed over its 2x2 shifts; 16 multiply-adds
    per input pixel); else nearest upsampling then the 3x3 conv (36). The same function either way,
    up to float rounding, for either kind of weight."""
    w = conv_weight(weight).to(x.dtype)
    if transposed != fused:
        w = w.flip(-1, -2)
    if fused:
        return conv2d(x, fused_kernel(w), stride=2, padding=1, transpose=True)
    x = F.interpolate(x, scale_factor=2, mode="nearest")
    return conv2d(x, w, padding=1)


def conv_down(x, weight, fused: bool):
    """3x3 conv + 2x downsampling (D): the conv then a 2x2 average pool, or TF's fused strided conv
    with the 4x4 kernel / 4 (the same function: 16 multiply-adds per output pixel against 36). No
    bias, no blur. weight: raw (.., O, I, 3, 3), shared or per sample."""
    return run_down(x, down_weight(weight, x.dtype, fused), fused)


def down_weight(weight, dtype: torch.dtype, fused: bool):
    """`conv_down`'s run-time weight for inputs of `dtype`: the 3x3 one, or the fused 4x4 kernel / 4
    (made in `dtype`, as a call on such inputs makes it)."""
    w = conv_weight(weight).to(dtype)
    return fused_kernel(w) * 0.25 if fused else w


def run_down(x, w, fused: bool):
    """`conv_down` with its run-time weight `w` (`down_weight`) already made."""
    if fused:
        return conv2d(x, w, stride=2, padding=1)
    return F.avg_pool2d(conv2d(x, w, padding=1), 2)


def adain_style(style):
    """StyleMod's output (B, 2C) -> AdaIN's (scale, shift), each (B, C): (rows [0, C) + 1, rows [C, 2C))."""
    c = style.shape[1] // 2
    return style[:, :c] + 1, style[:, c:]


def epilogue(x, noise, strength, bias, scale, shift, impl: str = "auto"):
    """The StyleGAN layer epilogue: + noise * strength, + bias, lrelu (no gain), instance norm,
    then AdaIN: * scale + shift (`adain_style`).

    x (B, C, H, W); noise (B or 1, 1, H, W) or None; strength (C,) or (B, C); bias (C,) or (B, C);
    scale, shift (B, C)."""
    return adain_epilogue(x, noise, strength, bias, scale, shift, impl=impl)
