"""The layers StyleGAN2's generator and discriminator share, in NVIDIA's StyleGAN2-ADA layout:
equalised-learning-rate dense and conv layers and the modulated convolution."""
from __future__ import annotations

import math

import torch
from torch import nn

from ...ops import bias_act, conv2d_resample, modulate, perface_conv, setup_filter

def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """Equalised-learning-rate linear layer with fused bias + activation."""

    def __init__(self, in_features, out_features, bias=True, activation="linear", lr_multiplier=1.0, bias_init=0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x, activation: str | None = None, weight=None, bias=None):
        """`activation` overrides the layer's (e.g. 'linear' for the pre-activation output).

        weight (B, out, in) / bias (B, out): per-sample values replacing the layer's own.
        """
        act = self.activation if activation is None else activation
        w = (self.weight if weight is None else weight).to(x.dtype) * self.weight_gain
        b = self.bias if bias is None else bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if w.ndim == 3 or (b is not None and b.ndim == 2):
            y = torch.einsum("bi,boi->bo", x, w) if w.ndim == 3 else x.matmul(w.t())
            return bias_act(y if b is None else y + b, None, act=act)
        if act == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=act)


class Conv2dLayer(nn.Module):
    """Equalised-learning-rate convolution with optional FIR up/downsampling and bias + activation."""

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation="linear", up=1, down=1,
                 resample_filter=(1, 3, 3, 1), conv_clamp=None):
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = 1.0 if activation == "linear" else math.sqrt(2)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x, gain=1.0):
        w, b = self.run_time(x)
        x = conv2d_resample(x, w, f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def run_time(self, x) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias) as a call on x uses them: the weight gained, both in x's dtype."""
        w = self.weight * self.weight_gain
        return w.to(x.dtype), (self.bias.to(x.dtype) if self.bias is not None else None)


def modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv=True):
    """StyleGAN2's modulated convolution.

    x: (B, C_in, H, W); weight: (C_out, C_in, k, k) shared, or (B, C_out, C_in, k, k) per sample
    (per-face fine-tuned weights); styles: (B, C_in); noise: broadcastable to the output or None.
    """
    batch = x.shape[0]
    per_sample = weight.ndim == 5
    out_channels, in_channels, kh, kw = weight.shape[-4:]
    if per_sample and not fused_modconv:
        raise ValueError("per-sample weights need fused_modconv=True")

    if x.dtype == torch.float16 and demodulate:
        # Keep fp16 activations in range: pre-normalise (the demodulation undoes the scale).
        dims = [-3, -2, -1]
        weight = weight * (1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=dims, keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    if not fused_modconv:
        dcoefs = None
        if demodulate:
            w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)
            dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    per_face = perface_conv.chosen(x)
    # taps_last: modulate writes the per-face conv's weight layout itself, so the conv copies nothing
    # (conv2d_resample hands it the weight as a view: transposed for the up-conv, never flipped here).
    w = modulate(weight, styles, demodulate=demodulate, out_dtype=x.dtype, taps_last=per_face)
    if per_face:
        # The per-face weights straight to a per-face convolution (one implicit GEMM over the faces).
        x = conv2d_resample(x, w, f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight)
    else:
        # One grouped convolution over the whole batch: each sample is a group, with its modulated
        # (and demodulated) weights.
        x = x.reshape(1, -1, *x.shape[2:])
        w = w.reshape(-1, in_channels, kh, kw)
        x = conv2d_resample(x, w, f=resample_filter, up=up, down=down, padding=padding, groups=batch,
                            flip_weight=flip_weight)
        x = x.reshape(batch, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


def bias_act_per_sample(x, b, act, gain=None, clamp=None):
    """bias_act with a shared (C,) bias or a per-sample (B, C) one.

    A per-sample bias is still one pass: x viewed as (1, B*C, H, W) has one channel per (sample,
    channel) pair, and the bias flattened to (B*C,) lines up with it. Only a channels-last x with
    B > 1, which that view would copy, takes a separate add."""
    if b.ndim == 2:
        batch, channels = x.shape[:2]
        b = b.to(x.dtype)
        if x.ndim == 4 and (batch == 1 or x.is_contiguous()):
            y = bias_act(x.reshape(1, batch * channels, *x.shape[2:]), b.reshape(-1), act=act, gain=gain, clamp=clamp)
            return y.reshape(x.shape)
        return bias_act(x + b[:, :, None, None], None, act=act, gain=gain, clamp=clamp)
    return bias_act(x, b.to(x.dtype), act=act, gain=gain, clamp=clamp)


__all__ = ["Conv2dLayer", "FullyConnectedLayer", "bias_act_per_sample", "modulated_conv2d", "normalize_2nd_moment"]
