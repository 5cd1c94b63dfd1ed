"""`rlse-fast convert IN OUT`: any supported checkpoint to the rlse-fast safetensors format."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert a .pkl / .pt checkpoint to rlse-fast .safetensors",
                       description="Convert an official StyleGAN2-ADA pickle, an official StyleGAN (v1) TF pickle, PULSE's "
                                   "synthesis.pt (+ mapping.pt) or a rosinality checkpoint to the "
                                   "rlse-fast safetensors format (generator and discriminator, config in the metadata).")
    p.add_argument("src", metavar="IN", help="input weights (.pkl, .pt or .safetensors)")
    p.add_argument("dst", metavar="OUT", help="output .safetensors path (written atomically)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                   help="tensor dtype in the output file (default: float32)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checkpoints import convert

    dst = Path(args.dst)
    if dst.suffix != ".safetensors":
        raise UserError(f"output must end in .safetensors, got {dst.name}")
    if dst.exists() and not args.force:
        raise UserError(f"{dst} exists; pass --force to overwrite it")
    if Path(args.src).resolve() == dst.resolve():
        raise UserError("input and output are the same file")
    gan = convert(args.src, dst, dtype=getattr(torch, args.dtype))
    print(f"wrote {dst} ({gan.generator.cfg.img_resolution}px, from {gan.source_format}, "
          f"discriminator {'included' if gan.discriminator is not None else 'absent'})")
    return 0
