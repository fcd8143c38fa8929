"""Re-ranking: a cross-encoder re-scores the first candidates of another retriever.

:class:`CrossEncoder` reads a (question, passage) pair together and gives it one score (a logit;
higher is better); `qa-system train-reranker` makes one (``qa_system.training.reranker_train``).
:class:`RerankingRetriever` wraps a `Retriever`: it asks it for ``max(k, top_n)`` passages, scores
the first ``top_n`` with the cross-encoder, orders them by that score (plus the folder's
``retrieval_weight`` x their retrieval score, 0 unless the folder says otherwise) and returns the
first ``k``; passages beyond ``top_n`` keep their place after the re-ranked ones.

Each re-ranked passage keeps its retrieval score's *scale*: the ``top_n`` retrieval scores are
handed out again in the new order (the best re-ranked passage gets the highest one), so that the
reader, which reads passages and ranks answers by ``Passage.score``
(``qa_system.reader.stages``), follows the new order without a new calibration;
``Passage.rerank_score`` is the cross-encoder's own score and ``dense_score`` the passage's cosine.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from ..types import Passage
from .retriever import Filters, Retriever

#: The model folder's re-ranking settings, written by train-reranker.
RERANKER_FILE = "qa_system_reranker.json"
DEFAULT_MAX_TOKENS = 192


def rerank_order(rerank_scores: Sequence[float], retrieval_scores: Sequence[float],
                 retrieval_weight: float = 0.0) -> list[int]:
    """Positions ordered by ``rerank + retrieval_weight * retrieval`` score, best first (ties:
    the earlier position, i.e. the retriever's order)."""
    keys = [r + retrieval_weight * s for r, s in zip(rerank_scores, retrieval_scores, strict=True)]
    return sorted(range(len(keys)), key=lambda i: (-keys[i], i))


def rerank_passages(passages: Sequence[Passage], rerank_scores: Sequence[float], k: int,
                    retrieval_weight: float = 0.0) -> list[Passage]:
    """The first ``len(rerank_scores)`` passages re-ordered by `rerank_order`, each with its
    ``rerank_score`` and the retrieval score of the slot it moves to; then the rest unchanged; the
    first ``k``."""
    n = len(rerank_scores)
    head, tail = list(passages[:n]), list(passages[n:])
    order = rerank_order(rerank_scores, [p.score for p in head], retrieval_weight)
    slots = sorted((p.score for p in head), reverse=True)
    moved = [replace(head[i], score=slots[rank], rerank_score=float(rerank_scores[i]))
             for rank, i in enumerate(order)]
    return (moved + tail)[:k]


class CrossEncoder:
    """A sequence-classification model with one logit, over (question, passage) pairs. Cheap to
    construct; `load()` reads the folder (ConfigError if it holds no such model)."""

    def __init__(self, folder: str | Path, *, device: str = "cpu", precision: str = "auto",
                 batch_size: int = 32) -> None:
        self.folder = Path(folder)
        self.device, self.precision, self.batch_size = device, precision, batch_size
        self.max_tokens = DEFAULT_MAX_TOKENS
        self.retrieval_weight = 0.0
        self._model: Any = None
        self._tokenizer: Any = None
        self._bf16 = False
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def loaded_precision(self) -> str | None:
        """``bf16`` or ``fp32`` once loaded (``auto`` resolved for this machine), else None."""
        return None if self._model is None else ("bf16" if self._bf16 else "fp32")

    @property
    def runtime(self) -> str | None:
        """The library that computes it, once loaded."""
        if self._model is None:
            return None
        import torch

        return f"torch {torch.__version__}: {self._model.dtype} weights" + (", bf16 autocast" if self._bf16 else "")

    def check(self) -> None:
        """ConfigError unless the folder holds a model (its config.json); reads no weights."""
        if not self.folder.is_dir():
            raise ConfigError(f"reranker {self.folder}: no such folder, so not a model folder; make one with "
                              "qa-system train-reranker")
        if not (self.folder / "config.json").is_file():
            raise ConfigError(f"reranker {self.folder}: not a model folder (no config.json); make one with "
                              "qa-system train-reranker")

    def load(self) -> CrossEncoder:
        if self._model is not None:
            return self
        self.check()
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from ..hardware import resolve_precision
        from ..quiet import quiet_model_loading

        try:
            with quiet_model_loading():
                model = AutoModelForSequenceClassification.from_pretrained(str(self.folder))
                tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        except (OSError, ValueError) as e:
            raise ConfigError(f"reranker {self.folder}: cannot load it: {e}") from e
        if model.config.num_labels != 1:
            raise ConfigError(f"reranker {self.folder}: a cross-encoder has one output, this model has "
                              f"{model.config.num_labels}")
        settings = self.folder / RERANKER_FILE
        if settings.is_file():
            try:
                saved = json.loads(settings.read_text())
                self.max_tokens = int(saved.get("max_tokens", DEFAULT_MAX_TOKENS))
                self.retrieval_weight = float(saved.get("retrieval_weight", 0.0))
            except (ValueError, TypeError, AttributeError) as e:
                raise ConfigError(f"reranker {self.folder}: {RERANKER_FILE} is not valid: {e}") from e
        self._bf16 = resolve_precision(self.precision, self.device) == "bf16"
        self._model = model.float().to(self.device).eval()
        self._tokenizer = tokenizer
        return self

    def score(self, questions: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        """One score per (question, passage) pair (fp32)."""
        import torch

        from ..hardware import bf16_autocast

        if self._model is None:
            raise ConfigError("the reranker is not loaded: call load() first")
        if len(questions) != len(passages):
            raise InputError(f"{len(questions)} questions for {len(passages)} passages")
        out: list[np.ndarray] = []
        with self._lock, torch.inference_mode(), bf16_autocast(self.device, self._bf16):
            for lo in range(0, len(questions), self.batch_size):
                logits = score_pairs(self._model, self._tokenizer, questions[lo: lo + self.batch_size],
                                     passages[lo: lo + self.batch_size], self.max_tokens, self.device)
                out.append(logits.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def score_pairs(model: Any, tokenizer: Any, questions: Sequence[str], passages: Sequence[str], max_tokens: int,
                device: str) -> Any:
    """The model's logit for each (question, passage) pair, cut to ``max_tokens`` tokens (the
    passage is cut first), as a 1-d tensor; with gradients unless the caller disables them."""
    features = tokenizer(list(questions), list(passages), padding=True, truncation="longest_first",
                         max_length=max_tokens, return_tensors="pt")
    features = {k: v.to(device) for k, v in features.items()}
    return model(**features).logits.reshape(-1)


class RerankingRetriever:
    """``inner``'s top ``max(k, top_n)`` passages, the first ``top_n`` re-ranked by ``scorer``
    (a loaded `CrossEncoder`); see the module's description."""

    def __init__(self, inner: Retriever, scorer: CrossEncoder, *, top_n: int) -> None:
        if top_n <= 0:
            raise InputError(f"rerank_top_n must be positive, got {top_n}")
        self.inner, self.scorer, self.top_n = inner, scorer, top_n

    def retrieve(self, query_vectors: np.ndarray, k: int, *, query_texts: Sequence[str] | None = None,
                 filters: Filters | None = None) -> list[list[Passage]]:
        if query_texts is None:
            raise InputError("re-ranking needs the questions' text (query_texts)")
        hits = self.inner.retrieve(query_vectors, max(k, self.top_n), query_texts=query_texts, filters=filters)
        questions: list[str] = []
        texts: list[str] = []
        for question, passages in zip(query_texts, hits, strict=True):
            for p in passages[: self.top_n]:
                questions.append(question)
                texts.append(p.text)
        scores = self.scorer.score(questions, texts)
        out: list[list[Passage]] = []
        at = 0
        for passages in hits:
            n = min(self.top_n, len(passages))
            out.append(rerank_passages(passages, scores[at: at + n], k, self.scorer.retrieval_weight))
            at += n
        return out
