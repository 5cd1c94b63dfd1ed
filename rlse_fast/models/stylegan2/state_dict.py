"""StyleGAN2's state-dict layout: the official names (NVIDIA's pickles; our safetensors files), the
architecture read back from the tensors' shapes, and rosinality's names mapped onto them."""
from __future__ import annotations

import re

import torch

from ...errors import UserError
from ..channels import channel_params
from .discriminator import DiscriminatorConfig
from .generator import GeneratorConfig


def infer_generator_config(sd: dict[str, torch.Tensor], conv_clamp=None) -> GeneratorConfig:
    """Architecture from an official-layout generator state dict (keys 'mapping.*', 'synthesis.*')."""
    fcs = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
    resolutions = sorted({int(m.group(1)) for k in sd if (m := re.match(r"synthesis\.b(\d+)\.", k))})
    if not fcs or not resolutions or "synthesis.b4.const" not in sd:
        raise UserError("the generator weights lack the mapping or synthesis network; is this a StyleGAN2 generator?")
    channels = {4: sd["synthesis.b4.const"].shape[0]}
    channels.update({res: sd[f"synthesis.b{res}.conv1.weight"].shape[0] for res in resolutions})
    base, cmax = channel_params(channels, "generator")
    return GeneratorConfig(
        z_dim=sd["mapping.fc0.weight"].shape[1],
        w_dim=sd[f"mapping.fc{fcs[-1]}.weight"].shape[0],
        img_resolution=resolutions[-1],
        img_channels=sd[f"synthesis.b{resolutions[-1]}.torgb.weight"].shape[0],
        mapping_layers=len(fcs),
        channel_base=base,
        channel_max=cmax,
        conv_clamp=conv_clamp,
    )


def infer_discriminator_config(sd: dict[str, torch.Tensor], conv_clamp=None, mbstd_group_size=4) -> DiscriminatorConfig:
    resolutions = sorted({int(m.group(1)) for k in sd if (m := re.match(r"b(\d+)\.", k))})
    top = resolutions[-1]
    if f"b{top}.fromrgb.weight" not in sd or "b4.conv.weight" not in sd:
        raise UserError("the discriminator weights are not a StyleGAN2 'resnet' discriminator")
    channels = {top: sd[f"b{top}.fromrgb.weight"].shape[0], 4: sd["b4.conv.weight"].shape[0]}
    channels.update({res // 2: sd[f"b{res}.conv1.weight"].shape[0] for res in resolutions if res > 4})
    base, cmax = channel_params(channels, "discriminator")
    return DiscriminatorConfig(
        img_resolution=top,
        img_channels=sd[f"b{top}.fromrgb.weight"].shape[1],
        channel_base=base,
        channel_max=cmax,
        mbstd_group_size=mbstd_group_size,
        mbstd_num_channels=sd["b4.conv.weight"].shape[1] - channels[4],
        conv_clamp=conv_clamp,
    )


def rosinality_to_official(g_ema: dict[str, torch.Tensor] | None, d: dict[str, torch.Tensor] | None,
                           latent_avg: torch.Tensor | None = None):
    """Rename rosinality's StyleGAN2 state dicts to the official layout. Returns (G sd, D sd)."""
    g_sd = None
    if g_ema is not None:
        g_sd = {}
        n_convs = len({k.split(".")[1] for k in g_ema if k.startswith("convs.")})
        for k, v in g_ema.items():
            m = re.fullmatch(r"style\.(\d+)\.(weight|bias)", k)
            if m:
                g_sd[f"mapping.fc{int(m.group(1)) - 1}.{m.group(2)}"] = v
        g_sd["synthesis.b4.const"] = g_ema["input.input"][0]
        layers = [("b4.conv1", "conv1")] + [
            (f"b{8 * 2 ** (i // 2)}.conv{i % 2}", f"convs.{i}") for i in range(n_convs)
        ]
        for i, (ours, theirs) in enumerate(layers):
            g_sd[f"synthesis.{ours}.weight"] = g_ema[f"{theirs}.conv.weight"][0]
            g_sd[f"synthesis.{ours}.affine.weight"] = g_ema[f"{theirs}.conv.modulation.weight"]
            g_sd[f"synthesis.{ours}.affine.bias"] = g_ema[f"{theirs}.conv.modulation.bias"]
            g_sd[f"synthesis.{ours}.noise_strength"] = g_ema[f"{theirs}.noise.weight"].reshape([])
            g_sd[f"synthesis.{ours}.bias"] = g_ema[f"{theirs}.activate.bias"]
            g_sd[f"synthesis.{ours}.noise_const"] = g_ema[f"noises.noise_{i}"][0, 0]
        rgbs = [("b4", "to_rgb1")] + [(f"b{8 * 2 ** i}", f"to_rgbs.{i}") for i in range(n_convs // 2)]
        for ours, theirs in rgbs:
            g_sd[f"synthesis.{ours}.torgb.weight"] = g_ema[f"{theirs}.conv.weight"][0]
            g_sd[f"synthesis.{ours}.torgb.bias"] = g_ema[f"{theirs}.bias"].reshape(-1)
            g_sd[f"synthesis.{ours}.torgb.affine.weight"] = g_ema[f"{theirs}.conv.modulation.weight"]
            g_sd[f"synthesis.{ours}.torgb.affine.bias"] = g_ema[f"{theirs}.conv.modulation.bias"]
        w_dim = g_sd["mapping.fc0.weight"].shape[0]
        g_sd["mapping.w_avg"] = latent_avg.reshape(-1) if latent_avg is not None else torch.zeros(w_dim)
    d_sd = None
    if d is not None:
        n_blocks = len({k.split(".")[1] for k in d if k.startswith("convs.")}) - 1
        top = 4 * 2**n_blocks
        d_sd = {
            f"b{top}.fromrgb.weight": d["convs.0.0.weight"],
            f"b{top}.fromrgb.bias": d["convs.0.1.bias"],
            "b4.conv.weight": d["final_conv.0.weight"],
            "b4.conv.bias": d["final_conv.1.bias"],
            "b4.fc.weight": d["final_linear.0.weight"],
            "b4.fc.bias": d["final_linear.0.bias"],
            "b4.out.weight": d["final_linear.1.weight"],
            "b4.out.bias": d["final_linear.1.bias"],
        }
        for i in range(1, n_blocks + 1):
            res = top // 2 ** (i - 1)
            d_sd[f"b{res}.conv0.weight"] = d[f"convs.{i}.conv1.0.weight"]
            d_sd[f"b{res}.conv0.bias"] = d[f"convs.{i}.conv1.1.bias"]
            d_sd[f"b{res}.conv1.weight"] = d[f"convs.{i}.conv2.1.weight"]
            d_sd[f"b{res}.conv1.bias"] = d[f"convs.{i}.conv2.2.bias"]
            d_sd[f"b{res}.skip.weight"] = d[f"convs.{i}.skip.1.weight"]
    return g_sd, d_sd
