"""StyleGAN2 generator ('skip' output), official StyleGAN2-ADA layout (its layers: `layers.py`).

Module and parameter names follow NVIDIA's `training/networks.py`, so an official state dict
loads as it is; `rlse_fast.checkpoints` converts rosinality's layout to these names.
Images are (B, 3, R, R) in about [-1, 1].
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ...ops import perface_conv, setup_filter, upsample2d
from ..style_affines import StyleAffine
from . import fused_up
from .layers import FullyConnectedLayer, bias_act_per_sample, modulated_conv2d, normalize_2nd_moment


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of a StyleGAN2 generator (the defaults are FFHQ config-f at 1024)."""

    z_dim: int = 512
    """Size of the input latent z."""
    w_dim: int = 512
    """Size of the intermediate latent w."""
    img_resolution: int = 1024
    """Output resolution, a power of two >= 4."""
    img_channels: int = 3
    """Output channels."""
    mapping_layers: int = 8
    """Fully connected layers in the mapping network."""
    channel_base: int = 32768
    """Channels at resolution r are min(channel_base // r, channel_max)."""
    channel_max: int = 512
    """Upper bound on channels."""
    conv_clamp: float | None = None
    """Clamp of the convolution outputs (None: no clamp)."""
    mapping_lr_multiplier: float = 0.01
    """Learning-rate multiplier of the mapping network (scales its weights and biases)."""

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    @property
    def block_resolutions(self) -> list[int]:
        return [2**i for i in range(2, int(math.log2(self.img_resolution)) + 1)]

    @property
    def num_ws(self) -> int:
        return 2 * len(self.block_resolutions)

    @property
    def num_noise(self) -> int:
        """Number of noise inputs (one per synthesis layer)."""
        return 2 * len(self.block_resolutions) - 1

    def __post_init__(self):
        r = self.img_resolution
        if r < 4 or r & (r - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {r}")


def config_dict(cfg) -> dict:
    return asdict(cfg)


def affine_styles(layer: nn.Module, w, params: dict, gain: float = 1.0):
    """(B, in_channels): params['styles'] where given (made elsewhere, `models/style_affines.py`, the gain
    included), else `layer`'s affine of w (B, w_dim), times `gain`."""
    styles = params.get("styles")
    if styles is None:
        styles = layer.affine(w, weight=params.get("affine.weight"), bias=params.get("affine.bias"))
        if gain != 1:
            styles = styles * gain
    return styles


class SynthesisLayer(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1,
                 resample_filter=(1, 3, 3, 1), conv_clamp=None):
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = math.sqrt(2)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def styles(self, w, params: dict):
        return affine_styles(self, w, params)

    def unit_noise(self, x, noise_mode="const", noise=None):
        """The unit-variance noise map this call adds (before the learned strength), or None: an
        explicit `noise` as it is, else a fresh random map, the layer's constant map, or none."""
        if noise is not None:
            return noise
        if noise_mode == "random":
            return torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
        if noise_mode == "const":
            return self.noise_const
        if noise_mode != "none":
            raise ValueError(f"noise_mode must be 'const', 'none' or 'random', got {noise_mode!r}")
        return None

    def forward(self, x, w, noise_mode="const", noise=None, fused_modconv=True, params=None, gain=1.0):
        """noise: an explicit unit-variance map (B or 1, 1, R, R), scaled by the learned strength;
        it overrides noise_mode. params: per-sample values (leading dim B) replacing this layer's
        parameters, by name ('weight', 'bias', 'noise_strength', 'affine.weight', 'affine.bias'), and
        'styles': this layer's (B, in_channels) styles made elsewhere (`models/style_affines.py`),
        in place of its affine's."""
        if fused_up.applies(self, x, fused_modconv):
            return fused_up.forward(self, x, w, noise_mode, noise, params, gain)
        if fused_up.applies_conv(self, x, fused_modconv):
            return fused_up.forward_conv(self, x, w, noise_mode, noise, params, gain)
        params = params or {}
        styles = self.styles(w, params)
        strength = params.get("noise_strength")
        strength = self.noise_strength if strength is None else strength.reshape(-1, 1, 1, 1)
        noise = self.unit_noise(x, noise_mode, noise)
        if noise is not None:
            noise = noise * strength
        x = modulated_conv2d(x, params.get("weight", self.weight), styles, noise=noise, up=self.up,
                             padding=self.padding, resample_filter=self.resample_filter,
                             flip_weight=(self.up == 1), fused_modconv=fused_modconv)
        return bias_act_per_sample(x, params.get("bias", self.bias), act="lrelu", gain=self.act_gain * gain,
                                   clamp=self.conv_clamp * gain if self.conv_clamp is not None else None)


class ToRGBLayer(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x, w, fused_modconv=True, params=None):
        params = params or {}
        styles = affine_styles(self, w, params, self.weight_gain)
        x = modulated_conv2d(x, params.get("weight", self.weight), styles, demodulate=False,
                             fused_modconv=fused_modconv)
        return bias_act_per_sample(x, params.get("bias", self.bias), act="linear", clamp=self.conv_clamp)


def _sub(params: dict | None, prefix: str) -> dict:
    """The entries of `params` under 'prefix.', with the prefix removed."""
    if not params:
        return {}
    prefix += "."
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


class SynthesisBlock(nn.Module):
    """One resolution of the 'skip' synthesis network: [up-conv,] conv, toRGB added to the upsampled image."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, conv_clamp=None,
                 resample_filter=(1, 3, 3, 1)):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2

    def layers(self) -> list[SynthesisLayer]:
        return [self.conv1] if self.in_channels == 0 else [self.conv0, self.conv1]

    def forward(self, x, img, ws, noise_mode="const", noises=None, fused_modconv=True, params=None):
        """ws: (B, num_conv + 1, w_dim); noises: per-layer maps or None; params: per-sample
        parameter values by name relative to this block ('conv1.weight', 'const', ...)."""
        params = params or {}
        w_iter = iter(ws.unbind(dim=1))
        noises = noises or [None] * self.num_conv
        if self.in_channels == 0:
            const = params.get("const")
            if const is None:
                x = self.const.to(ws.dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            else:
                x = const.to(ws.dtype)
        for layer_name, layer, noise in zip(("conv0", "conv1")[2 - self.num_conv:], self.layers(), noises):
            x = layer(x, next(w_iter), noise_mode=noise_mode, noise=noise, fused_modconv=fused_modconv,
                      params=_sub(params, layer_name))
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv, params=_sub(params, "torgb"))
        y = y.to(torch.float32)
        img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.block_resolutions = cfg.block_resolutions
        self.num_ws = cfg.num_ws
        for res in self.block_resolutions:
            in_channels = cfg.channels(res // 2) if res > 4 else 0
            block = SynthesisBlock(in_channels, cfg.channels(res), cfg.w_dim, res, cfg.img_channels,
                                   conv_clamp=cfg.conv_clamp)
            setattr(self, f"b{res}", block)

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def noise_layers(self) -> list[SynthesisLayer]:
        """The synthesis layers in the order of the noise inputs (coarse to fine)."""
        return [layer for block in self.blocks() for layer in block.layers()]

    def style_affines(self) -> list[StyleAffine]:
        """Every layer's style affine in the order the layers run, with the W+ row each reads
        (`forward`'s walk over ws) and ToRGB's weight gain on its styles (`models/style_affines.py`)."""
        out, w_idx = [], 0
        for res, block in zip(self.block_resolutions, self.blocks()):
            names = ("conv0", "conv1")[2 - block.num_conv:] + ("torgb",)
            for j, (name, layer) in enumerate(zip(names, block.layers() + [block.torgb])):
                affine = layer.affine
                out.append(StyleAffine(f"b{res}.{name}.styles", f"b{res}.{name}.affine", w_idx + j, 0,
                                       affine.weight.shape[0], affine.weight_gain,
                                       gain=layer.weight_gain if name == "torgb" else 1.0))
            w_idx += block.num_conv
        return out

    def forward(self, ws, noise_mode="const", noise=None, fused_modconv=None, params=None, channels_last=False):
        """ws: (B, num_ws, w_dim) W+ latents -> images (B, C, R, R) in about [-1, 1], float32.

        noise: None, or a list of cfg.num_noise maps (B or 1, 1, r, r) (None entries use noise_mode);
        params: per-sample parameter values (per-face fine-tuning), a dict from this network's
        parameter names ('b8.conv0.weight', 'b4.const', ...) to tensors (B, *param.shape), and
        optionally each layer's styles made elsewhere ('b8.conv0.styles': see `style_affines`).
        fused_modconv: None picks the grouped convolution in eval mode, at batch 1, or with params.
        channels_last: run the activations in NHWC after the first block, where cuDNN wants them (the
        same values to float rounding). A batch of B > 1 then runs as B passes of one sample each,
        concatenated: the grouped per-sample convolution folds the batch into the channels, which
        an NHWC tensor cannot do without a copy (inside a CUDA graph the extra launches cost the
        host nothing); where the per-face convolution is chosen (`ops.perface_conv.chosen`), the
        batch runs whole, NHWC throughout.
        """
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.cfg.w_dim:
            raise ValueError(f"ws must be (B, {self.num_ws}, {self.cfg.w_dim}), got {tuple(ws.shape)}")
        if noise is not None and len(noise) != self.cfg.num_noise:
            raise ValueError(f"noise must list {self.cfg.num_noise} maps, got {len(noise)}")
        batch = ws.shape[0]
        if channels_last and batch > 1 and not perface_conv.chosen(ws):
            def one(t, i):  # sample i of a per-sample tensor; a shared one (leading 1) as it is
                return t if t is None or t.shape[0] == 1 else t[i:i + 1]

            return torch.cat([
                self.forward(ws[i:i + 1], noise_mode, None if noise is None else [one(n, i) for n in noise],
                             fused_modconv, None if params is None else {k: one(v, i) for k, v in params.items()},
                             channels_last=True)
                for i in range(batch)])
        if fused_modconv is None:
            fused_modconv = (not self.training) or ws.shape[0] == 1 or bool(params)
        x = img = None
        w_idx = 0
        n_idx = 0
        for res, block in zip(self.block_resolutions, self.blocks()):
            block_ws = ws.narrow(1, w_idx, block.num_conv + 1)
            block_noise = noise[n_idx:n_idx + block.num_conv] if noise is not None else None
            x, img = block(x, img, block_ws, noise_mode=noise_mode, noises=block_noise,
                           fused_modconv=fused_modconv, params=_sub(params, f"b{res}"))
            # NHWC for the next block. Where the layers keep NHWC this returns x itself; on the CPU an
            # up-block's transposed convolution returns NCHW for an NHWC input (its weight, `modulate`'s
            # output, is NCHW), the rest of that block runs NCHW, and this copies its output back.
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
                img = img.contiguous(memory_format=torch.channels_last)
            w_idx += block.num_conv
            n_idx += block.num_conv
        return img


class MappingNetwork(nn.Module):
    def __init__(self, cfg: GeneratorConfig, w_avg_beta: float = 0.995):
        super().__init__()
        self.cfg = cfg
        self.num_ws = cfg.num_ws
        self.w_avg_beta = w_avg_beta
        features = [cfg.z_dim] + [cfg.w_dim] * cfg.mapping_layers
        for idx in range(cfg.mapping_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu",
                                        lr_multiplier=cfg.mapping_lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([cfg.w_dim]))

    def layers(self) -> list[FullyConnectedLayer]:
        return [getattr(self, f"fc{idx}") for idx in range(self.cfg.mapping_layers)]

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, broadcast=True, preactivation=False):
        """z: (B, z_dim) -> ws (B, num_ws, w_dim), or (B, w_dim) with broadcast=False.

        preactivation=True returns the last layer's output before its leaky ReLU and gain (the
        space where PULSE fits a Gaussian); truncation does not apply then.
        """
        x = normalize_2nd_moment(z.to(torch.float32))
        layers = self.layers()
        for i, layer in enumerate(layers):
            last = i == len(layers) - 1
            x = layer(x, activation="linear" if (last and preactivation) else None)
        if preactivation:
            return x
        if self.training and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if broadcast:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if not broadcast:
                x = self.w_avg.lerp(x, truncation_psi)
            elif truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


class Generator(nn.Module):
    """Mapping + synthesis. `G(z)` -> images (B, C, R, R) in about [-1, 1]."""

    mapping_class = MappingNetwork
    synthesis_class = SynthesisNetwork

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.z_dim = cfg.z_dim
        self.w_dim = cfg.w_dim
        self.img_resolution = cfg.img_resolution
        self.img_channels = cfg.img_channels
        self.num_ws = cfg.num_ws
        self.mapping = self.mapping_class(cfg)
        self.synthesis = self.synthesis_class(cfg)

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


__all__ = ["Generator", "GeneratorConfig", "MappingNetwork", "SynthesisNetwork", "config_dict", "modulated_conv2d"]
