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
STAGES = ["env", "build", "tests", "iter", "ops", "fir", "profile", "quality", "sg1", "sg1_profile", "convs", "sg1_ab"]

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
    assert "by family and phase" in profile
    for key, batch in (("profile_sg1_b1", 1), ("profile_sg1_b16", 2)):  # the dry run's batches
        text = summary[key] or ""
        assert f"stylegan1, 32px, batch {batch}" in text and "by family and phase" in text, text[:500]
        assert "phases not marked" not in text  # the backward call was found and marked
    convs = summary["conv_layouts"]["rows"]
    from itertools import product
    assert {(r["direction"], r["layout"]) for r in convs} == set(product(
        ["forward", "dgrad", "wgrad"], ["grouped-nchw", "grouped-nhwc", "per-face-nhwc", "shared-nhwc",
                                        "triton-perface-nhwc"])) | {("modulate", "modulate+pack"),
                                                                    ("modulate", "modulate-taps-last"),
                                                                    ("layer", "perface+separate"),
                                                                    ("layer", "perface-fused")}
    assert all(r["seconds"] > 0 for r in convs)
    # the other layouts (the Triton one under the interpreter) compute the grouped conv's function: 2 shapes x
    # 2 batches x (3 per-face forwards + grouped-nhwc's and the Triton layout's input and weight gradients)
    diffs = [r["max_abs_diff_vs_grouped_nchw"] for r in convs if r["max_abs_diff_vs_grouped_nchw"] is not None]
    assert len(diffs) == 2 * 2 * (3 + 2 * 2) and max(diffs) < 1e-4
    fir = summary["fir_nhwc"]["rows"]
    assert {(r["direction"], r["variant"]) for r in fir} == set(product(
        ["forward", "fwd+bwd"], ["nchw-separate", "nhwc-separate", "nhwc-fused"]))
    assert all(r["seconds"] > 0 for r in fir)
    # the NHWC paths compute the NCHW path's function (float32 in the dry run)
    assert max(r["max_abs_diff_y"] for r in fir if r["max_abs_diff_y"] is not None) < 1e-4
    ab = summary["sg1_before_after"]["records"]
    assert sorted(r["variant"] for r in ab) == ["adain", "after", "before", "fused"]
    quality = summary["quality_fast"]
    assert [r["name"] for r in quality["results"]] == ["eager-fp32-ref", "fast-fp32", "fast-bf16"]
    assert all(r["psnr_y"] > 10 for r in quality["results"])
    sg1 = summary["bench_sg1"]
    assert [r["name"] for r in sg1["records"]] == ["stylegan1-native-eager-fp32-b1", "stylegan1-native-fast-fp32-b1"]
    assert all(r["iter_s"] > 0 and r["tflop_per_iter"] > 0 for r in sg1["records"])
    # The benchmarks' CUDA cases skip on the CPU: nothing is reported as measured.
    assert not summary["bench_iteration"] and not summary["bench_ops_gpu"]


@pytest.fixture(scope="module")
def gpu_table():
    """benchmarks/gpu_table.py as a module."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_table
    finally:
        sys.path.pop(0)
    return gpu_table


def _latest_gpu_summary() -> Path | None:
    """The newest `<gpu>-<date>.json` summary under benchmarks/results (CPU files excluded)."""
    import re

    found = [p for p in (ROOT / "benchmarks" / "results").glob("*.json")
             if re.fullmatch(r"(?!cpu-|quality-).+-\d{4}-\d{2}-\d{2}\.json", p.name)]
    return max(found, key=lambda p: (p.stem[-10:], p.name)) if found else None


def test_gpu_page_shows_the_latest_gpu_table(gpu_table):
    """docs/gpu.md's GPU table is `benchmarks/gpu_table.py` of the newest committed GPU summary, and
    each of its cells is that run's measurement (per face = 100 iterations / batch)."""
    path = _latest_gpu_summary()
    if path is None:
        pytest.skip("no GPU run is committed yet")
    summary = json.loads(path.read_text())
    text = gpu_table.table(summary)
    readme = (ROOT / "docs" / "gpu.md").read_text()
    assert text in readme, f"docs/gpu.md's GPU table is not the one of {path.name}; paste:\n{text}"
    assert f"`benchmarks/results/{path.stem}" in readme
    rows = {tuple(int(v) for v in line.split("|")[1].split(",")): line.split("|")[2:-1]
            for line in text.splitlines()[2:]}
    for r in summary["iteration_records"]:
        if "iter_s" in r and r["engine"] == "fast" and r["precision"] == "bf16":
            cells = rows[(r["resolution"], r["batch"])]
            assert float(cells[2]) == pytest.approx(100 * r["iter_s"] / r["batch"], abs=0.006)


