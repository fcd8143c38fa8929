"""Turn QA examples into model windows with answer labels.

The windows are the reader's (``qa_system.reader.windows.encode_pairs``): long contexts split
into windows sharing ``stride`` tokens, questions cut as at serving time, context first for
models that read it so. A window that does not contain a whole gold answer is labelled "no
answer" (start = end = its [CLS] token).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..qa_datasets import QAExample
from ..reader.windows import encode_pairs, truncate_questions

if TYPE_CHECKING:
    from .distill import Teacher


@dataclass(frozen=True)
class TrainWindow:
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    start: int
    end: int
    group: int  # the (question, gold span) it was cut from: a long context's windows share one
    context_first: int  # token positions of the window's first and last context token
    context_last: int
    # a teacher's start/end scores at this window's positions (training.distill), when distilling
    teacher_start: np.ndarray | None = field(default=None, compare=False)
    teacher_end: np.ndarray | None = field(default=None, compare=False)

    @property
    def has_span(self) -> bool:
        """The window is labelled with an answer span (not "no answer", its [CLS] token)."""
        return self.context_first <= self.start <= self.context_last


def label_window(
    offsets: Sequence[tuple[int, int]], context: Sequence[bool], answer_start: int, answer_end: int
) -> tuple[int, int]:
    """Token positions of the answer's first and last token in this window, or (0, 0).
    ``context[t]``: token ``t`` belongs to the passage."""
    positions = [i for i, inside in enumerate(context) if inside]
    if not positions:
        return 0, 0
    first, last = positions[0], positions[-1]
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


def _first_inside(offsets: Sequence[tuple[int, int]], context: Sequence[bool],
                  spans: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The label of the first of ``spans`` that lies wholly in this window, or (0, 0). A window
    that misses the span a job trains on but holds another annotator's span is not a "no
    answer" window: it learns that span (otherwise the job of each span would teach the other's
    window to abstain)."""
    for answer_start, answer_end in spans:
        label = label_window(offsets, context, answer_start, answer_end)
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
    teacher: Teacher | None = None,
) -> list[TrainWindow]:
    """Windows for training, cut by the reader's own windowing (``reader.windows.encode_pairs``:
    the same question truncation, stride and question/context order as at serving time). Each
    of the first ``max_answers`` distinct gold spans of an
    example is trained on once (1 suits SQuAD-style re-annotations of one span; SubjQA's
    annotators mark different spans); a window without that span but with another gold span of
    the example is labelled with that one.
    Windows of answerable questions that miss the answer are kept with probability
    ``negative_keep``; every window of an unanswerable question is kept. Each (question, gold
    span) gets its own group number, counting up from ``first_group``, shared by its windows.
    The no-answer label is the window's [CLS] position (``Window.cls_index``). With a
    ``teacher`` (``training.distill``), every window kept also carries the teacher's scores."""
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
    for lo in range(0, len(jobs), batch):
        chunk = jobs[lo : lo + batch]
        positions = list(range(len(chunk)))
        encoded = encode_pairs(tokenizer, [j[0].question for j in chunk], [j[0].context for j in chunk],
                               question_indices=positions, passage_indices=positions,
                               max_seq_length=max_length, doc_stride=stride)
        built: list[TrainWindow] = []
        kept = []
        for window in encoded:
            example, spans = chunk[window.question_index]
            offsets = window.offsets.tolist()
            context = window.context_mask.tolist()
            start, end = _first_inside(offsets, context, spans)
            if (start, end) == (0, 0):
                start = end = window.cls_index
                if spans and rng.random() >= negative_keep:
                    continue
            ids = window.input_ids.tolist()
            type_ids = window.token_type_ids.tolist() if window.token_type_ids is not None else [0] * len(ids)
            inside = [i for i, c in enumerate(context) if c] or [0, -1]
            group = first_group + lo + window.question_index
            built.append(TrainWindow(tuple(ids), tuple(type_ids), start, end, group, inside[0], inside[-1]))
            kept.append(window)
        if teacher is not None and built:
            built = _with_teacher(teacher, chunk, tokenizer, max_length, kept, built)
        windows.extend(built)
    return windows


def _with_teacher(teacher: Teacher, chunk: Sequence[tuple[QAExample, Any]], tokenizer: Any, max_length: int,
                  encoded: Sequence[Any], built: Sequence[TrainWindow]) -> list[TrainWindow]:
    from dataclasses import replace

    from .distill import TeacherRequest

    cut = truncate_questions(tokenizer, [j[0].question for j in chunk], max_length // 2)
    requests = [TeacherRequest(cut[w.question_index], chunk[w.question_index][0].context, w) for w in encoded]
    return [replace(t, teacher_start=start, teacher_end=end)
            for t, (start, end) in zip(built, teacher.scores(requests), strict=True)]
