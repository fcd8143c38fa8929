"""recall@k and MRR on hand-made rankings, under the book and the strict definitions."""

from __future__ import annotations

import pytest

from qa_system.evaluation.retrieval_metrics import (
    book_rank,
    dedupe_ranking,
    first_relevant_rank,
    mean_reciprocal_rank,
    recall_at_k,
    retrieval_scores,
    strict_rank,
)

DOCS = [
    "The battery lasts two days.",
    "Great SCREEN, bright colours.",
    "Shipping was slow.",
    "The screen is bright and the battery is fine.",
]


def test_first_relevant_rank_is_one_based_and_respects_the_cutoff() -> None:
    ranking = ["a", "b", "c", "b"]
    assert first_relevant_rank(ranking, lambda x: x == "b") == 2
    assert first_relevant_rank(ranking, lambda x: x == "c", cutoff=2) is None
    assert first_relevant_rank(ranking, lambda x: x == "z") is None
    assert first_relevant_rank([], lambda x: True) is None


def test_book_rank_is_case_insensitive_substring_of_any_answer() -> None:
    assert book_rank(DOCS, ["great screen"]) == 2
    assert book_rank(DOCS, ["bright"]) == 2
    assert book_rank(DOCS, ["nothing like this", "Battery"]) == 1
    assert book_rank(DOCS, ["waterproof"]) is None
    assert book_rank(DOCS, ["shipping"], cutoff=2) is None


def test_book_rank_reports_the_best_rank_over_answers() -> None:
    # Haystack 0.10 would report the rank of the first answer it finds (here "slow": rank 3);
    # the best rank over all answers is 1.
    assert book_rank(DOCS, ["slow", "two days"]) == 1


def test_book_rank_counts_no_answer_questions_as_found_at_rank_one() -> None:
    assert book_rank(DOCS, []) == 1
    assert book_rank([], []) == 1
    assert book_rank(DOCS, [""]) == 1  # an empty gold answer is no answer


def test_strict_rank_needs_a_gold_document_even_without_an_answer() -> None:
    keys = ["r3", "r1", "r7"]
    assert strict_rank(keys, {"r1"}) == 2
    assert strict_rank(keys, {"r7", "r1"}) == 2
    assert strict_rank(keys, {"r9"}) is None
    assert strict_rank(keys, set()) is None


def test_dedupe_ranking_keeps_the_first_chunk_of_each_document() -> None:
    chunks = [("d2", 0.9), ("d1", 0.8), ("d2", 0.7), ("d3", 0.6), ("d1", 0.5)]
    assert dedupe_ranking(chunks, key=lambda c: c[0]) == [("d2", 0.9), ("d1", 0.8), ("d3", 0.6)]


def test_recall_at_k() -> None:
    ranks = [1, 2, None, 5, 3]
    assert recall_at_k(ranks, 1) == pytest.approx(1 / 5)
    assert recall_at_k(ranks, 3) == pytest.approx(3 / 5)
    assert recall_at_k(ranks, 5) == pytest.approx(4 / 5)
    assert recall_at_k(ranks, 100) == pytest.approx(4 / 5)
    assert recall_at_k([], 3) == 0.0
    with pytest.raises(ValueError):
        recall_at_k(ranks, 0)


def test_mean_reciprocal_rank_with_and_without_cutoff() -> None:
    ranks = [1, 2, None, 4]
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 0.5 + 0 + 0.25) / 4)
    assert mean_reciprocal_rank(ranks, cutoff=2) == pytest.approx((1 + 0.5) / 4)
    assert mean_reciprocal_rank([]) == 0.0


def test_recall_is_monotone_in_k() -> None:
    ranks = [3, 1, None, 20, 7, 2, 11]
    values = [recall_at_k(ranks, k) for k in (1, 3, 5, 10, 20)]
    assert values == sorted(values)


def test_retrieval_scores_bundle() -> None:
    scores = retrieval_scores([1, 4, None, 12], ks=(10, 1, 5))
    assert list(scores.recall) == [1, 5, 10]
    assert scores.recall[1] == pytest.approx(0.25)
    assert scores.recall[5] == pytest.approx(0.5)
    assert scores.recall[10] == pytest.approx(0.5)
    assert scores.mrr_cutoff == 10
    assert scores.mrr == pytest.approx((1 + 0.25) / 4)  # rank 12 is beyond the cutoff
    assert scores.questions == 4
    assert scores.as_dict()["recall"] == {"1": 0.25, "5": 0.5, "10": 0.5}
    with pytest.raises(ValueError):
        retrieval_scores([1], ks=())


def test_book_and_strict_differ_as_expected_on_one_ranking() -> None:
    """The same ranked reviews scored both ways: the answer text also occurs in a review that is
    not the gold one, so the book definition finds it earlier than the strict one."""
    texts = {"r1": "Sound is ok.", "r2": "The sound is great, bass is deep.", "r3": "Bass is deep on this."}
    ranking = ["r3", "r1", "r2"]
    answers, gold = ["bass is deep"], {"r2"}
    assert book_rank([texts[k] for k in ranking], answers) == 1
    assert strict_rank(ranking, gold) == 3
