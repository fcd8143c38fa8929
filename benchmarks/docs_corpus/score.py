"""Score `qa-system ask --questions` JSON lines against questions.jsonl (answer text, source pattern).

An answer is right when it holds the expected text and is at most about four times as long, or
is a part of the expected text at least half its length (after lower-casing and dropping
backticks, quotes and asterisks). Usage: ``score.py questions.jsonl answers.jsonl``.
"""

from __future__ import annotations

import json
import re
import sys


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[`'\"*]", " ", text.lower()).split())


def is_right(answer: str, expected: str) -> bool:
    got = normalise(answer)
    if not got:
        return False
    if expected in got:
        return len(got) <= 4 * len(expected) + 20
    return got in expected and len(got) >= 0.5 * len(expected)


def main(questions_file: str, answers_file: str) -> None:
    with open(questions_file, encoding="utf-8") as f:
        questions = [json.loads(line) for line in f]
    with open(answers_file, encoding="utf-8") as f:
        outputs = [json.loads(line) for line in f]
    at1 = top3 = source1 = 0
    for question, output in zip(questions, outputs, strict=True):
        expected = normalise(question["answer"])
        answers = output["answers"]
        right = [is_right(a["text"], expected) for a in answers[:3]]
        source_ok = bool(answers) and re.search(question["source"], answers[0]["source"]) is not None
        at1 += bool(right and right[0])
        top3 += any(right)
        source1 += source_ok
        best = answers[0] if answers else {"text": "", "source": ""}
        mark = "R" if right and right[0] else ("3" if any(right) else "-")
        print(f"{mark} {'S' if source_ok else '-'} has_answer={output['has_answer']!s:5} | "
              f"{question['question'][:60]:60} | {best['text'][:50]!r} | {best['source'].split('/')[-1]}")
    n = len(questions)
    print(f"right at rank 1: {at1}/{n}; in the top 3: {top3}/{n}; right source at rank 1: {source1}/{n}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
