"""Face frames and the fixed similarity warp between them.

A *frame* is where an aligned face sits in its square image: the eye centre (x, y) and the distance
between the eyes, as fractions of the image side. The eyes are level in every frame here, so two
frames differ by a similarity without rotation (a zoom `s` and a shift `t`), which maps a point p of
the source frame (in [0, 1]^2) to q = s * p + t with

    s = dst.eye_dist / src.eye_dist,      t = dst.eye - s * src.eye.

Frames used by `rlse-fast eval`:

- 'ffhq': FFHQ alignment (the official NVIDIA/rosinality StyleGAN2 weights): eye centre (0.50, 0.47),
  eye distance 0.25.
- 'celeba': `celeba128_test` (CelebA "aligned & cropped", FSRNet protocol): eye centre (0.50, 0.37),
  eye distance 0.28 (the data set's README).
- the bundled `celeba64` prior is trained on CelebA-aligned faces cropped by `rlse_fast.train.data`'s
  default `CropSpec` (a 72x72 box at 89x109, horizontally centred, 29.5 px from the top). CelebA's
  aligned images put the eyes near (69, 111) and (108, 111) at 178x218, i.e. (34.5, 55.5) and
  (54, 55.5) at 89x109, which the crop maps to eye centre (0.50, 0.36) and eye distance 0.27
  (`crop_frame`): the 'celeba' frame within the precision of its "about" numbers. Measured directly,
  the similarity that best aligns the mean training crop with the mean `celeba128_test` face (both
  64 px) is scale 1.00 (searched 0.90-1.12 in steps of 0.01) and shift -0.005 H; a 5% zoom raises the
  RMS difference from 5.3/255 to 6.8/255. So the prior's frame IS 'celeba' and the warp is the
  identity. The crop was chosen to match the test set in the first place (see `train/data.py`).

`--frame auto` picks the generator's frame from its weights (`weights_frame`): a 'frame' entry in the
file's metadata (a name, or JSON {"eye_x", "eye_y", "eye_dist"}) wins; else 'ffhq' for NVIDIA
pickles, rosinality checkpoints and files whose name says ffhq; 'celeba' for the bundled celeba64
prior and other priors made by `rlse-fast train-prior` (default crop); otherwise unknown, and the
warp is the identity (with a notice).

Where the warp is applied: to the generator's output inside the optimisation, before the
downscaler (`FramedGenerator`), so the loop explores a generator whose faces sit in the test set's
frame; its result is then scored against the HR image directly. Warping the 8-16 px LR input into the
generator's frame instead would resample an image too small to survive it, and real LR faces have no
HR image to warp first. An identity warp is skipped altogether (bit-identical to the plain generator).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..train.data import CropSpec


@dataclass(frozen=True)
class Frame:
    """Eye centre and eye distance as fractions of the (square) image side."""

    name: str
    eye_x: float
    eye_y: float
    eye_dist: float

    def eye_points(self) -> torch.Tensor:
        """(2, 2) float64: the two eye centres (x, y) in [0, 1]^2, left of the image first."""
        half = self.eye_dist / 2
        return torch.tensor([[self.eye_x - half, self.eye_y], [self.eye_x + half, self.eye_y]], dtype=torch.float64)


FFHQ = Frame("ffhq", 0.50, 0.47, 0.25)
CELEBA = Frame("celeba", 0.50, 0.37, 0.28)
FRAMES = {f.name: f for f in (FFHQ, CELEBA)}

# CelebA "aligned & cropped" (178x218): approximate mean eye centres, for `crop_frame`.
CELEBA_ALIGNED_SIZE = (178, 218)
CELEBA_ALIGNED_EYES = ((69.0, 111.0), (108.0, 111.0))


def crop_frame(crop=None, name: str = "celeba-crop") -> Frame:
    """The frame of CelebA-aligned faces cropped by `train.data.CropSpec` (default: the prior's crop)."""
    crop = crop or CropSpec()
    w, h = CELEBA_ALIGNED_SIZE
    left, top, right, _ = crop.box(w, h)
    side = right - left
    (lx, ly), (rx, ry) = CELEBA_ALIGNED_EYES
    return Frame(name, ((lx + rx) / 2 - left) / side, ((ly + ry) / 2 - top) / side, (rx - lx) / side)


def similarity(src: Frame, dst: Frame) -> torch.Tensor:
    """(2, 3) float64 M with M @ [x, y, 1] = the point of `dst` where `src`'s point (x, y) lands."""
    s = dst.eye_dist / src.eye_dist
    return torch.tensor([[s, 0.0, dst.eye_x - s * src.eye_x],
                         [0.0, s, dst.eye_y - s * src.eye_y]], dtype=torch.float64)


def is_identity(m: torch.Tensor, tol: float = 1e-9) -> bool:
    return bool((m - torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=m.dtype)).abs().max() <= tol)


