"""The evaluation's vocabulary: its methods (what each GAN method changes in the config) and the
columns of metrics.csv, shared by the runner and the report."""
from __future__ import annotations

from ..engine.objective import TERMS

METHODS = ("bicubic", "bilinear", "pulse", "rlse-noft", "rlse-nosem", "rlse", "rlse-floor", "rlse-noisefloor",
           "rlse-last", "rlse-ls5", "rlse-lg5000", "rlse-lg20000", "rlse-half")
"""Every method, in report order."""
DEFAULT_METHODS = ("bicubic", "bilinear", "pulse", "rlse-nosem", "rlse")
"""What `rlse-fast eval` runs without --methods."""
UPSAMPLERS = {"bicubic", "bilinear"}
GAN_MODES = {"pulse": dict(mode="pulse"), "rlse-noft": dict(mode="rlse", finetune=False),
             "rlse-nosem": dict(mode="rlse", semantic=False), "rlse": dict(mode="rlse"),
             # The real-face variants: L_p's floor at PULSE's eps or at the
             # input's noise level, the last iterate instead of the best, L_s or L_g ten times heavier, L_g forty
             # times heavier, half the steps.
             "rlse-floor": dict(mode="rlse", pixel_floor="pulse"),
             "rlse-noisefloor": dict(mode="rlse", pixel_floor="auto"),
             "rlse-last": dict(mode="rlse", keep="last"),
             "rlse-ls5": dict(mode="rlse", w_semantic=5.0),
             "rlse-lg5000": dict(mode="rlse", w_geocross=5000.0),
             "rlse-lg20000": dict(mode="rlse", w_geocross=20000.0),
             "rlse-half": dict(mode="rlse", steps_fraction=0.5)}
COLUMNS = ("image", "scale", "method", "psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "lpips", "identity", "niqe",
           "lr_psnr_y", "seconds", "best_step", "best_loss") + tuple(f"loss_{name}" for name, _, _ in TERMS)
"""metrics.csv's columns; the loss terms' (unweighted, of the kept iterate) come from the engine's objective."""
