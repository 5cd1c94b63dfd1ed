"""The folder-job rules `sr` and `photo` share: IN/OUT paths as a user expects them (a folder IN never
makes an image-named folder; skipped subfolders are said; a file IN into an existing folder OUT writes
into it, as cp would), `photo` reruns compare the settings that decide a result (as `sr` does) with
--overwrite to redo them, a command's unknown flag shows that command's usage, and --debug keeps the
exit code."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import FAST, cli, face_folder, home, make_faces, one_line_error, tree, weights  # noqa: F401
from rlse_fast import assets
from rlse_fast.imageio import save_image

PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos" / "tiny_3faces_128.png"
needs_photo = [
    pytest.mark.skipif(not PHOTO.is_file(), reason=f"{PHOTO} is absent (../shared/data/photos provides it)"),
    pytest.mark.skipif(not assets.available("mtcnn/onet.pt"), reason="MTCNN weights absent: run `rlse-fast fetch-assets`"),
]


REAL_ASSETS = assets.assets_dir()


@pytest.fixture(autouse=True)
def _home(home):
    """A private cache folder per test that still sees the real assets (the MTCNN weights)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "assets").symlink_to(REAL_ASSETS, target_is_directory=True)
    return home


@pytest.mark.parametrize("command", ["sr", "photo"])
def test_folder_in_with_an_image_named_out_is_refused(tmp_path, weights, capsys, command):
    src = face_folder(tmp_path / "in", ["a.png"])
    code, _, err = cli(capsys, command, src, tmp_path / "foo.png", "--weights", weights, *FAST)
    assert "foo.png" in one_line_error(code, err)
    assert not (tmp_path / "foo.png").exists()


def test_skipped_subfolders_are_said_in_one_line(tmp_path, weights, capsys):
    src = face_folder(tmp_path / "in", ["a.png"])
    (src / "more").mkdir()
    (src / "older").mkdir()
    save_image(make_faces(1)[0], src / "more" / "b.png")
    code, _, err = cli(capsys, "sr", src, tmp_path / "out", "--weights", weights, *FAST[:-1])
    lines = [ln for ln in err.splitlines() if "subfolder" in ln]
    assert code == 0 and len(lines) == 1 and "2 subfolders" in lines[0], err
    assert tree(tmp_path / "out") == ["a.json", "a.png"]


def test_file_into_an_existing_folder_writes_into_it(tmp_path, weights, capsys):
    src = face_folder(tmp_path / "in", ["face.png"]) / "face.png"
    out = tmp_path / "existing"
    out.mkdir()
    code, _, err = cli(capsys, "sr", src, out, "--weights", weights, *FAST)
    assert code == 0, err
    assert tree(out) == ["face.json", "face.png"]
    assert json.loads((out / "face.json").read_text())["output"] == str(out / "face.png")


def test_unknown_flag_shows_the_commands_usage(tmp_path):
    for command in ("photo", "sr"):
        res = subprocess.run([sys.executable, "-m", "rlse_fast", command, "a.png", "b.png", "--no-such-flag"],
                             capture_output=True, text=True)
        assert res.returncode == 2 and res.stderr.startswith(f"usage: rlse-fast {command} "), res.stderr
        assert "unrecognized arguments: --no-such-flag" in res.stderr.splitlines()[-1]


def test_debug_keeps_the_exit_code(tmp_path):
    res = subprocess.run([sys.executable, "-m", "rlse_fast", "--debug", "sr", str(tmp_path / "missing.png"),
                          str(tmp_path / "out.png")], capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" in res.stderr
    assert res.stderr.strip().splitlines()[-1] == f"rlse-fast sr: error: input not found: {tmp_path / 'missing.png'}"


def _photo_args(weights):
    return ["--weights", str(weights), "--steps", "2", "--gaussian-samples", "2048", "--quiet"]


def _photo_folder_done(tmp_path, weights, capsys):
    """(IN, OUT): a folder of one photo, done once with `_photo_args`."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(PHOTO, src / "a.png")
    dst = tmp_path / "out"
    code, _, err = cli(capsys, "photo", src, dst, *_photo_args(weights))
    assert code == 0, err
    return src, dst


@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_photo)])
def test_photo_rerun_compares_settings_and_overwrite_redoes(tmp_path, weights, capsys, _):
    src, dst = _photo_folder_done(tmp_path, weights, capsys)
    stamp = (dst / "a.png").stat().st_mtime_ns
    assert "settings" in json.loads((dst / "a.json").read_text())

    code, out, err = cli(capsys, "photo", src, dst, *_photo_args(weights)[:-1])  # the same settings: kept
    assert code == 0 and "already done" in out and (dst / "a.png").stat().st_mtime_ns == stamp, err

    code, _, err = cli(capsys, "photo", src, dst, *_photo_args(weights), "--mode", "pulse", "--min-score", "0.9")
    line = one_line_error(code, err)
    assert "a.png" in line and "config.mode" in line and "min_score" in line and "--overwrite" in line
    assert (dst / "a.png").stat().st_mtime_ns == stamp

    code, _, err = cli(capsys, "photo", src, dst, *_photo_args(weights), "--mode", "pulse", "--overwrite")
    assert code == 0, err
    assert json.loads((dst / "a.json").read_text())["config"]["mode"] == "pulse"
    assert (dst / "a.png").stat().st_mtime_ns != stamp


@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_photo)])
def test_photo_rerun_over_a_sidecar_without_settings(tmp_path, weights, capsys, _):
    """Outputs of a version whose sidecars recorded no 'settings': compared on what they record."""
    src, dst = _photo_folder_done(tmp_path, weights, capsys)
    side = json.loads((dst / "a.json").read_text())
    del side["settings"]
    (dst / "a.json").write_text(json.dumps(side))
    code, out, err = cli(capsys, "photo", src, dst, *_photo_args(weights)[:-1])
    assert code == 0 and "already done" in out, err
    code, _, err = cli(capsys, "photo", src, dst, *_photo_args(weights), "--seed", "3")
    assert "different seed" in one_line_error(code, err)
