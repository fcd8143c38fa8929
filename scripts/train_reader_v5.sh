#!/usr/bin/env bash
# Reader v5 (issue 25), one script per stage so a lent GPU runs it within its lease:
#   teacher  all-mpnet-base-v2 fine-tuned as a QA reader on the squad-train recipe
#   student  MiniLM on squad-train, distilled from the teacher (its scores cached in student/teacher-cache)
#   reviews  the student on product reviews (reviews-heldout, as version 4's phase 2)
# then the no-answer threshold on the recipe's dev set. Each stage skips itself when its model is there.
#
#   scripts/train_reader_v5.sh OUT_DIR
#
# Environment:
#   TEACHER_BASE  the assembled all-mpnet-base-v2 folder (scripts/assemble_teacher.py; required), or
#                 `none`: no teacher stage, the student learns from the gold labels alone
#   BASE          the student's start (default all-MiniLM-L6-v2, the packaged encoder)
#   DATASETS      the public datasets (default ../shared/datasets)
#   QA            the qa-system command, words split on spaces (default .venv/bin/qa-system; on a
#                 machine where the project is not installed: "python3 -m qa_system.cli")
#   BUDGET        minutes of training steps per stage (default 6; e.g. 5 + 6 + 2 on an H200)
#   SMOKE=1       tiny data from data/eval and 2 steps per stage instead of the recipes: checks the
#                 chain on a CPU in minutes
set -euo pipefail
out=${1:?usage: scripts/train_reader_v5.sh OUT_DIR}
read -r -a qa <<< "${QA:-.venv/bin/qa-system}"
data=${DATASETS:-../shared/datasets}
teacher_base=${TEACHER_BASE:?set TEACHER_BASE to the all-mpnet-base-v2 folder (scripts/assemble_teacher.py)}
budget=${BUDGET:-6}
if [ "${SMOKE:-0}" = 1 ]; then
  squad=(--train data/eval/tiny_squad_v2.json --eval data/eval/tiny_squad_v2.json --max-steps 2 --batch-size 4)
  reviews=(--train data/eval/tiny_subjqa.csv --eval data/eval/tiny_subjqa.csv --max-steps 2 --batch-size 4)
  window=(--max-length 128 --stride 48 --skip-tests)
else
  squad=(--recipe squad-train --datasets "$data" --time-budget "$budget" --skip-tests)
  reviews=(--recipe reviews-heldout --datasets "$data" --time-budget "$budget")
  window=(--max-length 384 --stride 128)
fi

stage() {  # stage NAME OPTIONS...: train unless NAME/model is there already
  local name=$1
  shift
  if [ -f "$out/$name/model/config.json" ]; then
    echo "$name: done ($out/$name/model)"
    return
  fi
  "${qa[@]}" train-reader --output "$out/$name" "${window[@]}" "$@"
}

distill=()
if [ "$teacher_base" != none ]; then
  stage teacher --base-model "$teacher_base" "${squad[@]}" --lr 3e-5 --epochs 2 --negative-keep 0.4
  distill=(--teacher "$out/teacher/model" --distill-weight 0.5 --temperature 2)
fi
stage student --base-model "${BASE:-all-MiniLM-L6-v2}" "${squad[@]}" --lr 1e-4 --epochs 3 --negative-keep 0.4 \
  "${distill[@]}"
stage reviews --base-model "$out/student/model" "${reviews[@]}" --lr 5e-5 --epochs 1 --negative-keep 0.4
if [ "${SMOKE:-0}" != 1 ]; then
  "${qa[@]}" fit-threshold "$out/reviews/model" --recipe reviews-heldout --datasets "$data"
fi
echo "reader v5 candidate: $out/reviews/model"
