#!/usr/bin/env bash
# CI stage: compile every CUDA kernel (csrc/cuda/*.cu + bindings) for sm_90 against a CUDA build of
# torch, through setup.py as a user would, then import rlse_fast._cuda. Import only: no GPU needed.
#
# Environment (all optional):
#   RLSE_CUDA_VENV   the venv holding the CUDA torch (default .venv-cuda; reused when it has one)
#   RLSE_CUDA_TORCH  the torch requirement (default torch==2.14.1, a CUDA 13 build from the local wheels)
#   CUDA_HOME        the toolkit with nvcc (default /usr/local/cuda); RLSE_CUDA_HOME=auto leaves it
#                    unset, so that setup.py finds the toolkit as it does for a user
#   TORCH_CUDA_ARCH_LIST (default 9.0), MAX_JOBS (default 2)
# Outputs go to build/cuda-ci-<torch version>/ (ignored by git); the source tree gets no .so built
# for this torch, which would shadow the CPU build of the development venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${RLSE_CUDA_VENV:-.venv-cuda}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac  # the import check runs from another folder
TORCH_REQ="${RLSE_CUDA_TORCH:-torch==2.14.1}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-2}"
OUT="$ROOT/build/cuda-ci-${TORCH_REQ#torch==}"
start=$(date +%s)

if [ "${RLSE_CUDA_HOME:-}" = "auto" ]; then
    unset CUDA_HOME
    if ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
        echo "cuda_build: no nvcc on PATH or in /usr/local/cuda" >&2
        exit 1
    fi
else
    export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
    if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
        echo "cuda_build: nvcc not found at $CUDA_HOME/bin/nvcc; set CUDA_HOME to the CUDA toolkit" >&2
        exit 1
    fi
fi

want="${TORCH_REQ#torch==}"
if ! "$VENV/bin/python" - "$want" <<'EOF' 2>/dev/null; then
import sys, torch
ok = torch.__version__.split("+")[0] == sys.argv[1] and torch.version.cuda is not None
sys.exit(0 if ok else 1)
EOF
    echo "cuda_build: creating $VENV with $TORCH_REQ (about a minute, 5.5 GB)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "$TORCH_REQ" numpy setuptools wheel ninja
else
    echo "cuda_build: reusing $VENV"
fi
"$VENV/bin/python" -c "import torch; print('cuda_build: torch', torch.__version__, 'CUDA', torch.version.cuda)"

# pip's CUDA wheels keep the CUDA headers (cuBLAS, cuSPARSE... that ATen's CUDA headers include)
# under site-packages/nvidia/cu13/include; setup.py adds it, CPATH covers any other compiler call.
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export CPATH="$SITE/nvidia/cu13/include${CPATH:+:$CPATH}"

# build-temp is kept between runs: ninja then recompiles only the files that changed.
rm -rf "$OUT/lib"
"$VENV/bin/python" setup.py -q build_ext --build-lib "$OUT/lib" --build-temp "$OUT/tmp"

so=$(ls "$OUT"/lib/rlse_fast/_cuda*.so 2>/dev/null | head -n 1 || true)
if [ -z "$so" ]; then
    echo "cuda_build: setup.py built no rlse_fast._cuda (is torch a CUDA build and nvcc found?)" >&2
    exit 1
fi

# Import from a scratch copy of the package with the freshly built modules beside the sources.
rm -rf "$OUT/import"
mkdir -p "$OUT/import"
cp -r rlse_fast "$OUT/import/"
cp "$OUT"/lib/rlse_fast/*.so "$OUT/import/rlse_fast/"
(
    cd "$OUT/import"
    "$VENV/bin/python" - <<'EOF'
import torch
import rlse_fast._cuda as m

names = ["bias_act", "bias_act_backward", "upfirdn2d", "downsample_loss", "downsample_loss_backward"]
missing = [n for n in names if not hasattr(m, n)]
assert not missing, f"rlse_fast._cuda lacks {missing}"
print(f"cuda_build: imported {m.__file__} ({', '.join(names)}); GPU present: {torch.cuda.is_available()}")
EOF
)
# The CUDA objects were compiled for sm_90 (ninja's rules record the nvcc flags).
if ! grep -rqs --include='*.ninja' "arch=compute_90,code=sm_90" "$OUT/tmp"; then
    echo "cuda_build: the kernels were not compiled for sm_90 (TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST)" >&2
    exit 1
fi
# No kernel may spill registers to local memory (cuobjdump of the toolkit, else the one triton bundles).
CUOBJDUMP="${CUDA_HOME:-/usr/local/cuda}/bin/cuobjdump"
[ -x "$CUOBJDUMP" ] || CUOBJDUMP="$("$VENV/bin/python" -c 'import os, triton; print(os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump"))' 2>/dev/null || true)"
if [ -n "$CUOBJDUMP" ] && [ -x "$CUOBJDUMP" ]; then
    usage="$("$CUOBJDUMP" -res-usage "$so" | grep 'REG:')"
    kernels=$(echo "$usage" | wc -l)
    max_reg=$(echo "$usage" | sed -E 's/.*REG:([0-9]+).*/\1/' | sort -n | tail -n 1)
    spills=$(echo "$usage" | grep -vc 'LOCAL:0 ' || true)
    echo "cuda_build: $kernels kernels for sm_90, at most $max_reg registers a thread, $spills spilling to local memory"
    if [ "$spills" -ne 0 ]; then
        "$CUOBJDUMP" -res-usage "$so" | grep -B1 'REG:' | grep -v 'LOCAL:0 ' >&2
        exit 1
    fi
else
    echo "cuda_build: no cuobjdump; register spills not checked"
fi
echo "cuda_build: OK in $(( $(date +%s) - start )) s"
