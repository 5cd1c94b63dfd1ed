"""Back-projection: a pasted face made to agree with the photo it came from.

The generator's face reproduces its input only roughly (30-37 dB PSNR-Y against the input face on real
photos), and what drifts is what the input already says: the shapes and tones that make the face
somebody. Iterative back-projection (Irani and Peleg, 1991) corrects that on the output photo itself:
downscale the output window to the input photo's pixel grid with the method's operator (bicubic,
antialiased, as `down_s` and the photo protocol's degradation), upsample the residual against the input
photo with Lanczos, add it where the face is pasted, and repeat. What stays of the generator is the
detail the input cannot contradict. docs/photo-protocol.md measures it (with a control: the same
projection of the Lanczos face alone).

Everything works on windows of the output photo with the input's pixel grid mapped exactly (any upscale,
Pillow's `box`), so a face costs a few small resizes per step, whatever the photo's size.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

STEPS = 10
"""Default back-projection steps (`photo --back-project`); 0 pastes the generator's face as it is."""
MAX_STEPS = 100
"""The flag's bound: the residual shrinks with every step, and 10 already leave under a level of 8 bits (tests)."""
CONTEXT = 8
"""Input pixels of photo around a face's pasted box that the filters read (bicubic 2 + Lanczos 3, and slack)."""


def _resize(a: np.ndarray, size: tuple[int, int], box: tuple[float, ...], resample) -> np.ndarray:
    """(h, w, C) float -> (size[1], size[0], C) float64: Pillow's float resampling of `box` (source pixels)."""
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(a[..., c], dtype=np.float32), "F")
                                .resize(size, resample, box=box), dtype=np.float64)
                     for c in range(a.shape[-1])], -1)


def context_window(box: tuple[int, int, int, int], out_shape, source_shape) -> tuple[int, int, int, int]:
    """The output-photo window (x0, y0, x1, y1) that back-projecting a face pasted in `box` reads."""
    sx, sy = out_shape[1] / source_shape[1], out_shape[0] / source_shape[0]
    x0, y0, x1, y1 = box
    mx, my = math.ceil(CONTEXT * sx), math.ceil(CONTEXT * sy)
    return max(x0 - mx, 0), max(y0 - my, 0), min(x1 + mx, out_shape[1]), min(y1 + my, out_shape[0])


def back_project(out: np.ndarray, weight: np.ndarray, origin: tuple[int, int], out_shape,
                 source: np.ndarray, steps: int = STEPS) -> np.ndarray:
    """`out` (h, w, 3) float: the window of the output photo (shape `out_shape`) whose top-left pixel is
    `origin` (x, y); `weight` (h, w) in [0, 1]: how much each pixel may move (0: not at all); `source`:
    the input photo (H, W, 3). Returns the window after `steps` steps of
    out += weight * lanczos_up(source - bicubic_down(out)), on the input pixels the window covers."""
    sx, sy = out_shape[1] / source.shape[1], out_shape[0] / source.shape[0]
    h, w = out.shape[:2]
    x0, y0 = origin
    eps = 1e-9
    # Input pixels whose footprint lies inside the window, and output pixels whose centres they cover.
    xa, ya = math.ceil(x0 / sx - eps), math.ceil(y0 / sy - eps)
    xb, yb = math.floor((x0 + w) / sx + eps), math.floor((y0 + h) / sy + eps)
    if xb - xa < 1 or yb - ya < 1 or steps <= 0:
        return out
    ua, va = math.ceil(xa * sx - eps) - x0, math.ceil(ya * sy - eps) - y0
    ub, vb = math.floor(xb * sx + eps) - x0, math.floor(yb * sy + eps) - y0
    target = source[ya:yb, xa:xb].astype(np.float64)
    down_box = (xa * sx - x0, ya * sy - y0, xb * sx - x0, yb * sy - y0)
    up_box = ((x0 + ua) / sx - xa, (y0 + va) / sy - ya, (x0 + ub) / sx - xa, (y0 + vb) / sy - ya)
    up_box = tuple(max(v, 0.0) for v in up_box[:2]) + (min(up_box[2], xb - xa), min(up_box[3], yb - ya))
    wgt = weight[va:vb, ua:ub, None]
    y = np.array(out, dtype=np.float64)
    for _ in range(steps):
        residual = target - _resize(y, (xb - xa, yb - ya), down_box, Image.BICUBIC)
        y[va:vb, ua:ub] += wgt * _resize(residual, (ub - ua, vb - va), up_box, Image.LANCZOS)
    return y
