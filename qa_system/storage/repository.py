"""Queries and writes on one open session. Nothing here commits: the Store owns transactions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ..errors import StoreError
from ..types import Chunk, Document, Metadata, MetadataValue, Passage
from .codec import DIGEST_PREFIX, check_key, decode_value, encode_value, filter_candidates, filter_values, lookup_key
from .models import (
    STATE_ROW_ID,
    ChunkRow,
    DocumentMetadataRow,
    DocumentRow,
    SegmentRow,
    StoreStateRow,
    TombstoneRow,
)
from .records import DocumentSummary, StoredDocument
from .segments import SegmentInfo

T = TypeVar("T")
#: Bound parameters per IN (...) list; well under every database's limit.
IN_BATCH = 500
#: Filter keys that name document columns rather than metadata.
COLUMN_FILTERS = ("document_id", "source")

Filters = Mapping[str, MetadataValue | Sequence[MetadataValue]]


def batched(items: Sequence[T], size: int = IN_BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; every datetime leaving the store is UTC-aware."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


# ------------------------------------------------------------------------------ state


def state(session: Session, *, lock: bool = False) -> StoreStateRow:
    """The single state row; ``lock`` takes a row lock on databases that have them."""
    query = select(StoreStateRow).where(StoreStateRow.id == STATE_ROW_ID)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        raise StoreError("the store_state row is missing; the database was not migrated by qa_system")
    return row


def current_generation(session: Session) -> int:
    value = session.scalar(select(StoreStateRow.generation).where(StoreStateRow.id == STATE_ROW_ID))
    if value is None:
        raise StoreError("the store_state row is missing; the database was not migrated by qa_system")
    return int(value)


# --------------------------------------------------------------------------- segments


def segment_infos(session: Session) -> list[SegmentInfo]:
    """The live segments, by id range."""
    rows = session.scalars(select(SegmentRow).order_by(SegmentRow.min_id)).all()
    return [info_of(row) for row in rows]


def info_of(row: SegmentRow) -> SegmentInfo:
    return SegmentInfo(id=int(row.id), kind=row.kind, vectors=int(row.vectors), min_id=int(row.min_id),
                       max_id=int(row.max_id), bytes=int(row.bytes), sha256=row.sha256)


def insert_segment(session: Session, *, kind: str, ids: np.ndarray, now: datetime) -> SegmentRow:
    """A segment row for sorted chunk ``ids`` (its id allocated; size and digest filled in by the
    caller once the file is written)."""
    row = SegmentRow(kind=kind, vectors=len(ids), min_id=int(ids[0]), max_id=int(ids[-1]), bytes=0,
                     sha256="", created_at=now)
    session.add(row)
    session.flush()
    return row


def delete_segments(session: Session, segment_ids: Sequence[int]) -> None:
    for batch in batched(list(segment_ids)):
        session.execute(delete(SegmentRow).where(SegmentRow.id.in_(batch)))


def tombstone_ids(session: Session) -> np.ndarray:
    return np.asarray(session.scalars(select(TombstoneRow.chunk_id).order_by(TombstoneRow.chunk_id)).all(),
                      dtype=np.int64)


def tombstones_of(session: Session, segment_ids: Sequence[int]) -> np.ndarray:
    found: list[int] = []
    for batch in batched(list(segment_ids)):
        found.extend(session.scalars(select(TombstoneRow.chunk_id).where(TombstoneRow.segment_id.in_(batch))))
    return np.asarray(sorted(found), dtype=np.int64)


def tombstone_counts(session: Session) -> dict[int, int]:
    query = select(TombstoneRow.segment_id, func.count()).group_by(TombstoneRow.segment_id)
    return {int(s): int(n) for s, n in session.execute(query)}


def add_tombstones(session: Session, located: Mapping[int, int]) -> None:
    """Record ``chunk id -> segment id`` tombstones."""
    session.add_all([TombstoneRow(chunk_id=c, segment_id=s) for c, s in located.items()])
    session.flush()


def move_tombstones(session: Session, chunk_ids: Sequence[int], segment_id: int) -> None:
    for batch in batched([int(i) for i in chunk_ids]):
        session.execute(TombstoneRow.__table__.update().where(TombstoneRow.chunk_id.in_(batch))
                        .values(segment_id=segment_id))


def delete_tombstones(session: Session, *, segment_ids: Sequence[int] | None = None) -> None:
    """Drop the tombstones of ``segment_ids`` (None: all of them)."""
    if segment_ids is None:
        session.execute(delete(TombstoneRow))
        return
    for batch in batched(list(segment_ids)):
        session.execute(delete(TombstoneRow).where(TombstoneRow.segment_id.in_(batch)))


# -------------------------------------------------------------------------- documents


def documents_by_id(session: Session, ids: Sequence[str]) -> dict[str, DocumentRow]:
    found: dict[str, DocumentRow] = {}
    for batch in batched(list(dict.fromkeys(ids))):
        for row in session.scalars(select(DocumentRow).where(DocumentRow.id.in_(batch))):
            found[row.id] = row
    return found


def documents_by_source(session: Session, sources: Sequence[str]) -> dict[str, DocumentRow]:
    found: dict[str, DocumentRow] = {}
    for batch in batched(list(dict.fromkeys(sources))):
        for row in session.scalars(select(DocumentRow).where(DocumentRow.source.in_(batch))):
            found[row.source] = row
    return found


def source_states(session: Session, sources: Sequence[str]) -> dict[str, tuple[str, str]]:
    states: dict[str, tuple[str, str]] = {}
    columns = (DocumentRow.source, DocumentRow.id, DocumentRow.content_hash)
    for batch in batched(list(dict.fromkeys(sources))):
        for source, doc_id, digest in session.execute(select(*columns).where(DocumentRow.source.in_(batch))):
            states[source] = (doc_id, digest)
    return states


def insert_documents(session: Session, documents: Sequence[tuple[Document, datetime]], *,
                     now: datetime) -> None:
    """Insert ``(document, created_at)`` rows, then their metadata rows (parents flushed first)."""
    session.add_all([
        DocumentRow(id=doc.id, source=doc.source, title=doc.title, content_hash=doc.content_hash,
                    text=doc.text, n_chars=len(doc.text), created_at=created_at, updated_at=now)
        for doc, created_at in documents
    ])
    session.flush()
    session.add_all([row for doc, _ in documents for row in _metadata_rows(doc)])
    session.flush()


def _metadata_rows(doc: Document) -> list[DocumentMetadataRow]:
    rows = []
    for key, value in doc.metadata.items():
        value_type, encoded = encode_value(value)
        rows.append(DocumentMetadataRow(document_id=doc.id, key=check_key(key), value=encoded,
                                        value_type=value_type, value_lookup=lookup_key(encoded)))
    return rows


#: A document's title and its metadata as stored: ``(title, {(key, value_type, value text)})``.
Labels = tuple[str | None, frozenset[tuple[str, str, str]]]


def labels_of(doc: Document) -> Labels:
    """What ``doc``'s title and metadata would be stored as (types kept: ``1`` is not ``True``)."""
    return doc.title, frozenset((check_key(k), *encode_value(v)) for k, v in doc.metadata.items())


