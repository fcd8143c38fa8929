"""The retriever protocol, and the retriever over a store: dense, hybrid, filtered.

A :class:`Retriever` turns query vectors (and the questions' text, for lexical matching) into
the top-``k`` passages of each question. :class:`StoreRetriever` is the product's: vector search
over the store's segments, the database's full-text search fused in (``hybrid``), and metadata
filters planned by selectivity (``filtered``). It only reads the store, through a
:class:`~qa_system.storage.view.StoreView`; a re-ranker or another vector backend is another
Retriever (or wraps this one) and needs no change in the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ..config import check_lexical_weight
from ..errors import ConfigError, InputError
from ..types import MetadataValue, Passage
from .filtered import dense_search
from .hybrid import hybrid_search

if TYPE_CHECKING:
    from ..storage import Store

Filters = Mapping[str, MetadataValue | Sequence[MetadataValue]]
#: Reads retried when a writer committed between a search's vector hits and its SQL rows.
RETRIES = 3


@runtime_checkable
class Retriever(Protocol):
    def retrieve(self, query_vectors: np.ndarray, k: int, *, query_texts: Sequence[str] | None = None,
                 filters: Filters | None = None) -> list[list[Passage]]:
        """Top-``k`` passages per query row, best first. ``filters`` match document metadata by
        equality (a list value: any of), plus the keys ``document_id`` and ``source``; ``k`` hits
        come back whenever ``k`` chunks match. ``query_texts``: the questions, one per row."""
        ...


class StoreRetriever:
    """Dense retrieval over ``store``, hybrid with its full-text search when ``lexical_weight``
    > 0 and the questions' text is given: the best ``hybrid.HYBRID_POOL`` (or ``k``) chunks of
    each side, under the same filters, ranked by ``(1 - w) * cosine + w * rank / best rank``
    (``fusion``), ``Passage.score`` being that fused score. On a database without a full-text
    index it is dense retrieval."""

    def __init__(self, store: Store, *, lexical_weight: float = 0.0) -> None:
        try:
            self.lexical_weight = check_lexical_weight(lexical_weight)
        except ConfigError as e:
            raise InputError(str(e)) from e
        self._store = store

    def retrieve(self, query_vectors: np.ndarray, k: int, *, query_texts: Sequence[str] | None = None,
                 filters: Filters | None = None) -> list[list[Passage]]:
        if k <= 0:
            raise InputError(f"k must be positive, got {k}")
        queries = self._store.normalise_queries(query_vectors)
        hybrid = query_texts is not None and self.lexical_weight > 0
        if hybrid and len(query_texts) != len(queries):
            raise InputError(f"{len(query_texts)} query texts for {len(queries)} query vectors")
        if not len(queries):
            return []
        for attempt in range(1, RETRIES + 1):
            with self._store.view() as view:
                dense = dense_search(view, filters)
                if hybrid and view.has_full_text:
                    scores, ids, cosines = hybrid_search(view, dense, queries, query_texts, k,
                                                         filters=filters, weight=self.lexical_weight)
                else:
                    (scores, ids), cosines = dense(queries, k), None
                passages, missing = view.passages(scores, ids, cosines)
            # A writer committed after the view's snapshot: read again on the one matching SQL.
            if not missing or attempt == RETRIES or not self._store.moved_on(view.generation):
                return passages
        raise AssertionError("unreachable")  # pragma: no cover
