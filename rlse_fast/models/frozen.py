"""Run-time tensors of a frozen network made once: what its layers compute from their weights on every
call (equalised-lr gains, casts to the input's dtype, autocast's casts, fused kernels) computed when
the frozen copy is made, so that an iteration issues none of that work.

A layer's run-time weight depends on the context it is called in: the input's dtype (the layers cast
to it) and the autocast dtype (autocast casts a convolution's fp32 weight to it). `RunTime` holds
one tensor per context it was prepared for, each made by the layer's own expression, so a prepared
layer computes exactly what the plain one does (bit for bit); a call in a context it was not prepared
for raises, as the fp32 weights it was made from are gone.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def contexts(dtype: torch.dtype | None) -> list[tuple[torch.dtype, torch.dtype | None]]:
    """The (input dtype, autocast dtype) pairs a frozen network meets under autocast to `dtype` (None:
    none): fp32 inputs (the image) and, under autocast, inputs already in `dtype` (what its
    convolutions return)."""
    return [(torch.float32, None)] if dtype is None else [(torch.float32, dtype), (dtype, dtype)]


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast casts to on `device_type` here, or None outside autocast."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


class RunTime(nn.Module):
    """A run-time tensor per context: `make(input dtype)` as the plain layer computes it per call, then,
    with `conv_arg`, the cast autocast applies to a convolution's weight. Tensors equal in two contexts
    are stored once. The tensors are buffers: `.to(device)` moves them."""

    def __init__(self, make: Callable[[torch.dtype], torch.Tensor], contexts: list[tuple[torch.dtype, torch.dtype | None]],
                 conv_arg: bool):
        super().__init__()
        self.names: dict[tuple[torch.dtype, torch.dtype | None], str] = {}
        made: list[torch.Tensor] = []
        with torch.no_grad():  # the layers' expressions: products, pads, casts (no op autocast changes)
            for x_dtype, cast in contexts:
                t = make(x_dtype).detach()
                if conv_arg and cast is not None and t.is_floating_point() and t.dtype != cast:
                    t = t.to(cast)  # what autocast does to a convolution's weight, once
                same = next((i for i, u in enumerate(made) if u.dtype == t.dtype and torch.equal(u, t)
                             and u.stride() == t.stride()), None)
                if same is None:
                    made.append(t)
                    same = len(made) - 1
                    self.register_buffer(f"t{same}", t)
                self.names[(x_dtype, cast)] = f"t{same}"

    def get(self, x: torch.Tensor) -> torch.Tensor:
        """The tensor for a call on input `x` in the current autocast context."""
        key = (x.dtype, autocast_dtype(x.device.type))
        name = self.names.get(key)
        if name is None:
            raise RuntimeError(f"this frozen network was prepared for (input dtype, autocast) in {list(self.names)}, "
                               f"not {key}: prepare it for that precision (models.registry.prepare_discriminator)")
        return getattr(self, name)


__all__ = ["RunTime", "autocast_dtype", "contexts"]
