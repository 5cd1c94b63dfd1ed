"""StyleGAN (v1) discriminator: the official progressive TF architecture at lod 0, through our ops.

A fromRGB (1x1 conv + lrelu) exists at every resolution. Each block at resolution r (r >= 8): a
3x3 conv + lrelu, then [1,2,1] blur, a 3x3 conv with 2x downsampling (conv + 2x2 average pool, run
as TF's fused 4x4 strided conv: everywhere on a GPU, from 64 px on the CPU) + lrelu. The 4x4
epilogue: minibatch stddev, 3x3 conv, two dense layers. An image at a lower resolution r enters through fromRGB r and runs the blocks
from r down (`forward(img)` takes any power of two up to img_resolution): this is how the
progressive network scores a low-resolution image, as TF StyleGAN does at lod log2(R / r).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ...ops import bias_act
from ..frozen import RunTime, contexts
from ..stylegan2 import discriminator as stylegan2
from .generator import ARCHITECTURE, _Dense
from .layers import SQRT2, blur, conv2d, conv_weight, down_weight, fused_here, run_down


@dataclass(frozen=True)
class DiscriminatorConfig:
    img_resolution: int = 1024
    img_channels: int = 3
    channel_base: int = 16384
    channel_max: int = 512
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    fused_min_resolution: int = 128
    """TF's setting, as read from the weights: its blocks from this input size up use the fused
    down-sampling convolution. Ours use it at every resolution on a GPU, from 64 px on the CPU
    (`fused_here`; a strided conv2d like the unfused conv: no kernel flip), so the field changes
    nothing here; it is kept for the file format."""

    # As StyleGAN2's: channels(res); block_resolutions from the input down to 8 (each halves it).
    channels = stylegan2.DiscriminatorConfig.channels
    block_resolutions = stylegan2.DiscriminatorConfig.block_resolutions

    @property
    def input_resolutions(self) -> list[int]:
        return self.block_resolutions + [4]

    __post_init__ = stylegan2.DiscriminatorConfig.__post_init__


def config_dict(cfg) -> dict:
    return {"architecture": ARCHITECTURE, **asdict(cfg)}


class _Conv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x):
        """conv ('same') + bias + lrelu (no gain)."""
        w, b = self.run_time(x)
        y = conv2d(x, w, padding=w.shape[-1] // 2)
        return bias_act(y, b, act="lrelu", gain=1.0)

    def run_time(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) as a call on x uses them: gained, in x's dtype."""
        return conv_weight(self.weight).to(x.dtype), self.bias.to(x.dtype)


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_channels, out_channels, resolution, fused: bool):
        super().__init__()
        self.resolution = resolution
        self.fused = fused
        self.conv0 = _Conv(in_channels, in_channels, 3)
        self.conv1 = _Conv(in_channels, out_channels, 3)  # applied with downsampling

    def forward(self, x):
        x = self.conv0(x)
        fused = self.fused_on(x.device)
        w, b = self.run_time(x, fused)
        return bias_act(run_down(blur(x), w, fused), b, act="lrelu", gain=1.0)

    def fused_on(self, device: torch.device) -> bool:
        return self.fused and fused_here(self.resolution, device)

    def run_time(self, x, fused: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(down-sampling weight, bias) as a call on conv0's output x uses them (`layers.down_weight`)."""
        return down_weight(self.conv1.weight, x.dtype, fused), self.conv1.bias.to(x.dtype)


class _FrozenConv(_Conv):
    """A frozen `_Conv` with its run-time weight and bias made once per context (`frozen.RunTime`)."""

    def __init__(self, conv: _Conv, dtype: torch.dtype | None):
        nn.Module.__init__(self)
        ctx = contexts(dtype)
        self.weights = RunTime(lambda d: conv_weight(conv.weight).to(d), ctx, conv_arg=True)
        self.biases = RunTime(conv.bias.to, ctx, conv_arg=False)

    def run_time(self, x):
        return self.weights.get(x), self.biases.get(x)


class _FrozenBlock(DiscriminatorBlock):
    """A frozen `DiscriminatorBlock`: conv0 a `_FrozenConv`, the down-sampling weight (fused or not, as
    on the device it was made on) and bias made once per context."""

    def __init__(self, block: DiscriminatorBlock, dtype: torch.dtype | None):
        nn.Module.__init__(self)
        self.resolution = block.resolution
        self.fused = block.fused_on(block.conv1.weight.device)
        self.device_type = block.conv1.weight.device.type
        ctx = contexts(dtype)
        self.conv0 = _FrozenConv(block.conv0, dtype)
        self.weights = RunTime(lambda d: down_weight(block.conv1.weight, d, self.fused), ctx, conv_arg=True)
        self.biases = RunTime(block.conv1.bias.to, ctx, conv_arg=False)

    def fused_on(self, device: torch.device) -> bool:
        if device.type != self.device_type:
            raise RuntimeError(f"this frozen block was prepared on {self.device_type}, called on {device.type}")
        return self.fused

    def run_time(self, x, fused: bool):
        return self.weights.get(x), self.biases.get(x)


class DiscriminatorEpilogue(stylegan2.DiscriminatorEpilogue):
    """StyleGAN2's epilogue (mbstd, 3x3 conv, two dense layers; its forward) with v1's layers."""

    def __init__(self, channels, group_size, num_channels):
        nn.Module.__init__(self)
        self.mbstd = stylegan2.MinibatchStdLayer(group_size, num_channels) if num_channels > 0 else None
        self.conv = _Conv(channels + num_channels, channels, 3)
        self.fc = _Dense(channels * 16, channels, gain=SQRT2, act="lrelu")
        self.out = _Dense(channels, 1)


class Discriminator(nn.Module):
    """`D(img)` -> logits (B, 1) for img (B, 3, r, r) in [-1, 1], r any power of two in 4..R.

    `D(img, return_features=True)` -> (logits, features): 'fromrgb{r}' (the entry), 'b{res}' (each
    block's output, from r down) and 'b4' (the epilogue's conv output before the dense layers)."""

    architecture = ARCHITECTURE

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        self.img_resolution = cfg.img_resolution
        self.block_resolutions = cfg.block_resolutions
        for res in cfg.input_resolutions:
            setattr(self, f"fromrgb{res}", _Conv(cfg.img_channels, cfg.channels(res), 1))
        for res in cfg.block_resolutions:
            # Fused as in the generator (see fused_here): the same function at 4 / 9 of the cost.
            setattr(self, f"b{res}", DiscriminatorBlock(cfg.channels(res), cfg.channels(res // 2), res, fused=True))
        self.b4 = DiscriminatorEpilogue(cfg.channels(4), cfg.mbstd_group_size, cfg.mbstd_num_channels)

    def reachable(self, resolution: int) -> list[str]:
        """The feature names an image of `resolution` px passes, before the epilogue (whose
        minibatch stddev mixes the faces of a batch): its fromRGB, then the blocks from there down."""
        return [f"fromrgb{resolution}"] + [f"b{res}" for res in self.block_resolutions if res <= resolution]

    def run(self, img, names: list[str] | None = None):
        """(last output, {name: feature}) for img (B, C, r, r); with `names`, stops once it has them."""
        r = img.shape[-1]
        if img.ndim != 4 or img.shape[-2] != r or r not in self.cfg.input_resolutions:
            raise ValueError(f"discriminator input must be (B, {self.cfg.img_channels}, r, r) with r a power of two "
                             f"in 4..{self.img_resolution}, got {tuple(img.shape)}")
        x = getattr(self, f"fromrgb{r}")(img)
        out = {f"fromrgb{r}": x}
        if names is not None and set(names) <= set(out):
            return x, out
        for res in self.block_resolutions:
            if res > r:
                continue
            x = getattr(self, f"b{res}")(x)
            out[f"b{res}"] = x
            if names is not None and set(names) <= set(out):
                break
        return x, out

    def forward(self, img, c=None, return_features=False):
        x, features = self.run(img)
        logits = self.b4(x, features)
        return (logits, features) if return_features else logits


def prepare(D: Discriminator, dtype: torch.dtype | None, memory_format=torch.contiguous_format) -> Discriminator:
    """A frozen copy of D for runs under autocast to `dtype` (None: fp32) with activations in
    `memory_format`, on D's device: every convolution's run-time weight and bias (and each block's
    down-sampling kernel) made once, in that dtype and layout (`_FrozenConv`, `_FrozenBlock`); D's
    fp32 conv weights are not kept. The epilogue's dense layers (which L_s never reaches) stay as
    they are. D itself is untouched."""
    D = copy.deepcopy(D).requires_grad_(False).to(memory_format=memory_format)
    for name, child in list(D.named_children()):  # fromrgb{r}: _Conv; b{r}: blocks; b4: the epilogue
        if isinstance(child, DiscriminatorBlock):
            setattr(D, name, _FrozenBlock(child, dtype))
        elif isinstance(child, _Conv):
            setattr(D, name, _FrozenConv(child, dtype))
    D.b4.conv = _FrozenConv(D.b4.conv, dtype)
    return D


__all__ = ["Discriminator", "DiscriminatorConfig", "config_dict", "prepare"]
