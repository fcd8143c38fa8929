"""Span decoding for one window: pure numpy, no model, no tokenizer.

A span's score is ``start_logit[i] + end_logit[j]`` (raw logits, no per-window softmax), so
scores of different windows and passages are comparable. The no-answer score of a window is
the same sum at the [CLS] position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.integer]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SpanCandidate:
    """A span of one window: tokens ``start_token..end_token`` (inclusive), characters
    ``start_char:end_char`` of the window's context text."""

    start_token: int
    end_token: int
    start_char: int
    end_char: int
    score: float


def no_answer_score(start_logits: FloatArray, end_logits: FloatArray, cls_index: int = 0) -> float:
    """The window's score for "no answer": start + end logit at the [CLS] token."""
    return float(start_logits[cls_index]) + float(end_logits[cls_index])


def top_spans(
    start_logits: FloatArray,
    end_logits: FloatArray,
    offsets: IntArray,
    context_mask: BoolArray,
    *,
    max_answer_tokens: int,
    top_k: int,
    overlapping: bool = True,
) -> list[SpanCandidate]:
    """The ``top_k`` best spans of one window, best first (ties: earlier, shorter span first).

    A span is valid when both ends are context tokens, ``end >= start``, it has at most
    ``max_answer_tokens`` tokens, and it covers at least one character. ``offsets`` is the
    (n, 2) character offset of each token into the context text. Only the band of the
    (start, end) score matrix with ``0 <= end - start < max_answer_tokens`` is computed.

    With ``overlapping=False`` the spans are chosen greedily: each next span is the best one
    that shares no token with the spans already chosen (so "Paris" does not crowd out other
    answers with "in Paris", "Paris ,"...).
    """
    start = np.asarray(start_logits, dtype=np.float64)
    end = np.asarray(end_logits, dtype=np.float64)
    spans = np.asarray(offsets, dtype=np.int64)
    mask = np.asarray(context_mask, dtype=bool)
    n = start.shape[0]
    if start.shape != (n,) or end.shape != (n,) or mask.shape != (n,) or spans.shape != (n, 2):
        raise ValueError(
            f"shape mismatch: start {start.shape}, end {end.shape}, "
            f"offsets {spans.shape}, context_mask {mask.shape}"
        )
    if max_answer_tokens <= 0 or top_k <= 0:
        raise ValueError("max_answer_tokens and top_k must be positive")

    starts = np.flatnonzero(mask)
    if starts.size == 0:
        return []
    lengths = np.arange(max_answer_tokens)
    ends = starts[:, None] + lengths[None, :]  # (P, A): end token of each band cell
    inside = ends < n
    ends = np.minimum(ends, n - 1)
    valid = inside & mask[ends] & (spans[ends, 1] > spans[starts, 0][:, None])

    band = np.where(valid, start[starts][:, None] + end[ends], -np.inf)
    best = (
        _pick_overlapping(band, top_k) if overlapping else _pick_disjoint(band, starts, ends, top_k)
    )
    rows, cols = np.divmod(best, max_answer_tokens)
    flat = band.ravel()
    return [
        SpanCandidate(
            start_token=int(starts[r]),
            end_token=int(starts[r] + c),
            start_char=int(spans[starts[r], 0]),
            end_char=int(spans[starts[r] + c, 1]),
            score=float(flat[b]),
        )
        for b, r, c in zip(best, rows, cols, strict=True)
    ]


def _pick_overlapping(band: FloatArray, top_k: int) -> IntArray:
    """Flat indices of the ``top_k`` best finite cells, best first, ties by index."""
    scores = band.ravel()
    k = min(top_k, int(np.count_nonzero(np.isfinite(scores))))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.lexsort((best, -scores[best]))]


def _pick_disjoint(band: FloatArray, starts: IntArray, ends: IntArray, top_k: int) -> IntArray:
    """Flat indices of up to ``top_k`` cells picked greedily so that no two spans share a token."""
    work = band.copy()
    picked: list[int] = []
    span_starts = np.broadcast_to(starts[:, None], work.shape)
    while len(picked) < top_k:
        best = int(np.argmax(work))
        if not np.isfinite(work.flat[best]):
            break
        picked.append(best)
        row, col = divmod(best, work.shape[1])
        first, last = starts[row], starts[row] + col
        work[(span_starts <= last) & (ends >= first)] = -np.inf
    return np.asarray(picked, dtype=np.int64)
