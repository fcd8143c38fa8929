#!/usr/bin/env bash
# The default reader's recipe end to end, as version 4 was made (model card, "Training"):
#   phase 1  default-heldout  general extractive QA, from the packaged MiniLM encoder
#   phase 2  reviews-heldout  product reviews, from phase 1
#   phase 3  reviews-long     contexts longer than one window, from phase 2
# then the half-and-half weight average of phases 2 and 3 (fp16, as shipped) and its no-answer
# threshold, fitted on the recipe's dev set. Each phase also scores itself on the held-out tests.
#
#   scripts/train_default_reader.sh OUT_DIR [SEED]       # the model lands in OUT_DIR/reader
#
# A CUDA GPU is used when torch sees one (all three phases take minutes on an H100/H200); on a
# CPU phase 1 takes a day or more. Running the same command again resumes each phase from its
# last checkpoint and skips the phases that are done. bash reads a script as it runs it: do not edit
# this file under a running chain (run a copy if you may). Environment:
#   DATASETS   the public datasets (default ../shared/datasets)
#   QA         the qa-system command (default .venv/bin/qa-system)
#   BASE       phase 1's base encoder (default all-MiniLM-L6-v2, the packaged one; e.g. the output of
#              scripts/adapt_encoder.py)
#   EXTRA      more train-reader options for every phase, e.g. "--max-steps 2" (smoke run),
#              "--time-budget 30" (minutes per phase) or "--skip-tests" (no test scoring after each
#              phase: about 17 minutes each on a 2-core CPU)
#   ALLOCATOR  tcmalloc (default: preloaded when installed and LD_PRELOAD is unset; CPU training
#              measured 1.42x faster than under glibc's malloc, benchmarks/training_speed.py) or glibc
set -euo pipefail
out=${1:?usage: scripts/train_default_reader.sh OUT_DIR [SEED]}
seed=${2:-13}
qa=${QA:-.venv/bin/qa-system}
data=${DATASETS:-../shared/datasets}
case "${ALLOCATOR:-tcmalloc}" in
  tcmalloc|glibc) ;;
  *) echo "ALLOCATOR must be tcmalloc or glibc, got '$ALLOCATOR'" >&2; exit 2 ;;
esac
if [ "${ALLOCATOR:-tcmalloc}" = tcmalloc ] && [ -z "${LD_PRELOAD:-}" ]; then
  lib=$("$(dirname "$qa")/python" -c 'from qa_system.hardware import find_allocator; print(find_allocator("tcmalloc") or "")' 2>/dev/null || true)
  if [ -n "$lib" ]; then
    export LD_PRELOAD=$lib
    echo "allocator: tcmalloc ($lib)"
  fi
fi
# shellcheck disable=SC2206  # EXTRA is split into options on purpose
common=(--datasets "$data" --max-length 384 --stride 128 --seed "$seed" ${EXTRA:-})

phase() {  # phase NAME RECIPE BASE OPTIONS...: train unless NAME/model is there already
  local name=$1 recipe=$2 base=$3
  shift 3
  if [ -f "$out/$name/model/config.json" ]; then
    echo "$name: done ($out/$name/model)"
    return
  fi
  "$qa" train-reader --recipe "$recipe" --base-model "$base" --output "$out/$name" "${common[@]}" "$@"
}

phase p1 default-heldout "${BASE:-all-MiniLM-L6-v2}" --batch-size 64 --lr 1e-4 --epochs 4 --negative-keep 0.4
phase p2 reviews-heldout "$out/p1/model" --batch-size 64 --lr 5e-5 --epochs 1 --negative-keep 0.4
phase p3 reviews-long "$out/p2/model" --batch-size 32 --lr 3e-5 --epochs 1 --negative-keep 1.0
if [ ! -f "$out/reader/config.json" ]; then
  "$qa" average-readers "$out/p2/model" "$out/p3/model" --output "$out/reader"
fi
if [ ! -f "$out/reader/threshold_fit.json" ]; then
  "$qa" fit-threshold "$out/reader" --recipe reviews-heldout --datasets "$data"
fi
echo "default reader: $out/reader (qa-system eval-reader $out/reader FILE... to score it)"
