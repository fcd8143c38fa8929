"""Distillation: a teacher QA model's start/end scores as soft targets for the student's windows.

The teacher may have another tokenizer (all-mpnet-base-v2 teaching a MiniLM reader): it reads the
same question with the part of the context a student window covers, and its scores are carried
to the student's tokens by character position (a student token's start score is the teacher's
start score of the teacher token holding the student token's first character; its end score that
of the token holding its last character; the [CLS] scores carry the "no answer" score). Positions
outside the context and [CLS] get :data:`MASKED`.

Teacher scores are cached on disk (:class:`TeacherCache`, keyed by the window's question, context
span and student token offsets), so a run that resumes, or a CPU run after a GPU computed them,
never needs the teacher again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..reader.windows import Window, question_first

MASKED = -10000.0  # a teacher score that takes no part in the soft targets
_SHARD_ROWS = 4096  # windows per cache file


@dataclass(frozen=True)
class TeacherRequest:
    """One student window to score: its (cut) question, the whole context, and the window."""

    question: str
    context: str
    window: Window

    def span(self) -> tuple[int, int]:
        offsets = self.window.offsets[self.window.context_mask]
        return (int(offsets[:, 0].min()), int(offsets[:, 1].max())) if len(offsets) else (0, 0)

    def key(self) -> str:
        lo, hi = self.span()
        digest = hashlib.sha1()
        for part in (self.question, self.context[lo:hi]):
            digest.update(b"\0" + part.encode("utf-8"))
        digest.update(self.window.offsets.astype(np.int64).tobytes())
        digest.update(self.window.context_mask.tobytes())
        return digest.hexdigest()


def char_to_token(offsets: np.ndarray, is_context: np.ndarray, length: int) -> np.ndarray:
    """For each character of a text of ``length``, the context token holding it; characters between
    tokens (spaces) take the next token (the last one at the end). -1 when there is no token."""
    owner = np.full(length + 1, -1, dtype=np.int64)
    for j in np.flatnonzero(is_context)[::-1]:
        a, b = int(offsets[j, 0]), int(offsets[j, 1])
        owner[max(0, a):max(0, min(b, length))] = j
    nxt = -1
    for c in range(length, -1, -1):  # gaps take the next token
        if owner[c] >= 0:
            nxt = owner[c]
        else:
            owner[c] = nxt
    last = -1
    for c in range(length + 1):  # a gap at the end takes the last one
        if owner[c] >= 0:
            last = owner[c]
        else:
            owner[c] = last
    return owner


def carry_scores(window: Window, span_start: int, teacher_offsets: np.ndarray, teacher_context: np.ndarray,
                 teacher_cls: int, start_logits: np.ndarray, end_logits: np.ndarray, span_length: int,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's scores at the student window's positions (see the module docstring).
    ``teacher_offsets`` are relative to the context span, which starts at ``span_start``."""
    owner = char_to_token(teacher_offsets, teacher_context, span_length)
    start = np.full(window.length, MASKED, dtype=np.float32)
    end = np.full(window.length, MASKED, dtype=np.float32)
    for t in np.flatnonzero(window.context_mask):
        a, b = int(window.offsets[t, 0]) - span_start, int(window.offsets[t, 1]) - span_start
        if b <= a:
            continue
        i, j = owner[min(max(a, 0), span_length)], owner[min(max(b - 1, 0), span_length)]
        if i >= 0:
            start[t] = start_logits[i]
        if j >= 0:
            end[t] = end_logits[j]
    start[window.cls_index] = start_logits[teacher_cls]
    end[window.cls_index] = end_logits[teacher_cls]
    return start, end