def stored_labels(session: Session, ids: Sequence[str]) -> dict[str, Labels]:
    """The stored title and metadata of the documents among ``ids`` (without reading their text)."""
    titles: dict[str, str | None] = {}
    pairs: dict[str, set[tuple[str, str, str]]] = {}
    columns = (DocumentMetadataRow.document_id, DocumentMetadataRow.key, DocumentMetadataRow.value_type,
               DocumentMetadataRow.value)
    for batch in batched(list(dict.fromkeys(ids))):
        query = select(DocumentRow.id, DocumentRow.title).where(DocumentRow.id.in_(batch))
        for doc_id, title in session.execute(query):
            titles[doc_id], pairs[doc_id] = title, set()
        for doc_id, key, value_type, value in session.execute(
                select(*columns).where(DocumentMetadataRow.document_id.in_(batch))):
            pairs[doc_id].add((key, value_type, value))
    return {doc_id: (title, frozenset(pairs[doc_id])) for doc_id, title in titles.items()}


def replace_labels(session: Session, row: DocumentRow, doc: Document, *, now: datetime) -> None:
    """Give stored document ``row`` the title and metadata of ``doc`` (same id); chunks untouched."""
    row.title = doc.title
    row.updated_at = now
    session.execute(delete(DocumentMetadataRow).where(DocumentMetadataRow.document_id == row.id))
    session.add_all(_metadata_rows(doc))
    session.flush()


