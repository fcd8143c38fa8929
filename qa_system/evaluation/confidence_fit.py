"""Pipeline questions for fitting and checking the answer confidence (``qa_system.confidence``).

A split (``dev`` to fit, ``test`` to report) is a store and questions run through the whole
pipeline with the product's settings:

- the store: the SQuAD v2.0 dev paragraphs of the split's articles (``squad_v2_split``, the
  reader recipe's split, so ``test`` is the reader's held-out articles), plus paragraphs of SQuAD
  v1.1 train articles as background, so the store is thousands of chunks like a real one;
- ``answerable`` and ``unanswerable``: those articles' SQuAD v2.0 questions;
- ``off-topic``: questions of other collections (SubjQA reviews, FriendsQA dialogue, Natural
  Questions, privacy policies) that the store cannot answer, split between dev and test by a hash
  of the question;
- ``nonsense``: punctuation, a stray letter, keyboard noise.

Every question gets its best answer's features and that answer's F1 (0 for a question that has
no answer in the store).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..confidence import (
    ConfidenceModel,
    TradeOff,
    answer_features,
    expected_calibration_error,
    fit_logistic,
    trade_off,
)
from ..errors import InputError
from ..qa_datasets import QAExample, load_squad_json, load_subjqa_csv
from ..training.recipe import squad_v2_split
from .open_squad import CorpusEntry, index_corpus, text_key
from .squad_metrics import f1_score, max_over_gold

KINDS = ("answerable", "unanswerable", "off-topic", "nonsense")
NONSENSE = ("?", "???", "...", "!!!", "-", "a", "x?", "asdf", "qwertyuiop", "lorem ipsum", "123", "@@@",
            "what", "the the the", "zzz?", "?!?!", "hm", "ok", "#", "jjjj kkkk")
_BATCH = 8


@dataclass(frozen=True)
class PipelineQuestion:
    id: str
    kind: str
    question: str
    answers: tuple[str, ...]  # gold texts; none: no answer in the store


@dataclass(frozen=True)
class PipelineRow:
    question: PipelineQuestion
    features: tuple[float, ...] | None  # None: the pipeline returned no answer at all
    f1: float  # the best answer's F1 (0 when none, or for a question without an answer)
    margin_rule_answers: bool  # what the reader's margin rule decided

    @property
    def answerable(self) -> bool:
        return bool(self.question.answers)


def _hash_split(text: str) -> str:
    return "test" if int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % 2 else "dev"


def split_data(datasets_dir: str | Path, split: str, *, questions: int, off_topic: int, background: int,
               seed: int = 0) -> tuple[list[CorpusEntry], list[PipelineQuestion]]:
    """The corpus and questions of ``split`` (``dev`` or ``test``); sizes are caps."""
    if split not in ("dev", "test"):
        raise InputError(f"split must be dev or test, got {split!r}")
    root = Path(datasets_dir)
    rng = random.Random(seed)
    squad = [e for e in load_squad_json(root / "squad" / "dev-v2.0.json") if squad_v2_split(e.group) == split]
    if not squad:
        raise InputError(f"{root}: no SQuAD v2.0 dev articles in split {split!r}")
    entries = _paragraphs(squad, "squad-v2")
    train = load_squad_json(root / "squad" / "train-v1.1.json")
    titles = sorted({e.group for e in train if _hash_split(e.group) == split})
    rng.shuffle(titles)
    chosen: list[QAExample] = []
    for title in titles:
        chosen += [e for e in train if e.group == title]
        if len({e.context for e in chosen}) >= background:
            break
    entries += _paragraphs(chosen, "squad-train")[:background]

    sampled = rng.sample(squad, min(questions, len(squad)))
    items = [PipelineQuestion(e.id, "unanswerable" if e.is_impossible else "answerable", e.question,
                              tuple(a.text for a in e.answers)) for e in sampled]
    items += rng.sample(_off_topic_pool(root, split), off_topic)
    items += [PipelineQuestion(f"nonsense-{i}", "nonsense", q, ()) for i, q in enumerate(NONSENSE)]
    return entries, items


def _paragraphs(examples: Sequence[QAExample], prefix: str) -> list[CorpusEntry]:
    seen: dict[str, CorpusEntry] = {}
    for e in examples:
        key = f"{prefix}-{text_key(e.context)}"
        seen.setdefault(key, CorpusEntry(key=key, text=e.context, title=e.group))
    return list(seen.values())


def _off_topic_pool(root: Path, split: str) -> list[PipelineQuestion]:
    """Questions of other collections, in ``split`` by a hash of their text."""
    pool: list[PipelineQuestion] = []
    sources = [root / "subjqa" / d / f for d in ("electronics", "grocery", "restaurants", "books", "movies",
                                                 "tripadvisor") for f in ("train.csv", "dev.csv")]
    for path in sources:
        if path.is_file():
            pool += [PipelineQuestion(f"subjqa-{e.id}", "off-topic", e.question, ()) for e in load_subjqa_csv(path)]
    for name in ("friendsqa/dev.json", "qed/train.json", "policyqa/dev.json"):
        if (root / name).is_file():
            pool += [PipelineQuestion(f"{name}-{e.id}", "off-topic", e.question, ())
                     for e in load_squad_json(root / name)]
    unique = {q.question.strip().lower(): q for q in pool if q.question.strip()}
    return sorted((q for k, q in unique.items() if _hash_split(k) == split), key=lambda q: q.id)


def run_split(qa: Any, entries: Sequence[CorpusEntry], questions: Sequence[PipelineQuestion], *,
              progress: bool = True) -> list[PipelineRow]:
    """Index ``entries`` into ``qa``'s (empty) store and run every question through ``ask_many``."""
    index_corpus(qa, entries, "confidence")
    rows: list[PipelineRow] = []
    bar = tqdm(total=len(questions), desc="pipeline", unit="q", disable=not progress, dynamic_ncols=True)
    for lo in range(0, len(questions), _BATCH):
        batch = list(questions[lo: lo + _BATCH])
        for q, result in zip(batch, qa.ask_many([q.question for q in batch]), strict=True):
            rows.append(row_of(q, result))
        bar.update(len(batch))
    bar.close()
    return rows


