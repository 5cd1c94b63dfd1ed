"""`rlse-fast eval` end to end on a tiny random GAN, the frame warp, the intervals, and bad input."""
import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_files import tiny_gan
from rlse_fast.checkpoints import save_gan
from rlse_fast.cli import main
from rlse_fast.downsample import bicubic_downsample_ref
from rlse_fast import assets
from rlse_fast.evaluate import stats
from rlse_fast.faces import frames
from rlse_fast.evaluate.runner import COLUMNS, DEFAULT_METHODS
from rlse_fast.imageio import save_image
from rlse_fast.metrics import identity, psnr

REAL_ASSETS = assets.assets_dir()  # the user's cache, read before any test moves RLSE_FAST_HOME
HAS_LPIPS = (REAL_ASSETS / assets.LPIPS_ALEXNET).is_file()
HAS_NIQE = (REAL_ASSETS / assets.NIQE_PARAMS).is_file()
HAS_IDENTITY = identity.installed() and all((REAL_ASSETS / n).is_file() for n in (assets.DLIB_RECOGNITION, assets.DLIB_LANDMARKS5))
FAST = ["--steps", "3", "--gaussian-samples", "2048", "--impl", "ref", "--threads", "1", "--quiet"]


def _home(root: Path) -> dict:
    home = root / "home"
    home.mkdir(exist_ok=True)
    if REAL_ASSETS.is_dir() and not (home / "assets").exists():
        (home / "assets").symlink_to(REAL_ASSETS, target_is_directory=True)
    return {**os.environ, "RLSE_FAST_HOME": str(home)}


def eval_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "rlse_fast", "eval", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    G, D = tiny_gan(seed=4)
    save_gan(root / "tiny.safetensors", G, D)
    with torch.no_grad():
        z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(1))
        hr = (G(z, noise_mode="const").clamp(-1, 1) + 1) / 2
    (root / "hr").mkdir()
    for i in range(3):
        save_image(hr[i], root / "hr" / f"face{i}.png")
    (root / "empty").mkdir()
    return root


@pytest.fixture(scope="module")
def first_run(data):
    env = _home(data)
    out = data / "out"
    res = eval_cli("--hr", data / "hr", "--scale", "4", "8", "--weights", data / "tiny.safetensors", "--n", "2",
                   "--out", out, *FAST, *([] if HAS_LPIPS else ["--no-lpips"]), env=env)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    return out, rows, env


def test_metrics_csv_rows(first_run):
    out, rows, _ = first_run
    assert list(rows[0]) == list(COLUMNS)
    keys = sorted((r["image"], int(r["scale"]), r["method"]) for r in rows)
    assert keys == sorted((f"face{i}.png", s, m) for i in range(2) for s in (4, 8) for m in DEFAULT_METHODS)
    for r in rows:
        assert math.isfinite(float(r["psnr_y"])) and 0 < float(r["ssim_y"]) <= 1
        assert (r["lpips"] != "") == HAS_LPIPS and r["niqe"] == ""
        assert (r["identity"] != "") == HAS_IDENTITY and (not HAS_IDENTITY or float(r["identity"]) >= 0)
        assert (r["best_step"] != "") == (r["method"] not in ("bicubic", "bilinear"))


def test_summary_and_report(first_run):
    out, _, _ = first_run
    md = (out / "summary.md").read_text()
    for s, lr in ((4, 8), (8, 4)):
        assert f"## {s}x ({lr} px -> 32 px)" in md
    assert "| method | PSNR-Y (dB) | SSIM-Y | LPIPS |" in md and "Does L_s help? (rlse − rlse-nosem" in md
    assert "s / face" in md and "frame warp" in md and "Objective at the kept iterate" in md
    # --report-only rebuilds both files from metrics.csv and run.json without running anything.
    (out / "summary.md").unlink()
    (out / "report.html").unlink()
    assert main(["eval", "--out", str(out), "--report-only", "--quiet"]) == 0
    assert (out / "summary.md").read_text() == md
    page = (out / "report.html").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    # per scale: 2 faces x (LR + 5 methods + HR), plus the chart when matplotlib is installed
    assert len([s for s in srcs if s.startswith("images/")]) == 2 * 2 * 7
    for src in srcs:
        assert not src.startswith("/") and (out / src).is_file(), src


