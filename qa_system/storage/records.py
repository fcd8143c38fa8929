"""Frozen dataclasses crossing the store's boundary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ..types import Chunk, Document, Metadata


@dataclass(frozen=True)
class DocumentWrite:
    """One document to store, with its chunks and one vector per chunk (row i ↔ chunks[i])."""

    document: Document
    chunks: Sequence[Chunk]
    vectors: np.ndarray  # (len(chunks), dimension) float32, L2-normalised


@dataclass(frozen=True)
class MetadataUpdate:
    """A new title and metadata for a stored document whose text is unchanged (same id): its
    chunks and vectors are kept, so nothing is embedded. If the document is no longer stored
    (another writer removed it meanwhile), nothing is written and ``ApplyResult.missing`` names it."""

    document: Document


Upsert = DocumentWrite | MetadataUpdate


@dataclass(frozen=True)
class ApplyResult:
    added: int = 0  # documents whose source was new
    # documents that replaced an older version of the same source, or whose title or metadata
    # changed (their text the same: only those rows are rewritten, the vectors kept)
    updated: int = 0
    unchanged: int = 0  # upserts whose document was already stored as given (no-ops)
    deleted: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    generation: int = 0  # the store generation after the call
    missing: tuple[str, ...] = ()  # sources of MetadataUpdates whose document was not stored

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


@dataclass(frozen=True)
class StoredDocument:
    id: str
    source: str
    title: str | None
    text: str
    content_hash: str
    metadata: Metadata
    chunk_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DocumentSummary:
    """A stored document without its text (for listings)."""

    id: str
    source: str
    title: str | None
    n_chars: int
    chunk_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StoreStats:
    documents: int
    chunks: int
    vectors: int
    generation: int
    embedding_model: str
    dimension: int
    db_url: str  # password redacted
    directory: str
    index_bytes: int  # all live segment files together
    segments: int = 0  # live segment files
    tombstones: int = 0  # deleted chunks whose vectors await compaction


@dataclass(frozen=True)
class ConsistencyReport:
    """How the SQL chunk rows and the live vectors of the current generation compare (its
    segments minus its tombstones); ``manifest_problems``: segment files that are missing,
    unreadable or not what SQL recorded, and other problems of the state."""

    sql_chunks: int
    index_vectors: int
    missing_vectors: tuple[int, ...] = ()  # chunk ids in SQL without a vector
    orphan_vectors: tuple[int, ...] = ()  # vector ids without a chunk row
    manifest_problems: tuple[str, ...] = ()  # index file / manifest / state row problems
    sql_generation: int = 0
    index_generation: int | None = None  # the generation the segments were read at; None when one is unreadable

    @property
    def generation_mismatch(self) -> bool:
        return self.index_generation is not None and self.index_generation != self.sql_generation

    @property
    def ok(self) -> bool:
        return not (
            self.missing_vectors
            or self.orphan_vectors
            or self.manifest_problems
            or self.generation_mismatch
        )

    def summary(self, *, max_ids: int = 10) -> str:
        if self.ok:
            return f"consistent: {self.sql_chunks} chunks, {self.index_vectors} vectors"
        parts = [f"{self.sql_chunks} chunks in SQL, {self.index_vectors} vectors in the index"]
        if self.missing_vectors:
            parts.append(f"{len(self.missing_vectors)} chunks without a vector "
                         f"(e.g. {list(self.missing_vectors[:max_ids])})")
        if self.orphan_vectors:
            parts.append(f"{len(self.orphan_vectors)} vectors without a chunk "
                         f"(e.g. {list(self.orphan_vectors[:max_ids])})")
        if self.generation_mismatch:
            parts.append(f"index generation {self.index_generation} != SQL generation "
                         f"{self.sql_generation}")
        parts.extend(self.manifest_problems)
        return "; ".join(parts)
