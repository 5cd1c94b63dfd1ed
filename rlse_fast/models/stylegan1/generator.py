"""StyleGAN (v1, Karras et al. 2019) generator: the official TF architecture, through our ops.

Mapping: pixel-normalised z, `mapping_layers` dense layers with lrelu (gain sqrt 2 in the weights,
learning-rate multiplier 0.01). Synthesis, two layers per resolution: a learned 4x4 constant, then
(nearest 2x upsampling + 3x3 conv, run as TF's fused 4x4 transposed conv, which TF uses from
128 px up: at every resolution on a GPU, from 64 px on the CPU) + [1,2,1] blur,
and a 3x3 conv; each layer followed by noise (per-channel strength), bias, lrelu, instance norm and
AdaIN with its own W+ row; a 1x1 toRGB at the final resolution. Images (B, 3, R, R) in about
[-1, 1] (no tanh). Parameter names are ours; `rlse_fast.loaders.tf_pickle` maps the TF ones.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..stylegan2 import generator as stylegan2
from ..style_affines import StyleAffine
from .layers import STYLE_GAIN, adain_style, conv2d, conv_weight, dense, dense_gain, epilogue, blur, fused_here, up_conv

ARCHITECTURE = "stylegan1"


@dataclass(frozen=True)
class GeneratorConfig:
    """A StyleGAN v1 generator (the defaults are NVIDIA's FFHQ 1024 network)."""

    z_dim: int = 512
    w_dim: int = 512
    img_resolution: int = 1024
    img_channels: int = 3
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    channel_base: int = 16384
    """Channels at resolution r are min(channel_base // r, channel_max) (TF: fmap_base = channel_base / 2)."""
    channel_max: int = 512
    fused_min_resolution: int = 128
    """TF's setting, as read from the weights: its layers from this output size up use the fused
    up-sampling convolution, whose conv2d_transpose applies their weights spatially flipped. Ours
    run fused at every resolution on a GPU (flipping the other layers' weights at run time: the same
    function; on the CPU from 64 px up, `fused_here`); the field says which orientation each
    layer's weights have."""
    truncation_layers: int = 8
    """Rows that truncation moves toward w_avg (TF truncation_cutoff)."""

    # The same resolution ladder as StyleGAN2's: channels(res), block_resolutions (4..R), num_ws
    # (two per resolution), the power-of-two check.
    channels = stylegan2.GeneratorConfig.channels
    block_resolutions = stylegan2.GeneratorConfig.block_resolutions
    num_ws = stylegan2.GeneratorConfig.num_ws
    __post_init__ = stylegan2.GeneratorConfig.__post_init__

    @property
    def num_noise(self) -> int:
        """One noise input per layer (StyleGAN2 has none on its first)."""
        return self.num_ws


def config_dict(cfg) -> dict:
    return {"architecture": ARCHITECTURE, **asdict(cfg)}


class MappingNetwork(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        dims = [cfg.z_dim] + [cfg.w_dim] * cfg.mapping_layers
        for i in range(cfg.mapping_layers):
            setattr(self, f"fc{i}", _Dense(dims[i], dims[i + 1], init_std=1 / cfg.mapping_lr_multiplier))
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, broadcast=True, preactivation=False):
        """z (B, z_dim) -> ws (B, num_ws, w_dim), or (B, w_dim) with broadcast=False.

        preactivation=True: the last layer's output before its leaky ReLU (PULSE fits its Gaussian
        there); no truncation then."""
        x = z.to(torch.float32)
        x = x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        n = self.cfg.mapping_layers
        for i in range(n):
            fc = getattr(self, f"fc{i}")
            act = "linear" if (preactivation and i == n - 1) else "lrelu"
            x = dense(x, fc.weight, fc.bias, lr_mul=self.cfg.mapping_lr_multiplier, act=act)
        if preactivation:
            return x
        if broadcast:
            x = x.unsqueeze(1).repeat(1, self.cfg.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.cfg.truncation_layers if truncation_cutoff is None else truncation_cutoff
            if broadcast:
                x = x.clone()
                x[:, :cutoff] = self.w_avg.lerp(x[:, :cutoff], truncation_psi)
            else:
                x = self.w_avg.lerp(x, truncation_psi)
        return x


class _Dense(nn.Module):
    """Raw dense weights; `forward` is the equalised-lr layer (gain, lrelu or linear, no lr multiplier)."""

    def __init__(self, in_features, out_features, init_std=1.0, gain=1.0, act="linear"):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * init_std)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.gain, self.act = gain, act

    def forward(self, x):
        return dense(x, self.weight, self.bias, gain=self.gain, act=self.act)


class SynthesisLayer(nn.Module):
    """One synthesis layer: [(up-)conv + blur,] epilogue with its noise and style."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, up: bool, transposed: bool, first=False):
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.fused = up  # how the up-conv runs: TF's fused 4x4 transposed conv (see up_conv)
        self.transposed = transposed  # the weights' orientation: TF's fused layer's (see up_conv)
        self.first = first
        if not first:
            self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros(out_channels))
        self.style = _Dense(w_dim, 2 * out_channels)
        self.register_buffer("noise_const", torch.randn(resolution, resolution))

    def forward(self, x, w, noise=None, noise_mode="const", params=None):
        """x (B, C_in, r, r) (the const for the first layer); w (B, w_dim); noise: an explicit
        unit-variance map (B or 1, 1, R, R) overriding noise_mode; params: per-sample values."""
        p = params or {}
        if not self.first:
            weight = p.get("weight", self.weight)
            if self.up:
                fused = self.fused and fused_here(self.resolution, x.device)
                x = blur(up_conv(x, weight, fused, self.transposed))
            else:
                x = conv2d(x, conv_weight(weight).to(x.dtype), padding=1)
        if noise is None:
            if noise_mode == "const":
                noise = self.noise_const.reshape(1, 1, self.resolution, self.resolution)
            elif noise_mode == "random":
                noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device)
            elif noise_mode != "none":
                raise ValueError(f"noise_mode must be 'const', 'none' or 'random', got {noise_mode!r}")
        scale, shift = p.get("scale"), p.get("shift")  # made elsewhere (`style_affines`) or by StyleMod here
        if scale is None or shift is None:
            style = dense(w, p.get("style.weight", self.style.weight), p.get("style.bias", self.style.bias),
                          gain=STYLE_GAIN)
            scale, shift = adain_style(style)
        return epilogue(x, noise, p.get("noise_strength", self.noise_strength), p.get("bias", self.bias), scale, shift)


class SynthesisNetwork(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.num_ws = cfg.num_ws
        self.const = nn.Parameter(torch.ones(cfg.channels(4), 4, 4))
        i = 0
        for res in cfg.block_resolutions:
            c_out = cfg.channels(res)
            if res == 4:
                setattr(self, "layer0", SynthesisLayer(0, c_out, cfg.w_dim, 4, up=False, transposed=False, first=True))
            else:
                # TF fuses only from fused_min_resolution (128) up; below, the fused conv (with the
                # kernel flipped) is the same function at 4 / 9 of the unfused one's multiply-adds.
                setattr(self, f"layer{i}", SynthesisLayer(cfg.channels(res // 2), c_out, cfg.w_dim, res, up=True,
                                                          transposed=res >= cfg.fused_min_resolution))
            setattr(self, f"layer{i + 1}", SynthesisLayer(c_out, c_out, cfg.w_dim, res, up=False, transposed=False))
            i += 2
        self.torgb = _ToRGB(cfg.channels(cfg.img_resolution), cfg.img_channels)

    def layers(self) -> list[SynthesisLayer]:
        return [getattr(self, f"layer{i}") for i in range(self.num_ws)]

    def noise_layers(self) -> list[SynthesisLayer]:
        """The layers in the order of the noise inputs (coarse to fine; one per layer)."""
        return self.layers()

    def style_affines(self) -> list[StyleAffine]:
        """Each layer's StyleMod as two runs of its dense layer's rows on W+ row i: the AdaIN scale
        (rows [0, C), + 1 as `adain_style` adds it) and shift (rows [C, 2C)), each then a contiguous
        (B, C) tensor (`models/style_affines.py`)."""
        out = []
        for i, layer in enumerate(self.layers()):
            c = layer.bias.shape[0]
            gain = dense_gain(layer.style.weight.shape[1], STYLE_GAIN)
            out += [StyleAffine(f"layer{i}.scale", f"layer{i}.style", i, 0, c, gain, offset=1.0),
                    StyleAffine(f"layer{i}.shift", f"layer{i}.style", i, c, 2 * c, gain)]
        return out

    def forward(self, ws, noise_mode="const", noise=None, params=None, channels_last=False, return_layers=False):
        """ws (B, num_ws, w_dim) -> images (B, C, R, R) in about [-1, 1], float32.

        noise: None or a list of num_ws maps (B or 1, 1, r, r); params: per-sample values
        (B, *shape) by this network's parameter names ('layer3.weight', 'const', ...) for per-face
        fine-tuning, and optionally each layer's AdaIN scale and shift made elsewhere ('layer3.scale',
        'layer3.shift': see `style_affines`); channels_last: keep the activations NHWC (same values to float rounding);
        return_layers: also return each layer's output (a list)."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.cfg.w_dim:
            raise ValueError(f"ws must be (B, {self.num_ws}, {self.cfg.w_dim}), got {tuple(ws.shape)}")
        if noise is not None and len(noise) != self.num_ws:
            raise ValueError(f"noise must list {self.num_ws} maps, got {len(noise)}")
        params = params or {}
        batch = ws.shape[0]
        const = params.get("const")
        x = (self.const.unsqueeze(0).expand(batch, -1, -1, -1) if const is None else const).to(ws.dtype)
        outs = []
        for i, layer in enumerate(self.layers()):
            x = layer(x, ws[:, i], noise=None if noise is None else noise[i], noise_mode=noise_mode,
                      params=_sub(params, f"layer{i}"))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            outs.append(x)
        w = params.get("torgb.weight", self.torgb.weight)
        b = params.get("torgb.bias", self.torgb.bias).to(x.dtype)
        img = conv2d(x, conv_weight(w, gain=1.0).to(x.dtype))
        img = img + (b.reshape(1, -1, 1, 1) if b.ndim == 1 else b[:, :, None, None])
        img = img.to(torch.float32)
        return (img, outs) if return_layers else img


class _ToRGB(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))


def _sub(params: dict, prefix: str) -> dict:
    prefix += "."
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


class Generator(stylegan2.Generator):
    """Mapping + synthesis (StyleGAN2's Generator with v1's networks). `G(z)` -> images (B, C, R, R)
    in about [-1, 1]."""

    architecture = ARCHITECTURE
    mapping_act_gain = 1.0
    """The mapping's leaky ReLU has no gain in v1 (it is in the weights): W = lrelu(pre-activation)."""
    mapping_class = MappingNetwork
    synthesis_class = SynthesisNetwork


__all__ = ["ARCHITECTURE", "Generator", "GeneratorConfig", "MappingNetwork", "SynthesisNetwork", "config_dict"]
