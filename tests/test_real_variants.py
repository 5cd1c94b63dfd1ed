"""benchmarks/real_variants.py (issue 18's comparison): the pick comes from the first half of the
faces only, the verdict from the second, and the paired differences are the rows' own."""
import csv
from pathlib import Path

import pytest

from rlse_fast.evaluate.runner import COLUMNS


@pytest.fixture(scope="module")
def real_variants(bench_script):
    return bench_script("real_variants")


def _write(path: Path, niqe: dict):
    """niqe: method -> list of per-face NIQE (faces f00, f01, ... in name order)."""
    path.mkdir()
    with open(path / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for method, values in niqe.items():
            for i, v in enumerate(values):
                w.writerow({"image": f"f{i:02d}.png", "scale": 8, "method": method, "niqe": v, "lr_psnr_y": 30.0,
                            "best_step": 99 if method != "bicubic" else "",
                            "loss_geocross": "" if method == "bicubic" else 4.0 if method == "pulse" else 15.0 + i % 2})


def test_pick_on_first_half_verdict_on_second(tmp_path, real_variants):
    n = 20
    pulse = [7.0 + 0.1 * (i % 3) for i in range(n)]
    # 'rlse-floor' is much better than PULSE on the first half only; 'rlse-ls5' a little better on both.
    niqe = {"pulse": pulse, "rlse": [v + 0.3 for v in pulse],
            "rlse-floor": [v - (1.0 if i < n // 2 else -0.5) for i, v in enumerate(pulse)],
            "rlse-ls5": [v - 0.2 - 0.01 * (i % 2) for i, v in enumerate(pulse)]}
    _write(tmp_path / "run", niqe)
    res = real_variants.analyse(tmp_path / "run")
    assert res["faces"] == n and res["pick"] == "rlse-floor"  # chosen on the first half
    assert res["pick_beats_pulse_on_report_half"] is False  # ... and it loses on the second
    floor = res["by_scale"]["8"]["rlse-floor"]
    assert floor["minus_pulse"]["pick"][0] == pytest.approx(-1.0)
    assert floor["minus_pulse"]["report"][0] == pytest.approx(0.5)
    assert res["by_scale"]["8"]["rlse"]["minus_pulse"]["all"][0] == pytest.approx(0.3)
    assert res["by_scale"]["8"]["rlse"]["kept_last_iterate"] == 1.0
    assert res["by_scale"]["8"]["rlse"]["geocross"] == pytest.approx(15.5)
    assert res["by_scale"]["8"]["pulse"]["geocross"] == pytest.approx(4.0)
    assert "rlse-floor" in real_variants.markdown(res)

    niqe["rlse-floor"] = [v + 1.0 for v in pulse]
    _write(tmp_path / "run2", niqe)
    res = real_variants.analyse(tmp_path / "run2")
    assert res["pick"] == "rlse-ls5" and res["pick_beats_pulse_on_report_half"] is True


def test_missing_run_is_one_line_exit_2(tmp_path, real_variants, capsys):
    with pytest.raises(SystemExit) as exc:
        real_variants.analyse(tmp_path / "nothing")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "metrics.csv does not exist" in err
