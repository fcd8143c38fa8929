"""Question + passage -> overlapping model windows, and windows -> padded batches.

Pure given a tokenizer: the tokenizer is any Hugging Face *fast* tokenizer (or a fake with the
same call signature) that supports ``return_overflowing_tokens`` and ``return_offsets_mapping``.
Offsets in a window are character offsets into its passage's text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MIN_CONTEXT_TOKENS = 8


@dataclass(frozen=True, eq=False)
class Window:
    """One model input: a question with (part of) one passage.

    ``offsets[t]`` is token ``t``'s character range in the passage text; only tokens where
    ``context_mask`` is True belong to the passage. ``cls_index`` is where the no-answer score
    is read.
    """

    question_index: int
    passage_index: int
    input_ids: IntArray
    token_type_ids: IntArray | None
    offsets: IntArray
    context_mask: BoolArray
    cls_index: int

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])


def question_first(tokenizer: Any) -> bool:
    """Models padded on the right read "question, context"; the others "context, question"."""
    return getattr(tokenizer, "padding_side", "right") == "right"


def truncate_questions(tokenizer: Any, questions: Sequence[str], max_tokens: int) -> list[str]:
    """Each question stripped and cut after its first ``max_tokens`` tokens (at a token's end
    character), so a window always keeps room for its passage."""
    stripped = [q.strip() for q in questions]
    if not stripped:
        return []
    encoded = tokenizer(stripped, add_special_tokens=False, return_offsets_mapping=True)
    return [q[: offsets[max_tokens - 1][1]] if len(offsets) > max_tokens else q
            for q, offsets in zip(stripped, encoded["offset_mapping"], strict=True)]


def truncate_question(tokenizer: Any, question: str, max_tokens: int) -> str:
    """``truncate_questions`` for one question."""
    return truncate_questions(tokenizer, [question], max_tokens)[0]


def _cls_index(input_ids: Sequence[int], cls_token_id: int | None) -> int:
    if cls_token_id is not None:
        for i, token in enumerate(input_ids):
            if token == cls_token_id:
                return i
    return 0


def encode_pairs(
    tokenizer: Any,
    questions: Sequence[str],
    contexts: Sequence[str],
    *,
    question_indices: Sequence[int],
    passage_indices: Sequence[int],
    max_seq_length: int,
    doc_stride: int,
) -> list[Window]:
    """Tokenise (question, context) pairs into windows of at most ``max_seq_length`` tokens: the
    one windowing of this project, used by the reader at serving time and by training
    (``qa_system.training.features``), so that what a model is trained and tuned on is what it
    reads.

    - The question is stripped and keeps at most half the window (``truncate_questions``).
    - A context longer than a window is split into windows overlapping by ``doc_stride`` tokens;
      when a long question leaves less room, the overlap shrinks to half the room left for the
      context, so windows still advance.
    - Models padded on the right read "question, context", the others "context, question"
      (``question_first``).

    Windows come in the order of the pairs, and a pair's windows in text order; each carries the
    pair's entry of ``question_indices`` and ``passage_indices``."""
    n = len(contexts)
    if not (len(questions) == n == len(question_indices) == len(passage_indices)):
        raise ValueError("questions, contexts, question_indices and passage_indices differ in length")
    if n == 0:
        return []
    cut = truncate_questions(tokenizer, questions, max_seq_length // 2)
    lengths = [len(ids) for ids in tokenizer(cut, add_special_tokens=False)["input_ids"]]
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    strides: list[int] = []
    for length in lengths:
        room = max_seq_length - length - specials
        if room < MIN_CONTEXT_TOKENS:
            raise ValueError(f"max_seq_length {max_seq_length} leaves {room} tokens for the passage")
        strides.append(min(doc_stride, room // 2))
    by_stride: dict[int, list[int]] = {}
    for i, stride in enumerate(strides):
        by_stride.setdefault(stride, []).append(i)
    windows_of: list[list[Window]] = [[] for _ in range(n)]
    for stride, items in by_stride.items():
        for position, window in _encode(tokenizer, [cut[i] for i in items], [contexts[i] for i in items],
                                        max_seq_length, stride, [question_indices[i] for i in items],
                                        [passage_indices[i] for i in items]):
            windows_of[items[position]].append(window)
    return [w for per_pair in windows_of for w in per_pair]


def _encode(tokenizer: Any, questions: Sequence[str], contexts: Sequence[str], max_seq_length: int, stride: int,
            question_indices: Sequence[int], passage_indices: Sequence[int]) -> list[tuple[int, Window]]:
    """Windows of pairs that share one stride, each with its pair's position in these lists."""
    q_first = question_first(tokenizer)
    encoded = tokenizer(
        list(questions) if q_first else list(contexts),
        list(contexts) if q_first else list(questions),
        truncation="only_second" if q_first else "only_first",
        max_length=max_seq_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    context_sequence = 1 if q_first else 0
    input_names = set(getattr(tokenizer, "model_input_names", ("input_ids", "token_type_ids")))
    with_types = "token_type_ids" in encoded and "token_type_ids" in input_names
    cls_token_id = getattr(tokenizer, "cls_token_id", None)
    out: list[tuple[int, Window]] = []
    for w, pair in enumerate(encoded["overflow_to_sample_mapping"]):
        ids = encoded["input_ids"][w]
        sequence_ids = encoded.sequence_ids(w)
        out.append((pair, Window(
            question_index=question_indices[pair],
            passage_index=passage_indices[pair],
            input_ids=np.asarray(ids, dtype=np.int64),
            token_type_ids=np.asarray(encoded["token_type_ids"][w], dtype=np.int64) if with_types else None,
            offsets=np.asarray(encoded["offset_mapping"][w], dtype=np.int64).reshape(-1, 2),
            context_mask=np.array([s == context_sequence for s in sequence_ids], dtype=bool),
            cls_index=_cls_index(ids, cls_token_id),
        )))
    return out


def encode_windows(
    tokenizer: Any,
    question: str,
    contexts: Sequence[str],
    *,
    question_index: int,
    passage_indices: Sequence[int],
    max_seq_length: int,
    doc_stride: int,
) -> list[Window]:
    """The windows of one question with each of ``contexts`` (``encode_pairs``)."""
    if len(contexts) != len(passage_indices):
        raise ValueError("contexts and passage_indices differ in length")
    n = len(contexts)
    return encode_pairs(tokenizer, [question] * n, contexts, question_indices=[question_index] * n,
                        passage_indices=passage_indices, max_seq_length=max_seq_length, doc_stride=doc_stride)


def long_passage_problem(tokenizer: Any, max_seq_length: int, doc_stride: int) -> str | None:
    """Why ``tokenizer`` fails to cut a long passage into windows that reach its end, or None.
    Releases 0.23.1 and 0.23.2 of the ``tokenizers`` library return only the first two windows
    of a long (question, passage) pair: the reader would then read only the start of every long
    passage, and training would lose most of its long contexts, without any error.
    ``ValueError`` (from ``encode_windows``) when the settings leave no room for a passage."""
    passage = " ".join(["word"] * (3 * max_seq_length))
    windows = encode_windows(tokenizer, "what is it?", [passage], question_index=0, passage_indices=[0],
                             max_seq_length=max_seq_length, doc_stride=doc_stride)
    reached = max((int(w.offsets[w.context_mask, 1].max()) for w in windows if w.context_mask.any()), default=0)
    if reached >= len(passage):
        return None
    return (f"the tokenizer cut a {len(passage)}-character test passage into {len(windows)} windows that "
            f"stop at character {reached}: it drops the rest of long passages")


def check_tokenizer_windows(tokenizer: Any, max_seq_length: int, doc_stride: int) -> None:
    """``ConfigError`` unless ``tokenizer`` keeps every window of a long passage (see
    ``long_passage_problem``), naming the installed ``tokenizers`` release."""
    try:
        problem = long_passage_problem(tokenizer, max_seq_length, doc_stride)
    except ValueError as err:  # window settings that leave no room for a passage
        raise ConfigError(str(err)) from err
    if problem is None:
        return
    try:
        from importlib.metadata import version

        installed = f"tokenizers {version('tokenizers')}"
    except Exception:  # noqa: BLE001 - only for the message
        installed = "the installed tokenizers library"
    raise ConfigError(
        f"{problem} ({installed}; releases 0.23.1 and 0.23.2 do this): "
        "install another release, e.g. pip install 'tokenizers>=0.23.3'"
    )


@dataclass(frozen=True)
class BatchCost:
    """What one forward pass of ``n`` windows padded to ``L`` tokens costs, in units of one token's
    work: ``overhead_tokens + n * L * (1 + L / attention_span)``. ``overhead_tokens`` is the fixed
    cost of a pass (Python, kernel launches, weight reorders), ``attention_span`` the length at
    which attention's quadratic work equals the rest of a token's work."""

    overhead_tokens: float
    attention_span: float

    def __call__(self, rows: int, width: int) -> float:
        return self.overhead_tokens + rows * width * (1.0 + width / self.attention_span)


# Fitted on forward passes of the shipped reader (MiniLM-L6, one core, 1 to 16 windows of 64 to 384
# tokens: docs/performance.md). bf16 on a CPU with AMX: 0.045 ms a token, 4.3e-5 ms a token per
# token of length, about 7 ms a pass; fp32: 0.157 ms, 9.9e-5 ms, about 5 ms.
BF16_BATCH_COST = BatchCost(overhead_tokens=150.0, attention_span=1058.0)
FP32_BATCH_COST = BatchCost(overhead_tokens=35.0, attention_span=1596.0)


def plan_batches(lengths: Sequence[int], batch_size: int, cost: BatchCost = FP32_BATCH_COST) -> list[list[int]]:
    """Group window indices into batches of at most ``batch_size``, longest windows first, so that
    the padded work plus the cost of each pass (``cost``) is least.

    Windows are sorted by length and cut into consecutive runs; the cuts are chosen by dynamic
    programming over that order, which is optimal among batches of consecutive lengths. A fixed
    batch size pads every window of a question to its longest one: 10 windows of 100 to 384
    tokens in one batch do 2.3x the work of the tokens they hold."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: least cost of the first j windows in order
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(max(0, j - batch_size), j):
            total = best[i] + cost(j - i, lengths[order[i]])  # order[i] is the longest of order[i:j]
            if total < best[j]:
                best[j], cut[j] = total, i
    batches: list[list[int]] = []
    j = n
    while j > 0:
        batches.append(order[cut[j]:j])
        j = cut[j]
    return batches[::-1]


def pad_batch(windows: Sequence[Window], pad_token_id: int) -> dict[str, IntArray]:
    """Right-pad windows into model inputs: input_ids, attention_mask (and token_type_ids)."""
    if not windows:
        raise ValueError("cannot pad an empty batch")
    width = max(w.length for w in windows)
    input_ids = np.full((len(windows), width), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(windows), width), dtype=np.int64)
    with_types = all(w.token_type_ids is not None for w in windows)
    token_type_ids = np.zeros((len(windows), width), dtype=np.int64)
    for row, window in enumerate(windows):
        input_ids[row, : window.length] = window.input_ids
        attention_mask[row, : window.length] = 1
        if with_types and window.token_type_ids is not None:
            token_type_ids[row, : window.length] = window.token_type_ids
    arrays = {"input_ids": input_ids, "attention_mask": attention_mask}
    if with_types:
        arrays["token_type_ids"] = token_type_ids
    return arrays
