"""Turn QA examples into model windows with answer labels (question first, context second).

Long contexts are split into overlapping windows (``stride`` tokens shared). A window that
does not contain a whole gold answer is labelled "no answer" (start = end = 0, the [CLS] token).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..qa_datasets import QAExample


@dataclass(frozen=True)
class TrainWindow:
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    start: int
    end: int
    group: int  # the (question, gold span) it was cut from: a long context's windows share one
    context_first: int  # token positions of the window's first and last context token
    context_last: int


def label_window(
    offsets: Sequence[tuple[int, int]], sequence_ids: Sequence[int | None], answer_start: int, answer_end: int
) -> tuple[int, int]:
    """Token positions of the answer's first and last token in this window, or (0, 0)."""
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not context:
        return 0, 0
    first, last = context[0], context[-1]
    if offsets[first][0] > answer_start or offsets[last][1] < answer_end:
        return 0, 0
    start = first
    while start <= last and offsets[start][1] <= answer_start:
        start += 1
    end = last
    while end >= first and offsets[end][0] >= answer_end:
        end -= 1
    if start > end:
        return 0, 0
    return start, end


def _first_inside(offsets: Sequence[tuple[int, int]], sequence_ids: Sequence[int | None],
                  spans: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The label of the first of ``spans`` that lies wholly in this window, or (0, 0). A window
    that misses the span a job trains on but holds another annotator's span is not a "no
    answer" window: it learns that span (otherwise the job of each span would teach the other's
    window to abstain)."""
    for answer_start, answer_end in spans:
        label = label_window(offsets, sequence_ids, answer_start, answer_end)
        if label != (0, 0):
            return label
    return 0, 0


def build_windows(
    examples: Sequence[QAExample],
    tokenizer: Any,
    *,
    max_length: int,
    stride: int,
    negative_keep: float = 1.0,
    max_answers: int = 1,
    seed: int = 0,
    batch: int = 512,
    first_group: int = 0,
) -> list[TrainWindow]:
    """Windows for training. Each of the first ``max_answers`` distinct gold spans of an
    example is trained on once (1 suits SQuAD-style re-annotations of one span; SubjQA's
    annotators mark different spans); a window without that span but with another gold span of
    the example is labelled with that one.
    Windows of answerable questions that miss the answer are kept with probability
    ``negative_keep``; every window of an unanswerable question is kept. Each (question, gold
    span) gets its own group number, counting up from ``first_group``, shared by its windows."""
    rng = random.Random(seed)
    # (example, its gold spans with the one this job trains on first); () for no answer
    jobs: list[tuple[QAExample, tuple[tuple[int, int], ...]]] = []
    for example in examples:
        if example.is_impossible:
            jobs.append((example, ()))
            continue
        spans = list(dict.fromkeys((a.start, a.start + len(a.text)) for a in example.answers))
        for k, span in enumerate(spans[:max_answers]):
            jobs.append((example, (span, *spans[:k], *spans[k + 1 :])))
    windows: list[TrainWindow] = []
    max_question_tokens = max(1, (max_length - stride) // 2)
    for lo in range(0, len(jobs), batch):
        chunk = jobs[lo : lo + batch]
        encoded = tokenizer(
            truncate_questions([j[0].question for j in chunk], tokenizer, max_question_tokens),
            [j[0].context for j in chunk],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        mapping = encoded["overflow_to_sample_mapping"]
        for w, job_pos in enumerate(mapping):
            example, spans = chunk[job_pos]
            sequence_ids = encoded.sequence_ids(w)
            start, end = _first_inside(encoded["offset_mapping"][w], sequence_ids, spans)
            if spans and start == 0 and rng.random() >= negative_keep:
                continue
            ids = encoded["input_ids"][w]
            type_ids = encoded["token_type_ids"][w] if "token_type_ids" in encoded else [0] * len(ids)
            context = [i for i, s in enumerate(sequence_ids) if s == 1] or [0, -1]
            windows.append(TrainWindow(tuple(ids), tuple(type_ids), start, end, first_group + lo + job_pos,
                                       context[0], context[-1]))
    return windows


def truncate_questions(questions: Sequence[str], tokenizer: Any, max_tokens: int) -> list[str]:
    """Cut over-long questions to their first ``max_tokens`` tokens so a window always has
    room for context (the context stride must stay below the space left for it)."""
    encoded = tokenizer(
        [q.strip() for q in questions], add_special_tokens=False, return_offsets_mapping=True
    )
    out = []
    for question, offsets in zip(questions, encoded["offset_mapping"], strict=True):
        question = question.strip()
        out.append(question[: offsets[max_tokens - 1][1]] if len(offsets) > max_tokens else question)
    return out
