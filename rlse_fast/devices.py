"""The --device option, resolved once for every command, the launcher and the trainer."""
from __future__ import annotations

import torch

from .errors import UserError


def pick_device(name: str) -> torch.device:
    """The --device option: 'auto' (CUDA when PyTorch sees a GPU, else the CPU), 'cpu', 'cuda' or
    'cuda:N'; a CUDA device on a machine without one is a UserError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}, but PyTorch sees no CUDA device; use --device cpu")
    return device
