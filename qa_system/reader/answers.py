"""Window logits -> ranked, de-duplicated answers for each question. Pure functions.

Every answer points into its source document: ``start = passage.start + span start``, so
``document.text[answer.start:answer.end] == answer.text``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..answer_text import normalize_answer
from ..types import Answer, Passage, ReaderResult
from .decoding import no_answer_score, top_spans
from .windows import Window

CONTEXT_CHARS = 100
NO_PASSAGES_NO_ANSWER_SCORE = 0.0

WindowLogits = tuple[npt.NDArray[np.floating], npt.NDArray[np.floating]]


@dataclass(frozen=True)
class PassageSpan:
    """A candidate answer: characters ``start_char:end_char`` of passage ``passage_index``.

    ``score`` is the reader's (start + end logits); ``rank_score`` orders the candidates (the
    score itself unless the passage's retrieval score is weighed in, see ``decode_question``).
    """

    passage_index: int
    start_char: int
    end_char: int
    score: float
    rank_score: float | None = None

    @property
    def rank(self) -> float:
        return self.score if self.rank_score is None else self.rank_score


def context_snippet(text: str, start: int, end: int, radius: int = CONTEXT_CHARS) -> str:
    """``text`` around ``text[start:end]``, about ``radius`` characters each side, cut at
    whitespace so no word is split (a side with no whitespace in reach is left out)."""
    left = max(0, start - radius)
    if left > 0 and not text[left - 1].isspace():
        gap = [i for i in range(left, start) if text[i].isspace()]
        left = gap[0] + 1 if gap else start
    right = min(len(text), end + radius)
    if right < len(text) and not text[right].isspace():
        gap = [i for i in range(end, right) if text[i].isspace()]
        right = gap[-1] if gap else end
    return text[left:right].strip()


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def assemble_answers(
    passages: Sequence[Passage],
    spans: Iterable[PassageSpan],
    *,
    top_n: int,
    context_chars: int = CONTEXT_CHARS,
) -> tuple[Answer, ...]:
    """The ``top_n`` best answers (by ``PassageSpan.rank``), best first, without duplicates.

    Duplicate policy: a span is dropped when a better-ranked answer from the same document
    overlaps it in the document's text (the same span read from overlapping chunks or windows,
    or a longer/shorter variant of it), or has the same normalised text.
    """
    return tuple(answer for answer, _ in _assemble(passages, spans, top_n, context_chars))


def _assemble(passages: Sequence[Passage], spans: Iterable[PassageSpan], top_n: int,
              context_chars: int) -> list[tuple[Answer, int]]:
    """``assemble_answers``, each answer with the index of its passage."""
    kept: list[Answer] = []
    origins: list[int] = []
    seen_texts: set[tuple[str, str]] = set()
    ranked = sorted(spans, key=lambda s: (-s.rank, s.passage_index, s.start_char, s.end_char))
    for span in ranked:
        if len(kept) >= top_n:
            break
        passage = passages[span.passage_index]
        text = passage.text[span.start_char : span.end_char]
        key = (passage.document_id, normalize_answer(text))
        start, end = passage.start + span.start_char, passage.start + span.end_char
        if not text.strip() or key in seen_texts:
            continue
        if any(
            a.document_id == passage.document_id and _overlaps(start, end, a.start, a.end)
            for a in kept
        ):
            continue
        seen_texts.add(key)
        origins.append(span.passage_index)
        kept.append(
            Answer(
                text=text,
                score=span.score,
                document_id=passage.document_id,
                source=passage.source,
                title=passage.title,
                start=start,
                end=end,
                context=context_snippet(
                    passage.text, span.start_char, span.end_char, context_chars
                ),
                chunk_id=passage.chunk_id,
                passage_score=passage.score,
            )
        )
    return list(zip(kept, origins, strict=True))


def decode_question(
    passages: Sequence[Passage],
    windows: Sequence[Window],
    logits: Sequence[WindowLogits],
    *,
    top_n: int,
    max_answer_tokens: int,
    no_answer_threshold: float,
    long_passage_threshold: float | None = None,
    candidates_per_window: int | None = None,
    retrieval_weight: float = 0.0,
) -> ReaderResult:
    """One question's result from the logits of all its windows (of all its passages).

    Answers are ranked by reader score + ``retrieval_weight`` x the passage's retrieval score
    (``Passage.score``; cosine similarity for the dense retriever). Reader logits of different
    passages are not normalised against each other, and the retriever's view of which passage
    fits the question breaks near-ties between them. ``Answer.score`` stays the reader's score,
    and the no-answer decision compares the top answer's reader score with the no-answer score.

    The no-answer score is the minimum of the windows' [CLS] scores (SQuAD 2 convention); with
    no windows (no passages) it is ``NO_PASSAGES_NO_ANSWER_SCORE`` and there are no answers.
    The threshold it is compared with is ``long_passage_threshold`` (when given) if the best
    answer's passage was read in more than one window, else ``no_answer_threshold``.
    """
    if len(windows) != len(logits):
        raise ValueError("windows and logits differ in length")
    # disjoint spans per window; the margin covers candidates later dropped as duplicates
    per_window = candidates_per_window if candidates_per_window is not None else 2 * top_n + 5
    spans: list[PassageSpan] = []
    null_scores: list[float] = []
    for window, (start_logits, end_logits) in zip(windows, logits, strict=True):
        null_scores.append(no_answer_score(start_logits, end_logits, window.cls_index))
        bonus = retrieval_weight * passages[window.passage_index].score if retrieval_weight else 0.0
        for c in top_spans(
            start_logits,
            end_logits,
            window.offsets,
            window.context_mask,
            max_answer_tokens=max_answer_tokens,
            top_k=per_window,
            overlapping=False,
        ):
            spans.append(
                PassageSpan(window.passage_index, c.start_char, c.end_char, c.score, c.score + bonus)
            )
    assembled = _assemble(passages, spans, top_n, CONTEXT_CHARS)
    long_passage = bool(assembled) and sum(w.passage_index == assembled[0][1] for w in windows) > 1
    return ReaderResult(
        answers=tuple(answer for answer, _ in assembled),
        no_answer_score=min(null_scores) if null_scores else NO_PASSAGES_NO_ANSWER_SCORE,
        no_answer_threshold=(long_passage_threshold if long_passage and long_passage_threshold is not None
                             else no_answer_threshold),
        long_passage=long_passage,
    )
