"""Pasting super-resolved faces back: inverse warp into the upscaled photo, blended by a feathered mask.

The mask is defined analytically on the frame's unit square (1 inside, a smooth ramp of `feather`
of the side at the edges, exactly 0 outside), so pixels outside every face's square are never
touched: the background stays bit-identical to the resampled photo.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .align import Alignment
from .chroma import retint
from .project import back_project, context_window

MARGIN = 0.02
"""Band at the square's edge where the mask is 0 (bicubic sampling there reads the replicated border)."""
FEATHER = 0.12
"""Width of the mask's ramp from 0 to 1, as a fraction of the square's side."""


def mask(q: torch.Tensor, margin: float = MARGIN, feather: float = FEATHER) -> torch.Tensor:
    """(..., 2) unit-square points -> (...) weights in [0, 1]: a smoothstep ramp from the square's edge."""
    edge = torch.minimum(q, 1 - q).amin(-1)
    t = ((edge - margin) / feather).clamp(0, 1)
    return t * t * (3 - 2 * t)


def paste(canvas: np.ndarray, face: torch.Tensor | None, alignment: Alignment, upscale: float,
          strength: float = 1.0, tint: torch.Tensor | None = None, source: np.ndarray | None = None,
          steps: int = 0) -> tuple[int, int, int, int] | None:
    """Blend `face` (3, R, R) in [0, 1] (an image of the frame's unit square) into `canvas` (H, W, 3)
    uint8, the photo upscaled by `upscale`, in place, with weight `strength` x the mask: strength 0
    leaves the canvas bit for bit, 1 puts the face in fully inside the ramp. `tint`: a monochrome
    photo's tint curve (`chroma.tint_curve`): the face keeps its luma and takes the photo's chroma.
    `source` (the photo `canvas` was resampled from) and `steps` > 0: the pasted face (at strength 1) is
    back-projected onto `source` inside the mask (`project.py`) before the blend. `face` None pastes the
    canvas itself (with `steps`, the projection alone: the protocol's control).
    Returns the box (x0, y0, x1, y1) of canvas pixels the mask reaches, or None when the face lies
    outside the canvas."""
    h, w = canvas.shape[:2]
    corners = alignment.to_photo(np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float64)) * upscale
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    ys = (torch.arange(y0, y1, dtype=torch.float64) + 0.5) / upscale
    xs = (torch.arange(x0, x1, dtype=torch.float64) + 0.5) / upscale
    py, px = torch.meshgrid(ys, xs, indexing="ij")
    m = torch.from_numpy(alignment.matrix)
    q = torch.stack([m[0, 0] * px + m[0, 1] * py + m[0, 2], m[1, 0] * px + m[1, 1] * py + m[1, 2]], -1)
    weight = mask(q)
    inside = weight > 0
    if not bool(inside.any()):
        return None
    region = canvas[y0:y1, x0:x1]
    bg = torch.from_numpy(region.astype(np.float64))
    if face is None:
        sr = bg
    else:
        grid = (2 * q - 1)[None].to(torch.float32)
        sr = F.grid_sample(face[None].float(), grid, mode="bicubic", padding_mode="border", align_corners=False)[0]
        sr = sr.clamp(0, 1).permute(1, 2, 0).double() * 255
        if tint is not None:
            sr = retint(sr.permute(2, 0, 1), tint).permute(1, 2, 0)
    if source is not None and steps > 0:
        full = bg + weight[..., None] * (sr - bg)
        wx0, wy0, wx1, wy1 = context_window((x0, y0, x1, y1), canvas.shape, source.shape)
        window = canvas[wy0:wy1, wx0:wx1].astype(np.float64)
        wmap = np.zeros(window.shape[:2])
        window[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0] = full.numpy()
        wmap[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0] = weight.numpy()
        window = back_project(window, wmap, (wx0, wy0), canvas.shape, source, steps)
        sr_at_one = torch.from_numpy(window[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0])
        blended = (bg + float(strength) * (sr_at_one - bg) + 0.5).clamp(0, 255).to(torch.uint8).numpy()
    else:
        wgt = weight[..., None] * float(strength)
        blended = (bg * (1 - wgt) + sr * wgt + 0.5).clamp(0, 255).to(torch.uint8).numpy()
    sel = inside.numpy()
    region[sel] = blended[sel]
    return int(x0), int(y0), int(x1), int(y1)


def upscale_photo(rgb: np.ndarray, upscale: float) -> np.ndarray:
    """The background: the whole photo resampled by Pillow's Lanczos filter to round(upscale x size)."""
    h, w = rgb.shape[:2]
    size = (int(round(w * upscale)), int(round(h * upscale)))
    if size == (w, h):
        return rgb.copy()
    return np.array(Image.fromarray(rgb).resize(size, Image.LANCZOS), dtype=np.uint8)
