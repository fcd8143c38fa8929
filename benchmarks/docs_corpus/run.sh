#!/usr/bin/env bash
# Build the corpus, ingest it into a fresh store, time the first answer, answer questions.jsonl
# and score them: right at rank 1, in the top 3, right source at rank 1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
qa="${QA:-$here/../../.venv/bin/qa-system}"
corpus="$("$here/build_corpus.sh" "${1:-/tmp/docs_corpus}")"
store="${2:-/tmp/docs_corpus_store}"
rm -rf "$store"
"$qa" ingest "$corpus" --store "$store" --no-progress
start=$(date +%s.%N)
"$qa" ask "$(head -1 "$here/questions.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["question"])')" \
  --store "$store" >/dev/null
echo "first answer (a new process, models loaded): $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"
python3 -c 'import json,sys; [print(json.loads(l)["question"]) for l in open(sys.argv[1])]' "$here/questions.jsonl" \
  > "$store.questions.txt"
"$qa" ask --questions "$store.questions.txt" --store "$store" --no-progress > "$store.answers.jsonl"
python3 "$here/score.py" "$here/questions.jsonl" "$store.answers.jsonl"
