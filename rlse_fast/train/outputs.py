"""What a training run writes besides its checkpoint: sample grids and the exported prior, atomically."""
from __future__ import annotations

import math
import os

import torch

from ..imageio import atomic_write
from ..models.stylegan2 import Discriminator, Generator

SAMPLE_GRID = (8, 4)  # columns, rows


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
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def export_prior(path: str | os.PathLike, generator: Generator, discriminator: Discriminator,
                 extra_metadata: dict | None = None) -> None:
    """The shipped prior: generator (pass the EMA) + discriminator, float16, in our safetensors
    format (`rlse_fast.checkpoints.save_gan`, atomic); read it back with `load_gan`."""
    from ..checkpoints import save_gan

    save_gan(path, generator, discriminator, dtype=torch.float16, extra_metadata=extra_metadata)


def grid_latents(z_dim: int, device) -> torch.Tensor:
    """The fixed z of the sample grid (seed 0, whatever the run's seed)."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(SAMPLE_GRID[0] * SAMPLE_GRID[1], z_dim, generator=g).to(device)


@torch.no_grad()
def sample_grid(G_ema: Generator, z: torch.Tensor, batch: int = 16) -> torch.Tensor:
    return torch.cat([G_ema(zc, noise_mode="const").float() for zc in z.split(batch)])


__all__ = ["SAMPLE_GRID", "export_prior", "grid_latents", "sample_grid", "save_image_grid"]
