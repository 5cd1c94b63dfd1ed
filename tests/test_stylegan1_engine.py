"""RLSE and PULSE on the StyleGAN (v1) reference networks (../shared/reference/sg1_r128*): L_s with
the low-resolution image at D's own resolution, both engines, the CLI."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_files import write_pulse_files
from rlse_fast import gaussian_fit
from rlse_fast.engine import semantic
from rlse_fast.checkpoints import load_gan
from rlse_fast.config import RLSEConfig
from rlse_fast.engine.eager import super_resolve
from rlse_fast.engine.fast import super_resolve_fast
from rlse_fast.imageio import save_image

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT.parent / "shared" / "reference"
PKL = REF / "sg1_r128_official.pkl"
OUTS = REF / "sg1_r128_outputs.safetensors"

pytestmark = pytest.mark.skipif(not (PKL.is_file() and OUTS.is_file()), reason="../shared/reference/sg1_r128* absent")


@pytest.fixture(scope="module")
def gan():
    return load_gan(PKL)


@pytest.fixture(scope="module")
def ref():
    from safetensors.torch import load_file

    return load_file(str(OUTS))


@pytest.fixture(scope="module")
def fit(gan):
    return gaussian_fit.compute(gan.generator, 4096)


def test_native_blocks_and_features_match_reference_at_16px(gan, ref):
    D = gan.discriminator
    assert semantic.input_mode(D) == "native"
    assert semantic.block_names(D, 3, 16, "native") == ["fromrgb16", "b16", "b8"]
    assert semantic.block_names(D, 3, 32, "native") == ["b32", "b16", "b8"]
    assert semantic.block_names(D, 3, 8, "native") == ["fromrgb8", "b8"]  # only two before the epilogue
    assert semantic.block_names(D, 3, 16, "upsampled") == ["b32", "b16", "b8"]
    lr = ref["d_lod3_input"]  # (3, 3, 16, 16) in [-1, 1]
    with torch.no_grad():
        feats = semantic.features(D, (lr + 1) / 2, ["fromrgb16", "b16", "b8"], mode="native")
    for got, key in zip(feats, ["d_lod3.input3", "d_lod3.layer7", "d_lod3.layer9"]):
        assert (got - ref[key]).abs().max().item() <= 1e-4, key


def test_native_needs_a_progressive_discriminator():
    from gan_files import tiny_gan

    _, D2 = tiny_gan(seed=0)
    assert semantic.input_mode(D2) == "upsampled"
    with pytest.raises(ValueError, match="StyleGAN v1"):
        semantic.input_mode(D2, "native")


def _lr(gan):
    with torch.no_grad():
        hr = (gan.generator(torch.randn(1, gan.generator.z_dim, generator=torch.Generator().manual_seed(3))) + 1) / 2
    return torch.nn.functional.avg_pool2d(hr.clamp(0, 1), 8)  # 16 px


@pytest.mark.parametrize("semantic_input", ["native", "upsampled"])
def test_rlse_eager_and_fast_agree(gan, fit, semantic_input):
    cfg = RLSEConfig.from_mode("rlse", steps=2, semantic_input=semantic_input)
    lr = _lr(gan)
    a = super_resolve(gan.generator, gan.discriminator, lr, cfg, fit, seeds=0)
    b = super_resolve_fast(gan.generator, gan.discriminator, lr, cfg, fit, seeds=0, precision="fp32")
    assert a.history[0]["semantic"][0] > 0
    assert (a.images - b.images).abs().max().item() <= 1e-4
    assert abs(a.history[1]["total"][0] - b.history[1]["total"][0]) <= 1e-3 * abs(a.history[1]["total"][0])


def test_pulse_mode_lowers_the_loss(gan, fit):
    cfg = RLSEConfig.from_mode("pulse", steps=6)
    r = super_resolve(gan.generator, None, _lr(gan), cfg, fit, seeds=0)
    totals = [h["total"][0] for h in r.history]
    assert r.best_loss.item() < totals[0] and totals[-1] < totals[0]


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "rlse_fast", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=ROOT)


def test_cli_pulse_files_rlse_needs_a_discriminator_pulse_runs(gan, tmp_path):
    import os

    env = {**os.environ, "RLSE_FAST_HOME": str(tmp_path / "home")}
    weights = write_pulse_files(gan, tmp_path)
    save_image(_lr(gan)[0], tmp_path / "lr.png")
    res = cli("sr", tmp_path / "lr.png", tmp_path / "out.png", "--weights", weights, "--steps", "2",
              "--gaussian-samples", "1024", "--quiet", env=env)
    assert res.returncode == 2 and "discriminator" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.png").exists()
    res = cli("sr", tmp_path / "lr.png", tmp_path / "out.png", "--weights", weights, "--mode", "pulse", "--steps", "2",
              "--gaussian-samples", "1024", "--quiet", env=env)
    assert res.returncode == 0, res.stderr
    meta = json.loads((tmp_path / "out.json").read_text())
    assert meta["scale"] == 8 and len(meta["losses"]) == 2
    info = cli("info", weights, "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["architecture"] == "stylegan1"


@pytest.mark.parametrize("mode,semantic_input", [("rlse", "native"), ("rlse", "upsampled"), ("pulse", "auto")])
def test_flops_match_flop_counter(mode, semantic_input):
    """flops' StyleGAN v1 count = FlopCounterMode over one eager iteration (steps 2 minus 1), on a
    small random v1 pair whose fused up/down convolutions start at 16 px (both paths counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    from rlse_fast import flops
    from rlse_fast.engine.fast import ops_impl
    from rlse_fast.models.stylegan1 import Generator, GeneratorConfig
    from rlse_fast.models.stylegan1.discriminator import Discriminator, DiscriminatorConfig

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=32, w_dim=32, img_resolution=32, mapping_layers=2, channel_base=256,
                                  channel_max=32, fused_min_resolution=16)).eval().requires_grad_(False)
    D = Discriminator(DiscriminatorConfig(img_resolution=32, channel_base=256, channel_max=32,
                                          fused_min_resolution=16)).eval().requires_grad_(False)
    fit = gaussian_fit.compute(G, 1000)
    lr = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    cfg = RLSEConfig.from_mode(mode, semantic_input=semantic_input)

    def counted(steps):
        with ops_impl("ref"), FlopCounterMode(display=False) as counter:
            super_resolve(G, D if mode == "rlse" else None, lr, RLSEConfig.from_mode(mode, steps=steps,
                          semantic_input=semantic_input), fit, impl="ref")
        return counter.get_total_flops()

    measured = counted(2) - counted(1)
    model = flops.for_config(G, D, cfg, batch=1, factor=4)
    assert model.total == pytest.approx(measured, rel=0.05)
    assert (model.discriminator > 0) == (mode == "rlse")


def test_ffhq_v1_iteration_is_about_a_third_of_stylegan2():
    from rlse_fast import flops

    v1 = flops.iteration_flops(flops.FFHQ_V1, flops.FFHQ_V1_D, batch=1, factor=16)
    v2 = flops.iteration_flops(flops.CONFIG_F, flops.CONFIG_F_D, batch=1, factor=16)
    up = flops.iteration_flops(flops.FFHQ_V1, flops.FFHQ_V1_D, batch=1, factor=16, semantic_input="upsampled")
    assert v1.generator < 0.5 * v2.generator and v1.discriminator < up.discriminator < v2.discriminator
    assert 0.2e12 < v1.total < 0.3e12
