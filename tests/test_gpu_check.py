"""benchmarks/gpu_check.sh, the one prepared GPU script, run dry on the CPU: every stage it names
still exists and runs, and its summary is written. A GPU is lent rarely; the script must not rot
between loans."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STAGES = ["env", "build", "tests", "iter", "ops", "profile", "profile_cl", "quality"]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="the script needs bash and coreutils' timeout")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: run benchmarks/gpu_check.sh itself")
    out = tmp_path_factory.mktemp("gpu_check")
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "RLSE_GPU_CHECK_DRY": "1",
           "RLSE_GPU_CHECK_TOTAL_S": "300"}
    res = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=400, env=env,
                         cwd=ROOT)
    return res, out


def test_script_runs_every_stage_and_writes_its_summary(dry_run):
    res, out = dry_run
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summaries = list(out.glob("no-gpu-*.json"))
    assert len(summaries) == 1, sorted(p.name for p in out.iterdir())
    summary = json.loads(summaries[0].read_text())
    stages = {s["stage"]: s for s in summary["stages"]}
    assert list(stages) == STAGES
    assert stages["build"]["rc"] == "skipped"
    failed = {name: s["log_tail"][-1500:] for name, s in stages.items() if name != "build" and s["rc"] != "0"}
    assert not failed, failed
    logs = (out / "logs.txt").read_text()
    assert "is absent" not in logs  # a test or benchmark file the script names was moved or renamed


def test_summary_holds_the_tests_profile_and_quality(dry_run):
    _, out = dry_run
    summary = json.loads(next(out.glob("no-gpu-*.json")).read_text())
    counts = summary["tests"]["counts"]
    assert counts["failure"] == 0 and counts["error"] == 0 and counts["passed"] > 0, counts
    profile = summary["profile"] or ""
    assert "ms/iteration" in profile and "Self CPU time total" in profile, profile[:500]
    profile_cl = summary["profile_channels_last"] or ""
    assert "channels_last" in profile_cl and "ms/iteration" in profile_cl, profile_cl[:500]
    quality = summary["quality_fast"]
    assert [r["name"] for r in quality["results"]] == ["eager-fp32-ref", "fast-fp32", "fast-bf16"]
    assert all(r["psnr_y"] > 10 for r in quality["results"])
    # The benchmarks' CUDA cases skip on the CPU: nothing is reported as measured.
    assert not summary["bench_iteration"] and not summary["bench_ops_gpu"]