def test_bicubic_psnr_matches_direct_computation(data, first_run):
    from PIL import Image

    _, rows, _ = first_run
    hr = np.asarray(Image.open(data / "hr" / "face1.png").convert("RGB"))
    hr01 = torch.from_numpy(hr.copy()).permute(2, 0, 1)[None].double() / 255
    lr = (bicubic_downsample_ref(hr01, 4)[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    up = np.asarray(Image.fromarray(lr).resize((32, 32), Image.BICUBIC))
    row = next(r for r in rows if r["image"] == "face1.png" and r["scale"] == "4" and r["method"] == "bicubic")
    assert float(row["psnr_y"]) == pytest.approx(psnr(up, hr, "y"), rel=1e-5)
    assert float(row["psnr_rgb"]) == pytest.approx(psnr(up, hr, "rgb"), rel=1e-5)


def test_resume_adds_only_new_faces(data, first_run):
    out, rows, env = first_run
    res = eval_cli("--hr", data / "hr", "--scale", "4", "8", "--weights", data / "tiny.safetensors", "--n", "3",
                   "--out", out, "--methods", "bicubic,pulse", *FAST, *([] if HAS_LPIPS else ["--no-lpips"]), env=env)
    assert res.returncode == 0, res.stderr
    again = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(again) == len(rows) + 2 * 2  # face2 x 2 scales x 2 methods
    assert [r for r in again if r["image"] != "face2.png"] == rows  # earlier rows untouched
    # A run with other settings refuses to extend these results.
    res = eval_cli("--hr", data / "hr", "--weights", data / "tiny.safetensors", "--out", out, "--methods", "pulse",
                   "--scale", "4", "--seed", "7", *FAST, env=env)
    assert res.returncode == 2 and "different run" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_batched_fast_engine_gives_the_same_metrics(data, first_run, tmp_path):
    # Both faces in one batch through the fast engine (fp32, the same ops): every metric and loss of
    # every row equals the one-face-at-a-time eager run's, up to the float rounding that the batch
    # size moves (~1e-6 in the image, which can flip a pixel's 8-bit rounding); timings differ.
    _, rows, env = first_run
    out = tmp_path / "fast"
    res = eval_cli("--hr", data / "hr", "--scale", "4", "8", "--weights", data / "tiny.safetensors", "--n", "2",
                   "--out", out, "--batch", "2", "--engine", "fast", "--precision", "fp32", *FAST,
                   *([] if HAS_LPIPS else ["--no-lpips"]), env=env)
    assert res.returncode == 0, res.stderr
    fast = {(r["image"], r["scale"], r["method"]): r for r in csv.DictReader(open(out / "metrics.csv"))}
    assert len(fast) == len(rows)
    for r in rows:
        f = fast[(r["image"], r["scale"], r["method"])]
        for k, v in r.items():
            if k == "seconds":
                continue
            try:
                assert float(f[k]) == pytest.approx(float(v), rel=1e-3, abs=1e-4), (k, r["method"])
            except ValueError:  # text or empty
                assert f[k] == v, k
    info = __import__("json").loads((out / "run.json").read_text())
    assert (info["engine"], info["precision"], info["batch"]) == ("fast", "fp32", 2)
    # The eager run's folder refuses to be extended by the fast engine.
    res = eval_cli("--hr", data / "hr", "--weights", data / "tiny.safetensors", "--out", first_run[0],
                   "--methods", "pulse", "--scale", "4", "--engine", "fast", *FAST, env=env)
    assert res.returncode == 2 and "engine changed" in res.stderr


def test_finetuning_ablation_is_opt_in(data, tmp_path):
    """'rlse-noft' (RLSE without fine-tuning) runs when asked, with L_s and without fine-tuning, and
    the summary reports the paired difference rlse − rlse-noft."""
    env = _home(tmp_path)
    out = tmp_path / "noft"
    res = eval_cli("--hr", data / "hr", "--scale", "4", "--methods", "rlse-noft,rlse", "--weights",
                   data / "tiny.safetensors", "--n", "2", "--out", out, "--no-lpips", *FAST, env=env)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert sorted(r["method"] for r in rows) == ["rlse", "rlse", "rlse-noft", "rlse-noft"]
    configs = json.loads((out / "run.json").read_text())["configs"]
    assert configs["rlse-noft"]["finetune"] is False and configs["rlse"]["finetune"] is True
    assert configs["rlse-noft"]["w_semantic"] == configs["rlse"]["w_semantic"] > 0
    assert all(float(r["loss_semantic"]) > 0 for r in rows)
    noft = {r["image"]: float(r["best_loss"]) for r in rows if r["method"] == "rlse-noft"}
    full = {r["image"]: float(r["best_loss"]) for r in rows if r["method"] == "rlse"}
    assert noft != full  # fine-tuning changed the optimisation
    assert "### Does fine-tuning help? (rlse − rlse-noft, paired, 2 faces)" in (out / "summary.md").read_text()


@pytest.mark.skipif(not HAS_NIQE, reason="NIQE parameters not in the asset cache: run `rlse-fast fetch-assets`")
def test_lr_mode_scores_niqe(data, tmp_path):
    env = _home(tmp_path)
    out = tmp_path / "lr"
    res = eval_cli("--lr", data / "hr", "--scale", "4", "--methods", "bicubic,pulse", "--weights",
                   data / "tiny.safetensors", "--n", "1", "--out", out, *FAST, env=env)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["method"] for r in rows] == ["bicubic", "pulse"]
    assert all(math.isfinite(float(r["niqe"])) and r["psnr_y"] == "" for r in rows)
    assert "| method | NIQE |" in (out / "summary.md").read_text()


# ----------------------------------------------------------------------------- frames


def test_warp_matrix_maps_ffhq_eyes_to_celeba_eyes():
    m = frames.similarity(frames.FFHQ, frames.CELEBA)
    src = frames.FFHQ.eye_points()
    mapped = src @ m[:, :2].T + m[:, 2]
    torch.testing.assert_close(mapped, frames.CELEBA.eye_points())
    assert m[0, 1] == 0 and m[1, 0] == 0 and m[0, 0] == pytest.approx(0.28 / 0.25)
    assert frames.is_identity(frames.similarity(frames.CELEBA, frames.CELEBA))


def test_warp_moves_image_content_to_the_mapped_points():
    size = 128
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    img = torch.zeros(1, 1, size, size, dtype=torch.float64)
    for x, y in frames.FFHQ.eye_points().tolist():
        img[0, 0] += torch.exp(-((xx - x * size) ** 2 + (yy - y * size) ** 2) / (2 * 3.0**2))
    out = frames.warp(img, frames.similarity(frames.FFHQ, frames.CELEBA))[0, 0]
    for x, y in frames.CELEBA.eye_points().tolist():
        r = 12
        cx, cy = int(x * size), int(y * size)
        patch = out[cy - r:cy + r, cx - r:cx + r].clamp(min=0)
        gy, gx = yy[cy - r:cy + r, cx - r:cx + r], xx[cy - r:cy + r, cx - r:cx + r]
        centroid = ((patch * gx).sum() / patch.sum(), (patch * gy).sum() / patch.sum())
        assert centroid[0] == pytest.approx(x * size, abs=0.25) and centroid[1] == pytest.approx(y * size, abs=0.25)


def test_framed_generator_warps_the_synthesis_output():
    G, _ = tiny_gan(seed=5)
    assert frames.framed(G, frames.CELEBA, frames.CELEBA) is G
    assert frames.framed(G, None, frames.CELEBA) is G
    FG = frames.framed(G, frames.FFHQ, frames.CELEBA)
    assert FG.img_resolution == G.img_resolution and FG.num_ws == G.num_ws
    assert [n for n, _ in FG.synthesis.named_parameters()] == [n for n, _ in G.synthesis.named_parameters()]
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0)))
    expected = frames.warp(G.synthesis(ws, noise_mode="const"), frames.similarity(frames.FFHQ, frames.CELEBA))
    torch.testing.assert_close(FG.synthesis(ws, noise_mode="const"), expected)
    # The sampling grid's parameters are made once per device and dtype, then reused (no copy per call).
    theta = FG.synthesis.thetas[(ws.device, torch.float32)]
    FG.synthesis(ws, noise_mode="const")
    assert len(FG.synthesis.thetas) == 1 and next(iter(FG.synthesis.thetas.values())) is theta


