"""A loaded super-resolution setup, for callers that run many batches (the photo pipeline): the
generator, discriminator and Gaussian fit loaded once, the config and engine choices fixed."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import RLSEConfig


@dataclass
class Session:
    G: object
    D: object
    fit: dict
    cfg: RLSEConfig
    gan: object
    """The `checkpoints.GAN` the networks came from (path, sha256, format, metadata)."""
    device: torch.device
    fast: bool = False
    precision: str = "fp32"
    graphs: bool = True
    impl: str = "auto"
    spec: str | None = None
    """The --weights value (a name like 'celeba64' or a path), for telling the generator's frame."""

    @classmethod
    def load(cls, weights: str | None = None, cfg: RLSEConfig | None = None, device: str = "auto",
             engine: str = "auto", precision: str = "auto", graphs: bool = True, impl: str = "auto",
             quiet: bool = False) -> "Session":
        """Resolve and load weights (a path or a name; None: the default), pick device and engine."""
        from . import weights as weights_mod
        from .checkpoints import load_gan
        from .errors import UserError
        from .engine.eager import prepare_fit
        from .devices import pick_device
        from .engine.select import pick_engine

        cfg = cfg or RLSEConfig()
        dev = pick_device(device)
        fast, precision = pick_engine(engine, precision, dev)
        gan = load_gan(weights_mod.resolve(weights, quiet=quiet))
        if cfg.semantic and gan.discriminator is None:
            raise UserError("these weights hold no discriminator, which the rlse mode's L_s needs; "
                            "use --no-semantic or --mode pulse, or weights with a discriminator")
        if cfg.semantic and getattr(cfg, "semantic_input", "auto") == "native" and not hasattr(gan.discriminator, "reachable"):
            raise UserError("--semantic-input native needs a progressive StyleGAN v1 discriminator (a fromRGB at every "
                            "resolution); these weights' StyleGAN2 D takes only upsampled images: use --semantic-input upsampled")
        G = gan.generator.to(dev)
        D = gan.discriminator.to(dev) if gan.discriminator is not None else None
        return cls(G, D, prepare_fit(gan, cfg, device=dev), cfg, gan, dev, fast, precision, graphs, impl, weights)

    @property
    def resolution(self) -> int:
        return int(self.G.img_resolution)

    def run(self, lr: torch.Tensor, seeds: list[int]):
        """(B, 3, s, s) in [0, 1] -> `engine.Result` (images (B, 3, R, R), best_loss, seconds, ...)."""
        from .engine.select import run as run_engine

        return run_engine(self.G, self.D, lr.to(self.device), self.cfg, self.fit, seeds=seeds, impl=self.impl,
                          fast=self.fast, precision=self.precision, graphs=self.graphs)
