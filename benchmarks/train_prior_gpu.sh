#!/usr/bin/env bash
# Train the bundled prior on a lent GPU, one budgeted session at a time, resuming from the run
# folder that travels with the checkout (the device machine starts bare every time).
#
#   bash benchmarks/train_prior_gpu.sh MINUTES [train-prior options...]   # on the device, $OUT set
#   bash benchmarks/train_prior_gpu.sh collect FILES_AT                     # here, after the run
#
# Layout in the checkout ($RLSE_PRIOR_BASE, default runs/prior-gpu; git-ignored, under /runs/; carried with `carry: ["runs/prior-gpu/data",
# "runs/prior-gpu/run"]`, about 46 MB with the 15 MB tree: the limit is 64 MiB):
#   runs/prior-gpu/data/celeba_train-64.faces   the training set, packed (benchmarks/pack_faces.py), 23 MB
#   runs/prior-gpu/run/                         checkpoint.json + checkpoint-*.bin (<= 15 MiB each, 23 MB
#                                               in all at the default architecture), log.jsonl
#   runs/prior-gpu/returned/                    what came back and is not carried: prior-64.safetensors,
#                                               samples.png, train.log (not carried)
#
# On the device: resumes runs/prior-gpu/run when it holds a checkpoint; otherwise starts from
# $RLSE_PRIOR_INIT (default the bundled celeba64; 'none' = from scratch) with --init-from. Trains
# MINUTES minutes (--minutes: it stops cleanly, checkpoints and exports), then copies to $OUT (at
# most 8 files, each <= 16 MiB): checkpoint.json, checkpoint-*.bin, log.jsonl, prior-64.safetensors,
# samples.png, train.log. Prints img/s and kimg.
# Defaults: batch 32 (StyleGAN2-ADA's choice at 64 px on one GPU), --augment as train-prior's default,
# bf16 (precision auto on CUDA), native ops where they are faster. No extension build by default
# (it costs about 70 s of the session; the Triton kernels and the references need none):
# RLSE_PRIOR_BUILD=1 builds rlse_fast._cuda first (time-boxed to 150 s). A preflight runs
# tests/test_train_losses.py on the GPU first (native kernels against the references, the bf16
# policy) and falls back to --ops ref if it fails; RLSE_PRIOR_PREFLIGHT=0 skips it.
#
# `collect FILES_AT`: replaces runs/prior-gpu/run's checkpoint and log with the returned ones and
# puts the prior, samples and log under runs/prior-gpu/returned/ (kimg-stamped copies too).
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
BASE="${RLSE_PRIOR_BASE:-runs/prior-gpu}"
RUN="$BASE/run"
DATA="${RLSE_PRIOR_DATA:-$BASE/data/celeba_train-64.faces}"

if [ "${1:-}" = "collect" ]; then
  FROM="${2:?usage: train_prior_gpu.sh collect FILES_AT}"
  [ -f "$FROM/checkpoint.json" ] || { echo "train_prior_gpu: $FROM/checkpoint.json is missing: nothing to collect" >&2; exit 2; }
  mkdir -p "$RUN" "$BASE/returned"
  rm -f "$RUN"/checkpoint-*.bin "$RUN/checkpoint.json"
  cp "$FROM"/checkpoint-*.bin "$RUN/" && cp "$FROM/checkpoint.json" "$FROM/log.jsonl" "$RUN/" || exit 1
  for f in "$FROM"/prior-*.safetensors "$FROM/samples.png" "$FROM/train.log"; do [ -f "$f" ] && cp "$f" "$BASE/returned/"; done
  KIMG=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['cur_nimg'] // 1000)" "$RUN/checkpoint.json")
  for f in "$FROM"/prior-*.safetensors; do [ -f "$f" ] && cp "$f" "$BASE/returned/$(basename "$f" .safetensors)-kimg$KIMG.safetensors"; done
  [ -f "$FROM/samples.png" ] && cp "$FROM/samples.png" "$BASE/returned/samples-kimg$KIMG.png"
  tail -n 1 "$RUN/log.jsonl"
  echo "collected into $RUN and $BASE/returned (kimg $KIMG)"
  exit 0
fi

MINUTES="${1:?usage: train_prior_gpu.sh MINUTES [train-prior options...] (or: collect FILES_AT)}"
shift
: "${OUT:?set OUT to the folder for the returned files}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
T0=$(date +%s)
{
  echo "== $(date -u +%FT%TZ) train_prior_gpu.sh $MINUTES $*"
  nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  du -sh "$DATA" "$RUN" 2>/dev/null
} 2>&1 | tee "$OUT/train.log"

if [ "${RLSE_PRIOR_BUILD:-0}" = "1" ]; then
  timeout 150 "$PY" setup.py -q build_ext --inplace >>"$OUT/train.log" 2>&1 || echo "extension build failed or timed out: continuing without it" | tee -a "$OUT/train.log"
fi

# Preflight (about 15 s): on this GPU, do the native kernels give the reference's losses and
# gradients (tests/test_train_losses.py)? If not, train on the references rather than lose the session.
OPS=()
if [ "${RLSE_PRIOR_PREFLIGHT:-1}" = "1" ]; then
  if ! timeout 120 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_train_losses.py >>"$OUT/train.log" 2>&1; then
    OPS=(--ops ref)
    echo "preflight failed (see above): training with --ops ref" | tee -a "$OUT/train.log"
  fi
fi

START=()
if [ -f "$RUN/checkpoint.json" ] || [ -f "$RUN/checkpoint.pt" ]; then
  START=(--resume)
  echo "resuming $RUN" | tee -a "$OUT/train.log"
else
  INIT="${RLSE_PRIOR_INIT:-celeba64}"
  if [ "$INIT" != "none" ]; then
    START=(--init-from "$INIT")
    echo "no checkpoint in $RUN: starting from $INIT" | tee -a "$OUT/train.log"
  fi
fi

# The training stops itself after MINUTES; the outer timeout only guards against a hang: its SIGINT
# ends the step in progress and saves checkpoint and prior (a second one would stop at once), leaving
# time to copy them.
timeout --signal=INT $(( ${MINUTES%.*} * 60 + 120 )) "$PY" -m rlse_fast train-prior "$DATA" "$RUN" \
  --minutes "$MINUTES" --batch "${RLSE_PRIOR_BATCH:-32}" --kimg 100000 --checkpoint-minutes 3 \
  --sample-minutes 1000 --export-minutes 1000 "${START[@]}" "${OPS[@]}" "$@" >>"$OUT/train.log" 2>&1
RC=$?
echo "train-prior exit $RC after $(( $(date +%s) - T0 )) s" | tee -a "$OUT/train.log"

cp "$RUN"/checkpoint.json "$RUN"/checkpoint-*.bin "$RUN"/log.jsonl "$OUT/" 2>/dev/null
cp "$RUN"/prior-*.safetensors "$OUT/" 2>/dev/null
cp "$RUN/samples/latest.png" "$OUT/samples.png" 2>/dev/null
tail -n 3 "$OUT/train.log"
"$PY" - "$RUN/log.jsonl" <<'PY'
import json, sys
try:
    last = json.loads(open(sys.argv[1]).read().splitlines()[-1])
except (OSError, IndexError, ValueError):
    sys.exit("no log line: the run wrote no checkpoint")
print(f"kimg {last['kimg']}  img/s {last.get('img_per_s')}  augment {last.get('augment')} p {last.get('p')} "
      f"r_t {last.get('r_t')}  loss_G {last['loss_G']} loss_D {last['loss_D']}")
PY
ls -la "$OUT"
exit $RC