def delete_documents(session: Session, document_ids: Sequence[str]) -> list[int]:
    """Delete documents with their chunks and metadata; returns the removed chunk ids."""
    removed: list[int] = []
    for batch in batched(list(dict.fromkeys(document_ids))):
        removed.extend(session.scalars(select(ChunkRow.id).where(ChunkRow.document_id.in_(batch))))
        # Explicit deletes (not only ON DELETE CASCADE), so no database setting can leave orphans.
        session.execute(delete(ChunkRow).where(ChunkRow.document_id.in_(batch)))
        session.execute(delete(DocumentMetadataRow).where(DocumentMetadataRow.document_id.in_(batch)))
        session.execute(delete(DocumentRow).where(DocumentRow.id.in_(batch)))
    return removed


def insert_chunks(session: Session, chunks: Sequence[Chunk]) -> list[int]:
    """Insert chunk rows and return their new ids (the vector ids), in the given order."""
    rows = [
        ChunkRow(document_id=c.document_id, idx=c.index, start_char=c.start, end_char=c.end,
                 text=c.text, n_tokens=c.n_tokens)
        for c in chunks
    ]
    session.add_all(rows)
    session.flush()
    return [int(row.id) for row in rows]


def _metadata(session: Session, document_ids: Sequence[str]) -> dict[str, Metadata]:
    found: dict[str, dict[str, MetadataValue]] = {}
    for batch in batched(list(dict.fromkeys(document_ids))):
        query = select(DocumentMetadataRow).where(DocumentMetadataRow.document_id.in_(batch))
        for row in session.scalars(query):
            found.setdefault(row.document_id, {})[row.key] = decode_value(row.value_type, row.value)
    return {doc_id: MappingProxyType(values) for doc_id, values in found.items()}


def _chunk_counts(session: Session, document_ids: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for batch in batched(list(dict.fromkeys(document_ids))):
        query = (select(ChunkRow.document_id, func.count(ChunkRow.id))
                 .where(ChunkRow.document_id.in_(batch)).group_by(ChunkRow.document_id))
        counts.update({doc_id: int(n) for doc_id, n in session.execute(query)})
    return counts


def stored_documents(session: Session, ids: Sequence[str]) -> dict[str, StoredDocument]:
    rows = documents_by_id(session, ids)
    metadata = _metadata(session, list(rows))
    counts = _chunk_counts(session, list(rows))
    return {
        doc_id: StoredDocument(
            id=row.id, source=row.source, title=row.title, text=row.text,
            content_hash=row.content_hash, metadata=metadata.get(doc_id, MappingProxyType({})),
            chunk_count=counts.get(doc_id, 0), created_at=utc(row.created_at),
            updated_at=utc(row.updated_at),
        )
        for doc_id, row in rows.items()
    }


def document_summaries(session: Session, *, limit: int, offset: int) -> list[DocumentSummary]:
    counts = (select(ChunkRow.document_id, func.count(ChunkRow.id).label("n"))
              .group_by(ChunkRow.document_id).subquery())
    query = (
        select(DocumentRow.id, DocumentRow.source, DocumentRow.title, DocumentRow.n_chars,
               func.coalesce(counts.c.n, 0), DocumentRow.created_at, DocumentRow.updated_at)
        .outerjoin(counts, counts.c.document_id == DocumentRow.id)
        .order_by(DocumentRow.source).limit(limit).offset(offset)
    )
    return [
        DocumentSummary(id=i, source=s, title=t, n_chars=n, chunk_count=int(c),
                        created_at=utc(ca), updated_at=utc(ua))
        for i, s, t, n, c, ca, ua in session.execute(query)
    ]


def count_documents(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(DocumentRow)) or 0)


