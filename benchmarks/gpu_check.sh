#!/usr/bin/env bash
# THE prepared GPU check: build the CUDA extension, run the CUDA tests, the benchmarks and a
# profile, and collect everything into $OUT/<gpu>-<date>.json (+ raw files) for benchmarks/results/.
#
#   bash benchmarks/gpu_check.sh          # on the device machine, in the repo root, with $OUT set
#
# Made for the lent H100 (Python 3.12, torch 2.11 + CUDA 13.0, triton 3.6, nvcc 13.0, no internet):
# under 8 minutes in all (the H200 run of 2026-12-04 took 358 s for the stages up to sg1). Every
# stage is time-boxed with `timeout` (SIGINT first, so pytest still writes its reports) and the
# script carries on after a failure; the stage table is printed last.
#
# Stages (limit in seconds, shrunk when the total budget runs low; measured on the H200 2026-12-04):
#   env      versions, nvidia-smi                                              10   (7)
#   build    setup.py build_ext --inplace: rlse_fast._C (CPU) + rlse_fast._cuda  120  (68)
#   tests    tests/test_fast.py tests/test_fast_cuda.py tests/test_ops_cuda*.py tests/test_ops_triton.py, and the compiled
#            NHWC FIR (tests/test_ops_fir_nhwc.py: tile edges, bf16/fp16 budgets, determinism)
#                                                                              90   (44 before it)
#            (the 'emulated' CPU backend of test_ops_cuda* is left to CI: -k "not emulated")
#   iter     benchmarks/bench_iteration.py (CUDA cases, the decisive ones first; it skips what its budget cannot fit) 110 (103
#            with a 150 s case budget; now 70); 'fast-pf' = the per-face Triton conv + fused NHWC FIR,
#            at 1024 px beside its baselines (its first case also compiles its Triton kernels)
#   ops      benchmarks/bench_adam.py (CUDA cases), benchmarks/bench_ops_gpu.py  45   (27)
#            (bias_act, modulate, upfirdn2d, downsample_loss, adain_epilogue: ref vs CUDA / Triton)
#   fir      benchmarks/bench_fir_nhwc.py: the up-layer's FIR + noise + bias + lrelu, NCHW separate
#            vs NHWC separate vs the fused NHWC op, 1024 and 256 px, batch 1 and 16   20
#   profile  benchmarks/profile_iteration.py, StyleGAN2, 1024 px, batch 4, bf16   35   (22)
#   quality  benchmarks/quality_fast.py: eager fp32 vs fast fp32 / bf16, 16 faces 35   (26)
#   sg1      benchmarks/bench_backbones.py: StyleGAN (v1), L_s native, 1024 px, random FFHQ-shaped
#            weights, eager fp32 vs fast bf16 at batch 1 and 16                 50   (31)
#   sg1_profile  the first v1 profiles: profile_iteration.py --backbone stylegan1, 1024 px, bf16,
#            batch 1 and 16; kernels by family and by forward / backward / optimiser   60
#   convs    benchmarks/bench_conv_layouts.py: per-face convs in five layouts (cuDNN's four and our
#            Triton per-face conv, compiled in the background from the build on; its three directions
#            compared with the grouped conv's), forward / dgrad / wgrad, batch 1 and 16, the shapes
#            that matter (SG2 and v1 at 1024 px)  45
#   sg1_ab   benchmarks/bench_sg1_fused.py: the v1 iteration before / after the fused AdaIN and the
#            fused convs everywhere, fast bf16, batch 1 and 16, one round      40
# Without a GPU the script is a dry run of itself (CI runs one: tests/test_gpu_check.py): the CUDA
# cases skip, and the profile, quality, v1 and conv stages run on tiny sizes.
# A stage gets less when the total (RLSE_GPU_CHECK_TOTAL_S) runs low; one not reached is skipped.
# No prior-training chunk here: the device minutes left after this script go to
# benchmarks/train_prior_gpu.sh, its own call with the packed faces and the checkpoint carried
# (docs/prior.md).
#
# Files back (at most 8): <gpu>-<date>.json (summary, with the benchmark data, the profiles, the
# conv layouts and the quality comparison), logs.txt, bench_iteration.json, bench_ops_gpu.json,
# profile.txt, profile_sg1.txt (batch 1 then 16), quality_fast.json, bench_sg1.json; the conv
# layouts, the NHWC FIR rows and the before / after rows travel in the summary only.
#
# Environment: OUT (required; a scratch folder here for a dry run), PYTHON (default python3),
# RLSE_GPU_CHECK_TOTAL_S (default 455: with a stage's 20 s kill grace, under 8 minutes),
# RLSE_GPU_CHECK_DRY=1 (skip the build: for a CPU-only dry run in a shared checkout, where an
# in-place build would replace the others' extension).
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
TOTAL="${RLSE_GPU_CHECK_TOTAL_S:-455}"
DRY="${RLSE_GPU_CHECK_DRY:-0}"
WORK="$(mktemp -d)"
LOGS="$OUT/logs.txt"
STAGES="$WORK/stages.tsv"
T0=$(date +%s)
: >"$LOGS"
: >"$STAGES"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export PYTHONDONTWRITEBYTECODE=1

