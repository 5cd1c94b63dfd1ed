"""`rlse-fast sr` on folders: output names never collide, reruns keep only what the same settings
made (and say so), other settings stop the run unless --overwrite, and --batch changes results by
float rounding only."""
import json

import numpy as np
import pytest

from cli_helpers import FAST, cli, face_folder, home, make_faces, one_line_error, tree, weights  # noqa: F401
from rlse_fast.imageio import load_image, save_image


@pytest.fixture(autouse=True)
def _home(home):
    return home


def test_name_clash_refused_up_front(tmp_path, weights, capsys):
    src = face_folder(tmp_path / "in", ["face.png", "face.jpg", "other.png"])
    code, _, err = cli(capsys, "sr", src, tmp_path / "out", "--weights", weights, *FAST)
    line = one_line_error(code, err)
    assert "face.jpg and face.png" in line and "other" not in line
    assert not (tmp_path / "out").exists()


def test_output_folder_is_not_the_input_folder(tmp_path, weights, capsys):
    src = face_folder(tmp_path / "in", ["a.jpg"])
    code, _, err = cli(capsys, "sr", src, src, "--weights", weights, *FAST)
    assert "OUT is IN" in one_line_error(code, err)
    assert tree(src) == ["a.jpg"]


def test_rerun_keeps_same_settings_and_stops_on_others(tmp_path, weights, capsys):
    src, out = face_folder(tmp_path / "in", ["a.png", "b.png"]), tmp_path / "out"
    args = ["sr", src, out, "--weights", weights, "--steps", "2", "--gaussian-samples", "4096"]
    code, stdout, err = cli(capsys, *args)
    assert code == 0, err
    assert "2 faces written" in stdout and "0 kept" in stdout
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    (out / "b.png").unlink()  # an interrupted run: b is redone, a kept
    code, stdout, err = cli(capsys, *args)
    assert code == 0 and "1 faces written" in stdout and "1 kept from an earlier run with the same settings" in stdout
    assert (out / "a.png").stat().st_mtime_ns == stamps["a.png"] and (out / "b.png").is_file()

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for changed in (["--seed", "1"], ["--mode", "pulse"], ["--steps", "3"], ["--size", "16"]):
        code, _, err = cli(capsys, *args, *changed)
        line = one_line_error(code, err)
        assert "a.png, b.png" in line and "other settings" in line and "--overwrite" in line, line
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    save_image(make_faces(3)[2], src / "a.png")  # a changed input is another setting too
    code, _, err = cli(capsys, *args)
    assert "a.png in" in one_line_error(code, err) and "input" in err

    code, stdout, err = cli(capsys, *args, "--seed", "1", "--overwrite")
    assert code == 0 and "2 faces written" in stdout and "0 kept" in stdout
    assert json.loads((out / "a.json").read_text())["seed"] == 1


def test_sidecars_from_before_new_config_fields_are_kept(tmp_path, weights, capsys):
    """Sidecars written before pixel_floor and keep existed hold no such keys: those runs had the
    defaults, so a rerun keeps them; a rerun with a floor redoes nothing silently either."""
    src, out = face_folder(tmp_path / "in", ["a.png"]), tmp_path / "out"
    args = ["sr", src, out, "--weights", weights, "--steps", "2", "--gaussian-samples", "4096"]
    assert cli(capsys, *args)[0] == 0
    side = out / "a.json"
    meta = json.loads(side.read_text())
    for key in ("pixel_floor", "keep"):
        del meta["settings"]["config"][key]
    side.write_text(json.dumps(meta))
    code, stdout, err = cli(capsys, *args)
    assert code == 0 and "1 kept from an earlier run with the same settings" in stdout, err
    code, _, err = cli(capsys, *args, "--pixel-floor", "auto")
    assert "config.pixel_floor" in one_line_error(code, err)


def test_batch_changes_results_by_rounding_only(tmp_path, weights, capsys):
    # The claim in `sr --help` and docs/usage.md: a face in a batch gives its result alone up to float
    # rounding. One step (the first iterate, before the optimiser can amplify anything) agrees to 8 bits.
    src = face_folder(tmp_path / "in", ["a.png", "b.png", "c.png"])
    outs = {}
    for batch in (1, 3):
        out = tmp_path / f"b{batch}"
        code, _, err = cli(capsys, "sr", src, out, "--weights", weights, "--steps", "1", "--gaussian-samples",
                           "4096", "--batch", str(batch), "--quiet")
        assert code == 0, err
        outs[batch] = out
    for name in ("a", "b", "c"):
        one, three = (load_image(outs[b] / f"{name}.png").numpy() for b in (1, 3))
        assert np.abs(one - three).max() <= 1 / 255 + 1e-6
        l1, l3 = (json.loads((outs[b] / f"{name}.json").read_text())["losses"][0]["total"] for b in (1, 3))
        assert l1 == pytest.approx(l3, rel=1e-5)
    assert tree(outs[1]) == tree(outs[3])
