"""The recipe of the default reader: which files of ``../shared/datasets`` it trains on and
which articles / products are held out for threshold fitting and for evaluation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .data import QAExample, dedupe_by_id, load_squad_json, load_subjqa_csv, split_by_group

SUBJQA_TRAIN_DOMAINS = ("electronics", "grocery", "restaurants", "tripadvisor")
SUBJQA_DEV_DOMAINS = ("electronics", "grocery", "restaurants", "tripadvisor", "books", "movies")
SQUAD_SOURCES = (
    "squadshifts/amazon_reviews_v1.0.json",
    "squadshifts/new_wiki_v1.0.json",
    "squadshifts/reddit_v1.0.json",
    "policyqa/dev.json",
)


def _bucket(title: str) -> int:
    return int(hashlib.sha256(title.encode("utf-8")).hexdigest(), 16) % 100


def squad_v2_split(title: str) -> str:
    """SQuAD v2.0/v1.1 dev articles: ~20% held out for evaluation ("test"), ~10% for
    fitting the no-answer threshold ("dev"), the rest trains. Stable across runs."""
    b = _bucket(title)
    return "test" if b < 20 else "dev" if b < 30 else "train"


@dataclass(frozen=True)
class ReaderData:
    train: list[tuple[QAExample, int]]  # example, how many distinct gold spans to train on
    threshold_dev: list[QAExample]
    squad_test: list[QAExample]
    subjqa_test: list[QAExample]


def load_default_reader_data(datasets_dir: str | Path, subjqa_repeat: int = 2) -> ReaderData:
    root = Path(datasets_dir)
    v1 = load_squad_json(root / "squad/dev-v1.1.json")
    v2 = load_squad_json(root / "squad/dev-v2.0.json")
    squad = dedupe_by_id(v2 + v1)  # v2 shares paragraphs and answerable ids with v1.1
    split = {e.group: squad_v2_split(e.group) for e in squad}
    train: list[tuple[QAExample, int]] = [(e, 1) for e in squad if split[e.group] == "train"]
    threshold_dev = [e for e in squad if split[e.group] == "dev"]
    squad_test = [e for e in v2 if split[e.group] == "test"]
    for rel in SQUAD_SOURCES:
        train.extend((e, 1) for e in load_squad_json(root / rel))
    for domain in SUBJQA_TRAIN_DOMAINS:
        examples = load_subjqa_csv(root / "subjqa" / domain / "train.csv")
        train.extend((e, 3) for e in examples for _ in range(subjqa_repeat))
    for domain in SUBJQA_DEV_DOMAINS:
        threshold_dev.extend(load_subjqa_csv(root / "subjqa" / domain / "dev.csv"))
    subjqa_test = load_subjqa_csv(root / "subjqa/electronics/test.csv")
    seen = {_pair(e) for e, _ in train}
    # SubjQA's dev splits repeat some (question, review) pairs of train: not usable for fitting.
    threshold_dev = [e for e in threshold_dev if _pair(e) not in seen]
    _check_disjoint(seen, squad_test + subjqa_test)
    return ReaderData(train, threshold_dev, squad_test, subjqa_test)


def _pair(example: QAExample) -> tuple[str, str]:
    return example.question.strip().lower(), example.context


def _check_disjoint(seen: set[tuple[str, str]], held: list[QAExample]) -> None:
    """No evaluation question-context pair is trained on. (SubjQA's official splits share some
    reviews between train and test with different questions; that is the book's protocol.)"""
    leaked = sum(1 for e in held if _pair(e) in seen)
    if leaked:
        raise ValueError(f"{leaked} held-out question-context pairs are in the training data")
