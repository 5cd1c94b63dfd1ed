"""Memory layouts the native ops take as they are."""
from __future__ import annotations

import torch


def is_nhwc(x: torch.Tensor) -> bool:
    """A 4-D tensor stored channels-last and not also contiguous (as one with C == 1 or 1x1 images
    is): the native ops run it as NHWC and return NHWC."""
    return x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