elapsed() { echo $(( $(date +%s) - T0 )); }

# budget WANT: WANT seconds, or what is left of the total (minus a reserve for collecting).
budget() {
    local left=$(( TOTAL - $(elapsed) - 10 ))
    if [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}

# stage NAME SECONDS CMD...: run CMD time-boxed, log it, record rc and duration.
stage() {
    local name="$1" want="$2"
    shift 2
    local secs
    secs=$(budget "$want")
    if [ "$secs" -lt 5 ]; then
        echo "== $name: skipped (total budget of ${TOTAL} s used up)" | tee -a "$LOGS"
        printf '%s\t%s\t%s\t%s\n' "$name" "skipped" 0 "$want" >>"$STAGES"
        return 0
    fi
    echo "== $name (limit ${secs} s, at $(elapsed) s): $*" | tee -a "$LOGS"
    local t=$(date +%s)
    timeout -s INT -k 20 "$secs" "$@" >"$WORK/$name.log" 2>&1
    local rc=$?
    local dt=$(( $(date +%s) - t ))
    cat "$WORK/$name.log" >>"$LOGS"
    [ "$rc" -eq 124 ] && echo "== $name: TIMED OUT after ${secs} s" | tee -a "$LOGS"
    echo "== $name: rc=$rc in ${dt} s" | tee -a "$LOGS"
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$dt" "$secs" >>"$STAGES"
    return 0
}

GPU="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
[ -n "$GPU" ] || GPU="no-gpu"
DATE="$(date +%F)"
TAG="$(echo "$GPU" | tr -c 'A-Za-z0-9._-' '-' | tr -s '-' | sed 's/^-//; s/-$//')-$DATE"

# --- env ------------------------------------------------------------------------------------------
env_info() {
    nvidia-smi 2>&1 || echo "nvidia-smi: not available"
    "$PY" - <<'EOF'
import os, platform, sys
import torch
print("python", sys.version.split()[0], platform.machine(), "cpus", os.cpu_count())
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, f"{p.total_memory / 2**30:.1f} GiB", "sms", p.multi_processor_count,
          "cc", f"{p.major}.{p.minor}")
print("cudnn", torch.backends.cudnn.version(), "allow_tf32 conv", torch.backends.cudnn.allow_tf32,
      "matmul", torch.backends.cuda.matmul.allow_tf32)
try:
    import triton
    print("triton", triton.__version__)
except ImportError as exc:
    print("triton: not importable:", exc)
EOF
    (command -v nvcc >/dev/null && nvcc --version | tail -n 2) || echo "nvcc: not on PATH"
}
export PY
export -f env_info
stage env 10 bash -c env_info

