"""The whole pipeline on the shipped sample corpus: how many of data/sample_questions.jsonl each
reader answers right at rank 1 and in its top 3, side by side (same store, same retrieval).

A hit: the expected answer contains the returned text or is contained in it (case-folded).
Every reader answers with its own fitted no-answer threshold, but the hit counts look at the
returned spans whether or not the reader says the documents answer the question.

    .venv/bin/python benchmarks/sample_questions.py                         # the packaged reader
    .venv/bin/python benchmarks/sample_questions.py READER_DIR OTHER_DIR    # several, side by side
    .venv/bin/python benchmarks/sample_questions.py --show                  # every question's answers
    .venv/bin/python benchmarks/sample_questions.py --retrieval-weights 0 10 # answer ranking, side by side
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qa_system import QASystem, load_settings  # noqa: E402
from qa_system.reader import ExtractiveReader  # noqa: E402


def _hit(expected: str, text: str) -> bool:
    a, b = expected.lower(), text.lower()
    return bool(b.strip()) and (a in b or b in a)


def run(readers: list[str], top_k: int, show: bool, weights: list[float | None]) -> list[dict[str, Any]]:
    questions = [json.loads(line) for line in (REPO / "data" / "sample_questions.jsonl").read_text().splitlines()
                 if line.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        qa = QASystem(load_settings(store_dir=Path(tmp) / "store")).load()
        try:
            qa.ingest([REPO / "data" / "sample_corpus"], progress=False)
            # every reader reads the same passages, retrieved once
            passages = qa.retrieve_many([item["question"] for item in questions])
            for name, weight in [(n, w) for n in readers for w in weights]:
                reader = ExtractiveReader(name, settings=qa.settings, retrieval_weight=weight).load()
                top1 = topk = 0
                for item, found in zip(questions, passages, strict=True):
                    answers = reader.read(item["question"], found, top_n=top_k).answers
                    hits = [_hit(item["answer"], a.text) for a in answers]
                    top1 += bool(hits[:1] and hits[0])
                    topk += any(hits)
                    if show:
                        mark = "ok" if hits[:1] and hits[0] else "--"
                        print(f"{mark} {item['question'][:60]!r} expected {item['answer']!r}: "
                              f"{[a.text for a in answers]}")
                rows.append({"reader": name, "retrieval_weight": reader.params.retrieval_weight,
                             "questions": len(questions), "top1": top1, f"top{top_k}": topk})
        finally:
            qa.close()
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("readers", nargs="*", help="reader model folders or names (default: the packaged reader)")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--show", action="store_true", help="print every question's answers")
    p.add_argument("--retrieval-weights", type=float, nargs="+", metavar="W",
                   help="rank answers with each of these retrieval weights (default: the setting's)")
    p.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = p.parse_args()
    readers = args.readers or [load_settings().resolved_reader_model]
    rows = run(readers, args.top_k, args.show, args.retrieval_weights or [None])
    print(f"{'reader':<52} {'weight':>7} {'right at 1':>10} {'in top ' + str(args.top_k):>10}")
    for r in rows:
        print(f"{r['reader'][-52:]:<52} {r['retrieval_weight']:>7g} {r['top1']:>7}/{r['questions']:<2} "
              f"{r[f'top{args.top_k}']:>7}/{r['questions']:<2}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
