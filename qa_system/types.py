"""Frozen dataclasses at every stage boundary: document -> chunk -> passage -> answer.

Offsets are always character offsets into the *original document text* (``Document.text``),
so ``document.text[x.start:x.end] == x.text`` holds for chunks, passages and answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

MetadataValue = str | int | float | bool
Metadata = Mapping[str, MetadataValue]

_EMPTY: Metadata = MappingProxyType({})


def document_id_for(source: str, text: str) -> str:
    """Content-derived id: the same source with the same text always gets the same id."""
    digest = hashlib.sha256()
    digest.update(source.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(text.encode("utf-8"))
    return digest.hexdigest()[:32]


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Document:
    """A parsed input document, before or after storage.

    ``source`` is the stable key of the document's origin (a file path, or ``path#record-id`` for
    a record of a JSON lines/CSV file). Re-ingesting the same source with new text replaces the
    old document.
    """

    source: str
    text: str
    title: str | None = None
    metadata: Metadata = field(default_factory=lambda: _EMPTY)

    @property
    def id(self) -> str:
        return document_id_for(self.source, self.text)

    @property
    def content_hash(self) -> str:
        return content_hash(self.text)


@dataclass(frozen=True)
class Chunk:
    """A passage of a document; ``text == document.text[start:end]``."""

    document_id: str
    index: int
    start: int
    end: int
    text: str
    n_tokens: int


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its retrieval score and where it came from.

    ``score`` ranks the passages (the cosine, or hybrid retrieval's fused score, whose lexical part
    is relative to the question's best passage); ``dense_score`` is the cosine alone, an absolute
    measure of how near the passage is to the question (None when the retriever does not say);
    ``rerank_score`` is a re-ranker's score of the (question, passage) pair, the passage's order
    after re-ranking (``qa_system.retrieval.rerank``; None when no re-ranker scored it)."""

    chunk_id: int
    document_id: str
    source: str
    title: str | None
    text: str
    start: int
    end: int
    score: float
    metadata: Metadata = field(default_factory=lambda: _EMPTY)
    dense_score: float | None = None
    rerank_score: float | None = None


@dataclass(frozen=True)
class Answer:
    """An extracted answer span. ``start``/``end`` index the source document's text."""

    text: str
    score: float
    document_id: str
    source: str
    title: str | None
    start: int
    end: int
    context: str
    chunk_id: int | None = None
    passage_score: float | None = None
    # the probability that the answer is right (qa_system.confidence); None without a fitted model
    confidence: float | None = None


@dataclass(frozen=True)
class ReaderResult:
    """The reader's output for one question: answers best first, and the no-answer score.

    ``answers`` are ranked by ``score`` (start + end logits) plus the reader's
    ``retrieval_weight`` times their passage's retrieval score (``Answer.passage_score``).
    ``no_answer_score`` is the model's score for "no answer"; the question counts as answerable
    when ``answers[0].score - no_answer_score > no_answer_threshold``. That threshold is the
    reader's long-passage one when ``long_passage``: the best answer's passage did not fit one
    window and was read in several (its best span is a maximum over more windows, so a larger
    margin is needed to mean as much).
    """

    answers: tuple[Answer, ...]
    no_answer_score: float
    no_answer_threshold: float
    long_passage: bool = False

    @property
    def has_answer(self) -> bool:
        return bool(self.answers) and (
            self.answers[0].score - self.no_answer_score > self.no_answer_threshold
        )


@dataclass(frozen=True)
class AskResult:
    """``no_answer_threshold``: the margin the reader applied to this question (its long-passage
    one when that served, see `ReaderResult`); None from a reader that does not say."""

    question: str
    answers: tuple[Answer, ...]
    passages: tuple[Passage, ...]
    no_answer_score: float
    has_answer: bool
    timings: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    no_answer_threshold: float | None = None
    long_passage: bool = False
    # what the reader's margin rule alone decided; ``has_answer`` is the confidence rule's decision
    # (``answers[0].confidence >= confidence_threshold``) when a confidence model served
    margin_rule_answers: bool | None = None
    confidence_threshold: float | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A model as loaded: its name or folder, the precision it computes in on this machine
    (``fp32``, ``bf16`` or ``int8``; None when a custom component does not say) and the runtime
    that computes it (library, weights' dtype, attention; e.g. ``torch 2.13.0+cpu: bfloat16
    weights, sdpa attention``). The reader's
    window length, stride, no-answer thresholds (the second for answers from passages read in
    several windows) and retrieval weight (answers rank by ``score + retrieval_weight *
    passage_score``) are set for the reader only; the lexical weight of hybrid retrieval
    (``qa_system.retrieval.fusion``; 0: dense alone) for the embedder only. A re-ranker reports
    how many passages it re-scores (``rerank_top_n``) and its own retrieval weight (passages order
    by ``rerank_score + retrieval_weight * passage_score``)."""

    model: str
    precision: str | None
    runtime: str | None = None
    no_answer_threshold: float | None = None
    long_passage_no_answer_threshold: float | None = None
    max_seq_length: int | None = None
    doc_stride: int | None = None
    retrieval_weight: float | None = None
    lexical_weight: float | None = None
    rerank_top_n: int | None = None


# What each role reports of its LoadedModel (``LoadedModels.as_dict``): the other role's fields do
# not apply to it. The service's /readyz schemas (qa_system.service.schemas) have these fields.
EMBEDDER_FIELDS = ("model", "precision", "runtime", "lexical_weight")
READER_FIELDS = ("model", "precision", "runtime", "no_answer_threshold",
                 "long_passage_no_answer_threshold", "max_seq_length",
                 "doc_stride", "retrieval_weight")
RERANKER_FIELDS = ("model", "precision", "runtime", "rerank_top_n", "retrieval_weight")


@dataclass(frozen=True)
class LoadedModels:
    """What answers questions right now; a component not loaded yet is None."""

    embedder: LoadedModel | None = None
    reader: LoadedModel | None = None
    reranker: LoadedModel | None = None

    def as_dict(self) -> dict[str, dict[str, object]]:
        """The JSON shape (``ask --json``, ``/readyz``): each loaded model under its role
        (``embedder``, ``reader``, ``reranker``) with that role's fields only (``EMBEDDER_FIELDS``,
        ``READER_FIELDS``, ``RERANKER_FIELDS``; a field the model does not set is None); a model
        not loaded (or not used, as the re-ranker by default) is left out."""
        roles = (("embedder", self.embedder, EMBEDDER_FIELDS), ("reader", self.reader, READER_FIELDS),
                 ("reranker", self.reranker, RERANKER_FIELDS))
        return {role: {name: getattr(model, name) for name in names}
                for role, model, names in roles if model is not None}
