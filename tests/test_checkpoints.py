"""Loading real checkpoint formats: official pickles (safely), rosinality .pt, our safetensors; info/convert."""
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_files import (rosinality_state_dicts, tiny_gan, write_hostile_pickle, write_nvidia_pickle,
                       write_rosinality_pt)
from rlse_fast.checkpoints import load_gan, save_gan
from rlse_fast.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rlse_fast", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300)


def _same_outputs(a, b, tol=1e-5):
    z = torch.randn(4, a.generator.cfg.z_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ia = a.generator(z, noise_mode="const")
        ib = b.generator(z, noise_mode="const")
        da = a.discriminator(ia)
        db = b.discriminator(ia)
    return (ia - ib).abs().max().item() <= tol and (da - db).abs().max().item() <= tol


@pytest.fixture(scope="module")
def tiny():
    return tiny_gan(seed=3)


def test_nvidia_pickle_roundtrip(tmp_path, tiny):
    G, D = tiny
    path = write_nvidia_pickle(tmp_path / "net.pkl", G, D)
    gan = load_gan(path)
    assert gan.source_format == "nvidia-pickle"
    assert gan.generator.cfg == G.cfg and gan.discriminator.cfg == D.cfg
    for k, v in G.state_dict().items():
        assert torch.equal(gan.generator.state_dict()[k], v), k
    for k, v in D.state_dict().items():
        assert torch.equal(gan.discriminator.state_dict()[k], v), k


def test_nvidia_pickle_of_reference_weights(tmp_path, reference):
    """The shared NVIDIA reference weights, written as an official pickle, reproduce its outputs."""
    from rlse_fast.checkpoints import build_discriminator, build_generator, infer_discriminator_config, infer_generator_config

    r = reference("sg2_nvidia_r32")
    g_sd = {k[2:]: v for k, v in r.items() if k.startswith("G.")}
    d_sd = {k[2:]: v for k, v in r.items() if k.startswith("D.")}
    G = build_generator(infer_generator_config(g_sd), g_sd)
    D = build_discriminator(infer_discriminator_config(d_sd), d_sd)
    gan = load_gan(write_nvidia_pickle(tmp_path / "ref.pkl", G, D))
    with torch.no_grad():
        assert (gan.generator.synthesis(r["ws"], noise_mode="const") - r["img_const"]).abs().max() <= 1e-4
        assert (gan.discriminator(r["img_in"]) - r["d_logits"]).abs().max() <= 1e-4


def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path, tiny):
    marker = tmp_path / "marker.txt"
    path = write_hostile_pickle(tmp_path / "evil.pkl", marker, tiny[0])
    # Unpickled naively (with the official module names available), it would run code:
    naive = (
        "import pickle, sys, types\n"
        "for m in ('torch_utils', 'torch_utils.persistence', 'dnnlib', 'dnnlib.util'):\n"
        "    sys.modules[m] = types.ModuleType(m)\n"
        "sys.modules['torch_utils.persistence']._reconstruct_persistent_obj = lambda meta: meta\n"
        "sys.modules['dnnlib.util'].EasyDict = dict\n"
        f"pickle.load(open({str(path)!r}, 'rb'))\n"
    )
    subprocess.run([sys.executable, "-c", naive], check=True, timeout=120)
    assert marker.read_text() == "pwned"
    marker.unlink()
    with pytest.raises(UserError, match="builtins.exec"):
        load_gan(path)
    assert not marker.exists()
    res = cli("info", path)
    assert res.returncode == 2
    assert "builtins.exec" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_rosinality_pt_matches_reference(tmp_path):
    try:
        g, d, latent_avg, r = rosinality_state_dicts()
    except FileNotFoundError:
        pytest.skip("rosinality reference absent")
    gan = load_gan(write_rosinality_pt(tmp_path / "ros.pt", g, d, latent_avg))
    assert gan.source_format == "rosinality"
    noise = [r[f"noise.{i}"] for i in range(7)]
    with torch.no_grad():
        assert (gan.generator.synthesis(r["latent_wplus"], noise=noise) - r["img"]).abs().max() <= 1e-4
        assert (gan.discriminator(r["d_in"]) - r["d_logits"]).abs().max() <= 1e-4
    assert torch.equal(gan.generator.mapping.w_avg, latent_avg)


