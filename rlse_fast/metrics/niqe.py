"""NIQE (Mittal et al. 2013), following the official MATLAB release (computequality.m) step by step.

1. Luminance: "gray" = MATLAB rgb2gray rounded to 8 bits (what the official code does with an RGB
   image; the default), or "y" = the rounded Y of MATLAB YCbCr (BasicSR's default).
2. Crop to whole 96x96 blocks (top-left kept).
3. At two scales (full, then MATLAB bicubic imresize by 0.5 with antialiasing): MSCN coefficients
   (x - mu) / (sigma + 1) with a 7x7 Gaussian window, sigma 7/6, replicate padding (float rounding
   noise in flat areas snapped to the exact 0); per block (96x96, then 48x48) 18 features: an AGGD
   fit of the coefficients (alpha, mean of the two betas) and AGGD fits of the products with the
   four neighbours (alpha, mean, beta_l, beta_r).
4. Fit a Gaussian to the 36-d block features (nanmean, covariance of the NaN-free rows) and return
   sqrt((mu_p - mu_d) pinv((S_p + S_d) / 2) (mu_p - mu_d)^T) against the pristine model.

The pristine model is the official one, as shipped in basicsr==1.4.2's niqe_pris_params.npz
(fetched by `rlse-fast fetch-assets`). All math is float64 numpy. Lower is better.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .. import assets
from .pixels import check_uint8_image, tensor_to_uint8

BLOCK = 96
COLORS = ("gray", "y")
# MATLAB rgb2gray: the first row of inv([1 .956 .621; 1 -.272 -.647; 1 -1.106 1.703]).
_GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)
_Y_WEIGHTS = (65.481, 128.553, 24.966)


@dataclass(frozen=True)
class PristineModel:
    """Multivariate Gaussian of the 36 NIQE features over pristine images."""

    mu: np.ndarray
    """(36,) float64 mean."""
    cov: np.ndarray
    """(36, 36) float64 covariance."""


def load_pristine_model(path: str | Path | None = None) -> PristineModel:
    """Read niqe_pris_params.npz (default: the cached asset; UserError if it is missing or malformed)."""
    path = Path(path) if path is not None else assets.require(assets.NIQE_PARAMS, "NIQE pristine parameters")
    try:
        with np.load(path, allow_pickle=False) as data:
            mu = np.asarray(data["mu_pris_param"], dtype=np.float64).reshape(-1)
            cov = np.asarray(data["cov_pris_param"], dtype=np.float64)
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a NIQE parameter file ({exc}); "
                        "delete it and run `rlse-fast fetch-assets`") from None
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise UserError(f"{path}: expected a 36-d mean and 36x36 covariance, got {mu.shape} and {cov.shape}")
    return PristineModel(mu, cov)


@lru_cache(maxsize=1)
def _default_model() -> PristineModel:
    return load_pristine_model()


def luminance(img: np.ndarray, color: str = "gray") -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float64 luminance on the 8-bit grid (rounded like MATLAB's uint8)."""
    check_uint8_image(img)
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    rgb = img.astype(np.float64)
    if color == "gray":
        lum = rgb @ np.array(_GRAY_WEIGHTS)
    else:
        lum = 16.0 + rgb @ np.array(_Y_WEIGHTS) / 255.0
    return np.floor(lum + 0.5)  # MATLAB rounds half away from zero; values are positive


# ---- MATLAB imresize (bicubic, antialiased when shrinking) ----

def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def _resize_matrix(in_len: int, scale: float) -> np.ndarray:
    """(out_len, in_len) matrix M with resized = M @ signal, as MATLAB's imresize builds it."""
    out_len = int(math.ceil(in_len * scale))
    width = 4.0
    if scale < 1:
        kernel = lambda t: scale * _cubic(scale * t)  # widened kernel = antialiasing
        width /= scale
    else:
        kernel = _cubic
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions
    weights = kernel(u[:, None] - idx)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])  # symmetric boundary
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), taps), cols.ravel()), weights.ravel())
    return matrix


def imresize_half(img: np.ndarray) -> np.ndarray:
    """MATLAB imresize(img, 0.5) (bicubic, antialiased) of a 2-D float64 array; rows first, like MATLAB."""
    h, w = img.shape
    return _resize_matrix(h, 0.5) @ img @ _resize_matrix(w, 0.5).T


# ---- features ----

def _gaussian_window() -> np.ndarray:
    t = np.arange(-3, 4, dtype=np.float64)
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * (7.0 / 6.0) ** 2))
    return g / g.sum()


# Float64 rounding leaves |x - mu| around 1e-13 in flat areas, where the exact value is 0. Such noise
# decides whether a coefficient counts as left or right in the AGGD fits, which moves NIQE by 0.5 on
# images with large flat areas (blocky compression); snapping it to 0 matches the official values.
_FLAT_NOISE = 1e-10


