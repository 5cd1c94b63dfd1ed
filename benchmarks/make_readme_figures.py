"""Make the README's `sr` picture by running the CLI on the CPU; rerun when the method or the prior changes.

    python benchmarks/make_readme_figures.py [--data ../shared/data] [--steps 100]

docs/figures/sr_strip.png: `rlse-fast sr` with the bundled celeba64 prior on the bundled example
(rlse_fast/data/example_lr.png, no ground truth) and the first --faces faces by name of
celeba128_test (resized to 64 px, downscaled 8x with PULSE's bicubic as `eval` does; not picked by
eye). Columns: the 8 px input (nearest), Lanczos x8, RLSE, the ground truth.

The photo picture is the photo protocol's median face (docs/photo-protocol.md has its command).

The shared photos must not be committed: only the small strip is written into the repository.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlse_fast.evaluate.inputs import downscale, list_faces, load_uint8, pil_resize  # noqa: E402

LABEL_H = 18


def run_cli(*args: str) -> None:
    """`python -m rlse_fast ARGS` in this tree; stops the script with the CLI's own message on failure."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "rlse_fast", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"rlse-fast {' '.join(args)} failed:\n{res.stderr.strip()}")


def nearest(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize(size, Image.NEAREST))


def lanczos(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize(size, Image.LANCZOS))


def labelled_grid(rows: list[list[np.ndarray | None]], labels: list[str], cell: tuple[int, int]) -> Image.Image:
    """Cells of equal size (None: left grey), a label above each column."""
    w, h = cell
    pad = 2
    grid = Image.new("RGB", (len(labels) * (w + pad) - pad, LABEL_H + len(rows) * (h + pad) - pad), "white")
    draw = ImageDraw.Draw(grid)
    try:
        font = ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        font = ImageFont.load_default()
    for c, label in enumerate(labels):
        draw.text((c * (w + pad) + 2, 2), label, fill="black", font=font)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            xy = (c * (w + pad), LABEL_H + r * (h + pad))
            if img is None:
                draw.rectangle([xy, (xy[0] + w - 1, xy[1] + h - 1)], fill=(235, 235, 235))
                draw.text((xy[0] + 4, xy[1] + h // 2 - 6), "no ground truth", fill="gray", font=font)
            else:
                grid.paste(Image.fromarray(img).resize(cell, Image.NEAREST), xy)
    return grid


def sr_strip(data: Path, n: int, steps: int, tmp: Path, out: Path) -> None:
    lr_dir, sr_dir = tmp / "lr", tmp / "sr"
    lr_dir.mkdir()
    pairs = [("example", None)]
    Image.open(ROOT / "rlse_fast" / "data" / "example_lr.png").convert("RGB").save(lr_dir / "example.png")
    for path in list_faces(data / "celeba128_test", n):
        hr = pil_resize(load_uint8(path), 64, "bicubic")
        Image.fromarray(downscale(hr, 8)).save(lr_dir / f"{path.stem}.png")
        pairs.append((path.stem, hr))
    run_cli("sr", str(lr_dir), str(sr_dir), "--weights", "celeba64", "--steps", str(steps), "--seed", "0",
            "--batch", "1", "--quiet")
    rows = []
    for name, hr in pairs:
        lr = np.asarray(Image.open(lr_dir / f"{name}.png").convert("RGB"))
        rows.append([nearest(lr, (64, 64)), lanczos(lr, (64, 64)),
                     np.asarray(Image.open(sr_dir / f"{name}.png").convert("RGB")), hr])
    grid = labelled_grid(rows, ["input 8 px", "Lanczos x8", "rlse-fast sr", "ground truth"], (128, 128))
    grid.save(out, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--faces", type=int, default=4, help="celeba128_test faces in the sr strip")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "figures")
    args = p.parse_args()
    if not (args.data / "celeba128_test").is_dir():
        sys.exit(f"{args.data}: needs celeba128_test/ (the shared data); pass --data")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sr").mkdir()
        sr_strip(args.data, args.faces, args.steps, Path(tmp) / "sr", args.out / "sr_strip.png")
    for name in ("sr_strip.png",):
        print(f"{args.out / name}: {(args.out / name).stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
