"""What a super-resolution run returns, whichever driver ran it."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Result:
    images: torch.Tensor
    """(B, 3, R, R): each face's kept iterate, (G's output + 1) / 2, not clamped (about [0, 1], values a
    little outside occur); clamp before use as an image (`imageio.save_image` does)."""
    lr_images: torch.Tensor
    """(B, 3, h, w) in [0, 1]: the kept iterates downscaled."""
    best_loss: torch.Tensor
    """(B,) total loss of the kept iterates."""
    best_step: list[int]
    history: list[dict] = field(default_factory=list)
    """Per step: 'step', 'lr' and the per-face losses under `objective.LOSS_NAMES`."""
    seconds: float = 0.0
