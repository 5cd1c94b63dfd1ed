"""PULSE's Gaussian fit of the mapping network's output before its last leaky ReLU.

The latent z lives on spheres; W = lrelu(z * std + mean) (with the mapping's gain) then follows the
distribution of the generator's own W. The fit is computed once per weights file and cached.
"""
from __future__ import annotations

import os

import torch

from .home import home
from .models.stylegan2 import Generator
from .ops import bias_act


@torch.no_grad()
def compute(G: Generator, samples: int, seed: int = 0, chunk: int = 65536, device="cpu") -> dict[str, torch.Tensor]:
    """Mean and std (w_dim,) of the mapping's pre-activation output over `samples` random z."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    total = torch.zeros(G.w_dim, dtype=torch.float64)
    total_sq = torch.zeros(G.w_dim, dtype=torch.float64)
    done = 0
    while done < samples:
        n = min(chunk, samples - done)
        z = torch.randn(n, G.z_dim, generator=gen).to(device)
        x = G.mapping(z, preactivation=True).double().cpu()
        total += x.sum(0)
        total_sq += x.square().sum(0)
        done += n
    mean = total / samples
    var = (total_sq - samples * mean.square()) / max(samples - 1, 1)
    return {"mean": mean.float(), "std": var.clamp_min(0).sqrt().float()}


def to_w(G, z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """W = lrelu(z * std + mean) with the mapping's own activation gain: sqrt 2 on StyleGAN2 (its
    lrelu carries the gain), none on StyleGAN v1 (the gain is in its weights; PULSE's
    `LeakyReLU(0.2)`), so W follows the generator's W distribution on either."""
    return bias_act(z * std + mean, act="lrelu", gain=getattr(G, "mapping_act_gain", None), impl=impl)


def cached(G: Generator, weights_sha256: str, samples: int, seed: int = 0, device="cpu") -> dict[str, torch.Tensor]:
    """`compute`, cached under home()/gaussian_fit/<sha256>-<samples>-<seed>.safetensors."""
    from safetensors.torch import load_file, save_file

    path = home() / "gaussian_fit" / f"{weights_sha256[:32]}-{samples}-{seed}.safetensors"
    if path.is_file():
        try:
            fit = load_file(str(path))
            if fit["mean"].shape == (G.w_dim,):
                return fit
        except Exception:
            pass  # a damaged cache entry is recomputed
    fit = compute(G, samples, seed, device=device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({k: v.contiguous() for k, v in fit.items()}, str(tmp))
    os.replace(tmp, path)
    return fit
