"""Memory layouts the native ops take as they are."""
from __future__ import annotations

import torch


def is_nhwc(x: torch.Tensor) -> bool:
    """A 4-D tensor stored channels-last and not also contiguous (as one with C == 1 or 1x1 images
    is): the native ops run it as NHWC and return NHWC."""
    return x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def taps_last(w: torch.Tensor) -> torch.Tensor:
    """A (B, O, I, kh, kw) weight as a view of (B, O, kh, kw, I) memory (a channels-last conv
    weight, cuDNN's KRSC; a copy unless w is one already): the per-face convolution reads whole
    rows of input channels from it, in either role."""
    order = w.permute(0, 1, 3, 4, 2)
    return w if order.is_contiguous() else order.contiguous().permute(0, 1, 4, 2, 3)
