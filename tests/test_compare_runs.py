"""benchmarks/compare_runs.py: paired differences over the rows two eval runs share, or between two
methods of one run (--methods)."""
import csv
from pathlib import Path

import pytest

from rlse_fast.evaluate.runner import COLUMNS


@pytest.fixture(scope="module")
def compare_runs(bench_script):
    return bench_script("compare_runs")


def _write(path: Path, psnr: dict):
    """psnr: method -> per-face PSNR-Y (faces f0, f1, ...)."""
    path.mkdir()
    with open(path / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for method, values in psnr.items():
            for i, v in enumerate(values):
                w.writerow({"image": f"f{i}.png", "scale": 8, "method": method, "psnr_y": v})


def test_two_runs_pair_their_shared_rows(tmp_path, compare_runs):
    _write(tmp_path / "a", {"rlse": [20.0, 21.0, 22.0], "pulse": [1.0, 1.0, 1.0]})
    _write(tmp_path / "b", {"rlse": [19.0, 20.5, 21.0]})
    res = compare_runs.compare(tmp_path / "a", tmp_path / "b")
    assert res["rows"] == 3 and res["methods"] == ["rlse"]
    col = res["columns"]["psnr_y"]
    assert col["diff"] == pytest.approx(2.5 / 3) and col["max_abs_diff"] == pytest.approx(1.0)


def test_two_methods_of_one_run(tmp_path, compare_runs):
    _write(tmp_path / "a", {"rlse": [20.0, 21.0, 22.0], "rlse-lg5000": [19.0, 20.0, 22.0]})
    res = compare_runs.compare(tmp_path / "a", tmp_path / "a", ("rlse-lg5000", "rlse"))
    assert res["rows"] == 3 and res["methods"] == ["rlse-lg5000 vs rlse"]
    col = res["columns"]["psnr_y"]
    assert col["a"] == pytest.approx(61 / 3) and col["b"] == pytest.approx(21.0)
    assert col["diff"] == pytest.approx(-2 / 3) and col["n"] == 3


def test_bad_input_is_one_line_exit_2(tmp_path, compare_runs, capsys):
    _write(tmp_path / "a", {"rlse": [20.0, 21.0]})
    for args in ((tmp_path / "a", tmp_path / "missing"), (tmp_path / "a", tmp_path / "a", ("nope", "rlse"))):
        with pytest.raises(SystemExit) as exc:
            compare_runs.compare(*args)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("compare_runs: ")
