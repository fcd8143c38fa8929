"""SQuAD v1.1/v2.0 JSON and SubjQA CSV as `QAExample`s: what training and evaluation read."""

from __future__ import annotations

import ast
import csv
import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

SUBJQA_NO_ANSWER = "ANSWERNOTFOUND"


@dataclass(frozen=True)
class GoldAnswer:
    text: str
    start: int


@dataclass(frozen=True)
class QAExample:
    """One question on one context. ``group`` is the unit held out together (article or product)."""

    id: str
    group: str
    question: str
    context: str
    answers: tuple[GoldAnswer, ...]

    @property
    def is_impossible(self) -> bool:
        return not self.answers


def load_squad_json(path: str | Path) -> list[QAExample]:
    """SQuAD v1.1 or v2.0 JSON. Answers whose offset is wrong are re-located by first occurrence."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        articles = payload["data"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a SQuAD-format JSON file ({e})") from e
    examples: list[QAExample] = []
    for article in articles:
        title = str(article.get("title", ""))
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                impossible = bool(qa.get("is_impossible", False))
                answers: list[GoldAnswer] = []
                for ans in [] if impossible else qa.get("answers", []):
                    answer = _locate(context, ans["text"], int(ans.get("answer_start", -1)))
                    if answer is not None and answer not in answers:
                        answers.append(answer)
                if not impossible and not answers:
                    continue  # an answerable question whose answer text is not in its context
                examples.append(QAExample(str(qa["id"]), title, qa["question"], context, tuple(answers)))
    return examples


def _locate(context: str, text: str, start: int) -> GoldAnswer | None:
    if not text.strip():
        return None
    if start >= 0 and context[start : start + len(text)] == text:
        return GoldAnswer(text, start)
    found = context.find(text)
    return GoldAnswer(text, found) if found >= 0 else None


def strip_subjqa_review(review: str) -> str:
    """Every SubjQA review ends with the literal ' ANSWERNOTFOUND'; remove it."""
    suffix = " " + SUBJQA_NO_ANSWER
    return review[: -len(suffix)] if review.endswith(suffix) else review


def load_subjqa_csv(path: str | Path) -> list[QAExample]:
    """SubjQA CSV, one row per annotation: rows are grouped by question-review pair
    (``q_review_id``) and every annotated span becomes a gold answer. Gold text is
    ``review[start:end]`` from ``human_ans_indices``; a pair with no span is unanswerable."""
    path = Path(path)
    pairs: OrderedDict[str, dict] = OrderedDict()
    try:
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                key = row["q_review_id"]
                entry = pairs.setdefault(
                    key,
                    {"item": row["item_id"], "question": row["question"], "review": row["review"], "answers": []},
                )
                if row["human_ans_spans"].strip() == SUBJQA_NO_ANSWER:
                    continue
                start, end = ast.literal_eval(row["human_ans_indices"])
                text = row["review"][int(start) : int(end)]
                answer = GoldAnswer(text, int(start))
                if text.strip() and answer not in entry["answers"]:
                    entry["answers"].append(answer)
    except (OSError, KeyError, ValueError, SyntaxError) as e:
        raise InputError(f"{path}: not a SubjQA-format CSV file ({e})") from e
    examples = []
    for key, entry in pairs.items():
        context = strip_subjqa_review(entry["review"])
        answers = tuple(a for a in entry["answers"] if a.start + len(a.text) <= len(context))
        examples.append(QAExample(key, entry["item"], entry["question"], context, answers))
    return examples


def load_examples(path: str | Path) -> list[QAExample]:
    """Dispatch on the file type: ``.json`` is SQuAD format, ``.csv`` is SubjQA format."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return load_squad_json(path)
    if suffix == ".csv":
        return load_subjqa_csv(path)
    raise InputError(f"{path}: expected a SQuAD .json or a SubjQA .csv file")


def split_by_group(
    examples: Sequence[QAExample], held_out_groups: Iterable[str]
) -> tuple[list[QAExample], list[QAExample]]:
    held = set(held_out_groups)
    keep = [e for e in examples if e.group not in held]
    out = [e for e in examples if e.group in held]
    return keep, out


def merge_duplicates(examples: Iterable[QAExample]) -> list[QAExample]:
    """One example per id, in first-seen order. Copies of one question on one context (e.g. a
    SubjQA pair annotated in both train.csv and dev.csv) become one example whose gold answers
    are all of theirs: every annotated span is a gold answer, as within one CSV file. An id that
    comes back with another question or context is an InputError naming it: scoring keys gold
    answers by id, so two different examples under one id cannot both be scored."""
    merged: dict[str, QAExample] = {}
    for e in examples:
        first = merged.get(e.id)
        if first is None:
            merged[e.id] = e
            continue
        if (first.question, first.context) != (e.question, e.context):
            raise InputError(f"question id {e.id!r} is used twice for different questions or contexts")
        answers = first.answers + tuple(a for a in e.answers if a not in first.answers)
        merged[e.id] = QAExample(first.id, first.group, first.question, first.context, answers)
    return list(merged.values())


def dedupe_by_id(examples: Iterable[QAExample]) -> list[QAExample]:
    seen: set[str] = set()
    unique = []
    for e in examples:
        if e.id not in seen:
            seen.add(e.id)
            unique.append(e)
    return unique
