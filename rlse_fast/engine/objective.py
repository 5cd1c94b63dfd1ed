"""The RLSE objective, written once: L = w_p L_p + w_s L_s + w_g L_g per face, and which iterate is kept.

Both drivers (`eager`, `fast`) call `Objective.terms` on each step's W+ latent and image and
`Objective.better` to decide which faces' iterates replace the kept ones; the per-step loss log,
the sidecars' `losses`, the eval columns and the report's loss table all read `LOSS_NAMES` and
`TERMS` from here. Adding a loss term: a module for it, a weight in `RLSEConfig`, one entry in
`TERMS`, and its value in `terms()`.
"""
from __future__ import annotations

import torch

from ..downsample import bicubic_downsample_ref, bicubic_kernel
from ..ops.downsample_loss import downsample_loss
from . import semantic
from .geocross import geocross
from .pixel_loss import floor_for, pixel_loss

TERMS = (("pixel", "w_pixel", "L_p"), ("semantic", "w_semantic", "L_s"), ("geocross", "w_geocross", "L_g"))
"""(name, the RLSEConfig field of its weight, the paper's symbol) of each loss term, in log order."""
LOSS_NAMES = ("total",) + tuple(name for name, _, _ in TERMS)
"""The columns of the per-step loss log, in order: the weighted total, then each term unweighted."""


class Objective:
    """The loss of a batch of faces against their low-resolution targets.

    D: the discriminator (None without L_s); lr_images: (B, 3, h, w) in [0, 1]; factor: G's
    resolution / h (a power of two); channels_last: D takes NHWC input (its weights NHWC too).
    The target features are computed here, under the caller's kernel and autocast contexts.
    """

    def __init__(self, D, lr_images: torch.Tensor, cfg, factor: int, channels_last: bool = False):
        self.D, self.lr_images, self.cfg, self.factor = D, lr_images, cfg, factor
        self.channels_last = channels_last
        self.numel = lr_images[0].numel()
        self.floor = floor_for(cfg, lr_images)  # (B,) or None: L_p's floor
        # PULSE's bicubic taps on the device, made here: a host-to-device copy cannot be captured.
        self.taps = bicubic_kernel(factor, device=lr_images.device) if factor > 1 else None
        self.mode = semantic.input_mode(D, cfg.semantic_input) if cfg.semantic else None
        self.names = semantic.block_names(D, cfg.semantic_blocks, lr_images.shape[-1], self.mode) if cfg.semantic else []
        with torch.no_grad():  # in fp32 once (L_s compares in fp32), not cast on every step
            self.target_feats = [f.float() for f in self._features(lr_images)] if cfg.semantic else []

    def _features(self, lr01: torch.Tensor) -> list[torch.Tensor]:
        return semantic.features(self.D, lr01, self.names, channels_last=self.channels_last, mode=self.mode)

    def downscale(self, img01: torch.Tensor) -> torch.Tensor:
        """down_s: (B, 3, R, R) -> (B, 3, h, w), PULSE's bicubic with the taps made once."""
        return bicubic_downsample_ref(img01, self.factor, self.taps)

    def terms(self, ws: torch.Tensor, img01: torch.Tensor) -> dict[str, torch.Tensor]:
        """{name: (B,)} for every name of LOSS_NAMES. ws: (B, n, d) W+; img01: (B, 3, R, R), G's output
        mapped to [0, 1]. The image is downscaled for L_s outside any autocast; its features are compared in fp32."""
        cfg = self.cfg
        sse = downsample_loss(img01, self.lr_images, self.factor, taps=self.taps)
        out = {"pixel": pixel_loss(sse, self.numel, cfg, self.floor)}
        out["semantic"] = torch.zeros_like(out["pixel"])
        if cfg.semantic:
            with torch.autocast(img01.device.type, enabled=False):
                lr_gen = self.downscale(img01)
            feats = self._features(lr_gen)
            out["semantic"] = semantic.semantic_loss([f.float() for f in feats], self.target_feats, cfg.semantic_reduction)
        out["geocross"] = geocross(ws)
        total = None
        for name, weight, _ in TERMS:
            term = getattr(cfg, weight) * out[name]
            total = term if total is None else total + term
        return {"total": total, **out}

    def better(self, total: torch.Tensor, best_loss: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the faces whose iterate of loss `total` replaces the kept one (`cfg.keep`: the
        lowest total, PULSE's rule, or always the last)."""
        if self.cfg.keep == "best":
            return total < best_loss
        return torch.ones_like(total, dtype=torch.bool)

    @staticmethod
    def row(terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, len(LOSS_NAMES)) float32: one step's losses, detached, in log order."""
        return torch.stack([terms[n].detach().float() for n in LOSS_NAMES], 1)
