"""Grey in, grey out: monochrome inputs (black-and-white, sepia, any single tint) keep their own colour.

The generator paints faces in CelebA's colours whatever the input's; on a black-and-white or sepia
photo that gives coloured faces on a grey page. The rule: an input whose chroma is a function of its
luma alone (a grey or toned print: every pixel of one brightness has one colour) is monochrome, and
its restored faces keep the generator's luma with the chroma the input has at that luma (its tint
curve). A grey input (R = G = B) therefore gives a grey result exactly, a sepia one its own sepia, and a
colour input is left as the generator made it.

Measure: BT.601 full-range chroma (Cb, Cr in 8-bit levels), minus the mean chroma of the pixels in the
same luma bin (32 bins), RMS over the image (`python benchmarks/tint_spread.py`): grey photos score 0,
a synthetic sepia of `solvay_1927.png` 0.9 (2.5-4.6 after JPEG at quality 95-50); the 10 colour photos
in `../shared/data/photos` 9.8-22.5 and the 20 `ffhq_aligned_real` faces 4.2-24.6. A colour face wrongly
taken as monochrome only loses the generator's chroma (its luma, where the detail is, stays), so the
threshold leans high.
"""
from __future__ import annotations

import numpy as np
import torch

MONOCHROME_MAX = 5.0
"""RMS chroma (8-bit levels) left once luma predicts it, at or below which an input is monochrome."""
_BINS = 32


def _ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB -> (..., 3, H, W) full-range Y, Cb, Cr (JPEG's; same units as the input)."""
    r, g, b = rgb.unbind(-3)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return torch.stack([y, 0.564 * (b - y), 0.713 * (r - y)], -3)


def _rgb(ycc: torch.Tensor) -> torch.Tensor:
    y, cb, cr = ycc.unbind(-3)
    r = y + cr / 0.713
    b = y + cb / 0.564
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return torch.stack([r, g, b], -3)


def tint_spread(rgb: np.ndarray) -> float:
    """(H, W, 3) uint8 -> RMS chroma in 8-bit levels not explained by luma (0 for grey and toned images)."""
    ycc = _ycbcr(torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).double())
    y, c = ycc[0].flatten(), ycc[1:].flatten(1)
    bins = (y / (256 / _BINS)).long().clamp(0, _BINS - 1)
    n = torch.bincount(bins, minlength=_BINS).clamp(min=1).double()
    mean = torch.stack([torch.bincount(bins, ch, minlength=_BINS) for ch in c]) / n
    return float((c - mean[:, bins]).square().sum(0).mean().sqrt())


def is_monochrome(rgb: np.ndarray) -> bool:
    return tint_spread(rgb) <= MONOCHROME_MAX


def tint_curve(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (2, 32) float64: the mean Cb and Cr (8-bit levels) of each luma bin, empty
    bins filled by linear interpolation between their neighbours (all zero for a grey photo)."""
    ycc = _ycbcr(torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).double())
    y, c = ycc[0].flatten(), ycc[1:].flatten(1)
    bins = (y / (256 / _BINS)).long().clamp(0, _BINS - 1)
    n = torch.bincount(bins, minlength=_BINS)
    mean = torch.stack([torch.bincount(bins, ch, minlength=_BINS) for ch in c]) / n.clamp(min=1)
    have = (n > 0).numpy()
    centres = np.arange(_BINS)
    return torch.from_numpy(np.stack([np.interp(centres, centres[have], m.numpy()[have]) for m in mean]))


def retint(result: torch.Tensor, curve: torch.Tensor) -> torch.Tensor:
    """`result` (..., 3, H, W) on 0..255 with its luma kept and its chroma read off `curve` (from
    `tint_curve`) at that luma: a face painted in the photo's own tint (grey for a grey photo)."""
    ycc = _ycbcr(result.double())
    y = ycc[..., 0, :, :]
    t = (y / (256 / _BINS) - 0.5).clamp(0, _BINS - 1)
    lo = t.floor().long().clamp(max=_BINS - 2)
    w = t - lo
    cb, cr = ((1 - w) * curve[k][lo] + w * curve[k][lo + 1] for k in (0, 1))
    return _rgb(torch.stack([y, cb, cr], -3)).to(result.dtype)


def match_input(result: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """`sr`'s rule for one face: (3, R, R) result and its (3, s, s) input, both in [0, 1] -> (the result
    in the input's tint when the input is monochrome, else the result unchanged; whether it was)."""
    u8 = (lr.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if not is_monochrome(u8):
        return result, False
    out = retint(result.detach().float().cpu() * 255, tint_curve(u8)) / 255
    return out.clamp(0, 1).to(result.dtype), True