def _filter_replicate(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """MATLAB imfilter(img, window, 'replicate'): same-size correlation with edge replication."""
    r = window.shape[0] // 2
    padded = np.pad(img, r, mode="edge")
    h, w = img.shape
    out = np.zeros_like(img)
    for i in range(window.shape[0]):
        for j in range(window.shape[1]):
            out += window[i, j] * padded[i:i + h, j:j + w]
    return out


def mscn(img: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a 2-D float64 image on 0..255."""
    window = _gaussian_window()
    mu = _filter_replicate(img, window)
    sigma = np.sqrt(np.abs(_filter_replicate(img * img, window) - mu * mu))
    centred = img - mu
    centred[np.abs(centred) <= _FLAT_NOISE] = 0.0
    return centred / (sigma + 1.0)


_GAM = np.linspace(0.2, 10.0, 9801)  # MATLAB 0.2:0.001:10
_gamma = np.vectorize(math.gamma)
_R_GAM = _gamma(2.0 / _GAM) ** 2 / (_gamma(1.0 / _GAM) * _gamma(3.0 / _GAM))


def fit_aggd(vec: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit (alpha, beta_left, beta_right) by MATLAB's grid search."""
    with np.errstate(invalid="ignore", divide="ignore"):
        left = vec[vec < 0]
        right = vec[vec > 0]
        left_std = math.sqrt(np.mean(left * left)) if left.size else math.nan
        right_std = math.sqrt(np.mean(right * right)) if right.size else math.nan
        gamma_hat = left_std / right_std
        r_hat = np.mean(np.abs(vec)) ** 2 / np.mean(vec * vec)
        r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    # MATLAB's min() over an all-NaN vector returns index 1: alpha = 0.2, and the betas stay NaN.
    alpha = float(_GAM[np.argmin((_R_GAM - r_hat_norm) ** 2)]) if math.isfinite(r_hat_norm) else float(_GAM[0])
    ratio = math.sqrt(math.gamma(1.0 / alpha) / math.gamma(3.0 / alpha))
    return alpha, left_std * ratio, right_std * ratio


_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # MATLAB circshift offsets: right, down, diagonals


def block_features(block: np.ndarray) -> list[float]:
    """The 18 NIQE features of one block of MSCN coefficients."""
    alpha, beta_l, beta_r = fit_aggd(block.ravel())
    feats = [alpha, (beta_l + beta_r) / 2.0]
    for shift in _SHIFTS:
        pair = (block * np.roll(block, shift, axis=(0, 1))).ravel()
        alpha, beta_l, beta_r = fit_aggd(pair)
        mean = (beta_r - beta_l) * math.gamma(2.0 / alpha) / math.gamma(1.0 / alpha)
        feats += [alpha, mean, beta_l, beta_r]
    return feats


def niqe_features(lum: np.ndarray) -> np.ndarray:
    """(N_blocks, 36) features of a 2-D luminance image already cropped to whole 96x96 blocks."""
    per_scale = []
    img = lum
    for scale in (1, 2):
        size = BLOCK // scale
        coeffs = mscn(img)
        rows, cols = coeffs.shape[0] // size, coeffs.shape[1] // size
        # Column-major block order, as MATLAB's blkproc + reshape; order only matters for pairing scales.
        per_scale.append(np.array([block_features(coeffs[r * size:(r + 1) * size, c * size:(c + 1) * size])
                                   for c in range(cols) for r in range(rows)]))
        if scale == 1:
            img = imresize_half(img)
    return np.concatenate(per_scale, axis=1)


def niqe_gray(lum: np.ndarray, model: PristineModel | None = None) -> float:
    """NIQE of a 2-D luminance image on 0..255 (at least 96x96); NaN when no block has texture."""
    model = model or _default_model()
    h, w = lum.shape
    rows, cols = h // BLOCK, w // BLOCK
    if rows == 0 or cols == 0:
        raise ValueError(f"NIQE needs an image of at least {BLOCK}x{BLOCK} pixels, got {h}x{w}")
    feats = niqe_features(np.asarray(lum, dtype=np.float64)[: rows * BLOCK, : cols * BLOCK])
    complete = feats[~np.isnan(feats).any(axis=1)]
    if len(complete) == 0:
        return math.nan  # no block with texture on both sides of its mean (e.g. a flat image): undefined
    mu = np.nanmean(feats, axis=0)
    # A single block (e.g. a 128x128 face) gives no spread estimate, and the official code has no
    # defined behaviour there: take a zero covariance, so only the pristine one weighs the distance.
    cov = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros((36, 36))
    diff = model.mu - mu
    return float(np.sqrt(diff @ np.linalg.pinv((model.cov + cov) / 2.0) @ diff))


def niqe(img: np.ndarray, color: str = "gray", crop_border: int = 0, model: PristineModel | None = None) -> float:
    """NIQE of one (H, W, 3) uint8 RGB image (lower is better); see the module docstring for `color`."""
    lum = luminance(img, color)
    if crop_border:
        lum = lum[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_gray(lum, model)


def niqe_batch(x: torch.Tensor, color: str = "gray", crop_border: int = 0,
               model: PristineModel | None = None) -> torch.Tensor:
    """NIQE of each image of x (B, 3, H, W) float in [-1, 1], quantised to 8 bits; returns (B,) float64."""
    model = model or _default_model()
    return torch.tensor([niqe(img, color, crop_border, model) for img in tensor_to_uint8(x)], dtype=torch.float64)