class TeacherCache:
    """Teacher scores by window key, in ``folder/teacher-*.npz`` files written atomically; the
    teacher they came from is named in ``folder/teacher.json``, and a cache of another teacher
    is refused."""

    def __init__(self, folder: str | Path, teacher: str | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        named = self.folder / "teacher.json"
        if named.is_file():
            self.teacher = str(json.loads(named.read_text(encoding="utf-8"))["teacher"])
            if teacher is not None and teacher != self.teacher:
                raise ConfigError(f"{self.folder} holds the scores of teacher {self.teacher!r}, not {teacher!r}: "
                                  "give another --teacher-cache")
        elif teacher is not None:
            named.write_text(json.dumps({"teacher": teacher}), encoding="utf-8")
            self.teacher = teacher
        else:
            raise ConfigError(f"{self.folder} is not a teacher-score cache (no teacher.json): give --teacher MODEL")
        self._scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._pending: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for shard in sorted(self.folder.glob("teacher-*.npz")):
            with np.load(shard) as data:
                keys, lengths = data["keys"], data["lengths"]
                starts, ends = data["start"], data["end"]
            bounds = np.concatenate([[0], np.cumsum(lengths)])
            for k, lo, hi in zip(keys.tolist(), bounds[:-1], bounds[1:], strict=True):
                self._scores[k] = (starts[lo:hi], ends[lo:hi])

    def __len__(self) -> int:
        return len(self._scores) + len(self._pending)

    def get(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        return self._scores.get(key) or self._pending.get(key)

    def put(self, key: str, scores: tuple[np.ndarray, np.ndarray]) -> None:
        self._pending[key] = (scores[0].astype(np.float16), scores[1].astype(np.float16))
        if len(self._pending) >= _SHARD_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        keys = list(self._pending)
        starts = [self._pending[k][0] for k in keys]
        fd, tmp = tempfile.mkstemp(prefix=".teacher-", suffix=".npz", dir=self.folder)
        os.close(fd)
        np.savez(tmp, keys=np.asarray(keys), lengths=np.asarray([len(s) for s in starts]),
                 start=np.concatenate(starts), end=np.concatenate([self._pending[k][1] for k in keys]))
        os.replace(tmp, self.folder / f"teacher-{len(list(self.folder.glob('teacher-*.npz'))):05d}.npz")
        self._scores.update(self._pending)
        self._pending.clear()


class Teacher:
    """Scores student windows with a QA model (loaded on first need), through a cache."""

    def __init__(self, model: str | None, cache: TeacherCache, *, device: str = "cpu", batch_size: int = 32,
                 max_length: int = 512) -> None:
        self.model_name = model
        self.cache = cache
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._loaded: tuple[Any, Any] | None = None
        self.computed = 0

    def scores(self, requests: Sequence[TeacherRequest]) -> list[tuple[np.ndarray, np.ndarray]]:
        keys = [r.key() for r in requests]
        missing = [i for i, k in enumerate(keys) if self.cache.get(k) is None]
        if missing and self.model_name is None:
            raise ConfigError(f"{len(missing)} of {len(requests)} windows have no cached teacher scores in "
                              f"{self.cache.folder}: give --teacher MODEL to compute them")
        for lo in range(0, len(missing), self.batch_size):
            part = missing[lo: lo + self.batch_size]
            for i, scores in zip(part, self._run([requests[i] for i in part]), strict=True):
                self.cache.put(keys[i], scores)
                self.computed += 1
        out = []
        for k in keys:
            found = self.cache.get(k)
            assert found is not None
            out.append(found)
        return out

    def _model(self) -> tuple[Any, Any]:
        if self._loaded is None:
            import torch
            from transformers import AutoModelForQuestionAnswering, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.model_name)
            dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
            model = AutoModelForQuestionAnswering.from_pretrained(self.model_name, dtype=dtype).to(self.device).eval()
            self._loaded = (tokenizer, model)
        return self._loaded

    def _run(self, requests: Sequence[TeacherRequest]) -> list[tuple[np.ndarray, np.ndarray]]:
        import torch

        tokenizer, model = self._model()
        spans = [r.span() for r in requests]
        pieces = [r.context[lo:hi] for r, (lo, hi) in zip(requests, spans, strict=True)]
        q_first = question_first(tokenizer)
        questions = [r.question for r in requests]
        encoded = tokenizer(questions if q_first else pieces, pieces if q_first else questions,
                            truncation="only_second" if q_first else "only_first", max_length=self.max_length,
                            padding=True, return_offsets_mapping=True, return_tensors="np")
        names = set(getattr(tokenizer, "model_input_names", ("input_ids", "attention_mask")))
        inputs = {k: torch.as_tensor(v).to(self.device) for k, v in encoded.items() if k in names}
        with torch.inference_mode():
            output = model(**inputs)
        starts = output.start_logits.float().cpu().numpy()
        ends = output.end_logits.float().cpu().numpy()
        context_sequence = 1 if q_first else 0
        cls_id = getattr(tokenizer, "cls_token_id", None)
        out = []
        for row, (request, (lo, hi)) in enumerate(zip(requests, spans, strict=True)):
            sequence = np.array([s == context_sequence for s in encoded.sequence_ids(row)], dtype=bool)
            ids = encoded["input_ids"][row].tolist()
            cls = ids.index(cls_id) if cls_id in ids else 0
            out.append(carry_scores(request.window, lo, encoded["offset_mapping"][row], sequence, cls,
                                    starts[row], ends[row], hi - lo))
        return out


def distillation_loss(student: Any, teacher: Any, temperature: float) -> Any:
    """KL(teacher || student) over the positions the teacher scored, at ``temperature`` (times
    its square, so gradients keep their size), averaged over the batch's rows. Tensors (rows, width)."""
    import torch

    mask = teacher > MASKED / 2
    t = torch.where(mask, teacher / temperature, torch.full_like(teacher, float("-inf")))
    s = torch.where(mask, student.float() / temperature, torch.full_like(teacher, float("-inf")))
    p = torch.softmax(t, dim=-1)
    log_p = torch.log_softmax(t, dim=-1)
    log_q = torch.log_softmax(s, dim=-1)
    terms = torch.where(mask, p * (log_p - log_q), torch.zeros_like(p))
    return terms.sum(dim=-1).mean() * temperature ** 2
