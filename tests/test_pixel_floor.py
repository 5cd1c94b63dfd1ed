"""L_p's floor and the kept iterate (issue 18): the noise estimate, the floor's value and gradient,
both engines under it, the CLI flags, and the eval methods that select them."""
import json
import math
import subprocess
import sys

import pytest
import torch

from fast_runs import tiny_setup
from gan_files import tiny_gan
from rlse_fast import noise_level
from rlse_fast.checkpoints import save_gan
from rlse_fast.config import RLSEConfig
from rlse_fast.downsample import bicubic_downsample_ref
from rlse_fast.engine.eager import super_resolve
from rlse_fast.engine.fast import super_resolve_fast
from rlse_fast.imageio import save_image
from rlse_fast.engine.pixel_loss import PULSE_FLOOR_LEVELS, floor_for, pixel_loss


def _ramp(size=64, batch=2):
    x = torch.linspace(0.1, 0.9, size).view(1, 1, 1, size)
    return (x + 0.5 * x.transpose(2, 3)).expand(batch, 3, size, size).clone() / 1.5


@pytest.mark.parametrize("sigma", [3.0, 12.0])
def test_noise_estimate_finds_gaussian_noise(sigma):
    gen = torch.Generator().manual_seed(int(sigma))
    clean = _ramp()
    assert noise_level.estimate(clean).max() < 0.05  # a plane passes the filter as zero
    noisy = clean + torch.randn(clean.shape, generator=gen) * sigma / 255
    est = noise_level.estimate(noisy)
    assert est.shape == (2,)
    assert est.sub(sigma).abs().max() < 0.08 * sigma, est


def test_noise_estimate_needs_three_pixels():
    with pytest.raises(ValueError, match="3x3"):
        noise_level.estimate(torch.zeros(1, 3, 2, 2))


def test_floor_values():
    lr = _ramp(8, 3)
    n = lr[0].numel()
    assert floor_for(RLSEConfig(), lr) is None  # the paper: no floor
    pulse = floor_for(RLSEConfig(pixel_floor="pulse"), lr)
    assert PULSE_FLOOR_LEVELS == pytest.approx(255 * math.sqrt(2e-3))
    # An RMS residual of f levels over n values is a norm of f * sqrt(n) (255-scale intensities).
    torch.testing.assert_close(pulse, torch.full((3,), PULSE_FLOOR_LEVELS * math.sqrt(n)))
    torch.testing.assert_close(floor_for(RLSEConfig(pixel_floor=2.5), lr), torch.full((3,), 2.5 * math.sqrt(n)))
    auto = floor_for(RLSEConfig(pixel_floor="auto"), lr)
    torch.testing.assert_close(auto, noise_level.estimate(lr) * math.sqrt(n))
    # On [0, 1] intensities the floor is in the same units as L_p.
    torch.testing.assert_close(floor_for(RLSEConfig(pixel_floor=2.5, pixel_scale=1.0), lr),
                               torch.full((3,), 2.5 / 255 * math.sqrt(n)))


def test_floor_stops_the_gradient_below_it():
    cfg = RLSEConfig(pixel_floor=1.0)
    n = 48
    floor = torch.full((2,), 1.0 * math.sqrt(n))
    # Face 0 is below its floor (RMS 0.5 levels), face 1 above (RMS 3 levels).
    sse = torch.tensor([n * (0.5 / 255) ** 2, n * (3 / 255) ** 2], requires_grad=True)
    loss = pixel_loss(sse, n, cfg, floor)
    assert loss[0].item() == pytest.approx(floor[0].item())
    assert loss[1].item() == pytest.approx(3 * math.sqrt(n), rel=1e-5)
    loss.sum().backward()
    assert sse.grad[0] == 0 and sse.grad[1] > 0


@pytest.mark.parametrize("kwargs,match", [
    (dict(pixel_floor=-1.0), "pixel_floor"), (dict(pixel_floor=float("nan")), "pixel_floor"),
    (dict(pixel_floor="loud"), "pixel_floor"), (dict(pixel_floor=2.0, pixel_loss="mse"), "norm"),
    (dict(keep="first"), "keep")])
def test_config_refuses_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RLSEConfig(**kwargs)


@pytest.fixture(scope="module")
def setup():
    return tiny_setup(faces=2)


def test_a_floor_above_the_residual_leaves_only_the_priors(setup):
    """With a floor above any residual, L_p is the floor at every step and pulls nothing: the
    trajectory is the one without L_p, shifted by the constant."""
    G, D, fit, lr = setup
    base = dict(steps=4, finetune=False)
    floored = super_resolve(G, D, lr, RLSEConfig(pixel_floor=255.0, **base), fit, seeds=[1, 2], impl="ref")
    n = lr[0].numel()
    for h in floored.history:
        assert h["pixel"] == pytest.approx([255.0 * math.sqrt(n)] * 2, rel=1e-6)
    no_pixel = super_resolve(G, D, lr, RLSEConfig(w_pixel=0.0, **base), fit, seeds=[1, 2], impl="ref")
    for a, b in zip(floored.history, no_pixel.history):
        assert a["semantic"] == pytest.approx(b["semantic"], rel=1e-5)
        assert a["geocross"] == pytest.approx(b["geocross"], rel=1e-5)
    plain = super_resolve(G, D, lr, RLSEConfig(**base), fit, seeds=[1, 2], impl="ref")
    assert plain.history[-1]["pixel"] != pytest.approx(floored.history[-1]["pixel"])


