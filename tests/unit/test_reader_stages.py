"""Reading in two stages: which passages come first, and when the passages read settle a question."""

from __future__ import annotations

from qa_system.reader.stages import lead, settled, split_first_passages
from qa_system.types import Answer, Passage, ReaderResult


def passage(i: int, score: float) -> Passage:
    return Passage(i, f"doc-{i}", f"doc-{i}.txt", None, f"text {i}", 0, 6, score)


def result(score: float, passage_score: float, no_answer_score: float = 0.0, threshold: float = 1.0) -> ReaderResult:
    answer = Answer("x", score, "doc-0", "doc-0.txt", None, 0, 1, "x", passage_score=passage_score)
    return ReaderResult((answer,), no_answer_score=no_answer_score, no_answer_threshold=threshold)


def test_the_best_scored_passages_come_first_in_passage_order() -> None:
    passages = [passage(0, 0.2), passage(1, 0.9), passage(2, 0.5), passage(3, 0.9), passage(4, 0.1)]
    assert split_first_passages(passages, 2) == ([1, 3], [0, 2, 4])
    assert split_first_passages(passages, 3) == ([1, 2, 3], [0, 4])
    assert split_first_passages(passages, 9) == ([0, 1, 2, 3, 4], [])
    assert split_first_passages([], 2) == ([], [])


def test_the_lead_is_what_an_unread_answer_must_score_to_outrank_the_best() -> None:
    # rank of the best: 6 + 10 x 0.8 = 14; an unread passage at 0.5 adds 5: it needs a reader score of 9
    assert lead(result(6.0, 0.8), 0.5, 10.0) == 9.0
    assert lead(result(6.0, 0.8), 0.5, 0.0) == 6.0  # ranked by the reader alone
    assert lead(ReaderResult((), no_answer_score=0.0, no_answer_threshold=1.0), 0.5, 10.0) is None


def test_settled_needs_an_answer_and_a_lead_of_at_least_the_setting() -> None:
    assert settled(result(6.0, 0.8), 0.5, 10.0, 9.0)
    assert not settled(result(6.0, 0.8), 0.5, 10.0, 9.5)
    assert not settled(result(6.0, 0.8), 0.7, 10.0, 9.0)  # a closer unread passage: lead 7
    # no answer yet (below the no-answer threshold): read on, whatever the lead
    assert not settled(result(6.0, 0.8, no_answer_score=5.5, threshold=1.0), 0.5, 10.0, 0.0)
    assert not settled(ReaderResult((), no_answer_score=0.0, no_answer_threshold=1.0), 0.5, 10.0, -100.0)
