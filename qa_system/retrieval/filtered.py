"""Vector search with metadata filters over one store view, planned by how much a filter matches.

A filter is a condition on documents in SQL. Two ways to honour it, and the planner picks:

* **pre-filter** (selective filters): fetch the ids of the matching chunks from SQL and search
  exactly among them (their vectors gathered by id). Chosen when fewer than
  :data:`PROBE_DOCUMENTS` documents match, which counts of at most that many index entries per
  condition find out.
* **post-filter** (broad filters): search the segments for ``k * OVERFETCH`` hits, keep those
  whose chunk matches (one SQL query on those ids), and search four times deeper while fewer
  than ``k`` are left; past :data:`PREFILTER_DEPTH` (a filter that matched many documents but
  few near the query), fetch up to :data:`PREFILTER_CAP` matching ids and search among them.
  A filter matching half the store costs about one unfiltered search, and no matching id list
  is loaded into Python.

Either way ``k`` hits come back whenever ``k`` chunks match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..storage.view import StoreView
from ..types import MetadataValue

Filters = Mapping[str, MetadataValue | Sequence[MetadataValue]]

#: Filters matching fewer documents than this are pre-filtered.
PROBE_DOCUMENTS = 5_000
#: Hits asked for per wanted hit in the first post-filter round.
OVERFETCH = 4
#: Post-filter depth past which the matching ids are fetched instead (if at most PREFILTER_CAP).
PREFILTER_DEPTH = 4_096
#: Most matching chunk ids a post-filter fallback fetches from SQL.
PREFILTER_CAP = 50_000


def dense_search(view: StoreView, filters: Filters | None):  # noqa: ANN201 - a DenseSearch
    """A function (normalised queries, k) -> (scores, ids) over ``view`` honouring ``filters``."""
    if not filters:
        return lambda queries, k: view.vector_search(queries, k)
    if view.filters_in_query:  # pgvector: the filter is a WHERE of the vector query itself
        return lambda queries, k: view.vector_search(queries, k, filters=filters)  # type: ignore[call-arg]
    return lambda queries, k: filtered_search(view, queries, k, filters)


def filtered_search(view: StoreView, queries: np.ndarray, k: int,
                    filters: Filters) -> tuple[np.ndarray, np.ndarray]:
    n = len(queries)
    if view.filter_matches_nothing(filters):
        return _empty(n, k)
    if view.matching_documents_at_most(filters, limit=PROBE_DOCUMENTS) < PROBE_DOCUMENTS:
        return _among(view, queries, k, view.chunk_ids_matching(filters))
    total = max(view.live_vectors, 1)
    depth = min(k * OVERFETCH, total)
    kept = _post_filtered(view, queries, depth, filters)
    while depth < total and not all(len(hits) >= k for hits in kept):
        depth = min(depth * 4, total)
        if depth > PREFILTER_DEPTH:
            allowed = view.chunk_ids_matching(filters, limit=PREFILTER_CAP + 1)
            if len(allowed) <= PREFILTER_CAP:
                return _among(view, queries, k, allowed)
        kept = _post_filtered(view, queries, depth, filters)
    return _as_arrays(kept, n, k)


def _empty(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, k), dtype=np.float32), np.full((n, k), -1, dtype=np.int64)


def _among(view: StoreView, queries: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not len(allowed):
        return _empty(len(queries), k)
    return view.vector_search(queries, k, allowed=allowed)


def _post_filtered(view: StoreView, queries: np.ndarray, depth: int,
                   filters: Filters) -> list[list[tuple[float, int]]]:
    scores, ids = view.vector_search(queries, depth)
    matching = view.matching_among(sorted({int(i) for i in ids.flat if i >= 0}), filters)
    return [[(float(s), int(i)) for s, i in zip(row_scores, row_ids, strict=True) if int(i) in matching]
            for row_scores, row_ids in zip(scores, ids, strict=True)]


def _as_arrays(kept: list[list[tuple[float, int]]], n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores, ids = _empty(n, k)
    for row, hits in enumerate(kept):
        for slot, (score, chunk_id) in enumerate(hits[:k]):
            scores[row, slot], ids[row, slot] = score, chunk_id
    return scores, ids
