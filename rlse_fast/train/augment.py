"""Differentiable augmentation of every image the discriminator sees, for a small data set.

Two pipelines, both `(B, 3, H, W)` in [-1, 1] -> the same shape, differentiable in the images
(twice: R1 differentiates through them), drawing their randomness from torch's generator on the
images' device (so the training checkpoint's RNG state makes a resumed run repeat them):

- `ada_augment(x, p)`: the 'bgc' pipeline of Karras et al. 2020 ("Training Generative Adversarial
  Networks with Limited Data"): x-flip, 90-degree rotations, integer translation, isotropic scale,
  rotation, anisotropic scale, fractional translation (the geometric part, composed into one affine
  warp per image), then brightness, contrast, luma flip, hue rotation and saturation (one 4x4 colour
  matrix per image). Each transform is applied to each image with probability p (the two rotations
  with 1 - sqrt(1 - p) each, so that some rotation happens with probability p), with the paper's
  ranges. Simplification: the warp is `affine_grid` + bilinear `grid_sample` with reflection padding
  at the image's own resolution, where the paper pads by reflection, upsamples 2x with a wavelet
  filter, warps and filters down (its anti-aliasing matters for leaks at high resolution; at 64 px
  and moderate p we accept the bilinear blur it costs). Integer translations, flips and 90-degree
  rotations alone land on pixel centres, so bilinear sampling keeps them exact.
- `diffaug_augment(x, p)`: DiffAugment (Zhao et al. 2020) 'color,translation,cutout': brightness
  +U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5); a shift of up to 1/8 of the image
  with zero padding; a zeroed square of half the image side at a random place. The paper applies
  all of them to every image (p = 1); p < 1 applies each to an image with probability p.

`AdaController` is the paper's strength schedule: r_t = E[sign(D(real))] over 4 minibatches, p
moves up when r_t > target (0.6), down otherwise, fast enough to go from 0 to 1 in `kimg`
thousand images (500), clamped to [0, 1] (the paper's code clamps at 0 only; above 1 its masks act
as at 1 and its rotation probability 1 - sqrt(1 - p) would be undefined).

At p = 0 both pipelines return their input unchanged, bit for bit; an image that no transform was
drawn for is also returned unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MODES = ("ada", "diffaug", "none")

# The paper's ranges for 'bgc' (fractions of the image size, log2 standard deviations, turns).
XINT_MAX = 0.125
SCALE_STD = 0.2
ROTATE_MAX = 1.0
ANISO_STD = 0.2
XFRAC_STD = 0.125
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5
HUE_MAX = 1.0
SATURATION_STD = 1.0


# ----------------------------------------------------------------------------- ADA ('bgc')


def _eye(n: int, batch: int, x: torch.Tensor) -> torch.Tensor:
    return torch.eye(n, device=x.device, dtype=torch.float32).repeat(batch, 1, 1)


def _scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = _eye(3, len(sx), sx)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = _eye(3, len(tx), tx)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _rotate2d(theta: torch.Tensor) -> torch.Tensor:
    m = _eye(3, len(theta), theta)
    c, s = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _chosen(batch: int, p: float, x: torch.Tensor) -> torch.Tensor:
    """(B,) bool: which images get a transform (probability p each)."""
    return torch.rand(batch, device=x.device) < p


def _geometry(batch: int, size: int, p: float, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse warps (B, 3, 3) in affine_grid's normalised coordinates (output -> input; one
    pixel is 2 / size), and which images got any geometric transform."""
    inv = _eye(3, batch, x)
    touched = torch.zeros(batch, dtype=torch.bool, device=x.device)
    ones = torch.ones(batch, device=x.device)

    def compose(mask, m):
        nonlocal inv, touched
        inv = inv @ torch.where(mask[:, None, None], m, _eye(3, batch, x))
        touched = touched | mask

    # x-flip and 90-degree rotations: the blit transforms.
    mask = _chosen(batch, p, x)
    flip = torch.floor(torch.rand(batch, device=x.device) * 2)
    compose(mask & (flip > 0), _scale2d(1 - 2 * flip, ones))
    mask = _chosen(batch, p, x)
    quarter = torch.floor(torch.rand(batch, device=x.device) * 4)
    compose(mask & (quarter > 0), _rotate2d(-quarter * (math.pi / 2)))
    # Integer translation: whole pixels, up to 1/8 of the image.
    mask = _chosen(batch, p, x)
    t = torch.round((torch.rand(batch, 2, device=x.device) * 2 - 1) * XINT_MAX * size) * (2 / size)
    compose(mask, _translate2d(-t[:, 0], -t[:, 1]))
    # Isotropic scale, log-normal.
    mask = _chosen(batch, p, x)
    s = torch.exp2(torch.randn(batch, device=x.device) * SCALE_STD)
    compose(mask, _scale2d(1 / s, 1 / s))
    # Rotation, anisotropic scale, rotation: each rotation with 1 - sqrt(1 - p).
    p_rot = 1 - math.sqrt(max(1 - p, 0.0))
    mask = _chosen(batch, p_rot, x)
    compose(mask, _rotate2d(-(torch.rand(batch, device=x.device) * 2 - 1) * math.pi * ROTATE_MAX))
    mask = _chosen(batch, p, x)
    s = torch.exp2(torch.randn(batch, device=x.device) * ANISO_STD)
    compose(mask, _scale2d(1 / s, s))
    mask = _chosen(batch, p_rot, x)
    compose(mask, _rotate2d(-(torch.rand(batch, device=x.device) * 2 - 1) * math.pi * ROTATE_MAX))
    # Fractional translation, normal with std 1/8 of the image.
    mask = _chosen(batch, p, x)
    t = torch.randn(batch, 2, device=x.device) * XFRAC_STD * 2
    compose(mask, _translate2d(-t[:, 0], -t[:, 1]))
    return inv, touched


