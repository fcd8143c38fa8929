"""One consistent read of the store, and the primitives retrievers are built from.

A :class:`StoreView` pairs the published vector snapshot with one SQL read transaction, so that
what a retriever combines (vector hits, full-text ranks, filter matches, passage rows) comes from
one moment of the store. Retrieval itself (filter planning, hybrid fusion) lives in
``qa_system.retrieval``; the store only answers these questions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy.orm import Session

from ..types import Passage
from . import lexical
from . import repository as repo
from .repository import Filters
from .segment_set import VectorSnapshot


class StoreView:
    #: Whether ``vector_search`` takes ``filters`` itself, inside its one query (pgvector), rather
    #: than the retriever planning pre- or post-filtering around it (``retrieval.filtered``).
    filters_in_query = False

    def __init__(self, session: Session, snapshot: VectorSnapshot, nprobe: int) -> None:
        self._session = session
        self._snapshot = snapshot
        self.nprobe = nprobe

    @property
    def generation(self) -> int:
        return self._snapshot.generation

    @property
    def live_vectors(self) -> int:
        return len(self._snapshot)

    # ------------------------------------------------------------------------ vectors

    def vector_search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (cosines, chunk ids) per normalised query row over the live vectors
        (approximate in IVF segments); ``allowed``: only among these chunk ids, exactly.
        Missing slots have id -1."""
        return self._snapshot.search(queries, k, allowed=allowed, nprobe=self.nprobe)

    def vector_scores(self, query: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """Exact cosine of one normalised query (shape (1, d)) with the live vectors of ``ids``."""
        return self._snapshot.scores_of(query, ids)

    # ------------------------------------------------------------------------ filters

    def filter_matches_nothing(self, filters: Filters) -> bool:
        """True when a filter can match no document whatever is stored (e.g. an empty list)."""
        return repo.filter_conditions(filters) is None

    def matching_documents_at_most(self, filters: Filters, *, limit: int) -> int:
        """An upper bound on the documents ``filters`` match, at cost bounded by ``limit``."""
        return repo.matching_documents_at_most(self._session, filters, limit=limit)

    def chunk_ids_matching(self, filters: Filters, *, limit: int | None = None) -> np.ndarray:
        return repo.allowed_chunk_ids(self._session, filters, limit=limit)

    def matching_among(self, chunk_ids: Sequence[int], filters: Filters) -> set[int]:
        return repo.matching_among(self._session, chunk_ids, filters)

    # ---------------------------------------------------------------------- full text

    @property
    def has_full_text(self) -> bool:
        return lexical.supported(self._session)

    def text_top(self, terms: Sequence[str], k: int, filters: Filters | None) -> dict[int, float]:
        """{chunk id: full-text rank} of the ``k`` best chunks for any of ``terms`` (see lexical)."""
        return lexical.top_chunks(self._session, terms, k, filters)

    def text_ranks(self, terms: Sequence[str], ids: Sequence[int]) -> dict[int, float]:
        return lexical.chunk_ranks(self._session, terms, ids)

    # ----------------------------------------------------------------------- passages

    def passages(self, scores: np.ndarray, ids: np.ndarray, cosines: np.ndarray | None = None,
                 ) -> tuple[list[list[Passage]], bool]:
        """Passages for each row of (scores, chunk ids), best first, and whether any id had no
        row (a writer committed after this view's snapshot was taken). ``cosines``: the hits'
        cosines, shaped like ``scores``, when the scores are not cosines."""
        rows = repo.passage_rows(self._session, (int(i) for i in ids.flat if i >= 0))
        missing = any(int(i) not in rows for i in ids.flat if i >= 0)
        dense = scores if cosines is None else cosines
        return [repo.to_passages(s, i, rows, c) for s, i, c in zip(scores, ids, dense, strict=True)], missing
