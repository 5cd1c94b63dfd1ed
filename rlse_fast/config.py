"""The one configuration of a super-resolution run, with the paper's defaults."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

MODES = ("rlse", "pulse")


@dataclass(frozen=True)
class RLSEConfig:
    """RLSE (default) or PULSE. Converted from the CLI flags in one place (`from_mode`)."""

    mode: str = "rlse"
    """'rlse' (the paper) or 'pulse' (Menon et al. 2020: no semantic loss, no fine-tuning, its own weights)."""
    steps: int = 100
    """Optimisation iterations per face."""
    lr: float = 0.4
    """Base learning rate of the spherical Adam on the latent and the trainable noise maps."""
    lr_schedule: str = "linear1cycledrop"
    """PULSE's schedule of the latent learning rate ('linear1cycledrop', 'linear1cycle', 'fixed')."""
    w_pixel: float = 100.0
    """Weight of L_p."""
    pixel_loss: str = "norm"
    """'norm': the paper's eq. 3, the L2 norm ||down(y) - x||_2 per face (on `pixel_scale` intensities);
    'mse': PULSE's mean squared error per face (images in [0, 1]), clamped below at `eps`."""
    pixel_scale: float = 255.0
    """Intensity scale of the images inside the L2 norm: 255 (8-bit values, our reading of the paper,
    which balances its weights) or 1 (images in [0, 1]). Not used by 'mse' (PULSE works in [0, 1])."""
    eps: float = 2e-3
    """Lower clamp of PULSE's per-face MSE (only with pixel_loss='mse')."""
    pixel_floor: float | str = 0.0
    """Floor of the 'norm' L_p as an RMS residual per low-resolution value in 8-bit levels: below it
    L_p stops pulling (`pixel_loss`). 0: none (the paper); a number; 'pulse' (PULSE's eps, 11.4);
    'auto' (the input's own estimated noise level). Issue 18 measures these on real faces."""
    keep: str = "best"
    """Which iterate is each face's result: 'best' (lowest total loss, PULSE's rule) or 'last'."""
    w_semantic: float = 0.5
    """Weight of L_s (0 disables the semantic loss and the discriminator)."""
    semantic_blocks: int = 3
    """How many of the discriminator's last blocks give features for L_s."""
    semantic_input: str = "auto"
    """How the low-resolution images enter D for L_s: 'native' (through the fromRGB of their own
    resolution, the progressive StyleGAN v1 discriminator only: the paper's D_i(x) on a small x),
    'upsampled' (bicubic-upsampled to D's resolution; the only way into StyleGAN2's D), or 'auto'
    (native on StyleGAN v1, upsampled on StyleGAN2)."""
    semantic_reduction: str = "sum"
    """L1 distance of each block's features: 'sum' (the literal L1 norm, default) or 'mean' absolute
    difference (scale-free; at weight 0.5 it makes L_s about 0.1% of the objective)."""
    w_geocross: float = 500.0
    """Weight of L_g, PULSE's geodesic cross loss on the W+ rows."""
    finetune: bool = True
    """Fine-tune the synthesis network's weights for each face (Adam), from the pretrained ones each time."""
    finetune_lr: float = 5e-5
    """Learning rate of the generator fine-tuning."""
    trainable_noise: int = 5
    """The first N noise maps are optimised (on their spheres); the last is zero, the rest fixed random."""
    gaussian_samples: int = 1_000_000
    """Samples of the mapping network for the Gaussian fit of its pre-activation output (cached)."""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.steps < 1:
            raise ValueError("steps must be >= 1")
        if self.pixel_loss not in ("norm", "mse"):
            raise ValueError(f"pixel_loss must be 'norm' or 'mse', got {self.pixel_loss!r}")
        if self.keep not in ("best", "last"):
            raise ValueError(f"keep must be 'best' or 'last', got {self.keep!r}")
        if self.pixel_floor not in ("auto", "pulse"):
            if isinstance(self.pixel_floor, str) or not (math.isfinite(self.pixel_floor) and self.pixel_floor >= 0):
                raise ValueError(f"pixel_floor must be a number >= 0, 'pulse' or 'auto', got {self.pixel_floor!r}")
        if self.pixel_floor not in (0, 0.0) and self.pixel_loss != "norm":
            raise ValueError("pixel_floor applies to the 'norm' L_p; PULSE's 'mse' has its own floor, eps")
        if self.semantic_input not in ("auto", "native", "upsampled"):
            raise ValueError(f"semantic_input must be 'auto', 'native' or 'upsampled', got {self.semantic_input!r}")
        if self.semantic_reduction not in ("mean", "sum"):
            raise ValueError("semantic_reduction must be 'mean' or 'sum'")

    @property
    def semantic(self) -> bool:
        return self.w_semantic > 0

    @classmethod
    def from_mode(cls, mode: str = "rlse", semantic: bool = True, finetune: bool = True, **overrides) -> "RLSEConfig":
        """The defaults of a mode, then the ablation switches, then explicit overrides."""
        if mode == "pulse":
            base = cls(mode="pulse", pixel_loss="mse", w_pixel=100.0, w_geocross=0.05, w_semantic=0.0, finetune=False)
        else:
            base = cls(mode=mode)
        if not semantic:
            base = replace(base, w_semantic=0.0)
        if not finetune:
            base = replace(base, finetune=False)
        return replace(base, **overrides)

    def to_dict(self) -> dict:
        return asdict(self)
