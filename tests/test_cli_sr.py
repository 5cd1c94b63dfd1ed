"""End to end: `rlse-fast sr` on a small safetensors GAN made here, one image and a folder."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_files import tiny_gan
from rlse_fast.checkpoints import save_gan
from rlse_fast.downsample import bicubic_downsample_ref
from rlse_fast.imageio import load_image, save_image

FAST = ["--steps", "6", "--gaussian-samples", "4096", "--quiet"]


def sr(*args, env=None):
    return subprocess.run([sys.executable, "-m", "rlse_fast", "sr", *map(str, args)], capture_output=True,
                          text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sr")
    G, D = tiny_gan(seed=2)
    save_gan(root / "tiny.safetensors", G, D)
    with torch.no_grad():
        hr = (G(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0)), noise_mode="const").clamp(-1, 1) + 1) / 2
    lr = bicubic_downsample_ref(hr, 4)
    (root / "in").mkdir()
    save_image(lr[0], root / "in" / "a.png")
    save_image(lr[1], root / "in" / "b.jpg")
    save_image(lr[2], root / "in" / "c.webp")
    return root


@pytest.fixture
def env(tmp_path):
    import os

    return {**os.environ, "RLSE_FAST_HOME": str(tmp_path / "home")}


def test_single_image(files, tmp_path, env):
    out = tmp_path / "out.png"
    res = sr(files / "in" / "a.png", out, "--weights", files / "tiny.safetensors", *FAST, env=env)
    assert res.returncode == 0, res.stderr
    img = load_image(out)
    assert img.shape == (3, 32, 32)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["scale"] == 4 and meta["config"]["mode"] == "rlse" and len(meta["losses"]) == 6
    import hashlib
    assert meta["weights"]["sha256"] == hashlib.sha256((files / "tiny.safetensors").read_bytes()).hexdigest()
    # The result explains the input better than the first iterate did.
    lr = load_image(files / "in" / "a.png")[None]
    assert meta["losses"][meta["best_step"]]["pixel"] <= meta["losses"][0]["pixel"]
    assert (bicubic_downsample_ref(img[None], 4) - lr).abs().mean() < 0.25
    # Same seed, same output.
    out2 = tmp_path / "again.png"
    assert sr(files / "in" / "a.png", out2, "--weights", files / "tiny.safetensors", *FAST, env=env).returncode == 0
    assert out.read_bytes() == out2.read_bytes()


def test_folder_pulse_resize_and_rerun(files, tmp_path, env):
    out = tmp_path / "outdir"
    args = ["--weights", files / "tiny.safetensors", "--mode", "pulse", "--size", "48", "--batch", "2", *FAST]
    res = sr(files / "in", out, *args, env=env)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.png", "b.json", "b.png", "c.json", "c.png"]
    assert load_image(out / "b.png").shape == (3, 48, 48)
    assert json.loads((out / "c.json").read_text())["config"]["w_semantic"] == 0
    stamp = (out / "a.png").stat().st_mtime_ns
    (out / "c.png").unlink()
    res = sr(files / "in", out, *args, env=env)
    assert res.returncode == 0
    assert (out / "a.png").stat().st_mtime_ns == stamp and (out / "c.png").exists()


def test_folder_of_mixed_sizes_batches_each_size(files, tmp_path, env):
    # 8 px faces (4x) and a 4 px one (8x) with --batch 3: each size goes in its own batch.
    src = tmp_path / "mixed"
    src.mkdir()
    for name in ("a.png", "b.jpg"):
        (src / name).write_bytes((files / "in" / name).read_bytes())
    save_image(bicubic_downsample_ref(load_image(files / "in" / "c.webp")[None], 2)[0], src / "d.png")
    out = tmp_path / "out"
    res = sr(src, out, "--weights", files / "tiny.safetensors", "--batch", "3", *FAST, env=env)
    assert res.returncode == 0, res.stderr
    meta = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert {k: (m["scale"], m["batch"]) for k, m in meta.items()} == {"a": (4, 2), "b": (4, 2), "d": (8, 1)}
    assert all(load_image(out / f"{k}.png").shape == (3, 32, 32) for k in meta)


def test_save_steps(files, tmp_path, env):
    steps = tmp_path / "steps"
    res = sr(files / "in" / "a.png", tmp_path / "o.png", "--weights", files / "tiny.safetensors",
             "--save-steps", steps, *FAST, env=env)
    assert res.returncode == 0, res.stderr
    assert len(list((steps / "a").glob("*_hr.png"))) == 6
    assert load_image(steps / "a" / "0000_lr.png").shape == (3, 8, 8)


@pytest.mark.parametrize("case", ["non-square", "bad-scale", "not-image", "missing", "bad-weights", "bad-suffix",
                                  "scale-beyond-downscaler"])
def test_bad_input_one_line_exit_2(files, tmp_path, env, case):
    from PIL import Image

    weights = files / "tiny.safetensors"
    src, out, extra = files / "in" / "a.png", tmp_path / "o.png", []
    if case == "non-square":
        src = tmp_path / "wide.png"
        Image.new("RGB", (16, 8)).save(src)
    elif case == "bad-scale":
        extra = ["--scale", "3"]
    elif case == "not-image":
        src = tmp_path / "x.png"
        src.write_text("no image here")
    elif case == "missing":
        src = tmp_path / "none.png"
    elif case == "bad-weights":
        weights = tmp_path / "w.safetensors"
        weights.write_bytes(b"\x00" * 64)
    elif case == "scale-beyond-downscaler":  # 1 px -> 32 px: x32 needs faces larger than 48 px
        src = tmp_path / "one.png"
        Image.new("RGB", (1, 1)).save(src)
    else:
        out = tmp_path / "o.txt"
    res = sr(src, out, "--weights", weights, *extra, *FAST, env=env)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert len(res.stderr.strip().splitlines()) == 1 and "error:" in res.stderr
    assert not out.exists() and not list(tmp_path.glob("*.part"))
    if case == "scale-beyond-downscaler":
        assert "x16 at most" in res.stderr


def test_folder_reports_bad_face_and_goes_on(files, tmp_path, env):
    src = tmp_path / "mixed"
    src.mkdir()
    (src / "a.png").write_bytes((files / "in" / "a.png").read_bytes())
    (src / "broken.png").write_text("corrupt")
    res = sr(src, tmp_path / "o", "--weights", files / "tiny.safetensors", *FAST, env=env)
    assert res.returncode == 1
    assert "broken.png" in res.stderr
    assert (tmp_path / "o" / "a.png").exists()


def test_no_weights_uses_bundled_prior(tmp_path, env):
    from rlse_fast.weights import bundled_path

    example = Path(__file__).resolve().parents[1] / "rlse_fast" / "data" / "example_lr.png"
    if not bundled_path("celeba64").is_file():
        pytest.skip("the bundled prior is absent from this checkout")
    out = tmp_path / "face.png"
    res = sr(example, out, "--steps", "3", "--gaussian-samples", "4096", env=env)
    assert res.returncode == 0, res.stderr
    assert "bundled celeba64" in res.stderr and "--weights ffhq" in res.stderr
    assert load_image(out).shape == (3, 64, 64)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["scale"] == 8 and meta["weights"]["path"].endswith("celeba64.safetensors")


def test_readme_run_command_works(tmp_path, env):
    # The second command of README's "Install and run", as written, from the repository's root
    # (fewer steps, and the output in a temporary folder).
    import re
    import shlex

    from rlse_fast.weights import bundled_path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    block = re.search(r"## Install and run.*?```bash\n(.*?)```", readme, re.S).group(1)
    cmd = shlex.split(block.strip().splitlines()[1])
    assert cmd[:2] == ["rlse-fast", "sr"] and len(cmd) == 4, cmd
    if not bundled_path("celeba64").is_file():
        pytest.skip("the bundled prior is absent from this checkout")
    out = tmp_path / cmd[3]
    res = subprocess.run([sys.executable, "-m", "rlse_fast", "sr", cmd[2], str(out), "--steps", "2",
                          "--gaussian-samples", "4096", "--quiet"], cwd=root, capture_output=True, text=True,
                         timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert load_image(out).shape == (3, 64, 64) and out.with_suffix(".json").is_file()
