"""Analytic FLOP count of one RLSE iteration (2 FLOPs per multiply-add).

Counted: the matrix-class work, i.e. every convolution and matrix product, which is what the
tensor cores do and what `torch.utils.flop_counter.FlopCounterMode` counts:
- generator and discriminator (L_s): each backbone's own model, registered with it
  (`models.registry.Backbone.macs`, in `models/<backbone>/flops.py`): G forward and backward (the
  gradients w.r.t. the latent and, when fine-tuning, the weights), D's blocks from its input down
  to the last one L_s reads, forward and the gradient w.r.t. their input only (D's weights are not
  optimised);
- downsample: PULSE's separable bicubic downscale (taps 4 * factor) forward and input gradient,
  once for L_p and once more for L_s's input;
- upsample: the bicubic upsampling of L_s's input to D's size (two matrix products, see
  `semantic.to_discriminator`), forward and input gradient.
Not counted: elementwise work (modulation, demodulation, bias + activation, noise, the losses,
Adam).

FlopCounterMode agrees at batch 1; at batch B it counts the weight gradient of the per-face grouped
convolutions B times too often (its formula ignores groups), so compare at batch 1.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .models import registry, stylegan1
from .models.stylegan1 import discriminator as stylegan1_discriminator
from .models.stylegan2 import DiscriminatorConfig, GeneratorConfig


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


def iteration_flops(g, d=None, batch: int = 1, factor: int = 16, semantic_blocks: int = 3, finetune: bool = True,
                    filters: bool = True, semantic_input: str = "auto", device: str = "cuda") -> IterationFlops:
    """FLOPs of one iteration for `batch` faces; d=None or semantic_blocks=0 leaves L_s out (PULSE).
    g, d: a registered backbone's configs; semantic_input (backbones whose D takes a low-resolution
    image natively): 'native' (the default there: D runs from the low-resolution image's own
    fromRGB) or 'upsampled'; device: where the networks run (StyleGAN v1 fuses fewer resampling
    convs on 'cpu': `models.stylegan1.layers.fused_here`)."""
    backbone, _ = registry.of(g)
    if backbone is None:
        raise TypeError(f"no registered backbone has the generator config {type(g).__name__}")
    native = backbone.native_lr_input and semantic_input in ("auto", "native")
    d_in = g.img_resolution // factor if native else (d.img_resolution if d is not None else 0)
    g_fwd, g_bwd, d_fwd = backbone.macs(g, d, d_input=d_in, semantic_blocks=semantic_blocks, finetune=finetune,
                                        filters=filters, device=device)
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