def test_rosinality_without_discriminator(tmp_path):
    try:
        g, _, latent_avg, _ = rosinality_state_dicts()
    except FileNotFoundError:
        pytest.skip("rosinality reference absent")
    gan = load_gan(write_rosinality_pt(tmp_path / "g.pt", g, None, latent_avg, with_args=False))
    assert gan.discriminator is None


def test_safetensors_roundtrip_and_fp16(tmp_path, tiny):
    G, D = tiny
    save_gan(tmp_path / "a.safetensors", G, D)
    gan = load_gan(tmp_path / "a.safetensors")
    assert gan.source_format == "safetensors"
    assert all(torch.equal(gan.generator.state_dict()[k], v) for k, v in G.state_dict().items())
    save_gan(tmp_path / "h.safetensors", G, D, dtype=torch.float16)
    half = load_gan(tmp_path / "h.safetensors")
    assert half.generator.mapping.fc0.weight.dtype == torch.float32
    assert (tmp_path / "h.safetensors").stat().st_size < 0.6 * (tmp_path / "a.safetensors").stat().st_size


def test_convert_cli_from_pickle_and_pt(tmp_path, tiny):
    G, D = tiny
    pkl = write_nvidia_pickle(tmp_path / "net.pkl", G, D)
    out = tmp_path / "net.safetensors"
    res = cli("convert", pkl, out)
    assert res.returncode == 0, res.stderr
    assert _same_outputs(load_gan(pkl), load_gan(out))
    # Refuses to overwrite without --force, and leaves the file intact.
    before = out.read_bytes()
    res = cli("convert", pkl, out)
    assert res.returncode == 2 and "--force" in res.stderr
    assert out.read_bytes() == before
    try:
        g, d, latent_avg, _ = rosinality_state_dicts()
    except FileNotFoundError:
        return
    pt = write_rosinality_pt(tmp_path / "ros.pt", g, d, latent_avg)
    res = cli("convert", pt, tmp_path / "ros.safetensors", "--dtype", "float16")
    assert res.returncode == 0, res.stderr
    assert _same_outputs(load_gan(pt), load_gan(tmp_path / "ros.safetensors"), tol=0.05)


def test_info_cli(tmp_path, tiny):
    G, D = tiny
    path = tmp_path / "tiny.safetensors"
    save_gan(path, G, D)
    res = cli("info", path)
    assert res.returncode == 0, res.stderr
    assert "32x32" in res.stdout and "sha256" in res.stdout
    info = json.loads(cli("info", path, "--json").stdout)
    assert info["generator"]["parameters"] == sum(p.numel() for p in G.parameters())
    assert info["discriminator"]["parameters"] == sum(p.numel() for p in D.parameters())
    import hashlib
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["truncated-pkl", "truncated-safetensors", "text", "empty", "missing", "wrong-pickle"])
def test_bad_files_one_line_exit_2(tmp_path, tiny, kind):
    G, D = tiny
    if kind == "truncated-pkl":
        full = write_nvidia_pickle(tmp_path / "full.pkl", G, D).read_bytes()
        path = tmp_path / "bad.pkl"
        path.write_bytes(full[: len(full) // 2])
    elif kind == "truncated-safetensors":
        save_gan(tmp_path / "full.safetensors", G, D)
        full = (tmp_path / "full.safetensors").read_bytes()
        path = tmp_path / "bad.safetensors"
        path.write_bytes(full[: len(full) // 3])
    elif kind == "text":
        path = tmp_path / "notes.pkl"
        path.write_text("these are not weights\n" * 10)
    elif kind == "empty":
        path = tmp_path / "empty.pt"
        path.write_bytes(b"")
    elif kind == "missing":
        path = tmp_path / "nope.pkl"
    else:
        path = tmp_path / "list.pkl"
        path.write_bytes(pickle.dumps([1, 2, 3]))
    res = cli("info", path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlse-fast info: error:"), res.stderr
    res = cli("convert", path, tmp_path / "out.safetensors")
    assert res.returncode == 2 and not (tmp_path / "out.safetensors").exists()
