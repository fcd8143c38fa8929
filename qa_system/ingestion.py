"""The ingestion pipeline: files -> documents -> chunks -> vectors -> one atomic store write.

Steps for each input file: parse it (a failure is reported by name and the file skipped),
drop documents whose source already holds the same text (re-ingest is a no-op), chunk and
embed the rest, and write them to the store. Writes are grouped per file, several files per
write: a file's documents are never split between two writes, and every write is atomic
(SQL transaction + new index generation), so a crash leaves the store as of the last write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .config import Settings
from .embedding import Embedder
from .errors import DocumentParseError, InputError
from .ingest import load_file_result, scan_input_files
from .storage import ApplyResult, DocumentWrite, Store
from .types import Chunk, Document

Chunker = Callable[[str, str], list[Chunk]]


@dataclass(frozen=True)
class IngestFailure:
    source: str
    reason: str


@dataclass(frozen=True)
class IngestReport:
    added: int = 0
    updated: int = 0
    skipped: int = 0  # unchanged since the last ingest (or repeated within this one)
    failed: tuple[IngestFailure, ...] = ()
    unsupported_files: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    files: int = 0
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        return (
            f"{self.files} files: {self.added} documents added, {self.updated} updated, "
            f"{self.skipped} unchanged, {len(self.failed)} failed; {self.chunks_added} chunks added, "
            f"{self.chunks_removed} removed; {self.unsupported_files} unsupported files skipped; "
            f"{self.seconds:.1f}s"
        )


@dataclass
class _Tally:
    added: int = 0
    updated: int = 0
    skipped: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    failed: list[IngestFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, result: ApplyResult) -> None:
        self.added += result.added
        self.updated += result.updated
        self.skipped += result.unchanged
        self.chunks_added += result.chunks_added
        self.chunks_removed += result.chunks_removed


class _Batch:
    """Documents waiting to be embedded and written together."""

    def __init__(self) -> None:
        self.documents: list[Document] = []
        self.chunks: list[list[Chunk]] = []

    @property
    def n_chunks(self) -> int:
        return sum(len(c) for c in self.chunks)

    def add(self, document: Document, chunks: list[Chunk]) -> None:
        self.documents.append(document)
        self.chunks.append(chunks)


class Ingestor:
    """Runs the ingestion steps against one store with one embedder and chunker."""

    def __init__(self, store: Store, embedder: Embedder, chunker: Chunker, settings: Settings) -> None:
        self._store = store
        self._embedder = embedder
        self._chunker = chunker
        self._settings = settings

    def ingest_paths(
        self, paths: Sequence[str | Path], *, progress: bool = False,
        csv_text_column: str = "text", csv_title_column: str | None = None,
    ) -> IngestReport:
        began = time.perf_counter()
        scan = scan_input_files(paths)
        tally = _Tally(failed=[IngestFailure(e.source, e.reason) for e in scan.errors])
        batch = _Batch()
        seen: set[str] = set()
        bar = tqdm(scan.files, desc="ingest", unit="file", disable=not progress, dynamic_ncols=True)
        for path in bar:
            try:
                loaded = load_file_result(
                    path, max_file_bytes=self._settings.max_file_bytes,
                    csv_text_column=csv_text_column, csv_title_column=csv_title_column,
                )
            except DocumentParseError as e:
                tally.failed.append(IngestFailure(e.source, e.reason))
                continue
            tally.notes.extend(f"{path}: skipped {s}" for s in loaded.skipped)
            self._stage(loaded.documents, batch, seen, tally)
            if batch.n_chunks >= self._settings.embed_batch_size * 16:
                self._flush(batch, tally)
                batch = _Batch()
            bar.set_postfix(docs=tally.added + tally.updated + len(batch.documents), failed=len(tally.failed))
        self._flush(batch, tally)
        return IngestReport(
            added=tally.added, updated=tally.updated, skipped=tally.skipped, failed=tuple(tally.failed),
            unsupported_files=len(scan.skipped_unsupported), chunks_added=tally.chunks_added,
            chunks_removed=tally.chunks_removed, files=len(scan.files),
            seconds=time.perf_counter() - began, notes=tuple(tally.notes),
        )

    def ingest_documents(self, documents: Iterable[Document]) -> IngestReport:
        """Ingest documents built by the caller (one atomic write)."""
        began = time.perf_counter()
        tally = _Tally()
        batch = _Batch()
        docs = list(documents)
        for doc in docs:
            if not doc.text.strip():
                raise InputError(f"{doc.source}: the document has no text")
        self._stage(docs, batch, set(), tally)
        self._flush(batch, tally)
        return IngestReport(
            added=tally.added, updated=tally.updated, skipped=tally.skipped, failed=tuple(tally.failed),
            chunks_added=tally.chunks_added, chunks_removed=tally.chunks_removed,
            seconds=time.perf_counter() - began,
        )

    def _stage(self, documents: Sequence[Document], batch: _Batch, seen: set[str], tally: _Tally) -> None:
        states = self._store.source_states([d.source for d in documents])
        for doc in documents:
            if doc.source in seen or states.get(doc.source, ("", ""))[0] == doc.id:
                tally.skipped += 1
                continue
            seen.add(doc.source)
            chunks = self._chunker(doc.id, doc.text)
            if not chunks:
                tally.failed.append(IngestFailure(doc.source, "no text to index"))
                continue
            batch.add(doc, chunks)

    def _flush(self, batch: _Batch, tally: _Tally) -> None:
        if not batch.documents:
            return
        texts = [c.text for chunks in batch.chunks for c in chunks]
        vectors = self._embedder.encode(texts, batch_size=self._settings.embed_batch_size)
        writes, at = [], 0
        for doc, chunks in zip(batch.documents, batch.chunks, strict=True):
            writes.append(DocumentWrite(doc, chunks, np.ascontiguousarray(vectors[at : at + len(chunks)])))
            at += len(chunks)
        tally.count(self._store.apply(writes))
