"""One way to load an engine: weights -> networks -> device -> checks -> Gaussian fit, from one options
value. `sr`, `photo`, `eval` and the Python API build their `Session` here; it then runs batches of
faces with the config and engine choices fixed."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from . import gaussian_fit, weights as weights_mod
from .checkpoints import load_gan
from .config import RLSEConfig
from .devices import pick_device
from .engine import semantic
from .engine.select import pick_engine, run as run_engine
from .errors import UserError
from .ops import dispatch


def _call(fn):
    return fn()


@dataclass(frozen=True)
class EngineOptions:
    """What a session is built from (the engine flags, converted in `commands/engine_options.py`)."""

    weights: str | None = None
    """A weights path or a name ('celeba64', 'ffhq', ...); None: the default (`weights.resolve`)."""
    cfg: RLSEConfig | None = field(default_factory=RLSEConfig)
    """The objective's config; None for a caller that runs several configs (eval) and checks them itself."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda' or 'cuda:N' (`devices.pick_device`)."""
    engine: str = "auto"
    """'auto', 'eager' or 'fast' (`engine.select.pick_engine`)."""
    precision: str = "auto"
    graphs: bool = True
    impl: str = "auto"
    """The kernels of every op ('ref': plain PyTorch); set once, as a context, by the engine's drivers."""
    gaussian_samples: int | None = None
    """Mapping samples of the Gaussian fit; None: cfg's (RLSEConfig's default without a cfg)."""
    quiet: bool = False


@dataclass
class Session:
    G: object
    D: object
    fit: dict | None
    """The Gaussian fit ({'mean', 'std'}), or None until `prepare_fit` (made on first `run`)."""
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
    gaussian_samples: int | None = None

    @classmethod
    def open(cls, options: EngineOptions, in_turn: Callable = _call, fit: bool = True) -> "Session":
        """Load a session: pick device and engine, check the kernels can run there, resolve and load
        the weights, check they serve the config, move the networks to the device, then (fit=True)
        the Gaussian fit. in_turn(fn): how a cache-filling step runs (under torchrun
        `launch.in_turn`: one process first). UserError (exit 2) for whatever the options ask that
        these weights or this machine cannot do."""
        dev = pick_device(options.device)
        fast, precision = pick_engine(options.engine, options.precision, dev)
        check_impl(options.impl, dev)
        gan = load_gan(in_turn(lambda: weights_mod.resolve(options.weights, quiet=options.quiet)))
        if options.cfg is not None:
            check_weights(gan, options.cfg)
        G = gan.generator.to(dev)
        D = gan.discriminator.to(dev) if gan.discriminator is not None else None
        session = cls(G, D, None, options.cfg, gan, dev, fast, precision, options.graphs, options.impl, options.weights,
                      options.gaussian_samples)
        if fit:
            session.prepare_fit(in_turn)
        return session

    @classmethod
    def load(cls, weights: str | None = None, cfg: RLSEConfig | None = None, device: str = "auto",
             engine: str = "auto", precision: str = "auto", graphs: bool = True, impl: str = "auto",
             quiet: bool = False) -> "Session":
        """`open` with the options as arguments: resolve and load weights (a path or a name; None:
        the default), pick device and engine, fit."""
        return cls.open(EngineOptions(weights, cfg or RLSEConfig(), device, engine, precision, graphs, impl,
                                      quiet=quiet))

    @property
    def resolution(self) -> int:
        return int(self.G.img_resolution)

    def prepare_fit(self, in_turn: Callable = _call) -> dict:
        """The Gaussian fit, computed on first use and cached per weights file."""
        if self.fit is None:
            samples = self.gaussian_samples or (self.cfg or RLSEConfig()).gaussian_samples
            self.fit = in_turn(lambda: gaussian_fit.cached(self.gan.generator, self.gan.sha256, samples, device=self.device))
        return self.fit

    def run(self, lr: torch.Tensor, seeds: int | list[int], cfg: RLSEConfig | None = None, G=None, on_step=None):
        """(B, 3, s, s) in [0, 1] -> `engine.Result` (images (B, 3, R, R), best_loss, seconds, ...).
        cfg: another config than the session's (eval's methods); G: another generator over the same
        weights (eval's framed one)."""
        return run_engine(G if G is not None else self.G, self.D, lr.to(self.device), cfg or self.cfg,
                          self.prepare_fit(), seeds=seeds, impl=self.impl, fast=self.fast, precision=self.precision,
                          graphs=self.graphs, on_step=on_step)


def check_impl(impl: str, device) -> None:
    """--impl cpp/cuda/triton must be able to run on the device: refused now, not after the fit."""
    if impl in ("auto", "ref"):
        return
    try:
        dispatch.pick("bias_act", impl, torch.empty(1, device=device))
    except RuntimeError as exc:
        raise UserError(f"--impl {impl}: {str(exc).splitlines()[0].split(': ', 1)[-1]}") from None


def check_weights(gan, cfg: RLSEConfig) -> None:
    """The config's losses must find what they need in these weights (UserError otherwise)."""
    if cfg.semantic and gan.discriminator is None:
        raise UserError("these weights hold no discriminator, which the rlse mode's L_s needs; "
                        "use --no-semantic or --mode pulse, or weights with a discriminator")
    if cfg.semantic and cfg.semantic_input == "native" and not semantic.takes_native(gan.discriminator):
        raise UserError("--semantic-input native needs a progressive StyleGAN v1 discriminator (a fromRGB at every "
                        "resolution); these weights' StyleGAN2 D takes only upsampled images: use --semantic-input upsampled")
