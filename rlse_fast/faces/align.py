"""Aligning a detected face to the generator's frame, and the input size it is super-resolved from.

The alignment is a similarity transform (rotation, uniform scale, shift) from photo coordinates to the
unit square of the generator's frame (`evaluate/frames.py`): FFHQ's recipe (Karras et al., the
`ffhq-dataset` script: a square centred a tenth of the eye-to-mouth vector below the eyes, side
max(4 x eye distance, 3.6 x eye-to-mouth), turned so the eyes-mouth axis is vertical) computed from
the 5 detected landmarks, followed by the fixed frame-to-frame similarity for generators that are
not in FFHQ's frame (the bundled prior's CelebA frame).

Coordinates: continuous pixels, pixel (i, j) covering [j, j+1] x [i, i+1]; a landmark reported at
pixel index (x, y) is the point (x + 0.5, y + 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..downsample import max_factor
from .frames import FFHQ, Frame, similarity


@dataclass(frozen=True)
class Alignment:
    """Where a face sits in the photo: `matrix` (2, 3) maps a photo point (x, y) to the frame's unit
    square, q = matrix @ [x, y, 1]; `side` is that square's side in photo pixels."""

    matrix: np.ndarray
    side: float

    def inverse(self) -> np.ndarray:
        """(2, 3): unit-square point -> photo point."""
        a = self.matrix[:, :2]
        inv = np.linalg.inv(a)
        return np.concatenate([inv, -inv @ self.matrix[:, 2:]], 1)

    def to_frame(self, pts: np.ndarray) -> np.ndarray:
        """(N, 2) photo points -> (N, 2) unit-square points."""
        return pts @ self.matrix[:, :2].T + self.matrix[:, 2]

    def to_photo(self, q: np.ndarray) -> np.ndarray:
        inv = self.inverse()
        return q @ inv[:, :2].T + inv[:, 2]


def align(landmarks: np.ndarray, frame: Frame = FFHQ) -> Alignment:
    """landmarks (5, 2): left eye, right eye, nose, left and right mouth corners, in pixel indices."""
    lm = np.asarray(landmarks, dtype=np.float64) + 0.5
    eye_l, eye_r, mouth_l, mouth_r = lm[0], lm[1], lm[3], lm[4]
    eye_avg = (eye_l + eye_r) / 2
    eye_to_eye = eye_r - eye_l
    eye_to_mouth = (mouth_l + mouth_r) / 2 - eye_avg
    # FFHQ's recipe: the half-side vector x blends the eye axis with the eyes-mouth axis turned by 90 degrees.
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    half2 = 2 * float(x @ x)  # q = 0.5 + (basis . (p - c)) / (2 |x|^2)
    rot = np.stack([x, y]) / half2
    m = np.concatenate([rot, (0.5 - rot @ c)[:, None]], 1)
    if frame != FFHQ:
        f = similarity(FFHQ, frame).numpy()
        m = np.concatenate([f[:, :2] @ m[:, :2], f[:, :2] @ m[:, 2:] + f[:, 2:]], 1)
    return Alignment(m, float(1.0 / np.sqrt(abs(np.linalg.det(m[:, :2])))))


def valid_sizes(resolution: int) -> list[int]:
    """Input sizes the generator's resolution can be super-resolved from: resolution / f for the
    powers of two f = 2 .. `downsample.max_factor(resolution)`, largest first."""
    sizes, f = [], 2
    while f <= max_factor(resolution):
        sizes.append(resolution // f)
        f *= 2
    return sizes


def lr_size(side: float, resolution: int) -> int | None:
    """The input size a face whose aligned square spans `side` photo pixels is super-resolved from:
    the largest power-of-two divisor d of the generator's resolution with d <= 1.1 x side (so a
    face's pixels are never enlarged by more than 10% before the method), among the sizes the
    downscaler takes (factor 2 .. max_factor). A face smaller than the smallest size is enlarged only
    if that enlargement is below the factor the method then removes; else None (too small)."""
    sizes = valid_sizes(resolution)
    fitting = [d for d in sizes if d <= 1.1 * side]
    if fitting:
        return max(fitting)
    d = min(sizes)
    return d if d / side <= resolution / d else None


def warp_face(photo: torch.Tensor, alignment: Alignment, size: int) -> torch.Tensor:
    """(3, H, W) photo in [0, 1] -> (3, size, size) aligned face. Sampled bicubically at an integer
    multiple of `size` at least the face's own resolution, then area-averaged down (no aliasing when
    the face is larger than `size`); borders replicated."""
    _, h, w = photo.shape
    k = max(1, int(np.ceil(alignment.side / size)))
    n = size * k
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    qy, qx = torch.meshgrid(u, u, indexing="ij")
    inv = torch.from_numpy(alignment.inverse())
    px = inv[0, 0] * qx + inv[0, 1] * qy + inv[0, 2]
    py = inv[1, 0] * qx + inv[1, 1] * qy + inv[1, 2]
    grid = torch.stack([2 * px / w - 1, 2 * py / h - 1], -1)[None].to(photo.dtype)
    out = F.grid_sample(photo[None], grid, mode="bicubic", padding_mode="border", align_corners=False)
    if k > 1:
        out = F.avg_pool2d(out, k)
    return out[0].clamp(0, 1)
