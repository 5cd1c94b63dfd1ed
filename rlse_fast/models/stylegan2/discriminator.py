"""StyleGAN2 discriminator ('resnet'), official StyleGAN2-ADA layout; its layers are the generator's
(`layers.Conv2dLayer`, `layers.FullyConnectedLayer`). Images (B, 3, R, R) in [-1, 1]."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...ops import setup_filter
from ..frozen import RunTime, contexts
from .layers import Conv2dLayer, FullyConnectedLayer


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Architecture of a StyleGAN2 'resnet' discriminator."""

    img_resolution: int = 1024
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    mbstd_group_size: int = 4
    """Minibatch-stddev group size (the batch must be a multiple of min(this, batch))."""
    mbstd_num_channels: int = 1
    conv_clamp: float | None = None

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    @property
    def block_resolutions(self) -> list[int]:
        return [2**i for i in range(int(math.log2(self.img_resolution)), 2, -1)]

    def __post_init__(self):
        r = self.img_resolution
        if r < 8 or r & (r - 1):
            raise ValueError(f"discriminator resolution must be a power of two >= 8, got {r}")


class DiscriminatorBlock(nn.Module):
    """'resnet' block: [fromRGB,] conv, down-conv, plus a 1x1 down skip; halves the resolution."""

    def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels, conv_clamp=None,
                 resample_filter=(1, 3, 3, 1)):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation="lrelu",
                                       conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation="lrelu", down=2,
                                 resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                resample_filter=resample_filter)

    def forward(self, x, img):
        if self.in_channels == 0:
            x = self.fromrgb(img)
        y = self.skip(x, gain=np.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=np.sqrt(0.5))
        return y + x


class MinibatchStdLayer(nn.Module):
    def __init__(self, group_size, num_channels=1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x):
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g:
            raise ValueError(f"minibatch-stddev: batch {n} is not a multiple of the group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    def __init__(self, in_channels, resolution, mbstd_group_size=4, mbstd_num_channels=1, conv_clamp=None):
        super().__init__()
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1)

    def forward(self, x, features=None):
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        if features is not None:
            features["b4"] = x
        x = self.fc(x.flatten(1))
        return self.out(x)


class Discriminator(nn.Module):
    """`D(img)` -> logits (B, 1); `D(img, return_features=True)` -> (logits, {'b{res}': block output}).

    The features dict holds each block's output, ordered from the input resolution down, and
    'b4', the epilogue's convolution output before the fully connected layers.
    """

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        self.img_resolution = cfg.img_resolution
        self.block_resolutions = cfg.block_resolutions
        for res in self.block_resolutions:
            in_channels = cfg.channels(res) if res < cfg.img_resolution else 0
            block = DiscriminatorBlock(in_channels, cfg.channels(res), cfg.channels(res // 2), res, cfg.img_channels,
                                       conv_clamp=cfg.conv_clamp)
            setattr(self, f"b{res}", block)
        self.b4 = DiscriminatorEpilogue(cfg.channels(4), 4, cfg.mbstd_group_size, cfg.mbstd_num_channels,
                                        conv_clamp=cfg.conv_clamp)

    def feature_names(self) -> list[str]:
        return [f"b{res}" for res in self.block_resolutions] + ["b4"]

    def forward(self, img, c=None, return_features=False):
        r = self.cfg.img_resolution
        if img.ndim != 4 or img.shape[2:] != (r, r):
            raise ValueError(f"discriminator input must be (B, {self.cfg.img_channels}, {r}, {r}), got {tuple(img.shape)}")
        features = {} if return_features else None
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
            if features is not None:
                features[f"b{res}"] = x
        logits = self.b4(x, features)
        return (logits, features) if return_features else logits


class FrozenConv2dLayer(Conv2dLayer):
    """A frozen `Conv2dLayer` whose run-time weight (weight * weight_gain, cast to the input's dtype and
    by autocast) and bias (cast to the input's dtype) were made once (`frozen.RunTime`): the same
    convolution, bias and activation (`Conv2dLayer.forward`), without the per-call product and casts."""

    def __init__(self, layer: Conv2dLayer, dtype: torch.dtype | None):
        nn.Module.__init__(self)
        self.activation, self.up, self.down, self.padding = layer.activation, layer.up, layer.down, layer.padding
        self.conv_clamp, self.act_gain = layer.conv_clamp, layer.act_gain
        self.register_buffer("resample_filter", layer.resample_filter)
        ctx = contexts(dtype)
        self.weights = RunTime(lambda x_dtype: (layer.weight * layer.weight_gain).to(x_dtype), ctx, conv_arg=True)
        self.biases = RunTime(layer.bias.to, ctx, conv_arg=False) if layer.bias is not None else None

    def run_time(self, x):
        return self.weights.get(x), (self.biases.get(x) if self.biases is not None else None)


def prepare(D: Discriminator, dtype: torch.dtype | None, memory_format=torch.contiguous_format) -> Discriminator:
    """A frozen copy of D for runs under autocast to `dtype` (None: fp32) with activations in
    `memory_format`: every convolution's run-time weight and bias made once, in that dtype and that
    layout (`FrozenConv2dLayer`); D's fp32 conv weights are not kept. The dense layers (the
    epilogue's, which L_s never reaches) stay as they are. D itself is untouched."""
    D = copy.deepcopy(D).requires_grad_(False).to(memory_format=memory_format)
    for name, module in list(D.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, Conv2dLayer):
                setattr(module, child_name, FrozenConv2dLayer(child, dtype))
    return D


__all__ = ["Discriminator", "DiscriminatorConfig", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer",
           "FrozenConv2dLayer", "prepare"]