# ----------------------------------------------------------------------------- chunks


def count_chunks(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(ChunkRow)) or 0)


def all_chunk_ids(session: Session) -> np.ndarray:
    ids = session.scalars(select(ChunkRow.id).order_by(ChunkRow.id)).all()
    return np.asarray(ids, dtype=np.int64)


def chunk_texts_after(session: Session, after: int, limit: int) -> list[tuple[int, str]]:
    """``(id, text)`` of the first ``limit`` chunks with an id above ``after``, in id order."""
    query = select(ChunkRow.id, ChunkRow.text).where(ChunkRow.id > after).order_by(ChunkRow.id).limit(limit)
    return [(int(i), t) for i, t in session.execute(query)]


def count_chunks_after(session: Session, after: int) -> int:
    return int(session.scalar(select(func.count()).select_from(ChunkRow).where(ChunkRow.id > after)) or 0)


def chunk_texts(session: Session, ids: Sequence[int]) -> dict[int, str]:
    texts: dict[int, str] = {}
    for batch in batched([int(i) for i in ids]):
        texts.update({int(i): t for i, t in session.execute(
            select(ChunkRow.id, ChunkRow.text).where(ChunkRow.id.in_(batch)))})
    return texts


PassageRow = tuple[ChunkRow, str, str | None, Metadata]


def passage_rows(session: Session, chunk_ids: Iterable[int]) -> dict[int, PassageRow]:
    """Chunk rows with their document's source, title and metadata, by chunk id."""
    found: dict[int, tuple[ChunkRow, str, str | None]] = {}
    for batch in batched(sorted({int(i) for i in chunk_ids})):
        query = (select(ChunkRow, DocumentRow.source, DocumentRow.title)
                 .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
                 .where(ChunkRow.id.in_(batch)))
        for chunk, source, title in session.execute(query):
            found[int(chunk.id)] = (chunk, source, title)
    metadata = _metadata(session, [chunk.document_id for chunk, _, _ in found.values()])
    empty: Metadata = MappingProxyType({})
    return {cid: (c, s, t, metadata.get(c.document_id, empty)) for cid, (c, s, t) in found.items()}


def filter_conditions(filters: Filters, *, correlated: bool = False,
                      document_id: Any = None) -> list[ColumnElement[bool]] | None:
    """SQL conditions on documents for ``filters``; None when a filter can match nothing.
    ``correlated``: metadata conditions as EXISTS per document (cheap when a few known documents
    are checked) rather than IN (the matching documents, for when they are to be listed).
    ``document_id``: the column the document id conditions apply to (default ``documents.id``;
    ``chunks.document_id`` lets chunks be filtered without joining documents)."""
    doc_id = DocumentRow.id if document_id is None else document_id
    conditions: list[ColumnElement[bool]] = []
    for key, wanted in filters.items():
        values = filter_values(wanted)
        if not values:
            return None
        if key in COLUMN_FILTERS:
            column = doc_id if key == "document_id" else DocumentRow.source
            conditions.append(column.in_([str(v) for v in values]))
            continue
        documents = select(DocumentMetadataRow.document_id).where(*_metadata_match(key, values))
        if correlated:
            conditions.append(documents.where(DocumentMetadataRow.document_id == doc_id).exists())
        else:
            conditions.append(doc_id.in_(documents))
    return conditions


def _metadata_match(key: str, values: Sequence[MetadataValue]) -> list[ColumnElement[bool]]:
    pairs = [pair for value in values for pair in filter_candidates(value)]
    matches = or_(*(and_(DocumentMetadataRow.value_type == t, DocumentMetadataRow.value_lookup == v)
                    for t, v in pairs))
    return [DocumentMetadataRow.key == check_key(key), matches]


