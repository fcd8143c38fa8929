"""Retriever metrics as pure functions: recall@k and MRR from ranked lists.

A question's result is the **rank of its first relevant item** (1-based), or ``None`` when no
retrieved item is relevant. Everything else follows from these ranks:

- ``recall@k`` = share of questions whose first relevant item is at rank <= k;
- ``MRR@c`` = mean of ``1 / rank`` over questions (0 when there is no relevant item within the
  cutoff ``c``).

Two relevance predicates are provided, matching the two definitions the evaluation reports:

- ``book_rank`` — Haystack 0.10 ``EvalDocuments`` with its default ``open_domain=True``, the
  definition behind the figures in chapter 7 of *NLP with Transformers*: an item is relevant when
  any gold answer text, lower-cased, occurs in its text, lower-cased; a question without any gold
  answer counts as found at rank 1. (Haystack loops over the answers first and the ranks second,
  so with several answers it reports the rank of the first *answer* it finds, not the best rank;
  recall is the same either way, and we report the best rank, which is what MRR means.)
- ``strict_rank`` — the item is one of the question's gold documents, for every question.

Ranked lists of chunks are turned into ranked lists of documents with ``dedupe_ranking`` first,
so several chunks of one document count once, at the rank of the best of them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 20)


def dedupe_ranking(items: Iterable[T], key: Callable[[T], K]) -> list[T]:
    """``items`` in order, keeping only the first item of each ``key`` (e.g. one per document)."""
    seen: set[K] = set()
    kept: list[T] = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            kept.append(item)
    return kept


def first_relevant_rank(ranking: Sequence[T], is_relevant: Callable[[T], bool],
                        cutoff: int | None = None) -> int | None:
    """1-based rank of the first relevant item within the first ``cutoff`` items, else None."""
    limit = len(ranking) if cutoff is None else min(cutoff, len(ranking))
    for position in range(limit):
        if is_relevant(ranking[position]):
            return position + 1
    return None


def book_rank(ranked_texts: Sequence[str], gold_answers: Sequence[str],
              cutoff: int | None = None) -> int | None:
    """Haystack 0.10 open-domain relevance: an answer string (case-insensitive) in the text.

    A question with no non-empty gold answer is a no-answer question: always found at rank 1.
    """
    answers = [a.lower() for a in gold_answers if a]
    if not answers:
        return 1
    return first_relevant_rank(ranked_texts, lambda text: any(a in text.lower() for a in answers), cutoff)


def strict_rank(ranked_keys: Sequence[K], gold_keys: Iterable[K], cutoff: int | None = None) -> int | None:
    """Rank of the first retrieved item that is a gold document (no exception for no-answer)."""
    gold = set(gold_keys)
    return first_relevant_rank(ranked_keys, lambda key: key in gold, cutoff)


def recall_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Share of questions whose first relevant item is within the top ``k`` (0.0 for none)."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def mean_reciprocal_rank(ranks: Sequence[int | None], cutoff: int | None = None) -> float:
    """Mean of 1/rank; a question without a relevant item (or beyond ``cutoff``) scores 0."""
    if not ranks:
        return 0.0
    total = sum(1.0 / r for r in ranks if r is not None and (cutoff is None or r <= cutoff))
    return total / len(ranks)


@dataclass(frozen=True)
class RetrievalScores:
    """recall@k for each k, MRR within the largest k, and how many questions were scored."""

    recall: Mapping[int, float]
    mrr: float
    mrr_cutoff: int
    questions: int

    def as_dict(self) -> dict[str, object]:
        return {"recall": {str(k): v for k, v in self.recall.items()}, "mrr": self.mrr,
                "mrr_cutoff": self.mrr_cutoff, "questions": self.questions}


def retrieval_scores(ranks: Sequence[int | None], ks: Sequence[int] = DEFAULT_KS) -> RetrievalScores:
    """recall@k for every k in ``ks`` and MRR@max(ks)."""
    if not ks:
        raise ValueError("give at least one k")
    cutoff = max(ks)
    return RetrievalScores(
        recall={k: recall_at_k(ranks, k) for k in sorted(ks)},
        mrr=mean_reciprocal_rank(ranks, cutoff),
        mrr_cutoff=cutoff,
        questions=len(ranks),
    )
