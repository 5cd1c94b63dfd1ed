"""Train a small StyleGAN2 face prior (generator + discriminator) with our own modules.

The loop follows StyleGAN2-ADA without ADA: non-saturating logistic loss, R1 on real images with
lazy regularisation (every `r1_interval` minibatches, with Adam's lr and betas corrected for it),
a generator EMA with ramp-up, optional style mixing, no path-length regularisation (too costly on
a CPU for what it buys a 64 px prior). bf16 autocast on CUDA, float32 on CPU.

Everything the run needs to continue lives in one checkpoint (`checkpoint.pt` in the run folder):
G, D, G_ema, both optimiser states, the image count and every RNG state, written atomically every
few minutes. The prior (G_ema + D, float16 safetensors) is exported periodically and at the end.

Run folder layout: checkpoint.pt, prior-<res>.safetensors, samples/latest.png and
samples/<kimg>.png (fixed z), log.jsonl (one line per checkpoint).
"""
from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import UserError
from ..models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from ..ops import dispatch
from .data import FaceSampler, load_faces

CHECKPOINT_NAME = "checkpoint.pt"
SAMPLE_GRID = (8, 4)  # columns, rows


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Architecture defaults are the CPU-sized 64 px prior (about 1.1 M
    parameters in G and 1.2 M in D; about 18 img/s on one 2026 x86 core at batch 16)."""

    resolution: int = 64
    """Training resolution (power of two >= 8)."""
    z_dim: int = 128
    """Size of z and of w."""
    mapping_layers: int = 2
    """Fully connected layers of the mapping network."""
    channel_base: int = 2048
    """Channels at resolution r are min(channel_base // r, channel_max), in G and D alike."""
    channel_max: int = 128
    """Upper bound on channels."""
    batch: int = 16
    """Minibatch size (a multiple of 4, the minibatch-stddev group)."""
    lr: float = 0.0025
    """Adam learning rate of G and D (D's is corrected for lazy R1)."""
    beta2: float = 0.99
    """Adam beta2 (beta1 is 0)."""
    r1_gamma: float | None = None
    """R1 weight; None: StyleGAN2-ADA's heuristic 0.0002 * resolution**2 / batch (0.05 at 64 px, batch 16)."""
    r1_interval: int = 16
    """Apply R1 every this many minibatches (lazy regularisation)."""
    ema_kimg: float = 10.0
    """Half-life of the generator EMA in thousands of images."""
    ema_rampup: float | None = 0.05
    """The EMA half-life is at most this fraction of the images seen so far (None: no ramp-up)."""
    mixing_prob: float = 0.0
    """Probability of style mixing per minibatch (0 skips it, saving a little CPU)."""
    kimg: float = 10000.0
    """Stop after this many thousand real images in total (across resumes)."""
    minutes: float | None = None
    """Stop after this many minutes of this invocation (None: no limit)."""
    seed: int = 0
    """Seed of the weights, the data order and the latents; the sample grid always uses seed 0."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'."""
    threads: int | None = 1
    """torch.set_num_threads on CPU (None: leave torch's default)."""
    checkpoint_minutes: float = 5.0
    """Write the resumable checkpoint this often."""
    export_minutes: float = 15.0
    """Export the prior (G_ema + D, float16) this often."""
    sample_minutes: float = 5.0
    """Write the sample grid this often."""

    @property
    def gamma(self) -> float:
        return self.r1_gamma if self.r1_gamma is not None else 0.0002 * self.resolution**2 / self.batch

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(z_dim=self.z_dim, w_dim=self.z_dim, img_resolution=self.resolution,
                               mapping_layers=self.mapping_layers, channel_base=self.channel_base,
                               channel_max=self.channel_max)

    def discriminator_config(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(img_resolution=self.resolution, channel_base=self.channel_base,
                                   channel_max=self.channel_max, mbstd_group_size=4)

    def check(self) -> None:
        r = self.resolution
        if r < 8 or r & (r - 1):
            raise UserError(f"--resolution must be a power of two >= 8, got {r}")
        if self.batch < 4 or self.batch % 4:
            raise UserError(f"--batch must be a positive multiple of 4 (minibatch-stddev groups), got {self.batch}")
        if self.r1_interval < 1:
            raise UserError(f"--r1-interval must be >= 1, got {self.r1_interval}")


ARCH_FIELDS = ("resolution", "z_dim", "mapping_layers", "channel_base", "channel_max")


# ----------------------------------------------------------------------------- outputs


def save_image_grid(images: torch.Tensor, path: str | os.PathLike, cols: int, scale: int = 1) -> None:
    """images: (N, 3, R, R) in [-1, 1] -> one PNG grid, `cols` wide, written atomically."""
    from PIL import Image

    n, c, h, w = images.shape
    rows = math.ceil(n / cols)
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    grid = torch.zeros(rows * cols, c, h, w, dtype=torch.uint8)
    grid[:n] = x
    grid = grid.reshape(rows, cols, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
    img = Image.fromarray(grid.numpy())
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    write_atomic(path, lambda tmp: img.save(tmp, format="PNG"))


def write_atomic(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """write(tmp_path) then rename over `path`, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")  # keeps the suffix for writers that check it
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def export_prior(path: str | os.PathLike, generator: Generator, discriminator: Discriminator,
                 extra_metadata: dict | None = None) -> None:
    """The shipped prior: generator (pass the EMA) + discriminator, float16, in our safetensors
    format (`rlse_fast.checkpoints.save_gan`, atomic); read it back with `load_gan`."""
    from ..checkpoints import save_gan

    save_gan(path, generator, discriminator, dtype=torch.float16, extra_metadata=extra_metadata)


# ----------------------------------------------------------------------------- training


def grid_latents(cfg: TrainConfig, device) -> torch.Tensor:
    """The fixed z of the sample grid (seed 0, whatever the run's seed)."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(SAMPLE_GRID[0] * SAMPLE_GRID[1], cfg.z_dim, generator=g).to(device)


@torch.no_grad()
def sample_grid(G_ema: Generator, z: torch.Tensor, batch: int = 16) -> torch.Tensor:
    return torch.cat([G_ema(zc, noise_mode="const").float() for zc in z.split(batch)])


def generate_ws(G: Generator, z: torch.Tensor, mixing_prob: float) -> torch.Tensor:
    ws = G.mapping(z)
    if mixing_prob > 0 and torch.rand([]).item() < mixing_prob:
        cutoff = int(torch.randint(1, ws.shape[1], []).item())
        ws = ws.clone()
        ws[:, cutoff:] = G.mapping(torch.randn_like(z))[:, cutoff:]
    return ws


@torch.no_grad()
def update_ema(G_ema: Generator, G: Generator, beta: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def reference_ops():
    """The plain-PyTorch ops inside the block: R1 differentiates the discriminator twice, and the
    native ops' backward passes are once-differentiable (on a CPU the references train as fast:
    1.25 s vs 1.33 s per G+D step at 64 px, batch 16)."""
    return dispatch.using("ref")


def train(data_dir: str | os.PathLike, run_dir: str | os.PathLike, cfg: TrainConfig, resume: str | None = None,
          export_to: str | os.PathLike | None = None, progress: bool = True, use_cache: bool = True,
          log: Callable[[str], None] = print) -> dict:
    """Train (or continue) a prior; returns the final stats dict.

    run_dir: checkpoint, samples, log and prior-<res>.safetensors go here. resume: a checkpoint
    path, 'auto' (run_dir's checkpoint), or None (fresh start). export_to: an extra path the
    prior is exported to alongside the run folder's copy.
    """
    threads = torch.get_num_threads()
    try:
        with reference_ops():
            return _train(data_dir, run_dir, cfg, resume, export_to, progress, use_cache, log)
    finally:
        torch.set_num_threads(threads)


def _train(data_dir, run_dir, cfg: TrainConfig, resume, export_to, progress, use_cache, log) -> dict:
    start_time = time.monotonic()
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    state = None
    if resume is not None:
        path = ckpt_path if resume == "auto" else Path(resume)
        if not path.is_file():
            raise UserError(f"no checkpoint at {str(path)!r} to resume from; drop --resume to start a new run")
        state = torch.load(path, map_location="cpu", weights_only=False)
        saved = state["config"]
        # The architecture is the checkpoint's; the schedule and limits are this invocation's.
        cfg = TrainConfig(**{**asdict(cfg), **{k: saved[k] for k in ARCH_FIELDS + ("batch",)}})
    cfg.check()
    from ..devices import pick_device

    device = pick_device(cfg.device)
    if device.type == "cpu" and cfg.threads:
        torch.set_num_threads(cfg.threads)
    amp = device.type == "cuda"
    torch.manual_seed(cfg.seed)

    faces = load_faces(data_dir, cfg.resolution, use_cache=use_cache, progress=progress)
    sampler = FaceSampler(faces, cfg.batch, seed=cfg.seed)

    G = Generator(cfg.generator_config()).to(device).train()
    D = Discriminator(cfg.discriminator_config()).to(device).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    mb_ratio = cfg.r1_interval / (cfg.r1_interval + 1)
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.0, cfg.beta2), eps=1e-8)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr * mb_ratio, betas=(0.0, cfg.beta2**mb_ratio), eps=1e-8)
    cur_nimg, batch_idx, total_seconds = 0, 0, 0.0
    if state is not None:
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        G_ema.load_state_dict(state["G_ema"])
        opt_G.load_state_dict(state["opt_G"])
        opt_D.load_state_dict(state["opt_D"])
        cur_nimg, batch_idx, total_seconds = state["cur_nimg"], state["batch_idx"], state["total_seconds"]
        sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["rng_cpu"])
        if amp and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], device)

    z_grid = grid_latents(cfg, device)
    export_paths = [run_dir / f"prior-{cfg.resolution}.safetensors"] + ([Path(export_to)] if export_to else [])
    target_nimg = int(cfg.kimg * 1000)
    deadline = start_time + cfg.minutes * 60 if cfg.minutes is not None else math.inf
    stats = {"loss_G": float("nan"), "loss_D": float("nan"), "r1": float("nan")}

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp)

    def save_checkpoint():
        elapsed = total_seconds + time.monotonic() - session_start
        ckpt = {
            "config": asdict(cfg), "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
            "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(), "cur_nimg": cur_nimg,
            "batch_idx": batch_idx, "total_seconds": elapsed, "sampler": sampler.state_dict(),
            "rng_cpu": torch.get_rng_state(), "rng_cuda": torch.cuda.get_rng_state(device) if amp else None,
        }
        write_atomic(ckpt_path, lambda tmp: torch.save(ckpt, tmp))
        # Losses of the last step; null before this run made one (a re-export): strict JSON has no NaN.
        line = {"kimg": round(cur_nimg / 1000, 3), "hours": round(elapsed / 3600, 4),
                **{k: round(v, 5) if math.isfinite(v) else None for k, v in stats.items()}}
        with open(run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    def export():
        meta = {"kimg": f"{cur_nimg / 1000:.3f}", "train_config": json.dumps(asdict(cfg)),
                "weights": "generator EMA + discriminator"}
        for p in export_paths:
            export_prior(p, G_ema, D, extra_metadata=meta)

    def write_samples():
        imgs = sample_grid(G_ema, z_grid)
        save_image_grid(imgs, run_dir / "samples" / "latest.png", SAMPLE_GRID[0])
        save_image_grid(imgs, run_dir / "samples" / f"kimg{cur_nimg // 1000:05d}.png", SAMPLE_GRID[0])

    run_dir.mkdir(parents=True, exist_ok=True)
    session_start = time.monotonic()
    last = {"ckpt": session_start, "export": session_start, "sample": session_start}

    bar = tqdm(total=target_nimg, initial=min(cur_nimg, target_nimg), unit="img", unit_scale=True,
               disable=not progress, mininterval=1.0 if sys.stderr.isatty() else 60.0, smoothing=0.05,
               desc=f"prior {cfg.resolution}px")
    while cur_nimg < target_nimg and time.monotonic() < deadline:
        # Generator: non-saturating logistic loss on fresh fakes.
        G.requires_grad_(True)
        D.requires_grad_(False)
        z = torch.randn(cfg.batch, cfg.z_dim, device=device)
        with autocast():
            fake = G.synthesis(generate_ws(G, z, cfg.mixing_prob), noise_mode="random")
            loss_G = F.softplus(-D(fake)).mean()
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()

        # Discriminator: logistic loss on fakes (G frozen) and a real minibatch.
        G.requires_grad_(False)
        D.requires_grad_(True)
        real = sampler.next().to(device)
        with torch.no_grad(), autocast():
            fake = G.synthesis(generate_ws(G, torch.randn(cfg.batch, cfg.z_dim, device=device), cfg.mixing_prob),
                               noise_mode="random")
        with autocast():
            loss_D = F.softplus(D(fake.detach())).mean() + F.softplus(-D(real)).mean()
        opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        opt_D.step()

        # Lazy R1 on reals, in float32 (double backward), weighted by the interval.
        if batch_idx % cfg.r1_interval == 0:
            x = real.detach().requires_grad_(True)
            logits = D(x)
            (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
            penalty = grad.square().sum(dim=[1, 2, 3]).mean()
            opt_D.zero_grad(set_to_none=True)
            (penalty * (cfg.gamma / 2) * cfg.r1_interval).backward()
            opt_D.step()
            stats["r1"] = penalty.item()

        # Generator EMA with ramp-up.
        cur_nimg += cfg.batch
        batch_idx += 1
        ema_nimg = cfg.ema_kimg * 1000
        if cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, cur_nimg * cfg.ema_rampup)
        update_ema(G_ema, G, 0.5 ** (cfg.batch / max(ema_nimg, 1e-8)))

        stats["loss_G"], stats["loss_D"] = loss_G.item(), loss_D.item()
        if not (math.isfinite(stats["loss_G"]) and math.isfinite(stats["loss_D"])):
            raise FloatingPointError(f"non-finite loss at {cur_nimg} images: {stats}")
        bar.update(cfg.batch)
        bar.set_postfix(G=f"{stats['loss_G']:.3f}", D=f"{stats['loss_D']:.3f}", r1=f"{stats['r1']:.3g}",
                        kimg=f"{cur_nimg / 1000:.1f}", refresh=False)

        now = time.monotonic()
        if now - last["sample"] >= cfg.sample_minutes * 60:
            write_samples()
            last["sample"] = now
        if now - last["ckpt"] >= cfg.checkpoint_minutes * 60:
            save_checkpoint()
            last["ckpt"] = now
        if now - last["export"] >= cfg.export_minutes * 60:
            export()
            last["export"] = now
    bar.close()

    save_checkpoint()
    write_samples()
    export()
    seconds = time.monotonic() - session_start
    log(f"stopped at {cur_nimg / 1000:.1f} kimg; prior written to {', '.join(map(str, export_paths))}")
    return {**stats, "cur_nimg": cur_nimg, "seconds": seconds, "exports": [str(p) for p in export_paths]}


def config_from_kwargs(**kwargs) -> TrainConfig:
    """TrainConfig from keyword arguments, ignoring those that are None (= keep the default)."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in kwargs.items() if k in names and v is not None})


__all__ = ["TrainConfig", "export_prior", "save_image_grid", "train", "write_atomic"]