def row_of(question: PipelineQuestion, result: Any) -> PipelineRow:
    """One question's row from its ``AskResult``."""
    if not result.answers:
        return PipelineRow(question, None, 0.0, False)
    best = result.answers[0]
    features = answer_features(question.question, best, result.passages, result.no_answer_score,
                               bool(getattr(result, "long_passage", False)))
    f1 = max_over_gold(f1_score, best.text, list(question.answers)) if question.answers else 0.0
    return PipelineRow(question, tuple(features), float(f1), bool(result.margin_rule_answers))


#: The share of dev off-topic and nonsense questions the fitted threshold may answer.
OFF_TOPIC_RATE = 0.05


def fit_model(rows: Sequence[PipelineRow], embedding_model: str) -> tuple[ConfidenceModel, TradeOff]:
    """Fit the probability that the best answer is right (F1 >= 0.5) on ``rows``. The threshold is
    the lowest at which at most ``OFF_TOPIC_RATE`` of the off-topic and nonsense questions get an
    answer: off-topic questions answered are the failure it is for, and every lower threshold keeps
    more right answers. (The rule first written down, the best SQuAD 2.0 F1 over all rows, chose
    0.347 on a mix two thirds without answer: it left half the answerable dev questions, and 2 of
    the 20 sample-corpus questions, unanswered; see docs/reader.md.) Also returns the trade-off
    there over all rows."""
    scored = [r for r in rows if r.features is not None]
    x = np.asarray([r.features for r in scored])
    y = np.asarray([r.f1 >= 0.5 for r in scored], dtype=np.float64)
    weights, bias, mean, scale = fit_logistic(x, y)
    model = ConfidenceModel(tuple(float(w) for w in weights), bias, tuple(float(m) for m in mean),
                            tuple(float(s) for s in scale), 1.0, embedding_model)
    probabilities = np.asarray(probabilities_of(model, rows))
    off = np.asarray([r.question.kind in ("off-topic", "nonsense") for r in rows])
    if not off.any():
        raise InputError("the rows hold no off-topic or nonsense questions to fit the threshold on")
    threshold = next(t for t in sorted({*probabilities[off].tolist(), 1.0})
                     if (probabilities[off] >= t).mean() <= OFF_TOPIC_RATE)
    model = dataclasses.replace(model, threshold=float(threshold))
    return model, trade_off(probabilities, [r.f1 for r in rows], [r.answerable for r in rows], threshold)


def probabilities_of(model: ConfidenceModel, rows: Sequence[PipelineRow]) -> list[float]:
    """Each row's probability (0 where the pipeline gave no answer)."""
    return [model.probability(r.features) if r.features is not None else 0.0 for r in rows]


@dataclass(frozen=True)
class SplitReport:
    """The confidence rule against the reader's margin rule on one split, by kind of question."""

    rows: int
    ece: float
    by_kind: dict[str, dict[str, float]]  # kind -> {"n", "confidence_answers", "margin_answers", ...}
    confidence: TradeOff
    margin_rule: TradeOff
    curve: list[TradeOff]


def report(model: ConfidenceModel, rows: Sequence[PipelineRow]) -> SplitReport:
    probabilities = probabilities_of(model, rows)
    f1 = [r.f1 for r in rows]
    answerable = [r.answerable for r in rows]
    answered_rows = [(p, r) for p, r in zip(probabilities, rows, strict=True) if r.features is not None]
    ece = expected_calibration_error([p for p, _ in answered_rows], [r.f1 >= 0.5 for _, r in answered_rows])
    margin = [1.0 if r.margin_rule_answers else 0.0 for r in rows]
    by_kind: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        picked = [(p, r) for p, r in zip(probabilities, rows, strict=True) if r.question.kind == kind]
        if not picked:
            continue
        n = len(picked)
        by_kind[kind] = {
            "n": n,
            "confidence_answers": sum(p >= model.threshold for p, _ in picked) / n,
            "margin_answers": sum(r.margin_rule_answers for _, r in picked) / n,
            "confidence_f1": sum((r.f1 if p >= model.threshold else float(not r.answerable)) for p, r in picked) / n,
            "margin_f1": sum((r.f1 if r.margin_rule_answers else float(not r.answerable)) for _, r in picked) / n,
        }
    curve = [trade_off(probabilities, f1, answerable, t) for t in np.linspace(0.0, 1.0, 21)]
    return SplitReport(len(rows), ece, by_kind, trade_off(probabilities, f1, answerable, model.threshold),
                       trade_off(margin, f1, answerable, 0.5), curve)
