"""Hybrid retrieval: vector search and the database's full-text search, fused.

The best ``max(k, HYBRID_POOL)`` chunks of the vector search (``dense``, which honours the
filters) and of the full-text search (under the same filters) are each scored on both sides (the
side that missed a chunk scores it exactly) and fused by :func:`qa_system.retrieval.fusion.fuse`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..storage.view import StoreView
from ..types import MetadataValue
from .fusion import fuse, query_terms

#: Candidates taken from each side of a hybrid search (at least ``k``).
HYBRID_POOL = 50

DenseSearch = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def hybrid_search(view: StoreView, dense: DenseSearch, queries: np.ndarray, questions: Sequence[str], k: int, *,
                  filters: Mapping[str, MetadataValue | Sequence[MetadataValue]] | None,
                  weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (fused scores, ids, cosines) shaped like a vector search's (missing slots: id -1)."""
    pool = max(k, HYBRID_POOL)
    dense_scores, dense_ids = dense(queries, pool)
    scores = np.zeros((len(queries), k), dtype=np.float32)
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    cosines = np.zeros((len(queries), k), dtype=np.float32)
    for row, (query, question) in enumerate(zip(queries, questions, strict=True)):
        found = {int(i): float(s) for s, i in zip(dense_scores[row], dense_ids[row], strict=True) if i >= 0}
        terms = query_terms(question)
        ranks = view.text_top(terms, pool, filters)
        found.update(view.vector_scores(query.reshape(1, -1), [i for i in ranks if i not in found]))
        ranks.update(view.text_ranks(terms, [i for i in found if i not in ranks]))
        for slot, (chunk_id, score) in enumerate(fuse(found, ranks, weight, k)):
            ids[row, slot], scores[row, slot], cosines[row, slot] = chunk_id, score, found[chunk_id]
    return scores, ids, cosines
