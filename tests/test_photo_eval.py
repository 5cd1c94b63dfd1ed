"""The photo protocol (`rlse-fast photo-eval`) on one small real photo with a stand-in super-resolver,
and its bad-input exits."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rlse_fast import assets
from rlse_fast.metrics import identity

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos"
pytestmark = pytest.mark.skipif(not assets.available("mtcnn/onet.pt"), reason="MTCNN weights absent: run `rlse-fast fetch-assets`")


def photo(name) -> Path:
    path = PHOTOS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared/data/photos provides it)")
    return path


@pytest.mark.skipif(not identity.available() or not assets.available(assets.LPIPS_ALEXNET),
                    reason="needs dlib (pip install 'rlse-fast[identity]') and `rlse-fast fetch-assets`")
def test_protocol_on_one_small_photo(tmp_path):
    from test_photo_decisions import Session

    from rlse_fast.evaluate.photos import PhotoEvalOptions, downscale_photo, read_rows, region, run_photo_eval
    from rlse_fast.faces.paste import upscale_photo
    from rlse_fast.faces.photo_io import read_photo
    from rlse_fast.metrics import psnr

    src = photo("four_researchers.jpg")  # 491x310, 4 faces 31-39 px
    session = Session()
    session.cfg = type("Cfg", (), {"to_dict": lambda self: {"mode": "stand-in"}})()
    session.device, session.gan.sha256 = "cpu", "0" * 64
    opt = PhotoEvalOptions(photos=src, out=tmp_path / "out", scales=[2], strengths=[0.5])
    run_photo_eval(opt, session)
    rows = read_rows(opt.out / "metrics.csv")
    faces = [r for r in rows if r["face"] != "all"]
    assert {r["method"] for r in rows} == {"lanczos", "photo", "photo-s0.5"}
    assert len(faces) == 3 * 4 and len([r for r in rows if r["face"] == "all"]) == 3
    # Lanczos's PSNR-Y is the plain computation on the region of the Lanczos upscaling
    hr = read_photo(src)[:310 // 2 * 2, :491 // 2 * 2]
    lz = upscale_photo(downscale_photo(hr, 2), 2)
    from rlse_fast.faces.detect import detect

    g = detect(hr, min_face=24)[0]
    x0, y0, x1, y1 = region(g.box, 2, hr.shape)
    row = next(r for r in faces if r["method"] == "lanczos" and r["face"] == "0")
    assert abs(float(row["psnr_y"]) - psnr(lz[y0:y1, x0:x1], hr[y0:y1, x0:x1], "y")) < 1e-3
    # every face the stand-in restored is recorded with its decision; blends lie between
    photo_rows = [r for r in faces if r["method"] == "photo"]
    assert all(r["reason"] for r in photo_rows) and any(r["restored"] == "1" for r in photo_rows)
    for r in photo_rows:
        if r["restored"] == "0":
            same = next(q for q in faces if q["method"] == "lanczos" and q["face"] == r["face"])
            assert r["psnr_y"] == same["psnr_y"]  # kept: exactly the Lanczos face
    summary = json.loads((opt.out / "summary.json").read_text())
    s2 = summary["scales"]["2"]
    assert s2["faces"] == 4 and "goal" in s2["methods"]["photo"] and s2["median_face"]["photo"] == src.name
    assert "0.5" not in s2["methods"]["lanczos"] and (opt.out / "report.html").is_file()
    # original and lanczos per face, photo only where it differs from lanczos (a restored face)
    restored = sum(r["restored"] == "1" for r in photo_rows)
    assert len(list((opt.out / "images" / "x2" / src.stem).glob("*.png"))) == 2 * 4 + restored
    # a rerun resumes: nothing is fitted again
    calls = len(session.calls)
    run_photo_eval(opt, session)
    assert len(session.calls) == calls and read_rows(opt.out / "metrics.csv") == rows


@pytest.mark.parametrize("case", ["empty", "no_face", "too_small", "scale"])
def test_bad_input_one_line_exit_2(tmp_path, capsys, case):
    from rlse_fast.cli import main

    src = tmp_path / "in"
    src.mkdir()
    args = ["--scale", "2"]
    if case == "no_face":
        Image.new("RGB", (120, 90), (200, 180, 160)).save(src / "blank.png")
    elif case == "too_small":  # 15-17 px faces: 7-8 px once downscaled by 2
        shutil.copy(photo("tiny_3faces_128.png"), src)
    elif case == "scale":
        shutil.copy(photo("tiny_3faces_128.png"), src)
        args = ["--scale", "5"]
    code = main(["photo-eval", str(src), "--out", str(tmp_path / "out"), *args, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert {"empty": "holds no", "no_face": "no face found", "too_small": "under 12 px",
            "scale": "--scale"}[case] in err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not identity.available() or not assets.available(assets.LPIPS_ALEXNET),
                    reason="needs dlib (pip install 'rlse-fast[identity]') and `rlse-fast fetch-assets`")
def test_merge_replaces_only_the_rerun_methods(tmp_path, capsys, bench_script):
    """benchmarks/merge_photo_runs.py: the default pipeline's rows (and crops) from a second run, the
    evidence rows from the first; refused when the runs differ in anything else."""
    from test_photo_decisions import Session

    from rlse_fast.evaluate.photos import PhotoEvalOptions, read_rows, run_photo_eval

    merge = bench_script("merge_photo_runs").merge
    src = photo("four_researchers.jpg")

    def run(out, kind, **kw):
        session = Session(kind)
        session.cfg = type("Cfg", (), {"to_dict": lambda self: {"mode": "stand-in"}})()
        session.device, session.gan.sha256 = "cpu", "0" * 64
        opt = PhotoEvalOptions(photos=src, out=tmp_path / out, scales=[2], **kw)
        opt.command = f"photo-eval {out}"
        run_photo_eval(opt, session)
        return read_rows(opt.out / "metrics.csv")

    base = run("base", "upsample", restore_all=True)
    new = run("new", "flat")  # every fit fails: the new photo rows are Lanczos's, unlike the base's
    merged = merge(tmp_path / "base", [tmp_path / "new"], tmp_path / "out", ["photo"])
    assert read_rows(tmp_path / "out" / "metrics.csv") == merged
    pick = lambda rows, m: sorted((r for r in rows if r["method"] == m), key=lambda r: r["face"])  # noqa: E731
    assert pick(merged, "photo") == pick(new, "photo") != pick(base, "photo")
    for m in ("lanczos", "photo-all", "lanczos-p", "photo-all-p0"):
        assert pick(merged, m) == pick(base, m) and pick(merged, m)
    crops = {p.name for p in (tmp_path / "out" / "images" / "x2" / src.stem).glob("*.png")}
    assert not any(n.endswith("_photo.png") for n in crops) and any(n.endswith("_photo-all.png") for n in crops)
    assert "photo-eval new" in json.loads((tmp_path / "out" / "run.json").read_text())["command"]
    assert (tmp_path / "out" / "summary.md").is_file()
    run("seed1", "flat", seed=1)
    capsys.readouterr()  # the runs' progress bars
    for news in ([tmp_path / "seed1"], [tmp_path / "missing"]):  # refused: one line, exit 2, nothing written
        with pytest.raises(SystemExit) as exc:
            merge(tmp_path / "base", news, tmp_path / "out2", ["photo"])
        err = capsys.readouterr().err.strip()
        assert exc.value.code == 2 and len(err.splitlines()) == 1 and not (tmp_path / "out2").exists()
        assert ("other seed" if news[0].name == "seed1" else "holds no run.json") in err


def test_kept_faces_table_pairs_each_decision_with_lanczos(bench_script):
    """benchmarks/photo_kept_faces.py: per `photo` decision, photo-all and the control against Lanczos on
    exactly those faces, and the fitted faces by their fit's consistency."""
    kept = bench_script("photo_kept_faces")
    rows = []
    for face, reason, cons, lp in [(0, "restored", 31.0, 0.10), (1, "kept: the fit failed (26.0 dB < 30 dB)", 26.0, 0.20),
                                   (2, "kept: the fit failed (28.0 dB < 30 dB)", 28.0, 0.30)]:
        base = {"photo": "p.jpg", "scale": "2", "face": str(face), "psnr_y": "30", "identity": "0.3"}
        rows += [{**base, "method": "lanczos", "lpips": str(lp)},
                 {**base, "method": "lanczos-p", "lpips": str(lp - 0.01)},
                 {**base, "method": "photo", "lpips": str(lp), "reason": reason},
                 {**base, "method": "photo-all", "lpips": str(lp - 0.05 * (face + 1)), "consistency_db": str(cons),
                  "fit_identity": "0.45"}]
    assert kept.reason_group("kept: the fit failed (26.0 dB < 30 dB)") == "kept: the fit failed"
    text = kept.table(rows)
    # the two failed fits: photo-all -0.10 and -0.15 against Lanczos, mean -0.125 (control -0.010)
    assert "| kept: the fit failed | 2 | 0.00 ± 0.00 (0.00 ± 0.00) | -0.125 ± 0.318 (-0.010 ± 0.000) |" in text
    assert "| restored | 1 | 0.00 (0.00) | -0.050 (-0.010) |" in text
    assert "| 25-27 | 1 |" in text and "| 27-30 | 1 |" in text and "| 30-33 | 1 |" in text
    assert "| 0.4-0.5 | 3 |" in text
