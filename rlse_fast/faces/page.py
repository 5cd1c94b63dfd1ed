"""A before/after HTML page for one restored photo: the photo with its detected boxes, the Lanczos
resampling and the restored photo side by side, and each face's aligned input -> output.
Images are written as PNG files beside the page (relative links), like the eval report."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..imageio import atomic_write, save_image
from .paste import upscale_photo


def write_page(page: Path, rgb: np.ndarray, result, title: str, stages: dict | None = None) -> Path:
    """Write `page` (an .html path) and its images into `<page stem>_files/`; returns the page path."""
    page = Path(page)
    files = page.with_name(page.stem + "_files")
    files.mkdir(parents=True, exist_ok=True)
    boxed = Image.fromarray(rgb).copy()
    draw = ImageDraw.Draw(boxed)
    for i, f in enumerate(result.faces):
        x1, y1, x2, y2 = (float(v) for v in f.face.box)
        draw.rectangle([x1, y1, x2, y2], outline=(0, 255, 0) if f.restored else (255, 160, 0), width=2)
        draw.text((x1, max(0, y1 - 11)), str(i), fill=(0, 255, 0))
    boxed.save(files / "boxes.png")
    Image.fromarray(upscale_photo(rgb, result.upscale)).save(files / "before.png")
    Image.fromarray(result.image).save(files / "after.png")
    rows = []
    kept = []
    for i, f in enumerate(result.faces):
        if f.sr is None:
            kept.append(f"<li>face {i} ({f.face.width:.0f}px wide, aligned side {f.alignment.side:.0f}px): "
                        f"{html.escape(f.reason)}</li>")
            continue
        res = f.sr.shape[-1]
        lr = Image.fromarray((f.lr.clamp(0, 1) * 255 + 0.5).byte().permute(1, 2, 0).numpy()).resize((res, res), Image.NEAREST)
        lr.save(files / f"face{i:03d}_lr.png")
        save_image(f.sr, files / f"face{i:03d}_sr.png")
        rows.append(f"<figure><img src='{files.name}/face{i:03d}_lr.png' width=128 height=128>"
                    f"<img src='{files.name}/face{i:03d}_sr.png' width=128 height=128>"
                    f"<figcaption>face {i}: {f.lr_size}px &rarr; {res}px, {f.face.width:.0f}px wide, "
                    f"score {f.face.score:.2f}, loss {f.loss:.3g}, {_checks(f)}<br><b>{html.escape(f.reason)}</b>"
                    "</figcaption></figure>")
    stage_txt = ", ".join(f"{k} {v:.1f} s" for k, v in (stages or result.stages).items())
    body = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:16px}} img{{image-rendering:pixelated;max-width:100%}}
.pair{{display:flex;gap:8px}} .pair div{{flex:1}} figure{{display:inline-block;margin:6px}}
figcaption{{font-size:12px}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(result.summary())}; strength {result.strength:g}{'; monochrome photo: faces keep its chroma' if result.monochrome else ''} (frame '{html.escape(result.frame)}', upscale x{result.upscale:g}); stages: {html.escape(stage_txt)}.
Only restored faces are super-resolved; kept faces (orange boxes) and the rest are Pillow's Lanczos resampling.</p>
<h2>Detected faces</h2><img src="{files.name}/boxes.png">
<h2>Before (Lanczos) / after</h2><div class="pair"><div><img src="{files.name}/before.png"></div>
<div><img src="{files.name}/after.png"></div></div>
<h2>Faces: aligned input (nearest-neighbour enlarged) &rarr; output</h2>
{''.join(rows)}
<h2>Kept before any fit</h2><ul>{''.join(kept) or '<li>none</li>'}</ul>
</body></html>
"""
    atomic_write(page, lambda tmp: Path(tmp).write_text(body, encoding="utf-8"))
    return page


def _checks(f) -> str:
    db = "n/a" if f.consistency_db is None else f"{f.consistency_db:.1f} dB"
    ident = "not measured" if f.identity is None else f"{f.identity:.2f}"
    return f"consistency {db}, identity distance {ident}"
