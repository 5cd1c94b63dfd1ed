"""Make the README's two pictures by running the CLI on the CPU; rerun when the method or the prior changes.

    python benchmarks/make_readme_figures.py [--data ../shared/data] [--steps 100]

docs/figures/sr_strip.png: `rlse-fast sr` with the bundled celeba64 prior on the bundled example
(rlse_fast/data/example_lr.png, no ground truth) and the first --faces faces by name of
celeba128_test (resized to 64 px, downscaled 8x with PULSE's bicubic as `eval` does; not picked by
eye). Columns: the 8 px input (nearest), Lanczos x8, RLSE, the ground truth.

docs/figures/photo_crop.png: `rlse-fast photo --upscale 2` on a real photo (--photo, from
../shared/data/photos) downscaled 2x (Lanczos), so the original is the ground truth. Every face is
scored by PSNR-Y inside its pasted box, `photo` against Lanczos x2; the crop shows the face whose
gain is the median, not the best. Columns: the input (nearest x2), Lanczos x2, `photo`, the
original. The per-face scores go to docs/figures/photo_crop.json.

The shared photos must not be committed: only the small crop is written into the repository.
"""
from __future__ import annotations

import argparse
import json
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
from rlse_fast.metrics.psnr_ssim import psnr  # noqa: E402

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


def photo_crop(photo: Path, steps: int, tmp: Path, out: Path) -> None:
    orig = np.asarray(Image.open(photo).convert("RGB"))
    orig = orig[: orig.shape[0] // 2 * 2, : orig.shape[1] // 2 * 2]  # even, so x2 of the half is the original's size
    h, w = orig.shape[:2]
    small = lanczos(orig, (w // 2, h // 2))
    Image.fromarray(small).save(tmp / "small.png")
    run_cli("photo", str(tmp / "small.png"), str(tmp / "restored.png"), "--upscale", "2", "--weights", "celeba64",
            "--steps", str(steps), "--seed", "0", "--quiet")
    restored = np.asarray(Image.open(tmp / "restored.png").convert("RGB"))
    side = json.loads((tmp / "restored.json").read_text())
    base = lanczos(small, (w, h))
    scores = []
    for i, face in enumerate(side["faces"]):
        if not face.get("pasted_box"):
            continue
        x0, y0, x1, y1 = face["pasted_box"]
        sl = (slice(y0, y1), slice(x0, x1))
        p_photo, p_lanczos = psnr(restored[sl], orig[sl]), psnr(base[sl], orig[sl])
        scores.append({"face": i, "box_in_input": face["box"], "pasted_box": [x0, y0, x1, y1],
                       "psnr_y_photo": round(p_photo, 2), "psnr_y_lanczos": round(p_lanczos, 2),
                       "gain_db": round(p_photo - p_lanczos, 2)})
    if not scores:
        sys.exit(f"{photo.name}: no face was restored at half size; pick another --photo")
    ranked = sorted(scores, key=lambda s: s["gain_db"])
    median = ranked[(len(ranked) - 1) // 2]
    x0, y0, x1, y1 = median["pasted_box"]
    cx, cy, half = (x0 + x1) // 2, (y0 + y1) // 2, max(x1 - x0, y1 - y0) * 3 // 4
    box = (max(cx - half, 0), max(cy - half, 0), min(cx + half, w), min(cy + half, h))
    crop = lambda img: img[box[1]:box[3], box[0]:box[2]]  # noqa: E731
    cell = (box[2] - box[0], box[3] - box[1])
    scale = 160 / max(cell)
    cell = (round(cell[0] * scale), round(cell[1] * scale))
    row = [nearest(small, (w, h)), base, restored, orig]
    grid = labelled_grid([[crop(img) for img in row]], ["input (half size)", "Lanczos x2", "rlse-fast photo",
                                                        "original"], cell)
    grid.save(out, optimize=True)
    (out.with_suffix(".json")).write_text(json.dumps({
        "photo": photo.name, "downscale": 2, "upscale": 2, "weights": "celeba64", "steps": steps,
        "shown": median, "crop_box": list(box), "faces": scores}, indent=1) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--photo", default="voc_2008_002470.jpg", help="a photo of DATA/photos")
    p.add_argument("--faces", type=int, default=4, help="celeba128_test faces in the sr strip")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "figures")
    args = p.parse_args()
    if not (args.data / "celeba128_test").is_dir() or not (args.data / "photos" / args.photo).is_file():
        sys.exit(f"{args.data}: needs celeba128_test/ and photos/{args.photo} (the shared data); pass --data")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sr").mkdir()
        (Path(tmp) / "photo").mkdir()
        sr_strip(args.data, args.faces, args.steps, Path(tmp) / "sr", args.out / "sr_strip.png")
        photo_crop(args.data / "photos" / args.photo, args.steps, Path(tmp) / "photo", args.out / "photo_crop.png")
    for name in ("sr_strip.png", "photo_crop.png"):
        print(f"{args.out / name}: {(args.out / name).stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
