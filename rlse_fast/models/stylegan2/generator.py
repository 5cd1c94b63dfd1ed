"""StyleGAN2 generator ('skip' output) and the layers both networks use, official StyleGAN2-ADA layout.

Module and parameter names follow NVIDIA's `training/networks.py`, so an official state dict
loads as it is; `rlse_fast.checkpoints` converts rosinality's layout to these names.
Images are (B, 3, R, R) in about [-1, 1].
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ...ops import bias_act, conv2d_resample, modulate, perface_conv, setup_filter, upsample2d
from . import fused_up


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


# ----------------------------------------------------------------------------- layers


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
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)


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

    w = modulate(weight, styles, demodulate=demodulate, out_dtype=x.dtype)
    if perface_conv.chosen(x):
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

    def forward(self, x, w, noise_mode="const", noise=None, fused_modconv=True, params=None, gain=1.0):
        """noise: an explicit unit-variance map (B or 1, 1, R, R), scaled by the learned strength;
        it overrides noise_mode. params: per-sample values (leading dim B) replacing this layer's
        parameters, by name ('weight', 'bias', 'noise_strength', 'affine.weight', 'affine.bias')."""
        if fused_up.applies(self, x, fused_modconv):
            return fused_up.forward(self, x, w, noise_mode, noise, params, gain)
        params = params or {}
        styles = self.affine(w, weight=params.get("affine.weight"), bias=params.get("affine.bias"))
        strength = params.get("noise_strength")
        strength = self.noise_strength if strength is None else strength.reshape(-1, 1, 1, 1)
        if noise is not None:
            noise = noise * strength
        elif noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * strength
        elif noise_mode == "const":
            noise = self.noise_const * strength
        elif noise_mode != "none":
            raise ValueError(f"noise_mode must be 'const', 'none' or 'random', got {noise_mode!r}")
        x = modulated_conv2d(x, params.get("weight", self.weight), styles, noise=noise, up=self.up,
                             padding=self.padding, resample_filter=self.resample_filter,
                             flip_weight=(self.up == 1), fused_modconv=fused_modconv)
        return _bias_act_maybe_per_sample(x, params.get("bias", self.bias), act="lrelu", gain=self.act_gain * gain,
                                          clamp=self.conv_clamp * gain if self.conv_clamp is not None else None)


def _bias_act_maybe_per_sample(x, b, act, gain=None, clamp=None):
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
        styles = self.affine(w, weight=params.get("affine.weight"), bias=params.get("affine.bias")) * self.weight_gain
        x = modulated_conv2d(x, params.get("weight", self.weight), styles, demodulate=False,
                             fused_modconv=fused_modconv)
        return _bias_act_maybe_per_sample(x, params.get("bias", self.bias), act="linear", clamp=self.conv_clamp)


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

    def forward(self, ws, noise_mode="const", noise=None, fused_modconv=None, params=None, channels_last=False):
        """ws: (B, num_ws, w_dim) W+ latents -> images (B, C, R, R) in about [-1, 1], float32.

        noise: None, or a list of cfg.num_noise maps (B or 1, 1, r, r) (None entries use noise_mode);
        params: per-sample parameter values (per-face fine-tuning), a dict from this network's
        parameter names ('b8.conv0.weight', 'b4.const', ...) to tensors (B, *param.shape).
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
            if channels_last:  # a no-op after the first block: the layers keep NHWC
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
