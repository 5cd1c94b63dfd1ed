"""rlse-fast: super-resolve low-resolution faces by exploring a StyleGAN2's latent space (RLSE)."""

__version__ = "0.1.0"

from . import moved as _moved

_moved.install()

from .api import Restorer  # noqa: E402  (after __version__, which the CLI reads)


def load_gan(path):
    """Load a GAN checkpoint (any of `checkpoints.WEIGHTS_FORMATS`: official StyleGAN2-ADA .pkl,
    rosinality .pt, rlse-fast .safetensors, StyleGAN (v1) TF .pkl, PULSE's synthesis.pt), by path or
    by the names `--weights` takes (ffhq, ffhq512, ffhq256: downloaded on first use; celeba64: the
    bundled prior).

    Returns an object with `.generator` and `.discriminator` (eval mode, float32, CPU).
    """
    from .checkpoints import load_gan as _load
    from .weights import resolve

    return _load(resolve(str(path), quiet=True))


__all__ = ["Restorer", "load_gan", "__version__"]
