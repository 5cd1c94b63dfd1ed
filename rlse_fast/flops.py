"""Analytic FLOP count of one RLSE iteration (2 FLOPs per multiply-add).

Counted: the matrix-class work, i.e. every convolution and matrix product, which is what the
tensor cores do and what `torch.utils.flop_counter.FlopCounterMode` counts:
- generator: per layer the affine (style) product, the modulated 3x3 convolution (the up-sampling
  ones as a stride-2 transposed convolution on the coarse grid), the 1x1 toRGB; with `filters`, the
  4x4 FIR filters after each up-convolution and on the skip image. Backward: the gradient w.r.t.
  each convolution's input (all but the first layer's, unless its const is fine-tuned) and w.r.t.
  its per-face modulated weight (always: the styles depend on the latent), the affine products'
  input gradients and, when fine-tuning, their weight gradients;
- discriminator (L_s): the blocks from D's input resolution down to the last one L_s reads, forward
  and the gradient w.r.t. their input only (D's weights are not optimised); with `filters`, the FIR
  filters of its down-sampling layers;
- downsample: PULSE's separable bicubic downscale (taps 4 * factor) forward and input gradient,
  once for L_p and once more for L_s's input;
- upsample: the bicubic upsampling of L_s's input to D's size (two matrix products, see
  `semantic.to_discriminator`), forward and input gradient.
Not counted: elementwise work (modulation, demodulation, bias + activation, noise, the losses,
Adam). The FIR terms follow the reference ops (a 4x4 filter
evaluated at the output grid); the native kernels do the same arithmetic.

FlopCounterMode agrees at batch 1; at batch B it counts the weight gradient of the per-face grouped
convolutions B times too often (its formula ignores groups), so compare at batch 1.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .models import stylegan1
from .models.stylegan1 import discriminator as stylegan1_discriminator
from .models.stylegan1.layers import fused_here
from .models.stylegan2 import DiscriminatorConfig, GeneratorConfig

FIR_TAPS = 16
"""The [1, 3, 3, 1] filter as the reference applies it: 4x4 taps per output pixel and channel."""


@dataclass(frozen=True)
class IterationFlops:
    """FLOPs of one iteration for the whole batch."""

    batch: int
    g_forward: float
    g_backward: float
    d_forward: float
    d_backward: float
    downsample: float
    upsample: float = 0.0

    @property
    def generator(self) -> float:
        return self.g_forward + self.g_backward

    @property
    def discriminator(self) -> float:
        return self.d_forward + self.d_backward

    @property
    def total(self) -> float:
        return self.generator + self.discriminator + self.downsample + self.upsample

    def as_dict(self) -> dict:
        return {**asdict(self), "generator": self.generator, "discriminator": self.discriminator, "total": self.total}


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


def downsample_macs(hr: int, factor: int, channels: int = 3) -> float:
    """Forward multiply-adds of one bicubic downscale by `factor` of a (channels, hr, hr) image."""
    if factor == 1:
        return 0.0
    lr = hr // factor
    taps = 4 * factor
    return channels * (lr * hr * taps + lr * lr * taps)


def upsample_macs(lr: int, resolution: int, channels: int = 3) -> float:
    """Forward multiply-adds of `semantic.to_discriminator`'s resize of a (channels, lr, lr) image:
    rows (R, lr) @ x, then @ cols^T (lr, R)."""
    if lr == resolution:
        return 0.0
    return channels * (resolution * lr * lr + resolution * resolution * lr)


BLUR_TAPS = 9
"""StyleGAN v1's [1, 2, 1] x [1, 2, 1] blur: 3x3 taps per output pixel and channel."""


def generator_macs_v1(g: stylegan1.GeneratorConfig, finetune: bool = True, filters: bool = True,
                      device: str = "cuda") -> tuple[float, float]:
    """(forward, backward) multiply-adds of a StyleGAN v1 synthesis network for one face.

    Per layer: the style dense (w -> 2C), the (up-)convolution (fused where the network runs it so
    on `device`, `models.stylegan1.layers.fused_here`: a stride-2 transposed 4x4 convolution on the coarse
    grid), with `filters` the blur after each upsampling;
    the final 1x1 toRGB. Backward: every convolution's input gradient (each layer's input depends on
    the latent through the styles before it), and its weight gradient only when fine-tuning (v1's
    weights are not modulated: PULSE mode computes none); the style products' input gradients and,
    when fine-tuning, their weight gradients."""
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


