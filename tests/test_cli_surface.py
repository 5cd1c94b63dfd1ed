"""What a user meets around the work: --version, --threads and the OpenMP wait policy, the default
weights' notice, `sr --fit` with too large a crop, the inputs a folder takes, and help texts that say
what the program does."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import FAST, cli, home, make_faces, one_line_error, tree, weights  # noqa: F401 (fixtures)
from rlse_fast.imageio import save_image

try:
    from rlse_fast import assets
except ImportError:  # the layout before rlse_fast/assets.py
    from rlse_fast.metrics import assets


@pytest.fixture
def threads_back():
    """--threads sets PyTorch's thread count for the process: put it back for the other tests."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def told_again(monkeypatch):
    """The default weights' notice is printed once per process: let this test see it again."""
    from rlse_fast import weights as weights_mod

    monkeypatch.setattr(weights_mod, "_told", False, raising=False)


def _help(command: str, flag: str) -> str:
    from rlse_fast.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return " ".join(next(a for a in sub._actions if flag in a.option_strings).help.split())


def test_version_prints_the_version_and_exits_0(capsys):
    import rlse_fast
    from rlse_fast.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"rlse-fast {rlse_fast.__version__}\n"


def test_cli_makes_openmp_threads_sleep_when_idle_unless_the_user_chose():
    """libgomp spins idle threads unless OMP_WAIT_POLICY says otherwise, read when torch loads:
    the command sets PASSIVE before torch is imported, and leaves a user's own choice alone."""
    code = ("import os, sys, rlse_fast.cli; rlse_fast.cli.build_parser(); "
            "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["PASSIVE", "True"]  # set, and torch was loaded after it (by the parser)
    mine = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                          capture_output=True, text=True, check=True).stdout
    assert mine.split()[0] == "ACTIVE"


def test_threads_flag_sets_pytorchs_threads(tmp_path, capsys, weights, home, threads_back):  # noqa: F811
    save_image(make_faces(1, 4)[0], tmp_path / "face.png")
    torch.set_num_threads(2)
    code, _, err = cli(capsys, "sr", tmp_path / "face.png", tmp_path / "out.png", "--weights", weights, "--threads", "1",
                       *FAST)
    assert code == 0, err
    assert json.loads((tmp_path / "out.json").read_text())["threads"] == 1 and torch.get_num_threads() == 1
    for command in ("sr", "photo"):
        code, _, err = cli(capsys, command, tmp_path / "face.png", tmp_path / "bad.png", "--threads", "0")
        assert "--threads must be >= 1" in one_line_error(code, err)
    assert "PASSIVE" in _help("sr", "--threads") and _help("sr", "--threads") == _help("eval", "--threads")


def test_default_weights_notice_comes_after_the_input_checks(tmp_path, capsys, home, told_again):  # noqa: F811
    Image.new("RGB", (10, 10)).save(tmp_path / "odd.png")  # 10 px: no power of two reaches 64 px
    code, _, err = cli(capsys, "sr", tmp_path / "odd.png", tmp_path / "out.png")
    assert "10 px input cannot be upscaled" in one_line_error(code, err)  # and no notice before it


def test_default_weights_notice_once_and_names_the_way_to_silence_it(tmp_path, capsys, home, told_again):  # noqa: F811
    folder = tmp_path / "faces"
    for i, face in enumerate(torch.nn.functional.interpolate(make_faces(2, 4), size=16)):
        save_image(face, folder / f"f{i}.png")
    code, _, err = cli(capsys, "sr", folder, tmp_path / "out", "--steps", "2", "--gaussian-samples", "4096", "--batch", "1")
    assert code == 0, err
    notes = [ln for ln in err.splitlines() if "note:" in ln]
    assert len(notes) == 1 and "celeba64" in notes[0] and "--weights celeba64 silences this note" in notes[0]
    assert "face" in err  # the progress bar is still there
    code, _, err = cli(capsys, "sr", folder, tmp_path / "out2", "--weights", "celeba64", "--steps", "2",
                       "--gaussian-samples", "4096")
    assert code == 0 and "note:" not in err


@pytest.mark.parametrize("rank, shown", [("0", True), ("1", False)])
def test_default_weights_notice_only_on_rank_0(monkeypatch, capsys, home, told_again, rank, shown):  # noqa: F811
    from rlse_fast import weights as weights_mod

    for name, value in (("RANK", rank), ("LOCAL_RANK", rank), ("WORLD_SIZE", "2"), ("LOCAL_WORLD_SIZE", "2")):
        monkeypatch.setenv(name, value)
    weights_mod.tell_default(None)
    weights_mod.tell_default(None)  # a second call in the same run says nothing
    assert capsys.readouterr().err.count("note: using the bundled celeba64") == (1 if shown else 0)


