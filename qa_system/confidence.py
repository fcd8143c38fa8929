"""How likely an answer is right: a calibrated probability from the reader's and the retriever's
evidence together, and the answer / no-answer decision made on it.

The reader's own no-answer rule compares its best span's score with its "no answer" score. That
margin knows only the passages it was handed: over a corpus where nothing fits the question (an
off-topic or nonsense question), the best of ten unrelated passages still gets a span, and the
margin often clears the threshold. The retrieval scores say what the reader cannot: how near the
passages are to the question at all. :class:`ConfidenceModel` is a logistic regression over
:data:`FEATURES` of an answer, fitted on development questions run through the whole pipeline
(answerable ones, unanswerable ones and questions about other corpora:
``qa_system.evaluation.confidence_fit``); its output is the probability that the answer is right
(SQuAD F1 of at least 0.5 against a gold answer), and a question is answered when its best
answer's probability reaches the model's ``threshold``. The fit is stored in the reader folder's
``qa_system_reader.json`` (key ``confidence``) with the embedding model it was fitted with: the
cosines are that model's, so another embedder falls back to the reader's margin rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .retrieval.fusion import query_terms
from .types import Answer, Passage

#: What the probability is computed from, in this order (see :func:`answer_features`).
FEATURES = ("margin", "answer_cosine", "best_cosine", "term_coverage", "long_passage")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def answer_features(question: str, answer: Answer, passages: Sequence[Passage], no_answer_score: float,
                    long_passage: bool) -> list[float]:
    """The evidence for one answer:

    - ``margin``: the reader's score for the span less its "no answer" score;
    - ``answer_cosine``: the cosine of the question with the answer's passage;
    - ``best_cosine``: the best cosine of any passage retrieved for the question;
    - ``term_coverage``: the share of the question's words (stopwords left out) found in the
      answer's passage, 0 for a question with no such word (punctuation, stopwords only);
    - ``long_passage``: 1 when the answer's passage was read in several windows.

    Cosines fall back to ``Passage.score`` when the retriever gave no ``dense_score``."""
    def cosine(p: Passage) -> float:
        return float(p.dense_score if p.dense_score is not None else p.score)

    own = next((p for p in passages if p.chunk_id == answer.chunk_id), None)
    terms = query_terms(question)
    words = set(_WORD.findall(own.text.lower())) if own is not None else set()
    coverage = sum(t in words for t in terms) / len(terms) if terms else 0.0
    return [
        float(answer.score - no_answer_score),
        cosine(own) if own is not None else 0.0,
        max((cosine(p) for p in passages), default=0.0),
        coverage,
        1.0 if long_passage else 0.0,
    ]


@dataclass(frozen=True)
class ConfidenceModel:
    """``P(right) = sigmoid(bias + weights . (x - mean) / scale)`` over :data:`FEATURES`; answer
    when the best answer's probability is at least ``threshold``. ``embedding_model``: the
    embedder whose cosines it was fitted on."""

    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float
    embedding_model: str
    features: tuple[str, ...] = FEATURES

    def __post_init__(self) -> None:
        n = len(self.features)
        if self.features != FEATURES:
            raise ConfigError(f"confidence model features {list(self.features)} are not {list(FEATURES)}")
        if not (len(self.weights) == len(self.mean) == len(self.scale) == n):
            raise ConfigError(f"confidence model needs {n} weights, means and scales")
        numbers = (*self.weights, self.bias, *self.mean, *self.scale, self.threshold)
        if not all(math.isfinite(v) for v in numbers) or any(s <= 0 for s in self.scale):
            raise ConfigError("confidence model: numbers must be finite and scales positive")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"confidence threshold must be in [0, 1], got {self.threshold}")

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        x = (np.asarray(rows, dtype=np.float64).reshape(-1, len(self.features)) - self.mean) / self.scale
        return _sigmoid(x @ np.asarray(self.weights) + self.bias)

    def probability(self, features: Sequence[float]) -> float:
        return float(self.probabilities(np.asarray([features]))[0])

    def to_dict(self) -> dict[str, object]:
        return {"features": list(self.features), "weights": list(self.weights), "bias": self.bias,
                "mean": list(self.mean), "scale": list(self.scale), "threshold": self.threshold,
                "embedding_model": self.embedding_model}

    @classmethod
    def from_dict(cls, raw: Mapping[str, object], where: str = "confidence") -> ConfidenceModel:
        try:
            return cls(weights=tuple(float(v) for v in raw["weights"]), bias=float(raw["bias"]),  # type: ignore[union-attr]
                       mean=tuple(float(v) for v in raw["mean"]), scale=tuple(float(v) for v in raw["scale"]),  # type: ignore[union-attr]
                       threshold=float(raw["threshold"]), embedding_model=str(raw["embedding_model"]),  # type: ignore[arg-type]
                       features=tuple(str(f) for f in raw.get("features", FEATURES)))  # type: ignore[union-attr]
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{where}: not a confidence model ({e!r})") from e


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_logistic(rows: np.ndarray, labels: np.ndarray, *, l2: float = 1e-2, iterations: int = 50,
                 ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Logistic regression by Newton's method on standardised features, with an L2 penalty on
    the weights (not the bias). Returns (weights, bias, mean, scale)."""
    x = np.asarray(rows, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError("rows must be (n, features) with one label per row")
    if y.min() == y.max():
        raise ValueError("labels must hold both right and wrong answers")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    design = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    theta = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2 * len(x))
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = _sigmoid(design @ theta)
        gradient = design.T @ (p - y) + penalty * theta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty) + 1e-9 * np.eye(len(theta))
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta[:-1], float(theta[-1]), mean, scale


