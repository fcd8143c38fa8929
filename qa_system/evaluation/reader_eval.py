"""Reader evaluation on gold contexts (SQuAD protocol) and no-answer threshold fitting.

Each question is read on its own gold context only; the prediction is the top-1 span, or ""
when the reader's best span does not beat its no-answer score by the threshold. A reader may
have two thresholds: one for contexts read in one window, one for longer contexts read in
several (``ReaderRun.long``); ``fit_thresholds`` fits both, ``fit_threshold`` one for all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tqdm.auto import tqdm

from ..errors import InputError
from ..qa_datasets import QAExample
from ..types import Passage, ReaderResult
from .squad_metrics import SquadScores, evaluate, f1_score, max_over_gold


@dataclass(frozen=True)
class ReaderRun:
    """What the reader said about each example: best span text and its margin over no-answer."""

    ids: tuple[str, ...]
    best_text: tuple[str, ...]
    margin: tuple[float, ...]  # best span score - no-answer score (-inf when no span)
    long: tuple[bool, ...] = ()  # the context was read in several windows (empty: none was)

    def is_long(self, j: int) -> bool:
        return bool(self.long) and self.long[j]

    def threshold_of(self, j: int, threshold: float, long_threshold: float | None) -> float:
        """The threshold that decides question ``j``."""
        return long_threshold if long_threshold is not None and self.is_long(j) else threshold

    def subset(self, keep: Sequence[int]) -> ReaderRun:
        return ReaderRun(tuple(self.ids[j] for j in keep), tuple(self.best_text[j] for j in keep),
                         tuple(self.margin[j] for j in keep), tuple(self.is_long(j) for j in keep))


@dataclass(frozen=True)
class PartScores:
    """One part of a dev set (one file, or one source of a recipe's dev set) read by one reader."""

    questions: int
    has_answer: int
    f1: float  # at the threshold
    has_answer_f1_answer_all: float | None  # the answerable questions, the best span always taken


@dataclass(frozen=True)
class ThresholdFit:
    threshold: float
    f1: float  # on all the examples, each at its own threshold
    examples: int
    has_answer: int
    parts: Mapping[str, PartScores] = field(default_factory=dict)
    long_threshold: float | None = None  # for contexts read in several windows (None: ``threshold``)
    long_examples: int = 0  # how many of the examples were


#: ``fit_thresholds`` fits a long-context threshold of its own only from at least this many
#: long-context questions; with fewer, one threshold is fitted for all.
MIN_LONG_EXAMPLES = 100


def gold_passage(example: QAExample) -> Passage:
    return Passage(chunk_id=-1, document_id=example.id, source=example.group, title=example.group,
                   text=example.context, start=0, end=len(example.context), score=1.0)


def run_reader(reader: Any, examples: Sequence[QAExample], *, batch_questions: int = 16,
               progress: bool = False) -> ReaderRun:
    texts: list[str] = []
    margins: list[float] = []
    long: list[bool] = []
    bar = tqdm(total=len(examples), desc="read", unit="q", disable=not progress, dynamic_ncols=True)
    for lo in range(0, len(examples), batch_questions):
        group = examples[lo : lo + batch_questions]
        results: list[ReaderResult] = reader.read_batch(
            [e.question for e in group], [[gold_passage(e)] for e in group], top_n=1
        )
        for result in results:
            long.append(result.long_passage)
            if result.answers:
                texts.append(result.answers[0].text)
                margins.append(result.answers[0].score - result.no_answer_score)
            else:
                texts.append("")
                margins.append(float("-inf"))
        bar.update(len(group))
    bar.close()
    return ReaderRun(tuple(e.id for e in examples), tuple(texts), tuple(margins), tuple(long))


def predictions(run: ReaderRun, threshold: float, long_threshold: float | None = None) -> dict[str, str]:
    return {i: (t if m > run.threshold_of(j, threshold, long_threshold) else "")
            for j, (i, t, m) in enumerate(zip(run.ids, run.best_text, run.margin, strict=True))}


def gold_answers(examples: Sequence[QAExample]) -> dict[str, list[str]]:
    gold = {e.id: [a.text for a in e.answers] for e in examples}
    if len(gold) != len(examples):
        # keyed by id, two examples under one id would be scored against one of them, twice
        raise InputError(f"{len(examples) - len(gold)} question ids occur more than once: "
                         "merge the examples first (qa_system.qa_datasets.merge_duplicates)")
    return gold


def score_run(run: ReaderRun, examples: Sequence[QAExample], threshold: float,
              long_threshold: float | None = None) -> SquadScores:
    return evaluate(gold_answers(examples), predictions(run, threshold, long_threshold))


def fit_threshold(run: ReaderRun, examples: Sequence[QAExample]) -> ThresholdFit:
    """The no-answer threshold that maximises F1 on ``examples`` (SQuAD 2.0's best_f1_thresh
    search: every distinct margin is a candidate; predicting "" scores 1 on unanswerable
    questions and 0 on answerable ones)."""
    gold = gold_answers(examples)
    span_f1 = [max_over_gold(f1_score, t, gold[i]) if gold[i] else 0.0
               for i, t in zip(run.ids, run.best_text, strict=True)]
    null_f1 = [0.0 if gold[i] else 1.0 for i in run.ids]
    order = sorted(range(len(run.ids)), key=lambda j: run.margin[j], reverse=True)
    # threshold just below margin m answers every question with margin > threshold.
    best_total = sum(null_f1)
    best_threshold = max((m for m in run.margin if m != float("inf")), default=0.0) + 1e-6
    total = best_total
    for j in order:
        if run.margin[j] == float("-inf"):
            break
        total += span_f1[j] - null_f1[j]
        if total > best_total:
            best_total = total
            best_threshold = run.margin[j] - 1e-6
    n = max(1, len(run.ids))
    return ThresholdFit(best_threshold, best_total / n, len(run.ids), sum(1 for i in run.ids if gold[i]))


def fit_thresholds(run: ReaderRun, examples: Sequence[QAExample], *,
                   min_long: int = MIN_LONG_EXAMPLES) -> ThresholdFit:
    """Two no-answer thresholds, each fitted as ``fit_threshold`` does: one on the questions whose
    context was read in one window, one on those read in several (``ReaderRun.long``), which
    need a larger margin (a best span over more windows is more often high by chance). With
    fewer than ``min_long`` long-context questions, or none read in one window, one threshold
    is fitted on all (``long_threshold`` None). ``f1`` is over all the examples."""
    long = [j for j in range(len(run.ids)) if run.is_long(j)]
    short = [j for j in range(len(run.ids)) if not run.is_long(j)]
    if len(long) < min_long or not short:
        return replace(fit_threshold(run, examples), long_examples=len(long))
    fits = [fit_threshold(run.subset(keep), [examples[j] for j in keep]) for keep in (short, long)]
    f1 = (fits[0].f1 * len(short) + fits[1].f1 * len(long)) / len(run.ids)
    return ThresholdFit(fits[0].threshold, f1, len(run.ids), fits[0].has_answer + fits[1].has_answer,
                        long_threshold=fits[1].threshold, long_examples=len(long))


def score_parts(run: ReaderRun, examples: Sequence[QAExample], threshold: float,
                parts: Mapping[str, Collection[str]], long_threshold: float | None = None) -> dict[str, PartScores]:
    """Each part's scores (a part: a name and the ids of its questions; ids of no question
    are ignored, an empty part is left out). ``has_answer_f1_answer_all`` is the span quality
    alone: the best span of every answerable question, whatever its margin."""
    gold = gold_answers(examples)
    at = {i: (t, m > run.threshold_of(j, threshold, long_threshold))  # best span, and whether it is given
          for j, (i, t, m) in enumerate(zip(run.ids, run.best_text, run.margin, strict=True))}
    out: dict[str, PartScores] = {}
    for name, ids in parts.items():
        ids = [i for i in ids if i in at]
        if not ids:
            continue
        answerable = [i for i in ids if gold[i]]
        span_f1 = {i: max_over_gold(f1_score, at[i][0], gold[i]) for i in answerable}
        answered = list(span_f1.values())
        at_threshold = [(span_f1[i] if at[i][1] else 0.0) if gold[i] else float(not at[i][1])
                        for i in ids]
        out[name] = PartScores(len(ids), len(answered), sum(at_threshold) / len(ids),
                               sum(answered) / len(answered) if answered else None)
    return out
