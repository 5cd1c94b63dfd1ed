"""StyleGAN2's multiply-adds per face for `rlse_fast.flops` (its `Backbone.macs`).

- generator: per layer the affine (style) product, the modulated 3x3 convolution (the up-sampling
  ones as a stride-2 transposed convolution on the coarse grid), the 1x1 toRGB; with `filters`, the
  4x4 FIR filters after each up-convolution and on the skip image. Backward: the gradient w.r.t.
  each convolution's input (all but the first layer's, unless its const is fine-tuned) and w.r.t.
  its per-face modulated weight (always: the styles depend on the latent), the affine products'
  input gradients and, when fine-tuning, their weight gradients;
- discriminator (L_s): the blocks from D's input resolution down to the last one L_s reads, forward
  only (the caller doubles it for the input gradient; D's weights are not optimised); with
  `filters`, the FIR filters of its down-sampling layers.
The FIR terms follow the reference ops (a 4x4 filter evaluated at the output grid); the native
kernels do the same arithmetic.
"""
from __future__ import annotations

from .discriminator import DiscriminatorConfig
from .generator import GeneratorConfig

FIR_TAPS = 16
"""The [1, 3, 3, 1] filter as the reference applies it: 4x4 taps per output pixel and channel."""


def generator_macs(g: GeneratorConfig, finetune: bool = True, filters: bool = True) -> tuple[float, float]:
    """(forward, backward) multiply-adds of the synthesis network for one face."""
    fwd = bwd = 0.0
    w = g.w_dim
    for res in g.block_resolutions:
        c_out = g.channels(res)
        convs = []  # (macs, input needs a gradient)
        affines = []  # input channels of each layer's style
        if res == 4:
            convs.append((c_out * c_out * 9 * res * res, finetune))  # conv1 on the const
            affines.append(c_out)
        else:
            c_in = g.channels(res // 2)
            convs.append((c_in * c_out * 9 * (res // 2) ** 2, True))  # conv0: transposed, coarse grid
            affines.append(c_in)
            if filters:
                fir = c_out * res * res * FIR_TAPS
                fwd += fir
                bwd += fir
            convs.append((c_out * c_out * 9 * res * res, True))  # conv1
            affines.append(c_out)
            if filters:  # the skip image's upsampling (3 channels)
                fir = g.img_channels * res * res * FIR_TAPS
                fwd += fir
                bwd += fir
        convs.append((g.img_channels * c_out * res * res, True))  # toRGB 1x1
        affines.append(c_out)
        for macs, input_grad in convs:
            fwd += macs
            bwd += macs  # weight gradient: the modulated weight depends on the latent
            if input_grad:
                bwd += macs
        for c in affines:
            fwd += w * c
            bwd += w * c * (2 if finetune else 1)
    return fwd, bwd


def discriminator_macs(d: DiscriminatorConfig, semantic_blocks: int, filters: bool = True) -> float:
    """Forward multiply-adds of the blocks L_s runs, for one face (the input gradient costs the same)."""
    if semantic_blocks <= 0:
        return 0.0
    # L_s reads the last blocks before the epilogue, so every block from the input down runs.
    total = 0.0
    for res in d.block_resolutions:
        c_tmp, c_out = d.channels(res), d.channels(res // 2)
        if res == d.img_resolution:
            total += d.img_channels * c_tmp * res * res  # fromRGB 1x1
        total += c_tmp * c_tmp * 9 * res * res  # conv0
        total += c_tmp * c_out * 9 * (res // 2) ** 2  # conv1, stride 2 after the FIR
        total += c_tmp * c_out * (res // 2) ** 2  # skip 1x1, after the FIR
        if filters:
            total += c_tmp * (res + 1) ** 2 * FIR_TAPS  # conv1's FIR (padded by 2 each side)
            total += c_tmp * (res - 1) ** 2 * FIR_TAPS  # skip's FIR, evaluated before decimation
    return total


def iteration_macs(g: GeneratorConfig, d: DiscriminatorConfig | None, d_input: int, semantic_blocks: int,
                   finetune: bool, filters: bool, device: str) -> tuple[float, float, float]:
    """(G forward, G backward, D forward) multiply-adds for one face. D always runs at its own
    resolution (d_input is D's size) and its layers are the same on every device."""
    g_fwd, g_bwd = generator_macs(g, finetune=finetune, filters=filters)
    d_fwd = discriminator_macs(d, semantic_blocks, filters=filters) if d is not None else 0.0
    return g_fwd, g_bwd, d_fwd
