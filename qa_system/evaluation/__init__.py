"""Evaluation: SQuAD EM/F1 metrics (pure, no models)."""

from .squad_metrics import (
    QuestionScore,
    SquadScores,
    evaluate,
    exact_match,
    f1_score,
    normalize_answer,
    score_question,
)

__all__ = [
    "QuestionScore",
    "SquadScores",
    "evaluate",
    "exact_match",
    "f1_score",
    "normalize_answer",
    "score_question",
]
