"""The RLSE loop: explore the latent space (and fine-tune the generator) until down_s(G(z)) matches x.

Top-down: set up the latent on its spheres, the noise maps, the per-face generator copies and the
two optimizers; then each step generates, downscales, scores (L_p, L_s, L_g), keeps each face's best
iterate (or the last: `cfg.keep`), and steps. PULSE is the same loop without L_s and fine-tuning, with its own weights.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from . import gaussian_fit, semantic
from .config import RLSEConfig
from .downsample import bicubic_downsample_ref, check_factor
from .geocross import geocross
from .ops import dispatch
from .ops.downsample_loss import downsample_loss
from .pixel_loss import floor_for, pixel_loss
from .schedule import SCHEDULES
from .spherical import SphericalOptimizer


@dataclass
class Result:
    images: torch.Tensor
    """(B, 3, R, R): each face's best iterate, (G's output + 1) / 2, not clamped (about [0, 1], values a
    little outside occur); clamp before use as an image (`imageio.save_image` does)."""
    lr_images: torch.Tensor
    """(B, 3, h, w) in [0, 1]: the best iterates downscaled."""
    best_loss: torch.Tensor
    """(B,) total loss of the best iterates."""
    best_step: list[int]
    history: list[dict] = field(default_factory=list)
    """Per step: lr and the per-face losses ('total', 'pixel', 'semantic', 'geocross')."""
    seconds: float = 0.0


def scale_factor(lr_size: int, hr_size: int) -> int:
    if hr_size % lr_size or (hr_size // lr_size) & (hr_size // lr_size - 1):
        raise ValueError(f"the generator's {hr_size}px is not a power-of-two multiple of the input's {lr_size}px")
    return hr_size // lr_size


def _initial_state(G, batch: int, seeds: list[int], cfg: RLSEConfig, device):
    """Per-face latent rows on their spheres and PULSE's noise maps, each face from its own seed."""
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


def adam(params: list[torch.Tensor], lr: float) -> torch.optim.Adam:
    """torch.optim.Adam on its fused kernel (one pass per step over parameters, gradients and both
    moments; the unfused update makes nine), which `fast` also runs, else on its default path where
    this torch has no fused kernel for these tensors. Same update, up to float rounding."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(params, lr=lr)


def super_resolve(G, D, lr_images: torch.Tensor, cfg: RLSEConfig, fit: dict[str, torch.Tensor],
                  seeds: int | list[int] = 0, impl: str = "auto",
                  on_step: Callable[[int, torch.Tensor, dict], None] | None = None) -> Result:
    """Super-resolve a batch of faces; each face is independent of the others in the batch.

    G, D: the loaded networks (never modified; D may be None without L_s). lr_images: (B, 3, h, w)
    in [0, 1], square, with G's resolution a power-of-two multiple of h. fit: the Gaussian fit
    (`gaussian_fit.cached`). seeds: one per face, or one for all. impl: the kernels of every op
    ('ref': plain PyTorch). on_step(step, images01, losses) is called after each evaluation (e.g. to
    save intermediate images)."""
    with dispatch.using(impl):
        return _super_resolve(G, D, lr_images, cfg, fit, seeds, on_step)


def _super_resolve(G, D, lr_images, cfg, fit, seeds, on_step) -> Result:
    t0 = time.perf_counter()
    device = lr_images.device
    batch, _, h, w = lr_images.shape
    if h != w:
        raise ValueError(f"input must be square, got {h}x{w}")
    factor = scale_factor(h, G.img_resolution)
    check_factor(factor)
    if cfg.semantic and D is None:
        raise ValueError("the semantic loss needs a discriminator; these weights have none (use --no-semantic or --mode pulse)")
    seeds = [seeds] * batch if isinstance(seeds, int) else list(seeds)
    G.synthesis.eval()
    mean, std = fit["mean"].to(device), fit["std"].to(device)

    z, noise, trainable_noise = _initial_state(G, batch, seeds, cfg, device)
    opt = SphericalOptimizer(adam, [z] + trainable_noise, lr=cfg.lr)
    schedule = SCHEDULES[cfg.lr_schedule]
    sched = torch.optim.lr_scheduler.LambdaLR(opt.opt, lambda x: schedule(x, cfg.steps))

    params = None
    ft_opt = None
    if cfg.finetune:
        # Per-face copies of every synthesis parameter: the loaded model stays as it is, and each
        # face's generator gets its own gradients (Adam is elementwise, so batching changes nothing).
        params = {k: p.detach().unsqueeze(0).repeat(batch, *[1] * p.ndim).clone().requires_grad_(True)
                  for k, p in G.synthesis.named_parameters()}
        ft_opt = adam(list(params.values()), lr=cfg.finetune_lr)

    mode = semantic.input_mode(D, cfg.semantic_input) if cfg.semantic else None
    names = semantic.block_names(D, cfg.semantic_blocks, h, mode) if cfg.semantic else []
    with torch.no_grad():
        target_feats = semantic.features(D, lr_images, names, mode=mode) if cfg.semantic else []

    floor = floor_for(cfg, lr_images)
    best_loss = torch.full((batch,), float("inf"), device=device)
    best_step = [-1] * batch
    best = torch.zeros(batch, 3, G.img_resolution, G.img_resolution, device=device)
    history = []
    for step in range(cfg.steps):
        opt.zero_grad()
        if ft_opt is not None:
            ft_opt.zero_grad(set_to_none=True)
        ws = gaussian_fit.to_w(G, z, mean, std)  # the mapping's own activation and gain
        img01 = (G.synthesis(ws, noise=noise, params=params) + 1) / 2
        sse = downsample_loss(img01, lr_images, factor)
        pixel = pixel_loss(sse, lr_images[0].numel(), cfg, floor)
        sem = torch.zeros_like(pixel)
        if cfg.semantic:
            lr_gen = bicubic_downsample_ref(img01, factor)
            sem = semantic.semantic_loss(semantic.features(D, lr_gen, names, mode=mode), target_feats,
                                         cfg.semantic_reduction)
        geo = geocross(ws)
        total = cfg.w_pixel * pixel + cfg.w_semantic * sem + cfg.w_geocross * geo

        with torch.no_grad():
            better = total < best_loss if cfg.keep == "best" else torch.ones_like(total, dtype=torch.bool)
            if better.any():
                best[better] = img01[better].detach()
                best_loss = torch.where(better, total.detach(), best_loss)
                for i in better.nonzero().flatten().tolist():
                    best_step[i] = step
        losses = {"step": step, "lr": opt.opt.param_groups[0]["lr"], "total": total.tolist(),
                  "pixel": pixel.tolist(), "semantic": sem.tolist(), "geocross": geo.tolist()}
        history.append(losses)
        if on_step is not None:
            on_step(step, img01.detach(), losses)

        total.sum().backward()
        opt.step()
        sched.step()
        if ft_opt is not None:
            ft_opt.step()

    with torch.no_grad():
        lr_best = bicubic_downsample_ref(best, factor)
    return Result(images=best, lr_images=lr_best, best_loss=best_loss, best_step=best_step, history=history,
                  seconds=time.perf_counter() - t0)


def prepare_fit(gan, cfg: RLSEConfig, device="cpu") -> dict[str, torch.Tensor]:
    """The Gaussian fit for these weights, computed on first use and cached per weights file."""
    return gaussian_fit.cached(gan.generator, gan.sha256, cfg.gaussian_samples, device=device)
