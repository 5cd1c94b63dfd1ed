"""The engine flags shared by `rlse-fast sr`, `photo` and `eval` (weights, mode, losses, steps, seed,
batch, device, threads, kernels, engine, precision): the one place they are declared and turned into a config
and a `session.EngineOptions`."""
from __future__ import annotations

import math

from ..config import RLSEConfig
from ..errors import UserError

BATCH_HELP = ("faces optimised together: each face's result equals its result alone up to float rounding, "
              "which the optimiser's steps can amplify into visible per-pixel differences")


THREADS_HELP = ("CPU threads for PyTorch (default: PyTorch's choice, one per core this process may use; under "
                "torchrun each process's share). Idle threads sleep rather than spin (OMP_WAIT_POLICY=PASSIVE "
                "unless the environment sets it), so other busy processes do not make a run crawl")


def add_engine_args(p, batch_help: str = BATCH_HELP, objective: bool = True, helps: dict[str, str] | None = None) -> None:
    """Declare the engine flags on parser p. objective=False leaves out the flags of the objective
    (mode, losses, weights of the terms, floor, kept iterate): for `eval`, whose methods fix them.
    helps: a command's own help text for some flags ({'seed': ...})."""
    helps = helps or {}
    p.add_argument("--weights", default=None,
                   help=helps.get("weights", "weights file (.pkl/.pt/.safetensors) or a name: ffhq, ffhq512, ffhq256, "
                                  "celeba64 (default: ffhq if downloaded, else the bundled celeba64)"))
    if objective:
        _add_objective_args(p)
    p.add_argument("--steps", type=int, default=100, help=helps.get("steps", "iterations per face"))
    p.add_argument("--seed", type=int, default=0, help=helps.get("seed", "seed of the initial latent and noise (per face)"))
    if objective:
        p.add_argument("--batch", type=int, default=1, help=batch_help)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to run")
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    p.add_argument("--impl", choices=["auto", "ref", "cpp", "cuda", "triton"], default="auto",
                   help="kernel implementation (ref: plain PyTorch)")
    p.add_argument("--engine", choices=["auto", "eager", "fast"], default="auto",
                   help=helps.get("engine", "fast: static buffers, CUDA graphs, optional bf16 (same results in fp32); "
                                  "auto: fast on CUDA, eager on CPU. The eager fp32 baseline: --engine eager --impl ref"))
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help=helps.get("precision", "bf16 autocast with fp32 weights and optimizer state (fast engine); "
                                  "auto: bf16 on CUDA, else fp32"))
    p.add_argument("--no-graphs", action="store_true", help="fast engine without CUDA graph replay")
    if not objective:
        p.add_argument("--batch", type=int, default=1, help=batch_help)
    p.add_argument("--gaussian-samples", type=int, default=None,
                   help="mapping samples for the latent Gaussian fit (default 1,000,000; cached per weights file)")


def _add_objective_args(p) -> None:
    p.add_argument("--mode", choices=["rlse", "pulse"], default="rlse", help="rlse (the paper) or pulse (baseline)")
    p.add_argument("--no-semantic", action="store_true", help="ablation: drop the discriminator loss L_s")
    p.add_argument("--no-finetune", action="store_true", help="ablation: keep the generator's weights fixed")
    p.add_argument("--semantic-input", choices=["auto", "native", "upsampled"], default="auto",
                   help="how the low-res images enter D for L_s: native (their own resolution's fromRGB; StyleGAN v1 "
                        "only), upsampled (bicubic to D's size), auto (native on StyleGAN v1, upsampled on StyleGAN2)")
    p.add_argument("--pixel-loss", choices=["norm", "mse"], default=None,
                   help="L_p as the paper's L2 norm or PULSE's clamped MSE (default: the mode's)")
    p.add_argument("--w-pixel", type=float, default=None, help="weight of L_p (default: the mode's, 100)")
    p.add_argument("--w-semantic", type=float, default=None, help="weight of L_s (default: the mode's, rlse 0.5)")
    p.add_argument("--w-geocross", type=float, default=None, help="weight of L_g (default: the mode's, rlse 500, pulse 0.05)")
    p.add_argument("--pixel-floor", default="0", metavar="LEVELS|pulse|auto",
                   help="floor of the paper's L2-norm L_p as an RMS residual in 8-bit levels: below it L_p stops "
                        "pulling, so a face need not reproduce the input's noise and compression. 0: none (the "
                        "paper); pulse: PULSE's eps (11.4); auto: the input's estimated noise level")
    p.add_argument("--keep", choices=["best", "last"], default="best",
                   help="each face's result: the iterate of lowest total loss (PULSE's rule) or the last one")


def validate_engine_args(args) -> None:
    """The engine flags' values checked before any work; UserError (exit 2) naming the flag."""
    for name, low in (("steps", 1), ("batch", 1), ("gaussian_samples", 2), ("seed", 0), ("threads", 1)):
        value = getattr(args, name)
        if value is not None and value < low:
            raise UserError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
    if args.seed >= 2 ** 63:
        raise UserError(f"--seed must be below 2**63, got {args.seed}")
    if not hasattr(args, "mode"):  # eval: its methods fix the objective
        return
    for name in ("w_pixel", "w_semantic", "w_geocross"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UserError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")
    floor = pixel_floor(args)
    pixel_loss = args.pixel_loss or ("mse" if args.mode == "pulse" else "norm")
    if floor not in (0.0, "0") and pixel_loss != "norm":
        raise UserError("--pixel-floor applies to the L2-norm L_p (rlse's); PULSE's clamped MSE has its own floor")


def pixel_floor(args) -> float | str:
    """--pixel-floor as RLSEConfig.pixel_floor: 'pulse', 'auto' or a number >= 0 (UserError otherwise)."""
    raw = str(getattr(args, "pixel_floor", "0")).strip().lower()
    if raw in ("pulse", "auto"):
        return raw
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 0):
        raise UserError(f"--pixel-floor must be a number of 8-bit levels >= 0, 'pulse' or 'auto', got {raw!r}")
    return value


def build_config(args):
    """The RLSEConfig of the engine flags (the one place they are converted)."""
    overrides = {"steps": args.steps, "semantic_input": getattr(args, "semantic_input", "auto"),
                 "keep": getattr(args, "keep", "best")}
    if pixel_floor(args) not in (0.0, "0"):
        overrides["pixel_floor"] = pixel_floor(args)
    if args.pixel_loss:
        overrides["pixel_loss"] = args.pixel_loss
    if args.gaussian_samples:
        overrides["gaussian_samples"] = args.gaussian_samples
    for name in ("w_pixel", "w_semantic", "w_geocross"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    return RLSEConfig.from_mode(args.mode, semantic=not args.no_semantic, finetune=not args.no_finetune, **overrides)


def engine_options(args, cfg=None):
    """The `session.EngineOptions` of the parsed engine flags; cfg: the objective's config (default:
    `build_config(args)`)."""
    from ..session import EngineOptions

    return EngineOptions(weights=args.weights, cfg=cfg if cfg is not None else build_config(args), device=args.device,
                         engine=args.engine, precision=args.precision, graphs=not args.no_graphs, impl=args.impl,
                         gaussian_samples=args.gaussian_samples, quiet=getattr(args, "quiet", False))


def load_session(args, cfg=None, fit: bool = True):
    """A `session.Session` for the parsed engine flags (weights loaded, device and engine picked;
    under torchrun one process fills the download and fit caches first)."""
    from .. import launch
    from ..session import Session

    return Session.open(engine_options(args, cfg), in_turn=launch.in_turn, fit=fit)
