"""`rlse-fast photo` end to end with a tiny GAN made here: outputs, sidecar, faces folder, resume,
no-face and bad-input exits."""
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from rlse_fast.cli import main
from rlse_fast import assets

PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos" / "tiny_3faces_128.png"
pytestmark = [
    pytest.mark.skipif(not PHOTO.is_file(), reason=f"{PHOTO} is absent (../shared/data/photos provides it)"),
    pytest.mark.skipif(not assets.available("mtcnn/onet.pt"), reason="MTCNN weights absent: run `rlse-fast fetch-assets`"),
]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from gan_files import tiny_gan
    from rlse_fast.checkpoints import save_gan

    root = tmp_path_factory.mktemp("photo")
    G, D = tiny_gan(seed=4)
    save_gan(root / "tiny.safetensors", G, D)
    return root / "tiny.safetensors"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private RLSE_FAST_HOME that still sees the real asset cache (the MTCNN weights)."""
    real = assets.assets_dir()
    h = tmp_path / "home"
    h.mkdir()
    (h / "assets").symlink_to(real, target_is_directory=True)
    monkeypatch.setenv("RLSE_FAST_HOME", str(h))
    return h


def fast(weights):
    return ["--weights", str(weights), "--steps", "2", "--gaussian-samples", "2048", "--quiet"]


def test_photo_writes_image_sidecar_and_faces(tmp_path, weights, home):
    out = tmp_path / "out" / "group.png"
    # --restore all: at x3 these 15-17 px faces are larger than the tiny GAN's 32 px, which 'auto' keeps
    assert main(["photo", str(PHOTO), str(out), "--save-faces", "--html", "--upscale", "3", "--restore", "all",
                 *fast(weights)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert Image.open(out).size == (384, 384) and meta["upscale"] == 3 and meta["output_size"] == [384, 384]
    assert len(meta["faces"]) == 3 and set(meta["stages"]) >= {"detect", "align", "super_resolve", "paste"}
    for f in meta["faces"]:
        assert len(f["box"]) == 4 and len(f["landmarks"]) == 5 and f["score"] > 0.9
        assert f["input_size"] * f["scale"] == 32 and f["loss"] is not None and f["seconds"] > 0
        assert f["restored"] and f["reason"] == "restored: --restore all" and f["consistency_db"] > 0
    assert meta["summary"] == "3 faces restored" and meta["restore"] == "all" and meta["strength"] == 1.0
    from rlse_fast.faces.project import STEPS
    assert meta["back_project"] == meta["settings"]["back_project"] == STEPS  # the flag's default is the module's
    assert sorted(f["seed"] for f in meta["faces"]) == [0, 1, 2]
    faces = sorted(p.name for p in (tmp_path / "out" / "group_faces").iterdir())
    assert len(faces) == 6 and sum(n.endswith("_output.png") for n in faces) == 3
    assert not list((tmp_path / "out").glob("*.part"))
    import re
    page = (tmp_path / "out" / "group.html").read_text()
    links = re.findall(r"src=['\"]([^'\"]+)['\"]", page)
    assert len(links) == 3 + 2 * 3 and all((tmp_path / "out" / link).is_file() for link in links)


def test_folder_resumes_and_reports_photo_without_faces(tmp_path, weights, home, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(PHOTO, src / "a.png")
    Image.new("RGB", (64, 48), (90, 120, 150)).save(src / "blank.png")
    dst = tmp_path / "out"
    assert main(["photo", str(src), str(dst), *fast(weights)]) == 1  # blank.png has no face
    assert sorted(p.name for p in dst.iterdir()) == ["a.json", "a.png"]
    stamp = (dst / "a.png").stat().st_mtime_ns
    assert main(["photo", str(src), str(dst), *fast(weights)[:-1]]) == 1
    assert (dst / "a.png").stat().st_mtime_ns == stamp  # done photos are not redone
    assert "1 already done" in capsys.readouterr().out


def test_no_face_writes_nothing_and_says_what_to_try(tmp_path, weights, home, capsys):
    Image.new("RGB", (80, 60), (200, 180, 160)).save(tmp_path / "blank.jpg")
    code = main(["photo", str(tmp_path / "blank.jpg"), str(tmp_path / "o.png"), *fast(weights)])
    err = capsys.readouterr().err
    assert code == 1 and "no face" in err and len(err.strip().splitlines()) == 1
    assert "--min-face" not in err and "larger or sharper scan" in err  # --min-face is at its minimum already
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("case", ["corrupt", "bomb", "suffix", "min_face"])
def test_bad_input_exit_2_nothing_written(tmp_path, weights, home, capsys, case):
    src, out, extra = tmp_path / "x.png", tmp_path / "o.png", []
    if case == "corrupt":
        src.write_bytes(PHOTO.read_bytes()[:300])
    elif case == "bomb":
        Image.new("L", (8000, 7000), 0).save(src)
    else:
        shutil.copy(PHOTO, src)
        if case == "suffix":
            out = tmp_path / "o.tiff"
        else:
            extra = ["--min-face", "5"]
    code = main(["photo", str(src), str(out), *fast(weights), *extra])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("x.png", "home")] == []


def test_auto_keeps_faces_larger_than_the_generator_and_says_so(tmp_path, weights, home, capsys):
    import numpy as np

    from rlse_fast.faces.paste import upscale_photo
    from rlse_fast.faces.photo_io import read_photo

    out = tmp_path / "o.png"
    args = [a for a in fast(weights) if a != "--quiet"]
    assert main(["photo", str(PHOTO), str(out), "--upscale", "3", "--html", *args]) == 0
    line = capsys.readouterr().out
    meta = json.loads(out.with_suffix(".json").read_text())
    # 15-17 px faces at x3 span ~50 px squares, more than this tiny GAN's 32 px output
    assert meta["summary"] == "0 faces restored, 3 kept: larger than the generator's 32 px" and meta["summary"] in line
    assert all(not f["restored"] and f["input_size"] is None for f in meta["faces"])
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), upscale_photo(read_photo(PHOTO), 3))
    assert "kept: larger than the generator" in (tmp_path / "o.html").read_text()


@pytest.mark.parametrize("flag", [["--strength", "1.5"], ["--restore", "some"], ["--back-project", "-1"],
                                  ["--back-project", "101"]])
def test_bad_strength_or_restore_exit_2(tmp_path, weights, home, capsys, flag):
    try:
        code = main(["photo", str(PHOTO), str(tmp_path / "o.png"), *fast(weights), *flag])
    except SystemExit as exc:  # argparse's own refusal of a choice
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not (tmp_path / "o.png").exists() and flag[0] in err[-1]