def _color(batch: int, p: float, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour matrices (B, 4, 4) acting on [r, g, b, 1], and which images got any colour transform.
    The luma axis is (1, 1, 1) / sqrt(3), as in the paper's pipeline."""
    mat = _eye(4, batch, x)
    touched = torch.zeros(batch, dtype=torch.bool, device=x.device)
    eye4 = _eye(4, batch, x)
    v = torch.tensor([1, 1, 1, 0], dtype=torch.float32, device=x.device) / math.sqrt(3)
    vv = torch.outer(v, v)

    def compose(mask, m):
        nonlocal mat, touched
        mat = torch.where(mask[:, None, None], m, eye4) @ mat
        touched = touched | mask

    mask = _chosen(batch, p, x)
    b = torch.randn(batch, device=x.device) * BRIGHTNESS_STD
    m = eye4.clone()
    m[:, :3, 3] = b[:, None]
    compose(mask, m)
    mask = _chosen(batch, p, x)
    c = torch.exp2(torch.randn(batch, device=x.device) * CONTRAST_STD)
    m = eye4.clone()
    m[:, :3, :3] *= c[:, None, None]
    compose(mask, m)
    mask = _chosen(batch, p, x)
    flip = torch.floor(torch.rand(batch, device=x.device) * 2)
    compose(mask & (flip > 0), eye4 - 2 * vv * flip[:, None, None])  # Householder reflection of the luma
    mask = _chosen(batch, p, x)
    theta = (torch.rand(batch, device=x.device) * 2 - 1) * math.pi * HUE_MAX
    compose(mask, _rotate_about(v[:3], theta, x))
    mask = _chosen(batch, p, x)
    s = torch.exp2(torch.randn(batch, device=x.device) * SATURATION_STD)
    compose(mask, vv + (eye4 - vv) * s[:, None, None] * _keep_w(x) + _w_one(x))
    return mat, touched


def _keep_w(x):
    """Mask that leaves the homogeneous row/column of a 4x4 alone when scaling (eye4 - vv)."""
    m = torch.ones(4, 4, device=x.device)
    m[3, :], m[:, 3] = 0, 0
    return m


def _w_one(x):
    m = torch.zeros(4, 4, device=x.device)
    m[3, 3] = 1
    return m


def _rotate_about(axis: torch.Tensor, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4): rotation by theta about the unit 3-vector `axis` (Rodrigues), homogeneous."""
    a0, a1, a2 = axis.tolist()
    k = torch.tensor([[0, -a2, a1], [a2, 0, -a0], [-a1, a0, 0]], dtype=torch.float32, device=x.device)
    s, c = torch.sin(theta)[:, None, None], torch.cos(theta)[:, None, None]
    r = torch.eye(3, device=x.device) + s * k + (1 - c) * (k @ k)
    m = _eye(4, len(theta), x)
    m[:, :3, :3] = r
    return m


def warp(x: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """x (B, C, R, R) sampled through the inverse warps inv (B, 3, 3) (output -> input, in
    normalised coordinates where one pixel is 2 / R), bilinear, reflection padding."""
    grid = F.affine_grid(inv[:, :2, :].to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def ada_augment(x: torch.Tensor, p: float) -> torch.Tensor:
    """x: (B, 3, H, W) in about [-1, 1], H == W -> augmented, same shape and dtype."""
    if p <= 0:
        return x
    batch, channels, height, width = x.shape
    if channels != 3 or height != width:
        raise ValueError(f"ada_augment wants square RGB images (B, 3, R, R), got {tuple(x.shape)}")
    p = min(float(p), 1.0)
    inv, geo = _geometry(batch, height, p, x)
    mat, col = _color(batch, p, x)
    # Computed for the whole batch and selected per image: asking whether any image was drawn would
    # make the host wait for the device.
    y = torch.where(geo[:, None, None, None], warp(x, inv), x)
    flat = y.reshape(batch, 3, -1)
    mixed = (mat[:, :3, :3].to(x.dtype) @ flat + mat[:, :3, 3:].to(x.dtype)).reshape(x.shape)
    return torch.where(col[:, None, None, None], mixed, y)


# ----------------------------------------------------------------------------- DiffAugment


def diffaug_augment(x: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """x: (B, C, H, W) in about [-1, 1] -> DiffAugment 'color,translation,cutout', same shape."""
    if p <= 0:
        return x
    batch, _, height, width = x.shape
    dev = x.device

    def gate(changed: torch.Tensor) -> torch.Tensor:
        return torch.where(_chosen(batch, p, x)[:, None, None, None], changed, y)

    y = x
    # Colour: brightness, saturation, contrast.
    y = gate(y + (torch.rand(batch, 1, 1, 1, device=dev, dtype=x.dtype) - 0.5))
    mean = y.mean(dim=1, keepdim=True)
    y = gate((y - mean) * (torch.rand(batch, 1, 1, 1, device=dev, dtype=x.dtype) * 2) + mean)
    mean = y.mean(dim=[1, 2, 3], keepdim=True)
    y = gate((y - mean) * (torch.rand(batch, 1, 1, 1, device=dev, dtype=x.dtype) + 0.5) + mean)
    # Translation by whole pixels (up to 1/8), zero padding.
    sh, sw = int(height * 0.125 + 0.5), int(width * 0.125 + 0.5)
    ty = torch.randint(-sh, sh + 1, (batch, 1, 1), device=dev)
    tx = torch.randint(-sw, sw + 1, (batch, 1, 1), device=dev)
    rows = (torch.arange(height, device=dev)[None, :, None] + ty + 1).clamp(0, height + 1)
    cols = (torch.arange(width, device=dev)[None, None, :] + tx + 1).clamp(0, width + 1)
    padded = F.pad(y, [1, 1, 1, 1])
    shifted = padded.permute(0, 2, 3, 1)[torch.arange(batch, device=dev)[:, None, None], rows, cols]
    y = gate(shifted.permute(0, 3, 1, 2))
    # Cutout: a square of half the side, zeroed.
    ch, cw = int(height * 0.5 + 0.5), int(width * 0.5 + 0.5)
    oy = torch.randint(0, height + (1 - ch % 2), (batch, 1, 1), device=dev)
    ox = torch.randint(0, width + (1 - cw % 2), (batch, 1, 1), device=dev)
    gy = torch.arange(height, device=dev)[None, :, None] - oy + ch // 2
    gx = torch.arange(width, device=dev)[None, None, :] - ox + cw // 2
    keep = ~((gy >= 0) & (gy < ch) & (gx >= 0) & (gx < cw))
    y = gate(y * keep[:, None].to(x.dtype))
    return y


# ----------------------------------------------------------------------------- strength


def augment(x: torch.Tensor, mode: str, p: float) -> torch.Tensor:
    """The pipeline of `mode` ('ada', 'diffaug' or 'none') at strength p."""
    if mode == "ada":
        return ada_augment(x, p)
    if mode == "diffaug":
        return diffaug_augment(x, p)
    if mode == "none":
        return x
    raise ValueError(f"augmentation mode must be one of {MODES}, got {mode!r}")


@dataclass
class AdaController:
    """The overfitting heuristic r_t = E[sign(D(real))] and, when `adjust`, ADA's update of p.

    Call `observe(real_logits)` on each minibatch's real logits and `step(batch)` after each
    minibatch; every `interval` minibatches r_t is computed over them and p moves by
    sign(r_t - target) * batch * interval / (kimg * 1000).
    """

    target: float = 0.6
    """r_t the controller holds (the paper's 0.6)."""
    kimg: float = 500.0
    """Thousands of images for p to go from 0 to 1 at the fastest."""
    interval: int = 4
    """Minibatches between updates."""
    adjust: bool = True
    """False: only measure r_t (p stays where it is)."""
    p: float = 0.0
    r_t: float = float("nan")
    _sum: float | torch.Tensor = 0.0
    _count: int = 0
    _batches: int = 0

    def observe(self, real_logits: torch.Tensor) -> None:
        # Summed on the logits' device: the host reads it once per interval, not once per step.
        signs = real_logits.detach().float().sign()
        self._sum = self._sum + signs.sum()
        self._count += signs.numel()

    def step(self, batch: int) -> None:
        self._batches += 1
        if self._batches < self.interval:
            return
        if self._count:
            self.r_t = float(self._sum) / self._count
            if self.adjust:
                delta = math.copysign(1.0, self.r_t - self.target) * batch * self.interval / (self.kimg * 1000)
                if self.r_t == self.target:
                    delta = 0.0
                self.p = min(max(self.p + delta, 0.0), 1.0)
        self._sum, self._count, self._batches = 0.0, 0, 0

    def state_dict(self) -> dict:
        return {"p": self.p, "r_t": self.r_t, "sum": float(self._sum), "count": self._count, "batches": self._batches}

    def load_state_dict(self, state: dict) -> None:
        self.p, self.r_t = float(state["p"]), float(state["r_t"])
        self._sum, self._count, self._batches = float(state["sum"]), int(state["count"]), int(state["batches"])


__all__ = ["AdaController", "MODES", "ada_augment", "augment", "diffaug_augment", "warp"]
