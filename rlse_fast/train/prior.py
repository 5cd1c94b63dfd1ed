"""Train a small StyleGAN2 face prior (generator + discriminator) with our own modules.

The loop follows StyleGAN2-ADA: non-saturating logistic loss, R1 on real images with lazy
regularisation (every `r1_interval` minibatches, with Adam's lr and betas corrected for it), a
generator EMA with ramp-up, optional style mixing, augmentation of every image D sees (ADA,
DiffAugment or none: `augment.py`), no path-length regularisation (too costly on a CPU for what
it buys a 64 px prior). The losses and the precision policy live in `losses.py`.

Everything the run needs to continue lives in one checkpoint in the run folder (`checkpoint.py`:
G, D, G_ema, both optimiser states, the image count, the augmentation strength and every RNG
state), written atomically every few minutes. The prior (G_ema + D, float16 safetensors) is
exported periodically and at the end.

Run folder layout: checkpoint.json + checkpoint-*.bin (the checkpoint's shards),
prior-<res>.safetensors, samples/latest.png and samples/kimg<kimg>.png (fixed z), log.jsonl (a
line of statistics every `log_minutes` and at every checkpoint: kimg, hours, losses, p, r_t, img/s).
"""
from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from ..errors import UserError
from ..models.stylegan2 import Discriminator, Generator
from ..ops import dispatch
from .augment import AdaController, augment
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ARCH_FIELDS, TrainConfig, config_from_kwargs
from .data import FaceSampler, load_faces
from .losses import discriminator_step, generator_step, r1_step, reference_ops
from .outputs import SAMPLE_GRID, export_prior, grid_latents, sample_grid, save_image_grid
from .stop import Interrupted, StopOnSignal

CHECKPOINT_NAME = "checkpoint.json"


