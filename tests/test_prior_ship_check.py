"""benchmarks/prior_ship_check.py: the ship rule on paired differences, and the whole command on a
tiny case (two held-out faces, two steps) so that it cannot rot."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ship(bench_script):
    return bench_script("prior_ship_check")


def _col(diff, half):
    return {"diff": diff, "diff_half": half, "n": 250}


def test_ship_rule(ship):
    good = {"lpips": _col(-0.01, 0.004), "psnr_y": _col(-0.05, 0.2), "ssim_y": _col(0.001, 0.01)}
    photos_fine = {"lpips": _col(0.001, 0.01), "psnr_y": _col(0.1, 0.3), "ssim_y": _col(0.0, 0.01)}
    assert ship.verdict(good, photos_fine)[0]
    # LPIPS better but its interval reaches 0.
    assert not ship.verdict({**good, "lpips": _col(-0.01, 0.011)}, photos_fine)[0]
    # PSNR-Y worse beyond its interval.
    ok, reasons = ship.verdict({**good, "psnr_y": _col(-0.5, 0.2)}, photos_fine)
    assert not ok and any("psnr_y" in r and "fail" in r for r in reasons)
    # Photos: LPIPS higher beyond its interval is worse.
    assert not ship.verdict(good, {**photos_fine, "lpips": _col(0.02, 0.01)})[0]
    # Without the photo protocol there is no SHIP.
    ok, reasons = ship.verdict(good, None)
    assert not ok and any("photo protocol not run" in r for r in reasons)


def test_photo_rows_pair_the_restore_all_faces_by_photo_scale_face(ship, tmp_path):
    header = "photo,scale,face,method,psnr_y,ssim_y,lpips\n"
    rows_a = ["p.jpg,4,all,photo-all,30,0.9,0.1", "p.jpg,4,0,lanczos,20,0.5,0.5", "p.jpg,4,0,photo,1,0.1,0.9"] + \
        [f"p.jpg,4,{i},photo-all,{25 + i},0.8,{0.2 - 0.01 * i}" for i in range(4)]
    rows_b = [f"p.jpg,4,{i},photo-all,{24 + i},0.8,{0.21 - 0.01 * i}" for i in range(4)] + \
        ["q.jpg,4,0,photo-all,1,0.1,0.9", "p.jpg,4,0,photo,30,0.9,0.1"]
    for name, rows in (("a", rows_a), ("b", rows_b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.csv").write_text(header + "\n".join(rows) + "\n")
    res = ship.compare_photos(tmp_path / "a", tmp_path / "b")
    assert res["psnr_y"]["n"] == 4 and res["psnr_y"]["diff"] == pytest.approx(1.0)
    assert res["lpips"]["diff"] == pytest.approx(-0.01)
    assert ship.verdict({"lpips": _col(-0.01, 0.001), "psnr_y": _col(0, 0.1), "ssim_y": _col(0, 0.1)}, res)[0]


def test_tiny_ship_check_runs_end_to_end(tmp_path, rlse_home):
    hr = SHARED / "data" / "celeba128_test"
    if not hr.is_dir():
        pytest.skip(f"{hr} is absent")
    if not (Path.home() / ".cache" / "rlse-fast" / "assets" / "lpips").is_dir():
        pytest.skip("LPIPS weights not fetched (rlse-fast fetch-assets)")
    candidate = ROOT / "rlse_fast" / "data" / "celeba64.safetensors"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "prior_ship_check.py"), str(candidate), "-n", "2",
           "--steps", "2", "--work", str(tmp_path / "work"), "--hr", str(hr), "--device", "cpu", "--quiet",
           "--no-photos"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
                                                                    "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    # The bundled prior against itself: identical rows, so LPIPS is not better and it is KEPT.
    verdicts = [line for line in done.stdout.splitlines() if line.startswith(("SHIP", "KEEP"))]
    assert len(verdicts) == 1 and verdicts[0].startswith("KEEP")
    result = json.loads((tmp_path / "work" / "ship_check.json").read_text())
    assert result["verdict"] == "KEEP" and result["held_out"]["lpips"]["diff"] == 0
    assert (tmp_path / "work" / "eval-base-celeba64-n2-s2" / "metrics.csv").is_file()

    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "prior_ship_check.py"), str(tmp_path / "none.st")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
