"""Runs of the fast engine shared by its test modules: a tiny GAN with its fit and low-resolution
faces, the eager reference run, and the two ways two runs are compared (the same result to
rounding, or the same trajectory when kernels round differently)."""
import pytest
import torch
from gan_files import tiny_gan

from rlse_fast import gaussian_fit
from rlse_fast.downsample import bicubic_downsample_ref
from rlse_fast.engine.eager import super_resolve
from rlse_fast.engine.fast import ops_impl


def tiny_setup(faces: int = 3, fit_samples: int = 8192):
    """(G, D, fit, lr): a seeded tiny StyleGAN2, its Gaussian fit and `faces` 4x-downsampled faces of it."""
    G, D = tiny_gan(seed=5)
    fit = gaussian_fit.compute(G, fit_samples)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        hr = (G(torch.randn(faces, G.z_dim, generator=gen), noise_mode="const").clamp(-1, 1) + 1) / 2
    return G, D, fit, bicubic_downsample_ref(hr, 4)


def eager_ref(G, D, lr, cfg, fit, seeds, on_step=None):
    """The eager engine with the reference ops everywhere (the networks' layers too)."""
    with ops_impl("ref"):
        return super_resolve(G, D, lr, cfg, fit, seeds=seeds, impl="ref", on_step=on_step)


def assert_same_result(a, b, atol=1e-6):
    torch.testing.assert_close(b.images, a.images, rtol=0, atol=atol)
    torch.testing.assert_close(b.lr_images, a.lr_images, rtol=0, atol=atol)
    torch.testing.assert_close(b.best_loss, a.best_loss, rtol=1e-6, atol=atol)
    assert b.best_step == a.best_step
    assert len(b.history) == len(a.history)
    for ha, hb in zip(a.history, b.history):
        assert hb["step"] == ha["step"] and hb["lr"] == ha["lr"]
        for k in ("total", "pixel", "semantic", "geocross"):
            assert hb[k] == pytest.approx(ha[k], rel=1e-5, abs=1e-6), (ha["step"], k)


def assert_same_trajectory(a, b, mean_atol=2e-3, step_rtol=5e-3):
    """Two runs of the same faces and seeds whose kernels round differently (CUDA: other kernels,
    cuDNN's algorithms, atomics). Step 0 is a forward pass from the same state and must agree to
    rounding. Later steps cannot agree elementwise: Adam's first step moves every latent element by
    exactly +-lr (0.4), the sign of its gradient, so a gradient at rounding level flips an element.
    Measured on the CPU with 1-ulp noise on every convolution (forward and backward), 4 to 10 steps:
    at most 8e-4 mean image difference and 1.7e-3 relative loss at any step; a stale Adam step
    count, no fine-tuning step or a 10% learning-rate error give at least 5.7e-3 and 1.1e-2."""
    for k in ("total", "pixel", "semantic", "geocross"):
        assert b.history[0][k] == pytest.approx(a.history[0][k], rel=1e-4, abs=1e-6), k
    assert len(b.history) == len(a.history)
    for ha, hb in zip(a.history, b.history):
        assert hb["lr"] == ha["lr"]
        assert hb["total"] == pytest.approx(ha["total"], rel=step_rtol), ha["step"]
    diff = (b.images - a.images).abs()
    assert diff.mean().item() <= mean_atol, (diff.mean().item(), diff.max().item())
    torch.testing.assert_close(b.best_loss, a.best_loss, rtol=step_rtol, atol=0)