def test_gpu_table_refuses_what_is_not_a_summary(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2]")
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_table.py"), str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "gpu_check.sh" in res.stderr


def test_gpu_table_shows_the_variants_a_run_has(gpu_table):
    """fast-cl / fast-nobench / fast-bench columns appear only when the run measured them, cell by cell."""

    def rec(res, batch, engine, per_face):
        iter_s = per_face * batch / 100
        return {"resolution": res, "batch": batch, "engine": engine, "precision": "bf16" if engine != "eager" else "fp32",
                "iter_s": iter_s, "per_face_s": per_face, "faces_per_s": 1 / per_face, "tflops": 1.0,
                "latency_100_s": 100 * iter_s + 1}

    plain = {"iteration_records": [rec(1024, 1, "eager", 8.0), rec(1024, 1, "fast", 2.0), rec(256, 4, "fast", 0.5)]}
    text = gpu_table.table(plain)
    assert "channels-last" not in text and "no cuDNN" not in text
    assert "| 1024, 1 | 8.00 |  | 2.00 | 4.0x | 0.50 | 1.0 | 3.0 |" in text
    more = {"iteration_records": plain["iteration_records"] + [rec(1024, 1, "fast-cl", 1.5), rec(1024, 1, "fast-nobench", 2.2)]}
    text = gpu_table.table(more)
    assert "| 1024, 1 | 8.00 |  | 2.00 | 1.50 | 2.20 | 4.0x | 0.50 | 1.0 | 3.0 | 3.2 |" in text
    assert "| 256, 4 |  |  | 0.50 |  |  |  | 2.00 | 1.0 | 3.0 | |" in text
    # From 2026-12-04 on the variant is cuDNN's timing (the default no longer times).
    later = {"iteration_records": plain["iteration_records"] + [rec(1024, 1, "fast-bench", 1.9)]}
    text = gpu_table.table(later)
    assert "fast bf16 cuDNN timing" in text and "end to end, cuDNN timing |" in text and "no cuDNN" not in text
    assert "| 1024, 1 | 8.00 |  | 2.00 | 1.90 | 4.0x | 0.50 | 1.0 | 3.0 | 2.9 |" in text
    with pytest.raises(ValueError, match="no iteration records"):
        gpu_table.table({"iteration_records": []})


def test_profile_buckets_name_the_kernel_families(bench_script):
    """Kernel names as the H200 profiles of 2026-12-04 show them, and ours, land in their families."""
    family = bench_script("profile_buckets").family
    cases = {
        "void cudnn::engines_precompiled::nchwToNhwcKernel<__nv_bfloat16>": "transpose",
        "void foldedNhwcToNchwKernel<__nv_bfloat16, __nv_bfloat16>": "transpose",
        "sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc": "conv",
        "sm90_xmma_wgrad_indexed_implicit_gemm_bf16bf16_bf16f32": "conv",
        "void precomputed_convolve_sgemm<__nv_bfloat16, 1024, 5, 5>": "conv",
        "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64": "gemm",
        "void (anonymous namespace)::upfirdn2d_tiled<__nv_bfloat16>": "fir",
        "adain_backward_sums_kernel": "adain",
        "void (anonymous namespace)::bias_act_kernel<__nv_bfloat16>": "bias_act",
        "modulate_backward_kernel": "modulate",
        "conv_forward_kernel": "conv", "convt_kernel": "conv", "conv_wgrad_kernel": "conv",  # the per-face conv
        "downsample_diff_kernel": "downsample_loss",
        "void at::native::multi_tensor_apply_kernel<FusedAdamMathFunctor<float>>": "adam",
        "void at::native::reduce_kernel<128, 4, at::native::ReduceOp<float, SumOp>>": "reduce",
        "Memset (Device)": "copy/fill",
        "void at::native::vectorized_elementwise_kernel<8, at::native::CUDAFunctor_add<float>>": "elementwise",
    }
    assert {name: family(name) for name in cases} == cases
