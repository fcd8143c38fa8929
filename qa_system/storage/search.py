"""Vector search with metadata filters over one snapshot, planned by how much a filter matches.

A filter is a condition on documents in SQL. Two ways to honour it, and the planner picks:

* **pre-filter** (selective filters): fetch the ids of the matching chunks from SQL and search
  exactly among them (their vectors gathered by id). Chosen when fewer than
  :data:`PROBE_DOCUMENTS` documents match, which one bounded count finds out.
* **post-filter** (broad filters): search the segments for ``k * OVERFETCH`` hits, keep those
  whose chunk matches (one SQL query on those ids), and search four times deeper while fewer
  than ``k`` are left; past :data:`PREFILTER_DEPTH` (a filter that matched many documents but
  few near the query), fetch up to :data:`PREFILTER_CAP` matching ids and search among them.
  A filter matching half the store costs about one unfiltered search, and no matching id list
  is loaded into Python.

Either way ``k`` hits come back whenever ``k`` chunks match.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sqlalchemy.orm import Session

from . import repository as repo
from .repository import Filters
from .segment_set import VectorSnapshot
from .segments import DEFAULT_NPROBE, merge_hits

#: Filters matching fewer documents than this are pre-filtered.
PROBE_DOCUMENTS = 5_000
#: Hits asked for per wanted hit in the first post-filter round.
OVERFETCH = 4
#: Post-filter depth past which the matching ids are fetched instead (if at most PREFILTER_CAP).
PREFILTER_DEPTH = 4_096
#: Most matching chunk ids a post-filter fallback fetches from SQL.
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
    if repo.count_matching_documents(session, filters, limit=PROBE_DOCUMENTS) < PROBE_DOCUMENTS:
        return _among(snapshot, queries, k, repo.allowed_chunk_ids(session, filters), nprobe)
    total = max(len(snapshot), 1)
    depth = min(k * OVERFETCH, total)
    kept = _post_filtered(session, snapshot, queries, depth, filters, nprobe)
    while depth < total and not all(len(hits) >= k for hits in kept):
        depth = min(depth * 4, total)
        if depth > PREFILTER_DEPTH:
            allowed = repo.allowed_chunk_ids(session, filters, limit=PREFILTER_CAP + 1)
            if len(allowed) <= PREFILTER_CAP:
                return _among(snapshot, queries, k, allowed, nprobe)
        kept = _post_filtered(session, snapshot, queries, depth, filters, nprobe)
    return _as_arrays(kept, n, k)


def _among(snapshot: VectorSnapshot, queries: np.ndarray, k: int, allowed: np.ndarray,
           nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    if not len(allowed):
        return merge_hits([], len(queries), k)
    return snapshot.search(queries, k, allowed=allowed, nprobe=nprobe)


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