def expected_calibration_error(probabilities: Sequence[float], right: Sequence[bool], bins: int = 10) -> float:
    """ECE: the mean over equal-width probability bins of |accuracy - mean probability|, each
    bin weighted by its share of the answers."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(right, dtype=np.float64)
    if len(p) == 0:
        return 0.0
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    return float(total)


@dataclass(frozen=True)
class TradeOff:
    """At one threshold: shares of all questions answered right, answered wrong, abstained; and
    the SQuAD 2.0 F1 (an abstention on an unanswerable question scores 1)."""

    threshold: float
    answered_right: float
    answered_wrong: float
    abstained: float
    f1: float


def trade_off(probabilities: Sequence[float], f1_if_answered: Sequence[float], answerable: Sequence[bool],
              threshold: float) -> TradeOff:
    """Answer where the probability is at least ``threshold``. ``f1_if_answered``: each question's
    F1 were its best answer given (0 for an unanswerable one); right means F1 >= 0.5."""
    p = np.asarray(probabilities, dtype=np.float64)
    f1 = np.asarray(f1_if_answered, dtype=np.float64)
    has = np.asarray(answerable, dtype=bool)
    answered = p >= threshold
    n = max(len(p), 1)
    scores = np.where(answered, f1, np.where(has, 0.0, 1.0))
    return TradeOff(threshold, float((answered & (f1 >= 0.5)).sum() / n), float((answered & (f1 < 0.5)).sum() / n),
                    float((~answered).sum() / n), float(scores.mean()) if len(p) else 0.0)


def best_threshold(probabilities: Sequence[float], f1_if_answered: Sequence[float],
                   answerable: Sequence[bool]) -> TradeOff:
    """The threshold with the best SQuAD 2.0 F1 among every observed probability (and 1.0:
    never answer); ties go to the lower threshold (more answers)."""
    candidates = sorted({*(float(v) for v in probabilities), 1.0})
    best: TradeOff | None = None
    for t in candidates:
        point = trade_off(probabilities, f1_if_answered, answerable, t)
        if best is None or point.f1 > best.f1 + 1e-12:
            best = point
    assert best is not None
    return best