def test_weights_frame_from_name_format_and_metadata():
    class W:
        def __init__(self, path, fmt="safetensors", metadata=None):
            self.path, self.source_format, self.metadata = path, fmt, metadata or {}

    assert frames.weights_frame(W("/c/stylegan2-ffhq-1024x1024.pkl", "nvidia-pickle")) is frames.FFHQ
    assert frames.weights_frame(W("/x/550000.pt", "rosinality")) is frames.FFHQ
    assert frames.weights_frame(W("/p/rlse_fast/data/celeba64.safetensors"), "celeba64") is frames.CELEBA
    assert frames.weights_frame(W("/t/tiny.safetensors")) is None
    custom = frames.weights_frame(W("/t/x.safetensors", metadata={"frame": '{"eye_x": 0.5, "eye_y": 0.4, "eye_dist": 0.3}'}))
    assert (custom.eye_y, custom.eye_dist) == (0.4, 0.3)
    # The prior's crop puts CelebA's aligned eyes where celeba128_test has them, within its "about" numbers.
    crop = frames.crop_frame()
    assert abs(crop.eye_y - frames.CELEBA.eye_y) < 0.015 and abs(crop.eye_dist / frames.CELEBA.eye_dist - 1) < 0.05


# ----------------------------------------------------------------------------- intervals


