"""The monochrome measure (`rlse_fast.faces.chroma.tint_spread`) on the shared photos and faces, and
on a synthetic sepia print, to place `MONOCHROME_MAX` (docs/photo-protocol.md, "Grey in, grey out").

    python benchmarks/tint_spread.py [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np


def main() -> None:
    from PIL import Image

    from rlse_fast.faces.chroma import MONOCHROME_MAX, tint_spread
    from rlse_fast.faces.photo_io import read_photo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    data = Path(ap.parse_args().data)
    for folder in ("photos", "ffhq_aligned_real"):
        for f in sorted((data / folder).glob("*.[jp][pn]g")):
            print(f"{folder}/{f.name}\t{tint_spread(read_photo(f)):.2f}")
    grey = read_photo(data / "photos" / "solvay_1927.png")[..., :1].astype(np.float64)
    sepia = np.clip(grey * np.array([1.07, 0.74, 0.43]) + np.array([10, 5, 0]), 0, 255).astype(np.uint8)
    print(f"synthetic sepia of solvay_1927.png\t{tint_spread(sepia):.2f}")
    for q in (95, 80, 50):
        buf = io.BytesIO()
        Image.fromarray(sepia).save(buf, "JPEG", quality=q)
        print(f"  the same, JPEG quality {q}\t{tint_spread(np.asarray(Image.open(buf).convert('RGB'))):.2f}")
    print(f"monochrome at or below {MONOCHROME_MAX}")


if __name__ == "__main__":
    main()
