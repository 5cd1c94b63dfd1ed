"""The RLSE engine: PULSE's building blocks against ../shared/reference/pulse_ops, and the loop's behaviour."""
import math

import pytest
import torch

from fast_runs import tiny_setup
from rlse_fast import gaussian_fit
from rlse_fast.config import RLSEConfig
from rlse_fast.downsample import bicubic_downsample_ref, bicubic_kernel
from rlse_fast.engine.eager import super_resolve
from rlse_fast.engine.geocross import geocross
from rlse_fast.ops.downsample_loss import downsample_loss
from rlse_fast.engine.schedule import linear1cycledrop
from rlse_fast.engine.spherical import SphericalOptimizer


@pytest.fixture(scope="module")
def pulse_ref():
    from safetensors.torch import load_file

    from conftest import SHARED

    path = SHARED / "reference" / "pulse_ops.safetensors"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    import json

    return load_file(str(path)), json.loads((SHARED / "reference" / "pulse_ops.json").read_text())


def test_geocross_matches_pulse(pulse_ref):
    r, _ = pulse_ref
    for i in range(3):
        per_face = geocross(r[f"geocross.latent.{i}"])
        torch.testing.assert_close(per_face, r[f"geocross.loss_per_sample.{i}"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(per_face.sum(), r[f"geocross.loss.{i}"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("factor", [2, 4, 8, 16, 32])
def test_bicubic_downscaler_matches_pulse(pulse_ref, factor):
    r, _ = pulse_ref
    torch.testing.assert_close(bicubic_kernel(factor), r[f"bicubic.kernel.f{factor}"], rtol=0, atol=1e-7)
    out = bicubic_downsample_ref(r["bicubic.img_in"], factor)
    torch.testing.assert_close(out, r[f"bicubic.out.f{factor}"], rtol=0, atol=1e-6)
    # The fused op (default implementation) gives the same squared error as the reference downscale.
    target = torch.zeros_like(out)
    sse = downsample_loss(r["bicubic.img_in"], target, factor)
    torch.testing.assert_close(sse, r[f"bicubic.out.f{factor}"].pow(2).sum((1, 2, 3)), rtol=1e-5, atol=1e-5)


def test_schedule_matches_pulse(pulse_ref):
    r, meta = pulse_ref
    mult = [linear1cycledrop(x, 100) for x in range(100)]
    exact = meta["schedule_float64"]["100"]["multiplier"]
    assert max(abs(a - b) for a, b in zip(mult, exact)) < 1e-12
    torch.testing.assert_close(torch.tensor(mult, dtype=torch.float32), r["schedule.linear1cycledrop"])


def test_spherical_steps_match_pulse(pulse_ref):
    r, _ = pulse_ref
    x = r["spherical.latent0"].clone().requires_grad_(True)
    opt = SphericalOptimizer(torch.optim.Adam, [x], lr=0.4)
    torch.testing.assert_close(opt.radii[0], r["spherical.radii"])
    x.grad = r["spherical.grad0"].clone()
    opt.step()
    torch.testing.assert_close(x.detach(), r["spherical.latent_step1"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(opt.opt.state[x]["exp_avg"], r["spherical.adam_exp_avg_step1"])
    x.grad = r["spherical.grad1"].clone()
    opt.step()
    torch.testing.assert_close(x.detach(), r["spherical.latent_step2"], rtol=1e-5, atol=1e-5)
    # With PULSE's scheduler attached.
    x = r["spherical.latent0"].clone().requires_grad_(True)
    opt = SphericalOptimizer(torch.optim.Adam, [x], lr=0.4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt.opt, lambda s: linear1cycledrop(s, 100))
    for g, want in (("grad0", "latent_step1"), ("grad1", "latent_step2")):
        x.grad = r[f"spherical.{g}"].clone()
        opt.step()
        sched.step()
        torch.testing.assert_close(x.detach(), r[f"spherical_sched.{want}"], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- the loop on a tiny GAN


@pytest.fixture(scope="module")
def setup():
    return tiny_setup(faces=2, fit_samples=20000)


def _lr_error(images, lr):
    return (bicubic_downsample_ref(images, 4) - lr).pow(2).mean((1, 2, 3))


@pytest.mark.parametrize("mode", ["rlse", "pulse"])
def test_loss_falls_and_output_approaches_input(setup, mode):
    G, D, fit, lr = setup
    cfg = RLSEConfig.from_mode(mode, steps=25)
    first = {}

    def grab(step, img01, losses):
        if step == 0:
            first["img"] = img01.clone()

    res = super_resolve(G, D, lr, cfg, fit, seeds=[1, 2], on_step=grab)
    totals = torch.tensor([h["total"] for h in res.history])
    assert (totals[-5:].mean(0) < 0.5 * totals[0]).all()
    assert (_lr_error(res.images, lr) < _lr_error(first["img"], lr)).all()
    assert torch.equal(res.best_loss, totals.min(0).values.to(res.best_loss.dtype))
    if mode == "pulse":
        assert all(h["semantic"] == [0.0, 0.0] for h in res.history)
    else:
        assert res.history[0]["semantic"][0] > 0


def test_finetuning_leaves_loaded_weights_bit_identical(setup):
    G, D, fit, lr = setup
    before_g = {k: v.clone() for k, v in G.state_dict().items()}
    before_d = {k: v.clone() for k, v in D.state_dict().items()}
    super_resolve(G, D, lr[:1], RLSEConfig(steps=3), fit)
    assert all(torch.equal(before_g[k], v) for k, v in G.state_dict().items())
    assert all(torch.equal(before_d[k], v) for k, v in D.state_dict().items())


def test_same_seed_same_output_and_batch_independence(setup):
    G, D, fit, lr = setup
    cfg = RLSEConfig(steps=4)
    a = super_resolve(G, D, lr, cfg, fit, seeds=[3, 4])
    b = super_resolve(G, D, lr, cfg, fit, seeds=[3, 4])
    assert torch.equal(a.images, b.images)
    # Each face alone gives (within float tolerance) what it gives in the batch.
    one = super_resolve(G, D, lr[1:], cfg, fit, seeds=[4])
    torch.testing.assert_close(one.images[0], a.images[1], rtol=1e-4, atol=1e-4)
    c = super_resolve(G, D, lr, cfg, fit, seeds=[5, 6])
    assert not torch.equal(a.images, c.images)


def test_ablation_switches():
    cfg = RLSEConfig.from_mode("rlse", semantic=False, finetune=False)
    assert cfg.w_semantic == 0 and not cfg.finetune and cfg.pixel_loss == "norm" and cfg.w_geocross == 500
    pulse = RLSEConfig.from_mode("pulse")
    assert (pulse.pixel_loss, pulse.w_pixel, pulse.w_geocross, pulse.eps) == ("mse", 100.0, 0.05, 2e-3)
    assert not pulse.semantic and not pulse.finetune
    assert RLSEConfig.from_mode("rlse", pixel_loss="mse").pixel_loss == "mse"


def test_gaussian_fit_cache(setup, rlse_home):
    G, _, _, _ = setup
    a = gaussian_fit.cached(G, "ab" * 32, 4096)
    files = list((rlse_home / "gaussian_fit").iterdir())
    assert len(files) == 1
    b = gaussian_fit.cached(G, "ab" * 32, 4096)
    assert torch.equal(a["mean"], b["mean"]) and torch.equal(a["std"], b["std"])
    # W = lrelu(z * std + mean) follows the mapping's output distribution.
    z = torch.randn(4096, G.z_dim, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        w = G.mapping(z, broadcast=False)
        pre = G.mapping(z, preactivation=True)
    torch.testing.assert_close(torch.nn.functional.leaky_relu(pre, 0.2) * math.sqrt(2), w, rtol=1e-5, atol=1e-5)
    assert torch.allclose(pre.mean(0), a["mean"], atol=0.1 * a["std"].mean().item())
    assert torch.allclose(pre.std(0), a["std"], rtol=0.1)


@pytest.mark.parametrize("size_in,size_out", [(8, 64), (16, 128), (5, 37), (32, 32)])
def test_discriminator_input_is_torch_bicubic(size_in, size_out):
    """L_s's upsampling as matrix products = F.interpolate(bicubic) forward and backward, also
    under bf16 autocast (the products stay float32), and non-square inputs."""
    import torch.nn.functional as F

    from rlse_fast.engine.semantic import to_discriminator

    gen = torch.Generator().manual_seed(size_in)
    for shape in [(2, 3, size_in, size_in), (1, 3, size_in, size_in + 3)]:
        if shape[-1] == size_out:  # nothing to upsample: returned as is
            continue
        lr = torch.rand(shape, generator=gen, requires_grad=True)
        ref = F.interpolate(lr.detach() * 2 - 1, size=(size_out, size_out), mode="bicubic", align_corners=False)
        out = to_discriminator(lr, size_out)
        torch.testing.assert_close(out, ref, atol=2e-6, rtol=0)
        seed = torch.randn(out.shape, generator=gen)
        (g,) = torch.autograd.grad((out * seed).sum(), lr)
        lr_ref = lr.detach().clone().requires_grad_()
        ref = F.interpolate(lr_ref * 2 - 1, size=(size_out, size_out), mode="bicubic", align_corners=False)
        (g_ref,) = torch.autograd.grad((ref * seed).sum(), lr_ref)
        torch.testing.assert_close(g, g_ref, atol=1e-4, rtol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.testing.assert_close(to_discriminator(lr, size_out), out, atol=0, rtol=0)
    same = torch.rand(1, 3, size_out, size_out, generator=gen)
    torch.testing.assert_close(to_discriminator(same, size_out), same * 2 - 1)