# --- (a) build ------------------------------------------------------------------------------------
# The C++ compiler whose libstdc++ is the one this Python loads with torch. On the H200 of 2026-12-04
# CXX was /opt/gcc/bin/g++ while the process ran the system's libstdc++ (g++ 13.3): the extensions
# built and computed right, but formatting an integer into an error message crashed inside them
# (benchmarks/results/NVIDIA-H200-2026-12-04-tests-rerun.json). Prints nothing when none matches.
pick_cxx() {
    "$PY" - <<'EOF'
import os, shutil, subprocess
import torch  # noqa: F401  (loads the C++ runtime the extensions will run against)
loaded = {os.path.realpath(l.split()[-1]) for l in open("/proc/self/maps") if "libstdc++.so" in l}
for cand in [os.environ.get("CXX"), "c++", "g++", "/usr/bin/g++"]:
    path = cand and shutil.which(cand)
    if not path:
        continue
    try:
        lib = subprocess.run([path, "-print-file-name=libstdc++.so"], capture_output=True, text=True,
                             timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        continue
    if lib and os.path.realpath(lib) in loaded:
        print(path)
        break
EOF
}

# The error path of a native op (a TORCH_CHECK message with an integer in it), in a child process:
# a crash there kills pytest and every later test's result with it.
check_error_path() {
    "$PY" - <<'EOF'
import subprocess, sys
code = """import torch
from rlse_fast import _C
x = torch.randn(2, 3)
try:
    _C.bias_act(x, torch.randn(4), x[:0], x[:0], 0, 1, 1, 0.0, 1.0, -1.0)
except RuntimeError as exc:
    print("error path: ok (" + str(exc).splitlines()[0] + ")")
"""
rc = subprocess.run([sys.executable, "-c", code]).returncode
if rc:
    sys.exit(f"error path: CRASHED (rc {rc}): the extension was built against another C++ runtime than the one loaded")
EOF
}

build() {
    local cxx
    cxx="$(pick_cxx)"
    if [ -n "$cxx" ]; then
        export CXX="$cxx"
        [ -x "$(dirname "$cxx")/gcc" ] && export CC="$(dirname "$cxx")/gcc"
        echo "build: CXX=$CXX (its libstdc++ is the one torch loads)"
    else
        echo "build: no compiler found whose libstdc++ is the one torch loads; CXX=${CXX:-unset}"
    fi
    # CUDA_HOME: as set, else setup.py finds the toolkit (nvcc with its headers; it does not trust a
    # wrapper script's location on PATH).
    # pip's CUDA wheels keep the CUDA headers ATen includes under site-packages/nvidia/cu13/include.
    local site
    site="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    export CPATH="$site/nvidia/cu13/include${CPATH:+:$CPATH}"
    MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0 "$PY" setup.py build_ext --inplace || return 1
    "$PY" -c "import torch, rlse_fast._cuda as m; print('built', m.__file__)" || return 1  # torch first: it loads libc10
    check_error_path || return 1
    # What was built and what --impl auto takes on CPU and GPU, per dtype.
    "$PY" -m rlse_fast kernels
}
if [ "$DRY" = "1" ]; then
    echo "== build: skipped (dry run)" | tee -a "$LOGS"
    printf '%s\t%s\t%s\t%s\n' build skipped 0 120 >>"$STAGES"
else
    export -f build pick_cxx check_error_path
    stage build 120 bash -c build
fi

# The conv stage's Triton kernels compile in the background meanwhile (into Triton's disk cache),
# so that stage's budget times them instead of compiling them.
if [ "$GPU" != "no-gpu" ]; then
    "$PY" benchmarks/bench_conv_layouts.py --warm-triton >"$WORK/conv_warm.log" 2>&1 &
fi

# --- (b) tests ------------------------------------------------------------------------------------
TESTS=""
for f in tests/test_fast.py tests/test_fast_cuda.py tests/test_ops_cuda.py tests/test_ops_cuda_loss.py tests/test_ops_triton.py; do
    if [ -f "$f" ]; then TESTS="$TESTS $f"; else echo "tests: $f is absent" | tee -a "$LOGS"; fi
done
if [ -f tests/test_ops_fir_nhwc.py ]; then  # a few compiled variants: the rest runs interpreted in CI
    TESTS="$TESTS tests/test_ops_fir_nhwc.py::test_tile_edges tests/test_ops_fir_nhwc.py::test_low_precision_budget"
    TESTS="$TESTS tests/test_ops_fir_nhwc.py::test_backward_is_deterministic"
else
    echo "tests: tests/test_ops_fir_nhwc.py is absent" | tee -a "$LOGS"
fi
# shellcheck disable=SC2086
stage tests 90 "$PY" -m pytest $TESTS -q -rs -p no:cacheprovider -k "not emulated" \
    --junitxml="$WORK/tests.xml"

# --- (c) benchmarks -------------------------------------------------------------------------------
ITER_S=$(budget 110)
# The benchmark starts no case after its own budget, leaving ~50 s for the case in flight.
export RLSE_BENCH_BUDGET_S=$(( ITER_S > 60 ? ITER_S - 50 : 10 ))
export RLSE_BENCH_LOG="$WORK/iteration.jsonl"
stage iter 110 "$PY" -m pytest benchmarks/bench_iteration.py -q -rs -p no:cacheprovider -k cuda \
    --benchmark-json="$OUT/bench_iteration.json" --benchmark-columns=min,median,max,rounds
if [ -f benchmarks/bench_ops_gpu.py ]; then
    # The fine-tuning Adam first (4 short cases): foreach vs fused at config-f x 1 and x 16 faces.
    stage ops 45 "$PY" -m pytest benchmarks/bench_adam.py::test_adam_cuda benchmarks/bench_ops_gpu.py -q -rs -p no:cacheprovider \
        --benchmark-json="$OUT/bench_ops_gpu.json" --benchmark-columns=min,median,max,rounds
else
    echo "== ops: benchmarks/bench_ops_gpu.py is absent" | tee -a "$LOGS"
    printf '%s\t%s\t%s\t%s\n' ops absent 0 45 >>"$STAGES"
fi

# --- (d) profile ----------------------------------------------------------------------------------
# Without a GPU (a dry run; tests/test_gpu_check.py in CI) the profile and quality stages run small.
HAVE_CUDA=0
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null && HAVE_CUDA=1
# The NHWC FIR with its fused epilogue against today's separate ops (smoke: interpreted, tiny).
if [ "$HAVE_CUDA" = "1" ]; then FIR_ARGS="--shapes sg2-1024-up-32,sg2-256-up-128 --budget-s 12"; else FIR_ARGS="--smoke"; fi
# shellcheck disable=SC2086
stage fir 20 "$PY" benchmarks/bench_fir_nhwc.py $FIR_ARGS --json "$WORK/fir_nhwc.json"
if [ "$HAVE_CUDA" = "1" ]; then
    stage profile 35 "$PY" benchmarks/profile_iteration.py --resolution 1024 --batch 4 --precision bf16 \
        --out "$OUT/profile.txt"
else
    stage profile 40 "$PY" benchmarks/profile_iteration.py --resolution 32 --batch 2 --channel-base 1024 \
        --channel-max 64 --factor 4 --precision fp32 --rows 15 --out "$OUT/profile.txt"
fi

# --- (e) quality: eager fp32 vs the fast path (kernels, graphs, bf16) on faces from the bundled prior
if [ "$HAVE_CUDA" = "1" ]; then QUALITY_ARGS="--faces 16 --steps 100"; else QUALITY_ARGS="--faces 2 --steps 8"; fi
# shellcheck disable=SC2086
stage quality 35 "$PY" benchmarks/quality_fast.py $QUALITY_ARGS --json "$OUT/quality_fast.json"

# --- (f) StyleGAN (v1): the paper's backbone, L_s at the input's own resolution (issue 14) --------
if [ "$HAVE_CUDA" = "1" ]; then
    SG1_ARGS="--device cuda --resolution 1024 --batches 1,16 --engines eager-fp32,fast-bf16 --warmup 3 --iters 5"
else
    SG1_ARGS="--device cpu --resolution 32 --factor 4 --batches 1 --engines eager-fp32,fast-fp32 --small --threads 2"
fi
# shellcheck disable=SC2086
stage sg1 50 "$PY" benchmarks/bench_backbones.py $SG1_ARGS --backbones stylegan1-native --json "$OUT/bench_sg1.json"

# --- (g) StyleGAN (v1)'s first profiles, batch 1 and 16: where its time goes ----------------------
if [ "$HAVE_CUDA" = "1" ]; then
    SG1_PROFILE="--resolution 1024 --precision bf16 --rows 25"
else
    SG1_PROFILE="--resolution 32 --channel-base 512 --channel-max 32 --factor 4 --precision fp32 --rows 10"
fi
sg1_profiles() {
    set -e
    # shellcheck disable=SC2086
    "$PY" benchmarks/profile_iteration.py --backbone stylegan1 --batch 1 $SG1_PROFILE --out "$WORK/profile_sg1_b1.txt"
    # shellcheck disable=SC2086
    "$PY" benchmarks/profile_iteration.py --backbone stylegan1 --batch "$1" $SG1_PROFILE --out "$WORK/profile_sg1_b16.txt"
    cat "$WORK/profile_sg1_b1.txt" "$WORK/profile_sg1_b16.txt" >"$OUT/profile_sg1.txt"
}
export WORK SG1_PROFILE
export -f sg1_profiles
if [ "$HAVE_CUDA" = "1" ]; then SG1_BIG=16; else SG1_BIG=2; fi
stage sg1_profile 60 bash -c "sg1_profiles $SG1_BIG"

# --- (h) per-face convolutions in four layouts: is a layout switch enough, or our own kernel? ----
if [ "$HAVE_CUDA" = "1" ]; then CONV_ARGS="--budget-s 35"; else CONV_ARGS="--smoke"; fi
# shellcheck disable=SC2086
stage convs 45 "$PY" benchmarks/bench_conv_layouts.py $CONV_ARGS --json "$WORK/conv_layouts.json"
[ -f "$WORK/conv_warm.log" ] && { echo "== conv kernels compiled in the background:"; cat "$WORK/conv_warm.log"; } >>"$LOGS"

# --- (i) the v1 iteration before / after this round's kernels, in one run ------------------------
if [ "$HAVE_CUDA" = "1" ]; then
    AB_ARGS="--device cuda --resolution 1024 --batches 1,16 --precision bf16 --rounds 1 --warmup 2 --iters 3"
else
    AB_ARGS="--device cpu --resolution 32 --factor 4 --batches 1 --small --rounds 1 --iters 1"
fi
# shellcheck disable=SC2086
stage sg1_ab 40 "$PY" benchmarks/bench_sg1_fused.py $AB_ARGS --json "$WORK/sg1_ab.json"

# --- collect --------------------------------------------------------------------------------------
"$PY" benchmarks/gpu_check_summary.py "$OUT" "$WORK" "$TAG" "$GPU" "$DATE" "$(elapsed)"
rm -rf "$WORK"
echo "gpu_check: done in $(elapsed) s"
