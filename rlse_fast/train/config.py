"""The prior's training configuration: one frozen dataclass, converted from CLI flags in one place."""
from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import UserError
from ..models.stylegan2 import DiscriminatorConfig, GeneratorConfig
from .augment import MODES

PRECISIONS = ("auto", "bf16", "fp32")
OPS = ("auto", "ref")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Architecture defaults are the CPU-sized 64 px prior (about 1.1 M
    parameters in G and 1.2 M in D; about 18 img/s on one 2026 x86 core at batch 16)."""

    resolution: int = 64
    """Training resolution (power of two >= 8)."""
    z_dim: int = 128
    """Size of z and of w."""
    mapping_layers: int = 2
    """Fully connected layers of the mapping network."""
    channel_base: int = 2048
    """Channels at resolution r are min(channel_base // r, channel_max), in G and D alike."""
    channel_max: int = 128
    """Upper bound on channels."""
    batch: int = 16
    """Minibatch size (a multiple of 4, the minibatch-stddev group)."""
    lr: float = 0.0025
    """Adam learning rate of G and D (D's is corrected for lazy R1)."""
    beta2: float = 0.99
    """Adam beta2 (beta1 is 0)."""
    r1_gamma: float | None = None
    """R1 weight; None: StyleGAN2-ADA's heuristic 0.0002 * resolution**2 / batch (0.05 at 64 px, batch 16)."""
    r1_interval: int = 16
    """Apply R1 every this many minibatches (lazy regularisation)."""
    ema_kimg: float = 10.0
    """Half-life of the generator EMA in thousands of images."""
    ema_rampup: float | None = 0.05
    """The EMA half-life is at most this fraction of the images seen so far (None: no ramp-up)."""
    mixing_prob: float = 0.0
    """Probability of style mixing per minibatch (0 skips it, saving a little CPU)."""
    augment: str = "ada"
    """Augmentation of every image D sees: 'ada' (adaptive 'bgc'), 'diffaug' (fixed DiffAugment) or 'none'."""
    ada_target: float = 0.6
    """ADA: the overfitting heuristic r_t = E[sign(D(real))] the strength p is steered to."""
    ada_kimg: float = 500.0
    """ADA: thousands of images for p to go from 0 to 1 at the fastest (the paper's 500)."""
    ada_interval: int = 4
    """ADA: minibatches between updates of p (r_t is measured over them in every mode)."""
    diffaug_p: float = 1.0
    """DiffAugment: probability of each transform per image (the paper's 1)."""
    kimg: float = 10000.0
    """Stop after this many thousand real images in total (across resumes)."""
    minutes: float | None = None
    """Stop after this many minutes of this invocation (None: no limit)."""
    seed: int = 0
    """Seed of the weights, the data order and the latents; the sample grid always uses seed 0."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'."""
    threads: int | None = 1
    """torch.set_num_threads on CPU (None: leave torch's default)."""
    precision: str = "auto"
    """'bf16': autocast the synthesis and D's convolution blocks (mapping, D's epilogue, losses and R1
    stay float32); 'fp32'; 'auto': bf16 on CUDA, fp32 on CPU."""
    ops: str = "auto"
    """Ops of the G and D passes: 'auto' (native kernels where faster) or 'ref'; R1 always runs the
    references (it differentiates twice)."""
    channels_last: bool = False
    """Run D in channels-last memory format (pays on tensor-core GPUs). G stays NCHW: its channels-last
    path runs one sample at a time (`SynthesisNetwork.forward`), which would slow training."""
    checkpoint_minutes: float = 5.0
    """Write the resumable checkpoint (and a log line) this often."""
    log_minutes: float = 1.0
    """Append a line of statistics to log.jsonl this often (the training curves)."""
    export_minutes: float = 15.0
    """Export the prior (G_ema + D, float16) this often."""
    sample_minutes: float = 5.0
    """Write the sample grid this often."""

    @property
    def gamma(self) -> float:
        return self.r1_gamma if self.r1_gamma is not None else 0.0002 * self.resolution**2 / self.batch

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(z_dim=self.z_dim, w_dim=self.z_dim, img_resolution=self.resolution,
                               mapping_layers=self.mapping_layers, channel_base=self.channel_base,
                               channel_max=self.channel_max)

    def discriminator_config(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(img_resolution=self.resolution, channel_base=self.channel_base,
                                   channel_max=self.channel_max, mbstd_group_size=4)

    def check(self) -> None:
        r = self.resolution
        if r < 8 or r & (r - 1):
            raise UserError(f"--resolution must be a power of two >= 8, got {r}")
        if self.batch < 4 or self.batch % 4:
            raise UserError(f"--batch must be a positive multiple of 4 (minibatch-stddev groups), got {self.batch}")
        if self.r1_interval < 1:
            raise UserError(f"--r1-interval must be >= 1, got {self.r1_interval}")
        if self.augment not in MODES:
            raise UserError(f"--augment must be one of {', '.join(MODES)}, got {self.augment!r}")
        if not 0 <= self.ada_target <= 1:
            raise UserError(f"--ada-target must be in [0, 1], got {self.ada_target}")
        if self.ada_kimg <= 0:
            raise UserError(f"--ada-kimg must be > 0, got {self.ada_kimg}")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.ops not in OPS:
            raise UserError(f"--ops must be one of {', '.join(OPS)}, got {self.ops!r}")


ARCH_FIELDS = ("resolution", "z_dim", "mapping_layers", "channel_base", "channel_max")


def config_from_kwargs(**kwargs) -> TrainConfig:
    """TrainConfig from keyword arguments, ignoring those that are None (= keep the default)."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in kwargs.items() if k in names and v is not None})


__all__ = ["ARCH_FIELDS", "OPS", "PRECISIONS", "TrainConfig", "config_from_kwargs"]
