"""The answer confidence: features, the logistic fit, calibration error, thresholds, the stored model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qa_system.confidence import (
    FEATURES,
    ConfidenceModel,
    answer_features,
    best_threshold,
    expected_calibration_error,
    fit_logistic,
    trade_off,
)
from qa_system.errors import ConfigError
from qa_system.reader.model_config import (
    ReaderModelConfig,
    load_confidence_model,
    load_reader_config,
    save_confidence_model,
    save_reader_config,
)
from qa_system.service.presentation import probability_words
from qa_system.types import Answer, Passage


def _passage(chunk_id: int, text: str, score: float, dense: float | None) -> Passage:
    return Passage(chunk_id=chunk_id, document_id=f"d{chunk_id}", source="s", title=None, text=text, start=0,
                   end=len(text), score=score, dense_score=dense)


def _answer(chunk_id: int, score: float) -> Answer:
    return Answer(text="x", score=score, document_id=f"d{chunk_id}", source="s", title=None, start=0, end=1,
                  context="x", chunk_id=chunk_id)


def test_features_use_the_answers_own_passage_and_the_cosines() -> None:
    passages = [_passage(1, "Paris is the capital of France.", 0.9, 0.6),
                _passage(2, "Berlin has many museums.", 0.5, 0.7)]
    features = answer_features("What is the capital of France?", _answer(1, 9.0), passages, 2.0, True)
    assert dict(zip(FEATURES, features, strict=True)) == {
        "margin": 7.0, "answer_cosine": pytest.approx(0.6), "best_cosine": pytest.approx(0.7),
        "term_coverage": 1.0, "long_passage": 1.0}
    # half the question's words in the passage; without dense scores the retrieval score stands in
    other = answer_features("capital of Spain", _answer(2, 1.0), [_passage(2, "The capital.", 0.4, None)], 3.0, False)
    assert other == [-2.0, pytest.approx(0.4), pytest.approx(0.4), 0.5, 0.0]
    # a question with no words at all covers nothing
    assert answer_features("???", _answer(1, 1.0), passages, 0.0, False)[3] == 0.0


def test_logistic_fit_recovers_a_known_model() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    p = 1 / (1 + np.exp(-(1.5 * x[:, 0] - 2.0 * x[:, 1] + 0.5)))
    y = rng.random(4000) < p
    weights, bias, mean, scale = fit_logistic(x, y, l2=0.0)
    # the fit is on standardised features: undo it
    assert weights / scale == pytest.approx([1.5, -2.0], abs=0.2)
    assert bias - float(weights @ (mean / scale)) == pytest.approx(0.5, abs=0.15)
    with pytest.raises(ValueError, match="both"):
        fit_logistic(x, np.zeros(4000))


def test_calibration_error_is_zero_when_probabilities_match_and_large_when_not() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    right = rng.random(20000) < p
    assert expected_calibration_error(p, right) < 0.02
    assert expected_calibration_error(np.full(1000, 0.9), np.zeros(1000, dtype=bool)) == pytest.approx(0.9)


def test_threshold_trades_answers_for_abstentions() -> None:
    probabilities = [0.9, 0.8, 0.3, 0.2]
    f1 = [1.0, 0.0, 0.0, 0.0]  # the first is answerable and right; the others have no answer
    answerable = [True, False, False, False]
    every = trade_off(probabilities, f1, answerable, 0.0)
    assert (every.answered_right, every.answered_wrong, every.abstained) == (0.25, 0.75, 0.0)
    best = best_threshold(probabilities, f1, answerable)
    assert best.threshold == 0.9 and best.f1 == 1.0 and best.abstained == 0.75


def _model(**changes: object) -> ConfidenceModel:
    values = {"weights": (1.0, 2.0, 0.5, 1.0, -0.5), "bias": -1.0, "mean": (0.0,) * 5, "scale": (1.0,) * 5,
              "threshold": 0.4, "embedding_model": "emb"}
    values.update(changes)
    return ConfidenceModel(**values)  # type: ignore[arg-type]


def test_model_round_trips_through_the_reader_folder_and_keeps_the_other_keys(tmp_path) -> None:
    save_reader_config(tmp_path, ReaderModelConfig(no_answer_threshold=2.5))
    model = _model()
    save_confidence_model(tmp_path, model)
    assert load_confidence_model(tmp_path) == model
    assert load_reader_config(tmp_path).no_answer_threshold == 2.5
    # re-fitting the threshold keeps the confidence model
    save_reader_config(tmp_path, ReaderModelConfig(no_answer_threshold=3.0))
    assert load_confidence_model(tmp_path) == model
    assert 0.0 < model.probability([1, 0.5, 0.5, 1, 0]) < 1.0
    assert load_confidence_model(tmp_path / "nowhere") is None


def test_bad_models_are_refused_with_the_problem_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match="threshold"):
        _model(threshold=1.5)
    with pytest.raises(ConfigError, match="5 weights"):
        _model(weights=(1.0,))
    with pytest.raises(ConfigError, match="features"):
        _model(features=("margin",) * 5)
    (tmp_path / "qa_system_reader.json").write_text(json.dumps({"confidence": {"bias": 1}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="not a confidence model"):
        load_confidence_model(tmp_path)


def test_probability_words() -> None:
    assert probability_words(0.9, 0.4).words == "likely right (90%)"
    assert probability_words(0.9, 0.4, first=False).level == "medium"
    assert probability_words(0.5, 0.4).words == "maybe right (50%)"
    assert probability_words(0.2, 0.4).level == "low"
    assert probability_words(float("nan"), 0.4).level == "unknown"
