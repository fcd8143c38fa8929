"""Reading in two stages: the best passages first, the rest only when the answer is not settled.

Answers rank by reader score + ``retrieval_weight`` x their passage's retrieval score
(``decode_question``). After the best passages are read, an answer in an unread passage, whose
retrieval score is at most the best unread one's (``next_score``), outranks the best answer found
only with a reader score above ``best.score + retrieval_weight * (best.passage_score -
next_score)``: the *lead*. Reader scores above ``settled_lead`` are rare, so a lead at least that
large settles the question, and its other passages are not read. Pure functions: the reader
(``ExtractiveReader``) and the benchmark that chooses ``settled_lead`` on dev
(``benchmarks/early_exit.py``) use the same ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..types import Passage, ReaderResult


def split_first_passages(passages: Sequence[Passage], first: int) -> tuple[list[int], list[int]]:
    """The indices of the ``first`` passages with the best retrieval scores (ties: the earlier
    passage), and of the rest, each in passage order."""
    by_score = sorted(range(len(passages)), key=lambda i: (-passages[i].score, i))
    head = set(by_score[:first])
    return ([i for i in range(len(passages)) if i in head],
            [i for i in range(len(passages)) if i not in head])


def lead(result: ReaderResult, next_score: float, retrieval_weight: float) -> float | None:
    """The reader score an answer in an unread passage of retrieval score ``next_score`` needs to
    outrank the best answer of ``result``; None without an answer."""
    if not result.answers:
        return None
    best = result.answers[0]
    own = next_score if best.passage_score is None else best.passage_score
    return best.score + retrieval_weight * (own - next_score)


def settled(result: ReaderResult, next_score: float, retrieval_weight: float, settled_lead: float) -> bool:
    """True when the passages read so far settle the question: it has an answer (above the
    no-answer threshold; unread windows could only lower the no-answer score) and an unread
    passage's answer would need a reader score of at least ``settled_lead`` to outrank it."""
    needed = lead(result, next_score, retrieval_weight)
    return result.has_answer and needed is not None and needed >= settled_lead
