"""The RLSE loop, eagerly: explore the latent space (and fine-tune the generator) until down_s(G(z)) matches x.

Top-down: set up the latent on its spheres, the noise maps, the per-face generator copies and the
two optimizers; then each step generates, scores (`objective`: L_p, L_s, L_g), keeps each face's
best iterate (or the last: `cfg.keep`), and steps. PULSE is the same loop without L_s and
fine-tuning, with its own weights. `fast` drives the same objective with static buffers and CUDA graphs.
"""
from __future__ import annotations

import time
from typing import Callable

import torch

from .. import gaussian_fit
from ..config import RLSEConfig
from ..ops import dispatch
from .objective import LOSS_NAMES, Objective
from .result import Result
from .schedule import SCHEDULES
from .spherical import SphericalOptimizer
from .state import adam, check_batch, initial_state, per_face_params, scale_factor

__all__ = ["Result", "adam", "prepare_fit", "scale_factor", "super_resolve"]


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
    batch = lr_images.shape[0]
    factor, seeds = check_batch(G, D, lr_images, cfg, seeds)
    G.synthesis.eval()
    mean, std = fit["mean"].to(device), fit["std"].to(device)

    z, noise, trainable_noise = initial_state(G, seeds, cfg, device)
    opt = SphericalOptimizer(adam, [z] + trainable_noise, lr=cfg.lr)
    schedule = SCHEDULES[cfg.lr_schedule]
    sched = torch.optim.lr_scheduler.LambdaLR(opt.opt, lambda x: schedule(x, cfg.steps))
    params = per_face_params(G, batch) if cfg.finetune else None
    ft_opt = adam(list(params.values()), lr=cfg.finetune_lr) if cfg.finetune else None
    objective = Objective(D, lr_images, cfg, factor)

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
        terms = objective.terms(ws, img01)
        total = terms["total"]

        with torch.no_grad():
            better = objective.better(total, best_loss)
            if better.any():
                best[better] = img01[better].detach()
                best_loss = torch.where(better, total.detach(), best_loss)
                for i in better.nonzero().flatten().tolist():
                    best_step[i] = step
        losses = {"step": step, "lr": opt.opt.param_groups[0]["lr"], **{n: terms[n].tolist() for n in LOSS_NAMES}}
        history.append(losses)
        if on_step is not None:
            on_step(step, img01.detach(), losses)

        total.sum().backward()
        opt.step()
        sched.step()
        if ft_opt is not None:
            ft_opt.step()

    with torch.no_grad():
        lr_best = objective.downscale(best)
    return Result(images=best, lr_images=lr_best, best_loss=best_loss, best_step=best_step, history=history,
                  seconds=time.perf_counter() - t0)


def prepare_fit(gan, cfg: RLSEConfig, device="cpu") -> dict[str, torch.Tensor]:
    """The Gaussian fit for these weights, computed on first use and cached per weights file."""
    return gaussian_fit.cached(gan.generator, gan.sha256, cfg.gaussian_samples, device=device)