@torch.no_grad()
def update_ema(G_ema: Generator, G: Generator, beta: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def train(data_dir: str | os.PathLike, run_dir: str | os.PathLike, cfg: TrainConfig, resume: str | None = None,
          export_to: str | os.PathLike | None = None, progress: bool = True, use_cache: bool = True,
          log: Callable[[str], None] = print, init_from: str | os.PathLike | None = None) -> dict:
    """Train (or continue) a prior; returns the final stats dict.

    data_dir: a folder of face images or a packed file (`data.pack_faces`). run_dir: checkpoint,
    samples, log and prior-<res>.safetensors go here. resume: a checkpoint (run folder, manifest or
    legacy .pt), 'auto' (run_dir's), or None (fresh start). init_from: an exported prior whose
    G_ema (for G and G_ema) and D start a fresh run (fresh optimisers and augmentation strength;
    the image count continues from the prior's). export_to: an extra path the prior is exported to.
    """
    threads = torch.get_num_threads()
    try:
        with dispatch.using(cfg.ops):
            return _train(data_dir, run_dir, cfg, resume, export_to, progress, use_cache, log, init_from)
    finally:
        torch.set_num_threads(threads)


def _init_from_prior(path, cfg: TrainConfig) -> tuple[TrainConfig, dict, int]:
    """The architecture, weights and image count of an exported prior (a file or a weights name)."""
    from ..checkpoints import load_gan
    from ..weights import resolve

    try:
        gan = load_gan(resolve(str(path), quiet=True))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the prior {str(path)!r} for --init-from ({exc})") from None
    if gan.discriminator is None:
        raise UserError(f"{str(path)!r} holds no discriminator; --init-from needs an exported prior (G + D)")
    g = gan.generator.cfg
    arch = dict(resolution=g.img_resolution, z_dim=g.z_dim, mapping_layers=g.mapping_layers,
                channel_base=g.channel_base, channel_max=g.channel_max)
    weights = {"G": gan.generator.state_dict(), "D": gan.discriminator.state_dict()}
    try:
        nimg = int(float(gan.metadata.get("kimg", 0)) * 1000)
    except ValueError:
        nimg = 0
    return TrainConfig(**{**asdict(cfg), **arch}), weights, nimg


def _train(data_dir, run_dir, cfg: TrainConfig, resume, export_to, progress, use_cache, log, init_from) -> dict:
    start_time = time.monotonic()
    run_dir = Path(run_dir)
    state, init = None, None
    if resume is not None:
        state = load_checkpoint(run_dir if resume == "auto" else resume)
        saved = state["config"]
        # The architecture is the checkpoint's; the schedule and limits are this invocation's.
        cfg = TrainConfig(**{**asdict(cfg), **{k: saved[k] for k in ARCH_FIELDS + ("batch",)}})
    elif init_from is not None:
        cfg, init, init_nimg = _init_from_prior(init_from, cfg)
    cfg.check()
    from ..devices import pick_device

    device = pick_device(cfg.device)
    if device.type == "cpu" and cfg.threads:
        torch.set_num_threads(cfg.threads)
    amp = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    torch.manual_seed(cfg.seed)

    faces = load_faces(data_dir, cfg.resolution, use_cache=use_cache, progress=progress)
    sampler = FaceSampler(faces, cfg.batch, seed=cfg.seed)

    G = Generator(cfg.generator_config()).to(device).train()
    D = Discriminator(cfg.discriminator_config()).to(device).train()
    if init is not None:
        G.load_state_dict({k: v.float() for k, v in init["G"].items()})
        D.load_state_dict({k: v.float() for k, v in init["D"].items()})
    if cfg.channels_last:
        D = D.to(memory_format=torch.channels_last)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    mb_ratio = cfg.r1_interval / (cfg.r1_interval + 1)
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.0, cfg.beta2), eps=1e-8)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr * mb_ratio, betas=(0.0, cfg.beta2**mb_ratio), eps=1e-8)
    ada = AdaController(target=cfg.ada_target, kimg=cfg.ada_kimg, interval=cfg.ada_interval,
                        adjust=cfg.augment == "ada", p=cfg.diffaug_p if cfg.augment == "diffaug" else 0.0)
    cur_nimg, batch_idx, total_seconds = (init_nimg if init is not None else 0), 0, 0.0
    if state is not None:
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        G_ema.load_state_dict(state["G_ema"])
        opt_G.load_state_dict(state["opt_G"])
        opt_D.load_state_dict(state["opt_D"])
        cur_nimg, batch_idx, total_seconds = state["cur_nimg"], state["batch_idx"], state["total_seconds"]
        sampler.load_state_dict(state["sampler"])
        if "ada" in state and state["config"].get("augment") == cfg.augment:
            ada.load_state_dict(state["ada"])  # a run that switches mode starts that mode's strength afresh
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], device)

    def aug(x: torch.Tensor) -> torch.Tensor:
        return augment(x, cfg.augment, ada.p)

    z_grid = grid_latents(cfg.z_dim, device)
    export_paths = [run_dir / f"prior-{cfg.resolution}.safetensors"] + ([Path(export_to)] if export_to else [])
    target_nimg = int(cfg.kimg * 1000)
    deadline = start_time + cfg.minutes * 60 if cfg.minutes is not None else math.inf
    stats = {"loss_G": float("nan"), "loss_D": float("nan"), "r1": float("nan")}
    session_nimg = 0

    def read_losses(loss_G, loss_D):
        stats["loss_G"], stats["loss_D"] = loss_G.item(), loss_D.item()
        if last_r1 is not None:
            stats["r1"] = last_r1.item()
        if not (math.isfinite(stats["loss_G"]) and math.isfinite(stats["loss_D"])):
            raise FloatingPointError(f"non-finite loss at {cur_nimg} images: {stats}")

    def write_log():
        # Losses of the last step; null before this run made one (a re-export): strict JSON has no NaN.
        if last_losses is not None:
            read_losses(*last_losses)
        seconds = time.monotonic() - session_start
        line = {"kimg": round(cur_nimg / 1000, 3), "hours": round((total_seconds + seconds) / 3600, 4),
                **{k: round(v, 5) if math.isfinite(v) else None for k, v in stats.items()},
                "augment": cfg.augment, "p": round(ada.p, 5), "r_t": round(ada.r_t, 4) if math.isfinite(ada.r_t) else None,
                "img_per_s": round(session_nimg / seconds, 2) if session_nimg and seconds > 0 else None,
                "device": device.type}
        with open(run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        last["log"] = time.monotonic()

    def write_checkpoint():
        save_checkpoint(run_dir, {
            "config": asdict(cfg), "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
            "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(), "cur_nimg": cur_nimg,
            "batch_idx": batch_idx, "total_seconds": total_seconds + time.monotonic() - session_start,
            "sampler": sampler.state_dict(), "ada": ada.state_dict(), "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        })
        write_log()

    def export():
        meta = {"kimg": f"{cur_nimg / 1000:.3f}", "train_config": json.dumps(asdict(cfg)),
                "weights": "generator EMA + discriminator", "augment_p": f"{ada.p:.5f}"}
        for p in export_paths:
            export_prior(p, G_ema, D, extra_metadata=meta)

    def write_samples():
        imgs = sample_grid(G_ema, z_grid)
        save_image_grid(imgs, run_dir / "samples" / "latest.png", SAMPLE_GRID[0])
        save_image_grid(imgs, run_dir / "samples" / f"kimg{cur_nimg // 1000:05d}.png", SAMPLE_GRID[0])

    run_dir.mkdir(parents=True, exist_ok=True)
    session_start = time.monotonic()
    last = {"ckpt": session_start, "export": session_start, "sample": session_start, "log": session_start}
    last_r1, last_losses = None, None
    step = dict(augment=aug, mixing_prob=cfg.mixing_prob, amp=amp, channels_last=cfg.channels_last)

    # A signal ends the step in progress; the state is then saved like at a deadline.
    with StopOnSignal() as stop:
        bar = tqdm(total=target_nimg, initial=min(cur_nimg, target_nimg), unit="img", unit_scale=True,
                   disable=not progress, mininterval=1.0 if sys.stderr.isatty() else 60.0, smoothing=0.05,
                   desc=f"prior {cfg.resolution}px")
        while cur_nimg < target_nimg and time.monotonic() < deadline and not stop.requested:
            # G on fresh fakes, then D on fakes and a real minibatch, then (lazily) R1 on the reals.
            loss_G = generator_step(G, D, opt_G, torch.randn(cfg.batch, cfg.z_dim, device=device), **step)
            real = sampler.next().to(device)
            loss_D, real_logits = discriminator_step(G, D, opt_D, torch.randn(cfg.batch, cfg.z_dim, device=device),
                                                     real, **step)
            ada.observe(real_logits)
            if batch_idx % cfg.r1_interval == 0:
                last_r1 = r1_step(D, opt_D, real, aug, cfg.gamma / 2 * cfg.r1_interval).detach()

            # Generator EMA with ramp-up; the augmentation strength from the overfitting signal.
            cur_nimg += cfg.batch
            session_nimg += cfg.batch
            batch_idx += 1
            ema_nimg = cfg.ema_kimg * 1000
            if cfg.ema_rampup is not None:
                ema_nimg = min(ema_nimg, cur_nimg * cfg.ema_rampup)
            update_ema(G_ema, G, 0.5 ** (cfg.batch / max(ema_nimg, 1e-8)))
            ada.step(cfg.batch)

            last_losses = (loss_G.detach(), loss_D.detach())
            bar.update(cfg.batch)
            now = time.monotonic()
            if batch_idx % cfg.ada_interval == 0 or now >= deadline or cur_nimg >= target_nimg:
                # Reading a loss waits for the device: once per ADA interval, not every step.
                read_losses(*last_losses)
                bar.set_postfix(G=f"{stats['loss_G']:.3f}", D=f"{stats['loss_D']:.3f}", r1=f"{stats['r1']:.3g}",
                                p=f"{ada.p:.3f}", r_t=f"{ada.r_t:.2f}", kimg=f"{cur_nimg / 1000:.1f}", refresh=False)

            if now - last["sample"] >= cfg.sample_minutes * 60:
                write_samples()
                last["sample"] = now
            if now - last["ckpt"] >= cfg.checkpoint_minutes * 60:
                write_checkpoint()
                last["ckpt"] = now
            if now - last["export"] >= cfg.export_minutes * 60:
                export()
                last["export"] = now
            if now - last["log"] >= cfg.log_minutes * 60:
                write_log()
        bar.close()
        if last_losses is not None:
            read_losses(*last_losses)

        write_checkpoint()
        write_samples()
        export()
    seconds = time.monotonic() - session_start
    if stop.requested is not None:
        raise Interrupted(stop.requested, f"{stop.name} at {cur_nimg / 1000:.3f} kimg; checkpoint, samples and "
                                          f"prior written to {run_dir}: --resume continues the run")
    log(f"stopped at {cur_nimg / 1000:.1f} kimg ({session_nimg / max(seconds, 1e-9):.1f} img/s on {device.type}); "
        f"prior written to {', '.join(map(str, export_paths))}")
    return {**stats, "cur_nimg": cur_nimg, "seconds": seconds, "img_per_s": session_nimg / max(seconds, 1e-9),
            "p": ada.p, "r_t": ada.r_t, "exports": [str(p) for p in export_paths]}


__all__ = ["CHECKPOINT_NAME", "TrainConfig", "config_from_kwargs", "export_prior", "reference_ops",
           "save_image_grid", "train", "update_ema"]
