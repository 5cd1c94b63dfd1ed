"""The fast loop's static buffers: every tensor an iteration reads or writes, made once (a captured
CUDA graph replays on their addresses), and the learning-rate table the Adam steps index on the device."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import RLSEConfig
from ..models.style_affines import PackedAffines
from .objective import LOSS_NAMES
from .schedule import SCHEDULES
from .spherical import _radius
from .state import initial_state, per_face_params


def schedule_table(cfg: RLSEConfig) -> tuple[list[float], torch.Tensor]:
    """The latent learning rate of each step (as the eager driver's LambdaLR gives it: lr * schedule(t)) and
    the (steps, 2) float64 table [lr_t, finetune_lr] of both Adam steps' learning rates."""
    schedule = SCHEDULES[cfg.lr_schedule]
    lrs = [cfg.lr * schedule(t, cfg.steps) for t in range(cfg.steps)]
    return lrs, torch.tensor([[lr, cfg.finetune_lr] for lr in lrs], dtype=torch.float64)


@dataclass
class Buffers:
    """Every tensor an iteration reads or writes, made once: a captured graph replays on these
    addresses. B faces, R = G.img_resolution."""

    mean: torch.Tensor
    std: torch.Tensor
    """The latent Gaussian fit (`gaussian_fit.to_w`)."""
    z: torch.Tensor
    noise: list[torch.Tensor]
    latents: list[torch.Tensor]
    """z and the trainable noise maps: what the spherical optimizer projects."""
    radii: list[torch.Tensor]
    params: dict[str, torch.Tensor] | None
    """The per-face generator copies (fine-tuning only); with `affines`, the affines' entries are
    views into its two leaves."""
    affines: PackedAffines | None
    """The per-face style affines packed into two leaves (`FastOptions.packed_styles`)."""
    leaves: list[torch.Tensor]
    """latents + params: what the gradient is taken of, in Adam's order."""
    exp_avgs: list[torch.Tensor]
    exp_avg_sqs: list[torch.Tensor]
    table: torch.Tensor
    """(steps, 2) [lr_t, finetune_lr] (`schedule_table`)."""
    idx: torch.Tensor
    """(1,) long: the step counter."""
    adam_step: torch.Tensor
    """Adam's step count, float32."""
    loss_log: torch.Tensor
    """(steps, B, len(LOSS_NAMES)) per-step losses."""
    best_loss: torch.Tensor
    best_step: torch.Tensor
    best: torch.Tensor
    """(B, 3, R, R) in [0, 1]: the kept iterates."""
    image: torch.Tensor | None
    """(B, 3, R, R): this step's image, with `keep_image`."""

    @classmethod
    def make(cls, G, cfg: RLSEConfig, fit: dict[str, torch.Tensor], seeds: list[int], table: torch.Tensor,
             batch: int, device: torch.device, keep_image: bool, packed_styles: bool = False) -> Buffers:
        mean, std = fit["mean"].to(device), fit["std"].to(device)
        z, noise, trainable_noise = initial_state(G, seeds, cfg, device)
        latents = [z] + trainable_noise
        with torch.no_grad():
            radii = [_radius(p) for p in latents]
        params = per_face_params(G, batch) if cfg.finetune else None
        affines = PackedAffines(G.synthesis, params) if params and packed_styles else None
        if affines is not None:  # the per-layer copies replaced by views into the two leaves
            params = {**params, **affines.views()}
            trained = [p for p in params.values() if p.is_leaf] + [affines.weight, affines.bias]
        else:
            trained = list(params.values()) if params else []
        leaves = latents + trained
        best = torch.zeros(batch, 3, G.img_resolution, G.img_resolution, device=device)
        return cls(
            mean=mean, std=std, z=z, noise=noise, latents=latents, radii=radii, params=params, affines=affines,
            leaves=leaves,
            exp_avgs=[torch.zeros_like(p, memory_format=torch.contiguous_format) for p in leaves],
            exp_avg_sqs=[torch.zeros_like(p, memory_format=torch.contiguous_format) for p in leaves],
            # The fused Adam kernel reads a CUDA learning rate as float32, a CPU one as a double (see _adam_).
            table=table.to(device=device, dtype=torch.float64 if device.type == "cpu" else torch.float32),
            idx=torch.zeros(1, dtype=torch.long, device=device),
            adam_step=torch.zeros((), dtype=torch.float32, device=device),
            loss_log=torch.zeros(cfg.steps, batch, len(LOSS_NAMES), device=device),
            best_loss=torch.full((batch,), float("inf"), device=device),
            best_step=torch.full((batch,), -1, dtype=torch.long, device=device),
            best=best, image=torch.zeros_like(best) if keep_image else None)
