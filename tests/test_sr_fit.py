"""`sr --fit`: crops of any size or aspect made into valid inputs."""
import json
import subprocess
import sys

import torch

from rlse_fast.faces.fit import fit_crop, nearest_size, valid_sizes
from rlse_fast.imageio import save_image



def test_valid_and_nearest_sizes():
    assert valid_sizes(64) == [32, 16, 8, 4, 2]
    assert nearest_size(20, 64) == 16 and nearest_size(37, 64) == 32 and nearest_size(12, 64) == 16
    assert nearest_size(11, 64) == 8 and nearest_size(200, 1024) == 256
    assert nearest_size(22, 64) == 16 and nearest_size(23, 64) == 32  # 16 * sqrt(2) = 22.6 splits them


def test_fit_pads_non_square_with_edge_pixels_and_resizes():
    img = torch.zeros(3, 16, 20)
    img[0] = 1.0  # red everywhere: replicated padding keeps it red (no black band)
    out, note = fit_crop(img, 64)
    assert out.shape == (3, 16, 16)
    assert out[0].min() > 0.99 and out[1:].max() < 0.01
    assert "20x16" in note and "padded to 20x20" in note and "16x16" in note and "x4" in note
    same, none = fit_crop(torch.rand(3, 16, 16), 64)
    assert none is None and same.shape == (3, 16, 16)
    forced, note = fit_crop(torch.rand(3, 37, 37), 64, scale=8)
    assert forced.shape == (3, 8, 8) and "x8" in note


def _sr(*args, env):
    return subprocess.run([sys.executable, "-m", "rlse_fast", "sr", *map(str, args)], capture_output=True,
                          text=True, timeout=600, env=env)


def test_cli_fit_takes_an_odd_crop(tmp_path):
    import os

    from gan_files import tiny_gan
    from rlse_fast.checkpoints import save_gan

    G, D = tiny_gan(seed=3)
    save_gan(tmp_path / "tiny.safetensors", G, D)
    crop = tmp_path / "crop_15x12.png"  # the 32 px weights take up to 16 px: padded to 15x15, resized to 16
    save_image(torch.rand(3, 12, 15), crop)
    env = {**os.environ, "RLSE_FAST_HOME": str(tmp_path / "home")}
    common = ["--weights", tmp_path / "tiny.safetensors", "--steps", "2", "--gaussian-samples", "2048"]
    refused = _sr(crop, tmp_path / "no.png", *common, env=env)
    assert refused.returncode == 2 and not (tmp_path / "no.png").exists()
    res = _sr(crop, tmp_path / "yes.png", "--fit", *common, env=env)
    assert res.returncode == 0, res.stderr
    note = [ln for ln in res.stderr.splitlines() if crop.name in ln]
    assert len(note) == 1 and "resized to" in note[0]
    meta = json.loads((tmp_path / "yes.json").read_text())
    assert meta["scale"] >= 2
