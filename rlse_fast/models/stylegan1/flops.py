"""StyleGAN v1's multiply-adds per face for `rlse_fast.flops` (its `Backbone.macs`).

The resampling convolutions count as the network runs them on the given device
(`layers.fused_here`: fused, a stride-2 4x4 convolution, or unfused, a 3x3 convolution at the fine
resolution); v1's weights are not modulated, so PULSE mode (no fine-tuning) computes no weight
gradient.
"""
from __future__ import annotations

import torch

from .discriminator import DiscriminatorConfig
from .generator import GeneratorConfig
from .layers import fused_here

BLUR_TAPS = 9
"""StyleGAN v1's [1, 2, 1] x [1, 2, 1] blur: 3x3 taps per output pixel and channel."""


def generator_macs(g: GeneratorConfig, finetune: bool = True, filters: bool = True,
                   device: str = "cuda") -> tuple[float, float]:
    """(forward, backward) multiply-adds of a StyleGAN v1 synthesis network for one face.

    Per layer: the style dense (w -> 2C), the (up-)convolution (fused where the network runs it so
    on `device`: a stride-2 transposed 4x4 convolution on the coarse grid), with `filters` the blur
    after each upsampling; the final 1x1 toRGB. Backward: every convolution's input gradient (each
    layer's input depends on the latent through the styles before it), and its weight gradient only
    when fine-tuning; the style products' input gradients and, when fine-tuning, their weight
    gradients."""
    fwd = bwd = 0.0
    wgrad = 1 if finetune else 0
    for res in g.block_resolutions:
        c = g.channels(res)
        convs = []
        if res == 4:
            convs.append(c * c * 9 * 16)
        else:
            c_in = g.channels(res // 2)
            if fused_here(res, torch.device(device)):
                convs.append(c_in * c * 16 * (res // 2) ** 2)
            else:
                convs.append(c_in * c * 9 * res * res)
            if filters:
                fwd += c * res * res * BLUR_TAPS
                bwd += c * res * res * BLUR_TAPS
            convs.append(c * c * 9 * res * res)
        for macs in convs:
            fwd += macs
            bwd += macs * (1 + wgrad)
        fwd += 2 * 2 * c * g.w_dim  # two layers' styles
        bwd += 2 * 2 * c * g.w_dim * (1 + wgrad)
    torgb = g.img_channels * g.channels(g.img_resolution) * g.img_resolution ** 2
    return fwd + torgb, bwd + torgb * (1 + wgrad)


def discriminator_macs(d: DiscriminatorConfig, input_resolution: int, semantic_blocks: int,
                       filters: bool = True, device: str = "cuda") -> float:
    """Forward multiply-adds of StyleGAN v1's D from an image of `input_resolution` through the last
    block before the epilogue (L_s's last feature), for one face; the down-convolutions fused (a
    stride-2 4x4 convolution) where the network runs them so on `device`."""
    if semantic_blocks <= 0:
        return 0.0
    r = input_resolution
    total = d.img_channels * d.channels(r) * r * r  # fromRGB
    for res in d.block_resolutions:
        if res > r:
            continue
        c, c_out = d.channels(res), d.channels(res // 2)
        total += c * c * 9 * res * res  # conv0
        if fused_here(res, torch.device(device)):
            total += c * c_out * 16 * (res // 2) ** 2  # fused strided 4x4
        else:
            total += c * c_out * 9 * res * res  # conv, then a 2x2 average pool
        if filters:
            total += c * res * res * BLUR_TAPS
    return total


def iteration_macs(g: GeneratorConfig, d: DiscriminatorConfig | None, d_input: int, semantic_blocks: int,
                   finetune: bool, filters: bool, device: str) -> tuple[float, float, float]:
    """(G forward, G backward, D forward) multiply-adds for one face; D from an image of `d_input`
    pixels (the low-resolution image itself when L_s's input is native)."""
    g_fwd, g_bwd = generator_macs(g, finetune=finetune, filters=filters, device=device)
    d_fwd = (discriminator_macs(d, d_input, semantic_blocks, filters=filters, device=device)
             if d is not None else 0.0)
    return g_fwd, g_bwd, d_fwd
