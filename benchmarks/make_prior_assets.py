"""Make the prior's README grid and example input from the current prior; rerun when it improves.

    python benchmarks/make_prior_assets.py [--prior rlse_fast/data/celeba64.safetensors]

Writes docs/prior_samples.png (8x4 samples, fixed seed, no truncation, nearest-upscaled) and
rlse_fast/data/example_lr.png (one sample with truncation 0.7, downscaled by 8 with PULSE's
bicubic, `rlse_fast.downsample.bicubic_downsample_ref`: 8x8 for a 64 px prior).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlse_fast.checkpoints import load_gan  # noqa: E402
from rlse_fast.downsample import bicubic_downsample_ref  # noqa: E402
from rlse_fast.imageio import atomic_write  # noqa: E402
from rlse_fast.train.outputs import save_image_grid  # noqa: E402


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prior", default=str(ROOT / "rlse_fast" / "data" / "celeba64.safetensors"))
    p.add_argument("--grid", default=str(ROOT / "docs" / "prior_samples.png"))
    p.add_argument("--example", default=str(ROOT / "rlse_fast" / "data" / "example_lr.png"))
    p.add_argument("--seed", type=int, default=1, help="seed of the grid's latents")
    p.add_argument("--example-index", type=int, default=0, help="which sample of the seed becomes the example")
    p.add_argument("--example-psi", type=float, default=0.7, help="truncation of the example (1: none)")
    p.add_argument("--factor", type=int, default=8, help="downscale factor of the example")
    p.add_argument("--scale", type=int, default=3, help="nearest-neighbour upscale of the grid")
    args = p.parse_args()

    gan = load_gan(args.prior, with_discriminator=False)
    G = gan.generator.float().eval()
    z = torch.randn(32, G.z_dim, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        grid = G(z, noise_mode="const")
        example = G(z[args.example_index:args.example_index + 1], truncation_psi=args.example_psi, noise_mode="const")
        lr = bicubic_downsample_ref(example.double(), args.factor).float()
    save_image_grid(grid, args.grid, cols=8, scale=args.scale)
    lr_img = Image.fromarray(to_uint8(lr[0]).numpy())
    atomic_write(args.example, lambda tmp: lr_img.save(tmp, format="PNG"))
    kimg = gan.metadata.get("kimg", "?")
    print(f"{args.prior} ({kimg} kimg): wrote {args.grid} ({grid.shape[-1]} px x{args.scale}) "
          f"and {args.example} ({lr_img.width}x{lr_img.height})")


if __name__ == "__main__":
    main()
