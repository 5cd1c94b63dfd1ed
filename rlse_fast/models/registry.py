"""Backbones by name: each architecture's networks and configs, and what the engine needs to know
about them, registered once.

The protocol a backbone's networks follow (what the engine, the loaders and the Gaussian fit call):
- generator G (an nn.Module built from its config, `G.cfg`): `img_resolution`, `num_ws`, `w_dim`;
  `mapping(z, c)` to W; `mapping_act_gain`, the W transform's gain (`gaussian_fit.to_w`: None for
  the leaky ReLU's own sqrt 2); `synthesis(ws, noise=, params=, channels_last=)` -> (B, 3, R, R) in
  about [-1, 1], with `synthesis.noise_layers()` (each with `.resolution`) and per-face `params`
  (B-stacked copies of `synthesis.named_parameters()`); optionally `synthesis.style_affines()`, its
  layers' style affines, whose outputs the layers then take precomputed in `params`
  (`models/style_affines.py`, the fast loop's `packed_styles`);
- discriminator D: `img_resolution`, `cfg`; with `native_lr_input` (a fromRGB at every resolution:
  the low-resolution image enters at its own size) `reachable(resolution)` -> feature names and
  `run(img, names)` -> (score, {name: features}); otherwise `block_resolutions` and blocks `b{res}`
  taking (x, img) at D's own resolution (`engine.semantic`);
- optionally `prepare_discriminator(D, dtype, memory_format)`: a frozen copy of D whose run-time
  weights are made once for that autocast dtype and layout (`models/frozen.py`);
- its FLOP model (`macs`, what `rlse_fast.flops` counts): multiply-adds per face of G forward, G
  backward and D forward, in the backbone's own `flops.py`.
A third backbone is one module (or folder) of networks and one `register` call at the end of this file.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch

from . import stylegan1, stylegan2
from .stylegan1 import discriminator as stylegan1_discriminator, flops as stylegan1_flops
from .stylegan2 import discriminator as stylegan2_discriminator, flops as stylegan2_flops


@dataclass(frozen=True)
class Backbone:
    name: str
    """The 'architecture' a weights file's config records (StyleGAN2's files record none)."""
    generator: type
    discriminator: type
    generator_config: type
    discriminator_config: type
    generator_config_dict: Callable[[object], dict]
    """Config -> the JSON-able dict our safetensors files store (with 'architecture' unless StyleGAN2)."""
    discriminator_config_dict: Callable[[object], dict]
    native_lr_input: bool
    """D takes a low-resolution image through the fromRGB of that resolution (L_s 'native' input)."""
    macs: Callable[..., tuple[float, float, float]]
    """(g_cfg, d_cfg or None, d_input, semantic_blocks, finetune, filters, device) -> multiply-adds
    per face of (G forward, G backward, D forward); d_input: the resolution D's input has (the
    low-resolution image's own size when L_s's input is native); device: 'cuda', 'cpu', ... where
    the networks run, for layers that run differently there."""
    prepare_discriminator: Callable | None = None
    """(D, autocast dtype or None, memory format) -> a frozen copy of D with its run-time weights made
    once for that precision and layout, bit for bit the same features (`models/frozen.py`); None: a
    backbone without one runs its own D (a plain copy of it for channels-last)."""


_BACKBONES: dict[str, Backbone] = {}
_ROLES: dict[type, tuple[Backbone, str]] = {}
ROLES = ("generator", "discriminator", "generator_config", "discriminator_config")


def register(backbone: Backbone) -> None:
    _BACKBONES[backbone.name] = backbone
    for role in ROLES:
        _ROLES[getattr(backbone, role)] = (backbone, role)


def names() -> tuple[str, ...]:
    return tuple(_BACKBONES)


def get(name: str) -> Backbone | None:
    return _BACKBONES.get(name)


def of(obj) -> tuple[Backbone, str] | tuple[None, None]:
    """(backbone, role) of a network or a config, by its most derived registered class (StyleGAN v1's
    classes subclass StyleGAN2's); (None, None) for an object of no registered backbone."""
    for cls in type(obj).__mro__:
        if cls in _ROLES:
            return _ROLES[cls]
    return None, None


def prepare_discriminator(D, dtype: torch.dtype | None, memory_format=torch.contiguous_format):
    """The frozen D as runs under autocast to `dtype` (None: fp32) with activations in `memory_format`
    take it: its backbone's `prepare_discriminator` (a private copy), else a plain copy in that
    layout, or D itself in the default layout."""
    backbone, _ = of(D)
    if backbone is not None and backbone.prepare_discriminator is not None:
        return backbone.prepare_discriminator(D, dtype, memory_format)
    if memory_format == torch.contiguous_format:
        return D
    return copy.deepcopy(D).to(memory_format=memory_format)


def _register_builtins() -> None:
    register(Backbone("stylegan2", stylegan2.Generator, stylegan2.Discriminator, stylegan2.GeneratorConfig,
                      stylegan2.DiscriminatorConfig, stylegan2.config_dict, stylegan2.config_dict,
                      native_lr_input=False, macs=stylegan2_flops.iteration_macs,
                      prepare_discriminator=stylegan2_discriminator.prepare))
    register(Backbone(stylegan1.ARCHITECTURE, stylegan1.Generator, stylegan1_discriminator.Discriminator,
                      stylegan1.GeneratorConfig, stylegan1_discriminator.DiscriminatorConfig, stylegan1.config_dict,
                      stylegan1_discriminator.config_dict, native_lr_input=True, macs=stylegan1_flops.iteration_macs,
                      prepare_discriminator=stylegan1_discriminator.prepare))


_register_builtins()
