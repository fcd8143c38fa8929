"""Vector search with metadata filters over one snapshot, planned by how much a filter matches.

A filter is a condition on documents in SQL. Two ways to honour it, and the planner picks:

* **post-filter** (broad filters): search the segments for ``k * OVERFETCH`` hits, keep those
  whose chunk matches (one SQL query on those ids), and search deeper while fewer than ``k``
  are left. A filter matching half the store costs about one unfiltered search.
* **pre-filter** (selective filters): fetch the ids of the matching chunks from SQL, at most
  :data:`PREFILTER_CAP`, and search exactly among them (a bitmap id selector inside faiss).

The first post-filter round tells which case it is: when it came up short, the filter is
selective, so the matching ids are fetched (bounded); only a filter that is neither (it matches
more than the cap but the round still came up short) searches deeper, four times as deep per
round. Either way ``k`` hits come back whenever ``k`` chunks match.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sqlalchemy.orm import Session

from . import repository as repo
from .repository import Filters
from .segment_set import VectorSnapshot
from .segments import DEFAULT_NPROBE, merge_hits

#: Hits asked for per wanted hit in the first post-filter round.
OVERFETCH = 4
#: Most matching chunk ids a pre-filtered search fetches from SQL.
PREFILTER_CAP = 50_000

DenseSearch = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def dense_search(session: Session, snapshot: VectorSnapshot, filters: Filters | None, *,
                 nprobe: int = DEFAULT_NPROBE) -> DenseSearch:
    """A function (normalised queries, k) -> (scores, ids) over ``snapshot`` honouring ``filters``."""
    if not filters:
        return lambda queries, k: snapshot.search(queries, k, nprobe=nprobe)

    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return filtered_search(session, snapshot, queries, k, filters, nprobe=nprobe)

    return search


def filtered_search(session: Session, snapshot: VectorSnapshot, queries: np.ndarray, k: int,
                    filters: Filters, *, nprobe: int = DEFAULT_NPROBE) -> tuple[np.ndarray, np.ndarray]:
    n = len(queries)
    if repo.filter_conditions(filters) is None:
        return merge_hits([], n, k)
    total = len(snapshot)
    depth = min(max(k * OVERFETCH, k), max(total, 1))
    kept = _post_filtered(session, snapshot, queries, depth, filters, nprobe)
    if all(len(hits) >= k for hits in kept) or depth >= total:
        return _as_arrays(kept, n, k)
    allowed = repo.allowed_chunk_ids(session, filters, limit=PREFILTER_CAP + 1)
    if len(allowed) <= PREFILTER_CAP:
        if not len(allowed):
            return merge_hits([], n, k)
        return snapshot.search(queries, k, allowed=allowed, nprobe=nprobe)
    while depth < total and not all(len(hits) >= k for hits in kept):
        depth = min(depth * 4, total)
        kept = _post_filtered(session, snapshot, queries, depth, filters, nprobe)
    return _as_arrays(kept, n, k)


def _post_filtered(session: Session, snapshot: VectorSnapshot, queries: np.ndarray, depth: int,
                   filters: Filters, nprobe: int) -> list[list[tuple[float, int]]]:
    scores, ids = snapshot.search(queries, depth, nprobe=nprobe)
    matching = repo.matching_among(session, sorted({int(i) for i in ids.flat if i >= 0}), filters)
    return [[(float(s), int(i)) for s, i in zip(row_scores, row_ids, strict=True) if int(i) in matching]
            for row_scores, row_ids in zip(scores, ids, strict=True)]


def _as_arrays(kept: list[list[tuple[float, int]]], n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.zeros((n, k), dtype=np.float32)
    ids = np.full((n, k), -1, dtype=np.int64)
    for row, hits in enumerate(kept):
        for slot, (score, chunk_id) in enumerate(hits[:k]):
            scores[row, slot], ids[row, slot] = score, chunk_id
    return scores, ids
