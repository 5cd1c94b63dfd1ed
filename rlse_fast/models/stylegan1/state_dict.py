"""StyleGAN (v1) state dicts in our names: architecture inference from the tensors' shapes."""
from __future__ import annotations

import math
import re

import torch

from ...errors import UserError
from ..channels import channel_params
from .discriminator import DiscriminatorConfig
from .generator import GeneratorConfig


def infer_generator_config(sd: dict[str, torch.Tensor], fused_min_resolution: int = 128) -> GeneratorConfig:
    fcs = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
    layers = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"synthesis\.layer(\d+)\.bias", k)))
    if not fcs or not layers or "synthesis.const" not in sd or len(layers) % 2:
        raise UserError("the weights lack StyleGAN v1's mapping or synthesis layers; is this a StyleGAN v1 generator?")
    resolution = 2 ** (len(layers) // 2 + 1)
    channels = {2 ** (i // 2 + 2): sd[f"synthesis.layer{i}.bias"].shape[0] for i in layers}
    base, cmax = channel_params(channels, "generator")
    return GeneratorConfig(z_dim=sd["mapping.fc0.weight"].shape[1], w_dim=sd[f"mapping.fc{fcs[-1]}.weight"].shape[0],
                           img_resolution=resolution, img_channels=sd["synthesis.torgb.weight"].shape[0],
                           mapping_layers=len(fcs), channel_base=base, channel_max=cmax,
                           fused_min_resolution=fused_min_resolution)


def infer_discriminator_config(sd: dict[str, torch.Tensor], mbstd_group_size: int = 4,
                               fused_min_resolution: int = 128) -> DiscriminatorConfig:
    inputs = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"fromrgb(\d+)\.weight", k)))
    if not inputs or "b4.conv.weight" not in sd:
        raise UserError("the discriminator weights are not a StyleGAN v1 discriminator")
    top = inputs[-1]
    if inputs != [2**i for i in range(2, int(math.log2(top)) + 1)]:
        raise UserError(f"StyleGAN v1 discriminator: fromRGB layers at {inputs}, expected every resolution 4..{top}")
    channels = {r: sd[f"fromrgb{r}.weight"].shape[0] for r in inputs}
    base, cmax = channel_params(channels, "discriminator")
    c4 = channels[4]
    return DiscriminatorConfig(img_resolution=top, img_channels=sd[f"fromrgb{top}.weight"].shape[1], channel_base=base,
                               channel_max=cmax, mbstd_group_size=mbstd_group_size,
                               mbstd_num_channels=sd["b4.conv.weight"].shape[1] - c4,
                               fused_min_resolution=fused_min_resolution)