def test_intervals():
    assert stats.t975(1) == 12.706 and stats.t975(30) == 2.042
    assert stats.t975(60) == pytest.approx(2.000, abs=2e-3) and stats.t975(1000) == pytest.approx(1.962, abs=1e-3)
    iv = stats.mean_ci([1.0, 2.0, 3.0, float("inf")])
    assert iv.n == 3 and iv.mean == 2.0 and iv.half == pytest.approx(4.303 * 1 / math.sqrt(3))
    d = stats.paired_ci({"a": 2.0, "b": 3.0, "c": 5.0}, {"a": 1.0, "b": 2.0, "c": 4.1})
    assert d.n == 3 and d.excludes_zero() and d.mean == pytest.approx(0.9667, abs=1e-4)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("extra, message", [
    (["--hr", "{empty}"], "holds no"),
    (["--hr", "{hr}", "--methods", "bicubic,sharpen"], "unknown method sharpen"),
    (["--hr", "{hr}", "--scale", "3"], "powers of two"),
    (["--hr", "{hr}", "--hr-size", "48"], "--hr-size 48 differs"),
    (["--hr", "{root}/missing"], "is not a folder"),
    (["--hr", "{hr}", "--methods", "bicubic", "--hr-size", "8", "--scale", "8"], "too large for 8px faces"),
])
def test_bad_input_is_one_line_exit_2(data, tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.setenv("RLSE_FAST_HOME", str(tmp_path / "home"))
    extra = [a.format(empty=data / "empty", hr=data / "hr", root=data) for a in extra]
    code = main(["eval", *extra, "--weights", str(data / "tiny.safetensors"), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
