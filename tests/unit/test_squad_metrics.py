"""SQuAD metrics on hand-made cases whose expected values follow the official v1.1/v2.0 scripts."""

from __future__ import annotations

import pytest

from qa_system.evaluation.squad_metrics import (
    SquadScores,
    evaluate,
    exact_match,
    f1_score,
    normalize_answer,
    scorable_gold,
    score_question,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Quick, brown fox!", "quick brown fox"),
        ("  A   cat \n sat  ", "cat sat"),
        ("an apple a day", "apple day"),
        ("Anna and the theatre", "anna and theatre"),  # articles only as whole words
        ("U.S.A.", "usa"),
        ("don't stop", "dont stop"),
        ("the-end", "theend"),  # punctuation goes first: "-" joins the words, no article left
    ],
)
def test_normalize_answer_ascii(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Café", "café"),
        ("ÉCOLE Normale", "école normale"),
        ("naïve—test", "naïve—test"),  # an em dash is not in string.punctuation
        ("«the» end", "« » end"),  # guillemets stay; "the" between them is a whole word
        ("Ünïcödé  text", "ünïcödé text"),
    ],
)
def test_normalize_answer_unicode(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_exact_match_ignores_case_articles_and_punctuation() -> None:
    assert exact_match("the Eiffel Tower", "Eiffel Tower.") == 1.0
    assert exact_match("Eiffel Tower", "Tower") == 0.0


def test_f1_token_overlap() -> None:
    assert f1_score("Eiffel Tower in Paris", "the Eiffel Tower") == pytest.approx(2 / 3)
    assert f1_score("x y y", "y y z") == pytest.approx(2 / 3)  # counts repeated tokens once each
    assert f1_score("Paris", "London") == 0.0
    assert f1_score("Paris", "paris!") == 1.0


@pytest.mark.parametrize(
    ("prediction", "gold", "em", "f1"),
    [
        ("", "", 1.0, 1.0),  # both empty: a correct no-answer
        ("", "Paris", 0.0, 0.0),
        ("Paris", "", 0.0, 0.0),
        ("the", "", 1.0, 1.0),  # "the" normalises to nothing
        ("...", "a", 1.0, 1.0),
    ],
)
def test_empty_answers(prediction: str, gold: str, em: float, f1: float) -> None:
    assert exact_match(prediction, gold) == em
    assert f1_score(prediction, gold) == f1


def test_max_over_gold_answers() -> None:
    score = score_question("Broncos", ["Denver Broncos", "The Denver Broncos", "Broncos!"])
    assert score.exact_match == 1.0 and score.f1 == 1.0 and score.has_answer
    score = score_question("Broncos", ["Denver Broncos", "the Denver Broncos"])
    assert score.exact_match == 0.0
    assert score.f1 == pytest.approx(2 / 3)


def test_no_answer_questions() -> None:
    assert score_question("", []) == score_question("", [])
    right = score_question("", [])
    wrong = score_question("Paris", [])
    assert (right.exact_match, right.f1, right.has_answer) == (1.0, 1.0, False)
    assert (wrong.exact_match, wrong.f1) == (0.0, 0.0)


def test_gold_answers_that_normalise_to_nothing_are_dropped() -> None:
    assert scorable_gold(["the", "Paris"]) == ["Paris"]
    assert scorable_gold(["the", "!"]) == [""]
    assert scorable_gold([]) == [""]
    # official v2: such a question still counts as answerable, scored against ""
    score = score_question("", ["the"])
    assert score.has_answer and score.exact_match == 1.0


def test_evaluate_breakdown_in_fractions() -> None:
    gold = {
        "q1": ["Denver Broncos"],
        "q2": ["Paris", "the city of Paris"],
        "q3": [],
        "q4": [],
    }
    predictions = {"q1": "Denver Broncos", "q2": "Paris France", "q3": "", "q4": "London"}
    scores = evaluate(gold, predictions)
    assert scores.total == 4 and scores.has_answer_total == 2 and scores.no_answer_total == 2
    assert scores.has_answer_exact_match == pytest.approx(0.5)
    # q2: best of "Paris" (P=1/2, R=1 -> 2/3) and "city of paris" (P=1/2, R=1/3 -> 0.4)
    assert scores.has_answer_f1 == pytest.approx((1.0 + 2 / 3) / 2)
    assert scores.no_answer_exact_match == pytest.approx(0.5)
    assert scores.no_answer_f1 == pytest.approx(0.5)
    assert scores.exact_match == pytest.approx(0.5)
    assert scores.f1 == pytest.approx((1.0 + 2 / 3 + 1.0 + 0.0) / 4)
    assert scores.missing_predictions == 0
    pct = scores.as_percentages()
    assert pct["exact"] == pytest.approx(50.0) and pct["HasAns_total"] == 2
    assert set(pct) == {
        "exact",
        "f1",
        "total",
        "HasAns_exact",
        "HasAns_f1",
        "HasAns_total",
        "NoAns_exact",
        "NoAns_f1",
        "NoAns_total",
    }


def test_evaluate_missing_predictions_score_zero_and_unknown_ids_are_ignored() -> None:
    scores = evaluate({"q1": ["Paris"], "q2": ["Rome"]}, {"q1": "Paris", "other": "x"})
    assert scores.total == 2 and scores.missing_predictions == 1
    assert scores.exact_match == pytest.approx(0.5)


def test_evaluate_without_no_answer_questions_has_no_breakdown() -> None:
    scores = evaluate({"q1": ["Paris"]}, {"q1": "paris"})
    assert scores.no_answer_total == 0
    assert scores.no_answer_exact_match is None and scores.no_answer_f1 is None
    assert scores.as_percentages()["NoAns_exact"] is None


def test_evaluate_nothing() -> None:
    assert evaluate({}, {}) == SquadScores(0.0, 0.0, 0, None, None, 0, None, None, 0, 0)


def test_score_parts_scores_each_part_at_the_threshold_and_its_spans_answering_all() -> None:
    from qa_system.evaluation.reader_eval import ReaderRun, fit_threshold, score_parts, score_run
    from qa_system.qa_datasets import GoldAnswer, QAExample

    def example(i: str, answer: str | None) -> QAExample:
        context = "the cat sat on the mat"
        answers = (GoldAnswer(answer, context.index(answer)),) if answer else ()
        return QAExample(i, "g", f"question {i}?", context, answers)

    examples = [example("a", "the cat"), example("b", "the mat"), example("c", None), example("d", "sat")]
    run = ReaderRun(("a", "b", "c", "d"), ("cat", "the cat", "mat", "sat on"), (5.0, 1.0, 3.0, -2.0))
    parts = score_parts(run, examples, 2.0, {"one": {"a", "b"}, "two": {"c", "d", "nowhere"}, "none": set()})
    assert set(parts) == {"one", "two"}  # an empty part is left out, an unknown id ignored
    one, two = parts["one"], parts["two"]
    # a: answered "cat" (1: articles are dropped); b: margin 1 <= 2, so "" against "the mat" (0)
    assert (one.questions, one.has_answer) == (2, 2) and one.f1 == pytest.approx(0.5)
    assert one.has_answer_f1_answer_all == pytest.approx(0.5)  # b's span "the cat" against "the mat": 0
    # c: unanswerable but answered (0); d: abstained on an answerable question (0); its span "sat on" F1 2/3
    assert (two.questions, two.has_answer, two.f1) == (2, 1, 0.0)
    assert two.has_answer_f1_answer_all == pytest.approx(2 / 3)
    # the parts add up to the whole at the same threshold
    whole = score_run(run, examples, 2.0).f1
    assert whole == pytest.approx((one.f1 * 2 + two.f1 * 2) / 4)
    assert fit_threshold(run, examples).parts == {}
