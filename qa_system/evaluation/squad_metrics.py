"""SQuAD v1.1 / v2.0 evaluation, following the behaviour of the official scripts.

- ``normalize_answer``: lower-case, drop ASCII punctuation, drop the articles a/an/the as whole
  words, collapse whitespace (in that order, as the official script).
- ``exact_match`` / ``f1_score`` compare one prediction with one gold answer; an empty answer
  (after normalisation) matches only another empty answer (the v2.0 rule for no-answer
  questions: both empty -> 1, one empty -> 0).
- ``max_over_gold`` takes the best score over a question's gold answers; gold answers that
  normalise to nothing are dropped, and a question with none left is a no-answer question
  whose only gold answer is "" (v2.0). On v1.1 data, where every question has a non-empty
  answer, this gives the v1.1 script's numbers.
- ``evaluate`` aggregates over questions. Scores are **fractions in [0, 1]**, not the official
  percentages; multiply by 100 to compare with published figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..answer_text import normalize_answer  # the official normalisation, shared with the reader


def answer_tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when both normalise to the same string (two empty answers match), else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-overlap F1 of the normalised answers; both empty -> 1.0, one empty -> 0.0."""
    predicted = answer_tokens(prediction)
    expected = answer_tokens(gold)
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(expected)
    return 2 * precision * recall / (precision + recall)


def scorable_gold(gold_answers: Sequence[str]) -> list[str]:
    """Gold answers that survive normalisation, or ``[""]`` for a no-answer question."""
    kept = [g for g in gold_answers if normalize_answer(g)]
    return kept if kept else [""]


def max_over_gold(
    metric: Callable[[str, str], float], prediction: str, gold_answers: Sequence[str]
) -> float:
    return max(metric(prediction, gold) for gold in scorable_gold(gold_answers))


def has_answer(gold_answers: Sequence[str]) -> bool:
    """A question is answerable when it has at least one non-blank gold answer."""
    return any(g.strip() for g in gold_answers)


@dataclass(frozen=True)
class QuestionScore:
    exact_match: float
    f1: float
    has_answer: bool


@dataclass(frozen=True)
class SquadScores:
    """Aggregate scores as fractions in [0, 1]; a breakdown over no questions is ``None``."""

    exact_match: float
    f1: float
    total: int
    has_answer_exact_match: float | None
    has_answer_f1: float | None
    has_answer_total: int
    no_answer_exact_match: float | None
    no_answer_f1: float | None
    no_answer_total: int
    missing_predictions: int

    def as_percentages(self) -> dict[str, float | int | None]:
        """The official script's keys and 0-100 scale (``exact``, ``f1``, ``HasAns_exact``...)."""

        def pct(x: float | None) -> float | None:
            return None if x is None else 100.0 * x

        return {
            "exact": pct(self.exact_match),
            "f1": pct(self.f1),
            "total": self.total,
            "HasAns_exact": pct(self.has_answer_exact_match),
            "HasAns_f1": pct(self.has_answer_f1),
            "HasAns_total": self.has_answer_total,
            "NoAns_exact": pct(self.no_answer_exact_match),
            "NoAns_f1": pct(self.no_answer_f1),
            "NoAns_total": self.no_answer_total,
        }


def score_question(prediction: str, gold_answers: Sequence[str]) -> QuestionScore:
    """EM and F1 of one prediction ("" = predicted no answer) against a question's gold answers."""
    return QuestionScore(
        exact_match=max_over_gold(exact_match, prediction, gold_answers),
        f1=max_over_gold(f1_score, prediction, gold_answers),
        has_answer=has_answer(gold_answers),
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def evaluate(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> SquadScores:
    """Score ``predictions`` (question id -> answer text, "" for no answer) against ``gold``
    (question id -> gold answer texts, empty for a no-answer question).

    Every gold question counts; one without a prediction scores 0 (as in the v1.1 script) and is
    counted in ``missing_predictions``. Predictions for unknown ids are ignored.
    """
    scores: dict[str, QuestionScore] = {}
    missing = 0
    for qid, answers in gold.items():
        if qid in predictions:
            scores[qid] = score_question(predictions[qid], answers)
        else:
            missing += 1
            scores[qid] = QuestionScore(0.0, 0.0, has_answer(answers))
    answerable = [s for s in scores.values() if s.has_answer]
    unanswerable = [s for s in scores.values() if not s.has_answer]
    every = list(scores.values())
    overall_em = _mean([s.exact_match for s in every])
    overall_f1 = _mean([s.f1 for s in every])
    return SquadScores(
        exact_match=overall_em if overall_em is not None else 0.0,
        f1=overall_f1 if overall_f1 is not None else 0.0,
        total=len(every),
        has_answer_exact_match=_mean([s.exact_match for s in answerable]),
        has_answer_f1=_mean([s.f1 for s in answerable]),
        has_answer_total=len(answerable),
        no_answer_exact_match=_mean([s.exact_match for s in unanswerable]),
        no_answer_f1=_mean([s.f1 for s in unanswerable]),
        no_answer_total=len(unanswerable),
        missing_predictions=missing,
    )