def test_fit_refuses_a_crop_larger_than_the_weights_take(tmp_path, capsys, weights, home):  # noqa: F811
    """A 26x33 crop for 32 px weights: --fit shrank it to 16 px and called the 32 px result x2."""
    save_image(torch.rand(3, 33, 26), tmp_path / "crop.png")
    code, _, err = cli(capsys, "sr", tmp_path / "crop.png", tmp_path / "out" / "x.png", "--fit", "--weights", weights,
                       *FAST)
    line = one_line_error(code, err)
    assert "26x33" in line and "16 px" in line and "rlse-fast photo" in line
    assert tree(tmp_path / "out") == []
    save_image(torch.rand(3, 12, 15), tmp_path / "small.png")  # within 16 px: padded, resized, x2
    code, _, err = cli(capsys, "sr", tmp_path / "small.png", tmp_path / "ok.png", "--fit", "--weights", weights, *FAST)
    assert code == 0, err
    assert json.loads((tmp_path / "ok.json").read_text())["scale"] == 2


def test_a_folder_takes_the_formats_a_single_input_takes(tmp_path, capsys, weights, home):  # noqa: F811
    folder = tmp_path / "gifs"
    folder.mkdir()
    faces = make_faces(2, 4)
    for i, face in enumerate(faces):
        Image.fromarray((face.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / f"f{i}.gif")
    code, _, err = cli(capsys, "sr", folder / "f0.gif", tmp_path / "one.png", "--weights", weights, *FAST)
    assert code == 0, err
    code, _, err = cli(capsys, "sr", folder, tmp_path / "out", "--weights", weights, *FAST)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["f0.png", "f1.png"]


def test_an_animated_image_is_refused_in_one_line(tmp_path, capsys, weights, home):  # noqa: F811
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    code, _, err = cli(capsys, "sr", tmp_path / "anim.gif", tmp_path / "out.png", "--weights", weights, *FAST)
    assert "animated image (2 frames)" in one_line_error(code, err)


def test_unknown_weights_format_lists_every_format_that_loads(tmp_path, capsys):
    (tmp_path / "junk.bin").write_bytes(b"\x01" * 64)
    code, _, err = cli(capsys, "info", tmp_path / "junk.bin")
    line = one_line_error(code, err)
    for fmt in ("StyleGAN2-ADA", "rosinality .pt", ".safetensors", "TF .pkl", "PULSE's synthesis.pt"):
        assert fmt in line, fmt


def test_help_says_what_batch_and_html_do():
    assert "float rounding" in _help("eval", "--batch") and "do not depend" not in _help("eval", "--batch")
    assert "_files/" in _help("photo", "--html")


def test_no_face_message_advises_a_lower_min_face_only_above_its_minimum(tmp_path, capsys, weights, monkeypatch):  # noqa: F811

    if not assets.available("mtcnn/onet.pt"):
        pytest.skip("MTCNN weights absent: run `rlse-fast fetch-assets`")
    home = tmp_path / "home"
    home.mkdir()
    (home / "assets").symlink_to(assets.assets_dir(), target_is_directory=True)
    monkeypatch.setenv("RLSE_FAST_HOME", str(home))
    Image.new("RGB", (64, 48), (128, 128, 128)).save(tmp_path / "wall.png")
    code, _, err = cli(capsys, "photo", tmp_path / "wall.png", tmp_path / "out.png", "--weights", weights, *FAST)
    line = one_line_error(code, err, exit_code=1)
    assert "no face of 12 px" in line and "--min-face" not in line and "larger or sharper scan" in line
    code, _, err = cli(capsys, "photo", tmp_path / "wall.png", tmp_path / "out.png", "--weights", weights,
                       "--min-face", "20", *FAST)
    assert "Try a lower --min-face (12 at least)" in one_line_error(code, err, exit_code=1)


@pytest.mark.skipif(not torch.distributed.is_available() or not sys.platform.startswith("linux"),
                    reason="needs torch.distributed (gloo) on Linux")
def test_default_weights_notice_once_under_torchrun(tmp_path):
    from pathlib import Path

    folder = tmp_path / "faces"
    for i, face in enumerate(torch.nn.functional.interpolate(make_faces(2, 4), size=16)):
        save_image(face, folder / f"f{i}.png")
    env = {**os.environ, "RLSE_FAST_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "rlse_fast", "sr", str(folder), str(tmp_path / "out"), "--steps", "1",
                          "--gaussian-samples", "4096"], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("note: using the bundled celeba64") == 1, res.stderr
