"""Pack a folder of faces into one small file that travels with the checkout to a device machine
(which has no ../shared/data): the training crops at the training resolution, as JPEGs, in one
safetensors file that `rlse-fast train-prior` reads in place of the folder.

    python benchmarks/pack_faces.py ../shared/data/celeba_train runs/prior-gpu/celeba_train-64.faces

10,000 CelebA faces at 64 px, quality 90 (4:2:0): about 23 MB, RMS error about 3.4/255 against
the uncompressed crops (measured on 300 faces; quality 95: 29 MB, 2.5/255).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlse_fast.errors import UserError  # noqa: E402
from rlse_fast.train.data import pack_faces  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data_dir")
    p.add_argument("out", help="the packed file (suffix .faces), e.g. runs/prior-gpu/celeba_train-64.faces")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    args = p.parse_args()
    try:
        info = pack_faces(args.data_dir, args.resolution, args.out, quality=args.quality)
    except UserError as exc:
        print(f"pack_faces: {exc}", file=sys.stderr)
        return 2
    print(f"{info['path']}: {info['count']} faces, {info['bytes'] / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
