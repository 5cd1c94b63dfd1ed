"""What both drivers set up before the first step: the checks on a batch, each face's latent and
noise maps from its own seed, the per-face generator copies, and the Adam flavour they share."""
from __future__ import annotations

import torch

from ..downsample import check_factor
from ..ops.downsample_loss import _check as check_downsample_loss


def scale_factor(lr_size: int, hr_size: int) -> int:
    if hr_size % lr_size or (hr_size // lr_size) & (hr_size // lr_size - 1):
        raise ValueError(f"the generator's {hr_size}px is not a power-of-two multiple of the input's {lr_size}px")
    return hr_size // lr_size


def check_batch(G, D, lr_images: torch.Tensor, cfg, seeds: int | list[int]) -> tuple[int, list[int]]:
    """(factor, one seed per face) for a batch the loop can run; ValueError saying what is wrong otherwise."""
    batch, _, h, w = lr_images.shape
    if h != w:
        raise ValueError(f"input must be square, got {h}x{w}")
    factor = scale_factor(h, G.img_resolution)
    check_factor(factor)
    check_downsample_loss(torch.empty(batch, 3, G.img_resolution, G.img_resolution, device="meta"), lr_images, factor)
    if cfg.semantic and D is None:
        raise ValueError("the semantic loss needs a discriminator; these weights have none "
                         "(use --no-semantic or --mode pulse)")
    seeds = [seeds] * batch if isinstance(seeds, int) else list(seeds)
    if len(seeds) != batch:
        raise ValueError(f"{len(seeds)} seeds for {batch} faces")
    return factor, seeds


def initial_state(G, seeds: list[int], cfg, device):
    """(z, noise, trainable noise): per-face latent rows on their spheres and PULSE's noise maps, each
    face from its own seed (so a face's result does not depend on its batch)."""
    zs, noise_cols = [], []
    resolutions = [layer.resolution for layer in G.synthesis.noise_layers()]
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        zs.append(torch.randn(G.num_ws, G.w_dim, generator=gen))
        maps = []
        for i, r in enumerate(resolutions):
            if i == len(resolutions) - 1:
                maps.append(torch.zeros(1, r, r))  # PULSE zeroes the last noise layer
            else:
                maps.append(torch.randn(1, r, r, generator=gen))
        noise_cols.append(maps)
    z = torch.stack(zs).to(device).requires_grad_(True)
    noise = [torch.stack([col[i] for col in noise_cols]).to(device) for i in range(len(resolutions))]
    trainable = [n.requires_grad_(True) for n in noise[: min(cfg.trainable_noise, len(noise) - 1)]]
    return z, noise, trainable


def per_face_params(G, batch: int) -> dict[str, torch.Tensor]:
    """Per-face copies of every synthesis parameter, (B, ...) each: the loaded model stays as it is,
    and each face's generator gets its own gradients (Adam is elementwise, so batching changes nothing)."""
    return {k: p.detach().unsqueeze(0).repeat(batch, *[1] * p.ndim).clone().requires_grad_(True)
            for k, p in G.synthesis.named_parameters()}


def adam(params: list[torch.Tensor], lr: float) -> torch.optim.Adam:
    """torch.optim.Adam on its fused kernel (one pass per step over parameters, gradients and both
    moments; the unfused update makes nine), which `fast` also runs, else on its default path where
    this torch has no fused kernel for these tensors. Same update, up to float rounding."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(params, lr=lr)