def matching_documents_at_most(session: Session, filters: Filters, *, limit: int) -> int:
    """An upper bound on how many documents match ``filters``, counted no further than
    ``limit``: the smallest count of any one condition (each read from its index, so the cost
    is bounded by ``limit``, however many documents match)."""
    if filter_conditions(filters) is None:
        return 0
    bound = limit
    for key, wanted in filters.items():
        values = filter_values(wanted)
        if key in COLUMN_FILTERS:
            bound = min(bound, len(set(values)))
            continue
        capped = select(DocumentMetadataRow.document_id).where(*_metadata_match(key, values)).limit(limit).subquery()
        bound = min(bound, int(session.scalar(select(func.count()).select_from(capped)) or 0))
    return bound


def allowed_chunk_ids(session: Session, filters: Filters, *, limit: int | None = None) -> np.ndarray:
    """Ids of the chunks whose document matches every filter (a list value means any of); with
    ``limit``, at most that many (the caller asks for one more than it will use)."""
    needs_documents = "source" in filters  # the only condition on a documents column
    conditions = filter_conditions(filters, document_id=None if needs_documents else ChunkRow.document_id)
    if conditions is None:
        return np.zeros(0, dtype=np.int64)
    query = select(ChunkRow.id)
    if needs_documents:
        query = query.join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
    query = query.where(*conditions)
    if limit is not None:
        query = query.limit(limit)
    return np.fromiter((row[0] for row in session.execute(query)), dtype=np.int64)


def matching_among(session: Session, chunk_ids: Sequence[int], filters: Filters) -> set[int]:
    """Those of ``chunk_ids`` whose document matches every filter."""
    conditions = filter_conditions(filters, correlated=True)
    if conditions is None:
        return set()
    found: set[int] = set()
    for batch in batched([int(i) for i in chunk_ids]):
        query = (select(ChunkRow.id).join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
                 .where(ChunkRow.id.in_(batch), *conditions))
        found.update(int(i) for i in session.scalars(query))
    return found


def matching_document_ids(session: Session, filters: Filters) -> list[str]:
    """Ids of the documents that match every filter, sorted."""
    conditions = filter_conditions(filters)
    if conditions is None:
        return []
    return sorted(session.scalars(select(DocumentRow.id).where(*conditions)).all())


def metadata_choices(session: Session, filters: Filters | None, *, limit: int) -> list[tuple[str, MetadataValue]]:
    """Distinct ``(key, value)`` pairs of the metadata of the documents matching ``filters`` (all
    documents: None), at most ``limit``, read from the metadata index alone; values too long to be
    their own lookup (see ``codec``) are left out."""
    meta = DocumentMetadataRow
    query = (select(meta.key, meta.value_type, meta.value_lookup).distinct()
             .where(~meta.value_lookup.startswith(DIGEST_PREFIX)))
    if filters:
        conditions = filter_conditions(filters)
        if conditions is None:
            return []
        query = query.where(meta.document_id.in_(select(DocumentRow.id).where(*conditions)))
    query = query.order_by(meta.key, meta.value_type, meta.value_lookup).limit(limit)
    return [(key, decode_value(value_type, lookup)) for key, value_type, lookup in session.execute(query)]


def to_passages(scores: np.ndarray, ids: np.ndarray, rows: Mapping[int, PassageRow],
                cosines: np.ndarray | None = None) -> list[Passage]:
    """Passages for one query's hits, best first; ids without a row (or -1) are skipped.
    ``cosines``: each hit's cosine when ``scores`` are not (hybrid retrieval); else the scores are."""
    passages: list[Passage] = []
    dense = (scores if cosines is None else cosines).tolist()
    for score, chunk_id, cosine in zip(scores.tolist(), ids.tolist(), dense, strict=True):
        row = rows.get(int(chunk_id)) if chunk_id >= 0 else None
        if row is None:
            continue
        chunk, source, title, metadata = row
        passages.append(Passage(
            chunk_id=int(chunk.id), document_id=chunk.document_id, source=source, title=title,
            text=chunk.text, start=chunk.start_char, end=chunk.end_char, score=float(score),
            metadata=metadata, dense_score=float(cosine),
        ))
    return passages