def discriminator_macs_v1(d: stylegan1_discriminator.DiscriminatorConfig, input_resolution: int,
                          semantic_blocks: int, filters: bool = True, device: str = "cuda") -> float:
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


def iteration_flops(g: GeneratorConfig, d: DiscriminatorConfig | None = None, batch: int = 1, factor: int = 16,
                    semantic_blocks: int = 3, finetune: bool = True, filters: bool = True,
                    semantic_input: str = "auto", device: str = "cuda") -> IterationFlops:
    """FLOPs of one iteration for `batch` faces; d=None or semantic_blocks=0 leaves L_s out (PULSE).
    g, d: StyleGAN2 or StyleGAN v1 configs; semantic_input (v1 only): 'native' (the default there:
    D runs from the low-resolution image's own fromRGB) or 'upsampled'; device (v1 only): where the
    networks run ('cpu' fuses fewer resampling convs: `models.stylegan1.layers.fused_here`)."""
    v1 = isinstance(g, stylegan1.GeneratorConfig)
    native = v1 and semantic_input in ("auto", "native")
    if v1:
        g_fwd, g_bwd = generator_macs_v1(g, finetune=finetune, filters=filters, device=device)
        d_in = g.img_resolution // factor if native else (d.img_resolution if d is not None else 0)
        d_fwd = (discriminator_macs_v1(d, d_in, semantic_blocks, filters=filters, device=device)
                 if d is not None else 0.0)
    else:
        g_fwd, g_bwd = generator_macs(g, finetune=finetune, filters=filters)
        d_fwd = discriminator_macs(d, semantic_blocks, filters=filters) if d is not None else 0.0
    uses_d = d_fwd > 0
    down = downsample_macs(g.img_resolution, factor, g.img_channels) * (2 if uses_d else 1) * 2 if filters else 0.0
    up = 2 * upsample_macs(g.img_resolution // factor, d.img_resolution, g.img_channels) if uses_d and not native else 0.0
    return IterationFlops(batch=batch, g_forward=2 * batch * g_fwd, g_backward=2 * batch * g_bwd,
                          d_forward=2 * batch * d_fwd, d_backward=2 * batch * d_fwd, downsample=2 * batch * down,
                          upsample=2 * batch * up)


def for_config(G, D, cfg, batch: int, factor: int) -> IterationFlops:
    """`iteration_flops` for loaded networks (on their device) and an RLSEConfig."""
    device = next(G.parameters()).device.type
    return iteration_flops(G.cfg, D.cfg if (D is not None and cfg.semantic) else None, batch=batch, factor=factor,
                           semantic_blocks=cfg.semantic_blocks if cfg.semantic else 0, finetune=cfg.finetune,
                           semantic_input=getattr(cfg, "semantic_input", "auto"), device=device)


CONFIG_F = GeneratorConfig()
"""FFHQ config-f at 1024: z/w 512, 8 mapping layers, channel_base 32768, channel_max 512."""
CONFIG_F_D = DiscriminatorConfig()
FFHQ_V1 = stylegan1.GeneratorConfig()
"""NVIDIA's StyleGAN (v1) FFHQ network at 1024: z/w 512, channels min(16384 // res, 512)."""
FFHQ_V1_D = stylegan1_discriminator.DiscriminatorConfig()


if __name__ == "__main__":  # python -m rlse_fast.flops: the numbers for 1024 config-f
    for b in (1, 4, 16):
        f = iteration_flops(CONFIG_F, CONFIG_F_D, batch=b, factor=16)
        print(f"batch {b:2d}: G fwd {f.g_forward / 1e9:.1f} + bwd {f.g_backward / 1e9:.1f} GFLOP, "
              f"D {f.discriminator / 1e9:.1f}, downsample {f.downsample / 1e9:.2f}, upsample {f.upsample / 1e9:.2f}, total {f.total / 1e12:.3f} TFLOP")
    for mode in ("native", "upsampled"):
        f = iteration_flops(FFHQ_V1, FFHQ_V1_D, batch=1, factor=16, semantic_input=mode)
        print(f"StyleGAN v1, L_s {mode}: G fwd {f.g_forward / 1e9:.1f} + bwd {f.g_backward / 1e9:.1f} GFLOP, "
              f"D {f.discriminator / 1e9:.2f}, total {f.total / 1e12:.3f} TFLOP per face")
