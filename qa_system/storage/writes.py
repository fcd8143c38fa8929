"""What one `Store.apply` does inside its transaction: validate, then change rows and vectors.

The steps run in one open SQL transaction. Chunk ids are allocated by inserting and flushing the
chunk rows; the new vectors, under those ids, and the ids of the removed chunks go back to the
Store, which writes them as a new segment and as tombstones in the same transaction, so the
segment set it commits carries exactly the ids the transaction commits.

A document's id is a digest of its source and text, so an upsert whose id is stored has the same
chunks; if its title or metadata differ from the stored ones, only those rows are rewritten (an
update that keeps the chunks and vectors, and needs no new index generation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Generic, TypeVar

import numpy as np
from sqlalchemy.orm import Session

from ..errors import DocumentNotFoundError, InputError
from ..types import Document
from . import repository as repo
from .records import ApplyResult, DocumentWrite, MetadataUpdate, Upsert

R = TypeVar("R")


_NO_IDS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Change(Generic[R]):
    """The outcome of a write step: the vectors to add (under chunk ids, sorted), the chunk ids
    whose vectors go, and the result; ``chunk_count``: the chunk rows after it, or -1 for "the
    recorded count plus the added, minus the removed". ``rows_changed``: no vector changed, but SQL rows did
    (commit them). ``rebuild``: the added vectors are the whole live set (repair), replacing
    every segment and tombstone."""

    chunk_count: int
    result: R
    added_ids: np.ndarray = field(default_factory=lambda: _NO_IDS)
    added_vectors: np.ndarray | None = None
    removed_ids: np.ndarray = field(default_factory=lambda: _NO_IDS)
    rows_changed: bool = False
    rebuild: bool = False

    @property
    def vectors_changed(self) -> bool:
        return self.rebuild or bool(len(self.added_ids) or len(self.removed_ids))


def validate_write(write: Upsert, dimension: int) -> None:
    document = write.document
    if not isinstance(write, (DocumentWrite, MetadataUpdate)):
        raise InputError(f"expected a DocumentWrite or a MetadataUpdate, got {type(write).__name__}")
    if not isinstance(document, Document):
        raise InputError(f"{type(write).__name__}.document must be a Document, got {type(document).__name__}")
    if isinstance(write, MetadataUpdate):
        return
    vectors = np.asarray(write.vectors)
    if vectors.ndim != 2 or vectors.shape != (len(write.chunks), dimension):
        raise InputError(f"{document.source}: expected vectors of shape "
                         f"({len(write.chunks)}, {dimension}), got {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise InputError(f"{document.source}: vectors contain NaN or infinite values")
    seen: set[int] = set()
    for chunk in write.chunks:
        if chunk.document_id != document.id:
            raise InputError(f"{document.source}: chunk {chunk.index} belongs to document "
                             f"{chunk.document_id}, not {document.id}")
        if chunk.index in seen:
            raise InputError(f"{document.source}: two chunks have index {chunk.index}")
        seen.add(chunk.index)
        if not (0 <= chunk.start <= chunk.end <= len(document.text)) or (
            document.text[chunk.start:chunk.end] != chunk.text
        ):
            raise InputError(f"{document.source}: chunk {chunk.index} text does not match "
                             f"document.text[{chunk.start}:{chunk.end}]")


def _unique_writes(upserts: Sequence[Upsert]) -> tuple[list[Upsert], int]:
    """Drop repeated document ids; two different ids for one source is an error."""
    by_source: dict[str, str] = {}
    unique: list[Upsert] = []
    repeats = 0
    for write in upserts:
        doc = write.document
        known = by_source.get(doc.source)
        if known is None:
            by_source[doc.source] = doc.id
            unique.append(write)
        elif known == doc.id:
            repeats += 1
        else:
            raise InputError(f"two different versions of {doc.source!r} in one apply")
    return unique, repeats


def apply_change(
    session: Session,
    *,
    dimension: int,
    upserts: Sequence[Upsert],
    delete_ids: Sequence[str],
    delete_sources: Sequence[str],
    now: datetime,
) -> Change[ApplyResult]:
    for write in upserts:
        validate_write(write, dimension)
    writes, unchanged = _unique_writes(upserts)

    doomed = _resolve_deletions(session, delete_ids, delete_sources)
    removed = set(doomed)
    existing = {doc_id: row for doc_id, row in repo.documents_by_id(session, [w.document.id for w in writes]).items()
                if doc_id not in removed}
    by_source = repo.documents_by_source(session, [w.document.source for w in writes])
    stored = repo.stored_labels(session, list(existing))
    pending: list[tuple[DocumentWrite, datetime]] = []
    relabel: list[Document] = []
    missing: list[str] = []
    added = updated = 0
    for write in writes:
        doc = write.document
        if doc.id in existing:
            if stored[doc.id] == repo.labels_of(doc):
                unchanged += 1
            else:
                relabel.append(doc)
            continue
        if isinstance(write, MetadataUpdate):
            missing.append(doc.source)
            continue
        old = by_source.get(doc.source)
        if old is not None and old.id not in removed:
            removed.add(old.id)
            updated += 1
            pending.append((write, repo.utc(old.created_at)))
        else:
            added += 1
            pending.append((write, now))
    for doc in relabel:
        repo.replace_labels(session, existing[doc.id], doc, now=now)
    result = ApplyResult(added=added, updated=updated + len(relabel), unchanged=unchanged,
                         deleted=len(doomed), missing=tuple(missing))
    if not pending and not removed:
        return Change(0, result, rows_changed=bool(relabel))

    removed_chunk_ids = repo.delete_documents(session, sorted(removed))
    session.flush()
    repo.insert_documents(session, [(w.document, created_at) for w, created_at in pending], now=now)
    new_ids = repo.insert_chunks(session, [c for write, _ in pending for c in write.chunks])

    ids = np.asarray(new_ids, dtype=np.int64)
    vectors = (np.concatenate([np.asarray(w.vectors, dtype=np.float32) for w, _ in pending])
               if new_ids else None)
    result = replace(result, chunks_added=len(new_ids), chunks_removed=len(removed_chunk_ids))
    # the chunk count follows from the state row's (the Store adds and subtracts; check() verifies)
    return Change(-1, result, added_ids=ids, added_vectors=vectors,
                  removed_ids=np.asarray(sorted(removed_chunk_ids), dtype=np.int64))


def _resolve_deletions(session: Session, ids: Sequence[str], sources: Sequence[str]) -> list[str]:
    """Document ids to delete; raises DocumentNotFoundError naming every one that is missing."""
    found_ids = repo.documents_by_id(session, list(ids))
    found_sources = repo.documents_by_source(session, list(sources))
    missing = [f"id {i}" for i in dict.fromkeys(ids) if i not in found_ids]
    missing += [f"source {s}" for s in dict.fromkeys(sources) if s not in found_sources]
    if missing:
        raise DocumentNotFoundError("no such document: " + ", ".join(missing))
    return list(dict.fromkeys([*found_ids, *(row.id for row in found_sources.values())]))
