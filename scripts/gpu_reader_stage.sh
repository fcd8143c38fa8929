#!/usr/bin/env bash
# Reader v5 in one call on a lent GPU machine (docs/training.md, "On a lent GPU"): unpack the
# datasets kit that travelled in .gpu_kit (scripts/gpu_kit.py pack-data, here), train with
# scripts/train_reader_v5.sh within BUDGET minutes per stage, and leave the final model in $OUT as
# checked fp16 pieces (at most 8 files come back: the log, a manifest and the pieces).
#
#   device run, carry [".gpu_kit"]:  BUDGET=5 scripts/gpu_reader_stage.sh
#   here, after:                     python3 scripts/gpu_kit.py import-model FILES_AT --name reader --out runs/v5/reader
#
# Environment: OUT (set by the device tool), BUDGET (default 5), TEACHER_BASE (default none: the
# teacher's weights do not fit the transfer limit beside the working tree), BASE (default the shipped
# reader, which travels with the tree; the packaged MiniLM encoder is not installed there), PYTHON
# (default python3), KIT (default .gpu_kit), SMOKE=1 (tiny data, as in train_reader_v5.sh).
set -euo pipefail
out=${OUT:?OUT: the folder whose files come back}
python=${PYTHON:-python3}
work=${WORK:-/tmp/qa_v5}
data=$work/datasets
mkdir -p "$work"
[ -d "$data" ] || "$python" scripts/gpu_kit.py unpack-data "${KIT:-.gpu_kit}" "$data"
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
QA="$python -m qa_system.cli" DATASETS=$data TEACHER_BASE=${TEACHER_BASE:-none} \
  BASE=${BASE:-qa_system/models/reader} BUDGET=${BUDGET:-5} \
  scripts/train_reader_v5.sh "$work/run" 2>&1 | tr '\r' '\n' | tee "$out/train.log"
"$python" scripts/gpu_kit.py export-model "$work/run/reviews/model" "$out" --name reader
