"""StyleGAN (v1) against ../shared/reference/sg1_r128* (genforce's port of NVlabs/stylegan, 128 px):
from the official-layout TF pickle (whose embedded build source must never run), from our
safetensors and from PULSE's file layout; D fed at each lower resolution (lod 1-5)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_files import write_pulse_files
from rlse_fast.checkpoints import load_gan
from rlse_fast.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT.parent / "shared" / "reference"
PKL = REF / "sg1_r128_official.pkl"
OUTS = REF / "sg1_r128_outputs.safetensors"
TOL = 1e-4

pytestmark = pytest.mark.skipif(not (PKL.is_file() and OUTS.is_file()), reason="../shared/reference/sg1_r128* absent")


@pytest.fixture(scope="module")
def ref():
    from safetensors.torch import load_file

    return load_file(str(OUTS))


@pytest.fixture(scope="module")
def gan(tmp_path_factory):
    marker = tmp_path_factory.mktemp("marker") / "pwned"
    old = os.environ.get("SG1_PWNED_MARKER")
    os.environ["SG1_PWNED_MARKER"] = str(marker)
    try:
        g = load_gan(PKL)
    finally:
        if old is None:
            del os.environ["SG1_PWNED_MARKER"]
        else:
            os.environ["SG1_PWNED_MARKER"] = old
    assert not marker.exists(), "the pickle's build_module_src ran"
    return g


def _max(a, b):
    return (a - b).abs().max().item()


def check_all(g, ref):
    G, D = g.generator, g.discriminator
    errors = {}
    with torch.no_grad():
        errors["w"] = _max(G.mapping(ref["z"], broadcast=False), ref["w"])
        img, layers = G.synthesis(ref["wp"], return_layers=True)
        errors["image"] = _max(img, ref["image"])
        for i in range(8):
            errors[f"synthesis.layer{i}"] = _max(layers[i], ref[f"synthesis.layer{i}"])
        errors["image_from_z"] = _max(G(ref["z"]), ref["image_from_z"])
        errors["image_from_z_trunc"] = _max(G(ref["z"], truncation_psi=0.7), ref["image_from_z_trunc"])
        errors["d_lod0_logits"] = _max(D(ref["d_image"]), ref["d_lod0_logits"])
        for k in range(1, 6):
            lr = ref[f"d_lod{k}_input"]
            logits, feats = D(lr, return_features=True)
            errors[f"d_lod{k}_logits"] = _max(logits, ref[f"d_lod{k}_logits"])
            r = lr.shape[-1]
            if r <= 32:  # the reference keeps features up to 32 px: fromRGB is genforce's input{k}
                errors[f"d_lod{k}.input{k}"] = _max(feats[f"fromrgb{r}"], ref[f"d_lod{k}.input{k}"])
            # genforce's layer{2b+1} is the output of our block b{128 >> b}
            for b in range(k, 5):
                key = f"d_lod{k}.layer{2 * b + 1}"
                if key in ref:
                    errors[key] = _max(feats[f"b{128 >> b}"], ref[key])
            errors[f"d_lod{k}.layer10"] = _max(feats["b4"], ref[f"d_lod{k}.layer10"])
    return errors


def test_tf_pickle_matches_reference(gan, ref):
    assert gan.source_format == "tf-pickle"
    assert gan.generator.cfg.img_resolution == 128 and gan.generator.cfg.channels(128) == 8
    errors = check_all(gan, ref)
    assert len(errors) > 25
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, bad


def test_safetensors_roundtrip_matches_reference(gan, ref, tmp_path):
    from rlse_fast.checkpoints import convert

    out = tmp_path / "sg1.safetensors"
    convert(PKL, out)
    g = load_gan(out)
    assert type(g.generator) is type(gan.generator)
    bad = {k: v for k, v in check_all(g, ref).items() if not v <= TOL}
    assert not bad, bad


def test_build_source_marker_works_when_run_deliberately(tmp_path):
    """Control for the marker test: the stored source does write the marker when executed (here on
    purpose, in a child process), so its absence above means it never ran."""
    marker = tmp_path / "pwned"
    code = ("import sys; from pathlib import Path; from rlse_fast.loaders.safe_unpickler import safe_unpickle; "
            "exec(safe_unpickle(Path(sys.argv[1]))[2].state['build_module_src'], {})")
    env = {**os.environ, "SG1_PWNED_MARKER": str(marker), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code, str(PKL)], check=True, env=env, timeout=120)
    assert marker.read_text() == "build_module_src was executed"


def test_pulse_files_match_reference(gan, ref, tmp_path):
    g = load_gan(write_pulse_files(gan, tmp_path))
    assert g.source_format == "pulse" and g.discriminator is None
    with torch.no_grad():
        noise = [layer.noise_const.reshape(1, 1, *layer.noise_const.shape) for layer in gan.generator.synthesis.layers()]
        assert _max(g.generator.mapping(ref["z"], broadcast=False), ref["w"]) <= TOL
        assert _max(g.generator.synthesis(ref["wp"], noise=noise), ref["image"]) <= TOL


def test_pulse_synthesis_without_mapping_says_where(gan, tmp_path):
    path = write_pulse_files(gan, tmp_path, with_mapping=False)
    with pytest.raises(UserError, match="mapping.pt"):
        load_gan(path)


def test_gaussian_fit_on_v1_inverts_the_mapping_activation(gan):
    """PULSE's recipe: fit the mapping's output before its last lrelu; W = lrelu(x) with no gain on v1."""
    from rlse_fast.gaussian_fit import compute, to_w

    G = gan.generator
    fit = compute(G, 4096)
    z = torch.randn(5, G.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pre = G.mapping(z, preactivation=True)
        w = G.mapping(z, broadcast=False)
    # to_w applied to the exact pre-activation (std 1, mean 0 on the row) gives back W
    assert _max(to_w(G, pre.unsqueeze(1), torch.zeros(G.w_dim), torch.ones(G.w_dim))[:, 0], w) <= 1e-5
    # the fit is of the pre-activation (these random weights barely vary with z: compare the means)
    assert _max(fit["mean"], pre.mean(0)) <= 1e-4 * (1 + pre.abs().max().item())
