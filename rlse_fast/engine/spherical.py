"""PULSE's spherical optimizer: an inner optimizer step, then every row back onto its sphere."""
from __future__ import annotations

import torch


def _radius(t: torch.Tensor) -> torch.Tensor:
    # One sphere per (sample, row): norms over every dim after the first two.
    return (t.pow(2).sum(tuple(range(2, t.ndim)), keepdim=True) + 1e-9).sqrt()


class SphericalOptimizer:
    """Wraps an optimizer (Adam in PULSE and RLSE); after each step, rescales every latent row and
    every noise map (dims 2.. of each parameter) to the radius it had at construction."""

    def __init__(self, optimizer_cls, params: list[torch.Tensor], **kwargs):
        self.params = list(params)
        self.opt = optimizer_cls(self.params, **kwargs)
        with torch.no_grad():
            self.radii = [_radius(p) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.opt.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.opt.step(closure)
        for p, r in zip(self.params, self.radii):
            p.div_(_radius(p)).mul_(r)
        return loss
