"""Augmentation of D's images: identity at strength 0, differentiable (twice), the per-transform
probability of ADA, and the strength controller."""
from __future__ import annotations

import math

import pytest
import torch

from rlse_fast.train.augment import (AdaController, _rotate2d, _scale2d, _translate2d, ada_augment, augment,
                                     diffaug_augment, warp)

PIPELINES = {"ada": ada_augment, "diffaug": diffaug_augment}


@pytest.mark.parametrize("mode", ["ada", "diffaug", "none"])
def test_strength_zero_is_the_identity_bit_for_bit(mode):
    x = torch.randn(6, 3, 16, 16) * 0.7
    before = torch.get_rng_state()
    y = augment(x, mode, 0.0)
    assert torch.equal(y, x)
    assert torch.equal(torch.get_rng_state(), before)  # and it draws nothing: a p = 0 run stays in step


@pytest.mark.parametrize("mode", ["ada", "diffaug"])
def test_full_strength_changes_the_images(mode):
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    y = augment(x, mode, 1.0)
    assert y.shape == x.shape and y.dtype == x.dtype
    changed = (y - x).flatten(1).abs().amax(dim=1) > 1e-3
    assert changed.all()


@pytest.mark.parametrize("mode", ["ada", "diffaug"])
def test_augmentation_is_differentiable(mode):
    fn = PIPELINES[mode]
    x = (torch.rand(1, 3, 6, 6, dtype=torch.float64) * 2 - 1).requires_grad_(True)

    def seeded(inp):  # the same random transforms at every call, so finite differences apply
        with torch.random.fork_rng():
            torch.manual_seed(3)
            return fn(inp, 1.0)

    assert torch.autograd.gradcheck(seeded, (x,), eps=1e-6, atol=1e-5)
    # Twice differentiable (R1 differentiates D through the augmentation): the gradient of a
    # gradient norm reaches the input, finite and non-zero.
    out = seeded(x)
    (g,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sin().sum(), x)
    assert torch.isfinite(gg).all() and gg.abs().sum() > 0


def test_ada_applies_each_transform_with_probability_p():
    # An image comes back untouched only when none of the 13 transforms was drawn for it (x-flip and
    # luma flip change it half the time they are drawn, a 90-degree rotation three times in four,
    # each of the two rotations runs with 1 - sqrt(1 - p)):
    # P(untouched) = (1 - p/2)^2 (1 - 3p/4) (1 - p)^8 (1 - p).
    p, n = 0.2, 4000
    torch.manual_seed(0)
    x = torch.rand(n, 3, 8, 8) * 2 - 1
    y = ada_augment(x, p)
    untouched = (y == x).flatten(1).all(dim=1).float().mean().item()
    expected = (1 - p / 2) ** 2 * (1 - 3 * p / 4) * (1 - p) ** 9
    assert untouched == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / n))


def test_warp_moves_whole_pixels_exactly():
    # The warp's coordinates: one pixel is 2 / R, so x-flips, 90-degree rotations and whole-pixel
    # shifts land on pixel centres and bilinear sampling returns the pixels themselves.
    torch.manual_seed(0)
    x = torch.rand(1, 3, 8, 8)
    one = torch.ones(1)
    assert torch.equal(warp(x, _scale2d(-one, one)), x.flip(3))
    shifted = warp(x, _translate2d(-2 * (2 / 8) * one, 0 * one))  # content moves 2 px right
    assert torch.equal(shifted[..., 2:], x[..., :-2])
    assert torch.equal(shifted[..., :2], x[..., :2].flip(3))  # reflection padding at the edge
    rotated = warp(x, _rotate2d(-one * math.pi / 2))
    torch.testing.assert_close(rotated, torch.rot90(x, -1, dims=[2, 3]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("r_t, direction", [(0.9, 1), (0.2, -1)])
def test_controller_moves_p_towards_the_target(r_t, direction):
    batch, kimg = 16, 1.0
    step = batch * 4 / (kimg * 1000)
    ada = AdaController(target=0.6, kimg=kimg, interval=4, p=0.5)
    g = torch.Generator().manual_seed(0)
    for i in range(8):
        # Logits whose signs average exactly r_t over each minibatch.
        n_pos = round((1 + r_t) / 2 * batch)
        logits = torch.cat([torch.rand(n_pos, generator=g) + 0.1, -torch.rand(batch - n_pos, generator=g) - 0.1])
        ada.observe(logits[:, None])
        ada.step(batch)
        updates = (i + 1) // 4  # p moves only every 4 minibatches
        assert ada.p == pytest.approx(0.5 + direction * updates * step)
    assert ada.r_t == pytest.approx((2 * round((1 + r_t) / 2 * batch) - batch) / batch)

    # Clamped to [0, 1]; adjust=False only measures.
    fast = AdaController(target=0.6, kimg=0.001, p=0.5)
    frozen = AdaController(target=0.6, kimg=0.001, p=0.5, adjust=False)
    for _ in range(4):
        for c in (fast, frozen):
            c.observe(torch.full((batch, 1), float(direction)))
            c.step(batch)
    assert fast.p == (1.0 if direction > 0 else 0.0)
    assert frozen.p == 0.5 and frozen.r_t == direction


def test_controller_state_round_trips_mid_interval():
    a = AdaController(kimg=0.1, p=0.25)
    for v in (1.0, 1.0, -1.0, 1.0, 1.0, 1.0):
        a.observe(torch.full((4, 1), v))
        a.step(4)
    b = AdaController(kimg=0.1)
    b.load_state_dict(a.state_dict())
    for c in (a, b):
        for v in (1.0, -1.0):
            c.observe(torch.full((4, 1), v))
            c.step(4)
    assert a.state_dict() == b.state_dict() and a.p != 0.25