def _sampling_theta(m: torch.Tensor) -> torch.Tensor:
    """affine_grid's theta (output coords -> input coords, both in [-1, 1]) for the forward map m."""
    s, tx, ty = float(m[0, 0]), float(m[0, 2]), float(m[1, 2])
    # p = (q - t) / s on [0, 1]; u = 2 p - 1 (align_corners=False: pixel edges at -1 and 1).
    return torch.tensor([[1 / s, 0.0, (1 - 2 * tx) / s - 1], [0.0, 1 / s, (1 - 2 * ty) / s - 1]])


def warp(img: torch.Tensor, m: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
    """Move (B, C, H, W) images by the similarity m (see `similarity`); bicubic, borders replicated.
    theta: `_sampling_theta(m)` already on img's device and dtype (no host-to-device copy per call)."""
    if theta is None:
        if is_identity(m):
            return img
        theta = _sampling_theta(m).to(img)
    theta = theta.expand(img.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, mode="bicubic", padding_mode="border", align_corners=False)


def _frame_from_meta(value: str) -> Frame | None:
    if value in FRAMES:
        return FRAMES[value]
    try:
        d = json.loads(value)
        return Frame(d.get("name", "metadata"), float(d["eye_x"]), float(d["eye_y"]), float(d["eye_dist"]))
    except (ValueError, KeyError, TypeError):
        return None


def weights_frame(gan, spec: str | None = None) -> Frame | None:
    """The frame of the faces these weights generate, or None when it cannot be told (see module doc)."""
    meta = getattr(gan, "metadata", {}) or {}
    if "frame" in meta and (frame := _frame_from_meta(str(meta["frame"]))) is not None:
        return frame
    name = Path(gan.path).name.lower()
    if gan.source_format in ("nvidia-pickle", "rosinality") or "ffhq" in name or (spec or "").startswith("ffhq"):
        return FFHQ
    if name.startswith("celeba") or spec == "celeba64" or "train_config" in meta:
        return CELEBA
    return None


class _WarpedSynthesis(torch.nn.Module):
    """G.synthesis followed by the warp; parameters and noise layers are the inner network's own
    (same names), so per-face fine-tuning in `engine.eager.super_resolve` works unchanged."""

    def __init__(self, inner, m: torch.Tensor):
        super().__init__()
        self.inner = inner
        self.m = m
        self.thetas: dict[tuple, torch.Tensor] = {}
        """The warp's theta per (device, dtype), made on first use: the fast engine's warm-up steps
        run before its CUDA graph capture, which cannot hold the host-to-device copy."""

    def forward(self, ws, **kwargs):
        # Generator output is in [-1, 1]; the warp is linear, so warping it there is the same as in [0, 1].
        img = self.inner(ws, **kwargs)
        key = (img.device, img.dtype)
        if key not in self.thetas:
            self.thetas[key] = _sampling_theta(self.m).to(img)
        return warp(img, self.m, self.thetas[key])

    def named_parameters(self, *args, **kwargs):
        return self.inner.named_parameters(*args, **kwargs)

    def noise_layers(self):
        return self.inner.noise_layers()


class FramedGenerator:
    """A generator whose faces are moved from its own frame into another (what `super_resolve` needs:
    synthesis, num_ws, w_dim, z_dim, img_resolution, mapping)."""

    def __init__(self, G, m: torch.Tensor):
        self.G = G
        self.synthesis = _WarpedSynthesis(G.synthesis, m)

    def __getattr__(self, name):
        return getattr(self.G, name)


def framed(G, src: Frame | None, dst: Frame | None):
    """G itself when the warp is the identity (or a frame is unknown), else a FramedGenerator."""
    if src is None or dst is None:
        return G
    m = similarity(src, dst)
    return G if is_identity(m) else FramedGenerator(G, m)


def describe(src: Frame | None, dst: Frame | None) -> str:
    """One line for the summary: which frames and which warp."""
    if src is None or dst is None:
        return "frame warp: none (the generator's frame is unknown or --frame none); outputs scored as generated"
    m = similarity(src, dst)
    if is_identity(m):
        return f"frame warp: identity (generator frame '{src.name}' = test frame '{dst.name}')"
    s = float(m[0, 0])
    return (f"frame warp: '{src.name}' -> '{dst.name}', zoom {s:.3f}, shift ({float(m[0, 2]):+.3f}, "
            f"{float(m[1, 2]):+.3f}) of the side (eye centre ({src.eye_x:.2f}, {src.eye_y:.2f}) -> "
            f"({dst.eye_x:.2f}, {dst.eye_y:.2f}), eye distance {src.eye_dist:.2f} -> {dst.eye_dist:.2f})")