def test_keep_last_returns_the_last_iterate(setup):
    G, D, fit, lr = setup
    seen = {}
    res = super_resolve(G, D, lr, RLSEConfig(steps=5, keep="last"), fit, seeds=[1, 2], impl="ref",
                        on_step=lambda step, img, losses: seen.update({step: img.clone()}))
    assert res.best_step == [4, 4]
    assert torch.equal(res.images, seen[4])
    assert res.best_loss.tolist() == pytest.approx(res.history[-1]["total"])


@pytest.mark.parametrize("cfg", [RLSEConfig(steps=4, pixel_floor="auto", keep="last"),
                                 RLSEConfig(steps=4, pixel_floor=0.5)], ids=["auto-last", "fixed"])
def test_fast_engine_equals_eager_with_floor_and_keep(setup, cfg):
    G, D, fit, lr = setup
    a = super_resolve(G, D, lr, cfg, fit, seeds=[1, 2], impl="ref")
    b = super_resolve_fast(G, D, lr, cfg, fit, seeds=[1, 2], impl="ref", precision="fp32", graphs=False)
    assert b.best_step == a.best_step
    for ha, hb in zip(a.history, b.history):
        assert hb["pixel"] == pytest.approx(ha["pixel"], rel=1e-4)
    torch.testing.assert_close(b.images, a.images, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- CLI and eval

def _cli(*args, home):
    import os

    return subprocess.run([sys.executable, "-m", "rlse_fast", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "RLSE_FAST_HOME": str(home)})


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("floor")
    G, D = tiny_gan(seed=2)
    save_gan(root / "tiny.safetensors", G, D)
    with torch.no_grad():
        hr = (G(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0)), noise_mode="const")
              .clamp(-1, 1) + 1) / 2
    save_image(bicubic_downsample_ref(hr, 4)[0], root / "a.png")
    (root / "faces").mkdir()
    for i in range(2):
        save_image(hr[i], root / "faces" / f"f{i}.png")
    return root


def test_sr_pixel_floor_and_keep_reach_the_config(files, tmp_path):
    out = tmp_path / "out.png"
    res = _cli("sr", files / "a.png", out, "--weights", files / "tiny.safetensors", "--steps", "3",
               "--gaussian-samples", "4096", "--quiet", "--pixel-floor", "auto", "--keep", "last", home=tmp_path)
    assert res.returncode == 0, res.stderr
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["config"]["pixel_floor"] == "auto" and meta["config"]["keep"] == "last"
    assert meta["best_step"] == 2


@pytest.mark.parametrize("flags,words", [(["--pixel-floor", "loud"], "--pixel-floor"),
                                         (["--pixel-floor", "-2"], "--pixel-floor"),
                                         (["--pixel-floor", "3", "--mode", "pulse"], "MSE")])
def test_sr_bad_pixel_floor_is_one_line_exit_2(files, tmp_path, flags, words):
    out = tmp_path / "out.png"
    res = _cli("sr", files / "a.png", out, "--weights", files / "tiny.safetensors", "--steps", "2", "--quiet",
               *flags, home=tmp_path)
    assert res.returncode == 2 and words in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists()


def test_eval_runs_the_variants(files, tmp_path):
    out = tmp_path / "ev"
    res = _cli("eval", "--hr", files / "faces", "--out", out, "--scale", "4", "--weights", files / "tiny.safetensors",
               "--methods", "rlse,rlse-floor,rlse-noisefloor,rlse-last,rlse-ls5,rlse-lg5000,rlse-half", "--steps", "4",
               "--gaussian-samples", "4096", "--no-lpips", "--frame", "none", "--hr-frame", "celeba", "--quiet",
               home=tmp_path)
    assert res.returncode == 0, res.stderr
    cfgs = json.loads((out / "run.json").read_text())["configs"]
    assert cfgs["rlse-floor"]["pixel_floor"] == "pulse" and cfgs["rlse-noisefloor"]["pixel_floor"] == "auto"
    assert cfgs["rlse-last"]["keep"] == "last" and cfgs["rlse-ls5"]["w_semantic"] == 5.0
    assert cfgs["rlse-lg5000"]["w_geocross"] == 5000.0 and cfgs["rlse"]["w_geocross"] == 500.0
    assert cfgs["rlse-half"]["steps"] == 2 and cfgs["rlse"]["steps"] == 4
    import csv

    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert {(r["image"], r["method"]) for r in rows} == {(f"f{i}.png", m) for i in range(2) for m in cfgs}
    assert all(int(r["best_step"]) == 3 for r in rows if r["method"] == "rlse-last")
    assert all(int(r["best_step"]) <= 1 for r in rows if r["method"] == "rlse-half")
