"""The ingestion pipeline: files -> documents -> chunks -> vectors -> atomic store writes.

Each input file is parsed (a failure is reported by name and the file skipped) and its documents
taken in order. A document stored as it is (same source, text, title and metadata) is unchanged;
one whose source holds the same text with another title or metadata goes to the store as a
:class:`MetadataUpdate` (no chunking or embedding: only those rows are rewritten); the others are
chunked, and their chunks embedded in mini-batches of ``embed_batch_size`` across documents, as
they come. A document whose chunks are all embedded waits for the next commit: one atomic
``Store.apply`` (SQL transaction + new index generation), made every ``commit_interval_s``
seconds (longer while commits themselves are slow) or ``COMMIT_BATCHES`` mini-batches of chunks,
whichever comes first. A document is always written whole by one commit; the documents of one
file may be split between commits. A killed ingest leaves the store as of its last commit, and
running it again completes it (what was committed is unchanged).

The progress bar counts the bytes of the input files: a file's share advances as its documents'
chunks are embedded, so its rate and ETA follow the work; it also shows the chunks embedded, their
rate, the documents written and when a commit is writing.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .config import Settings
from .embedding import Embedder
from .errors import DocumentParseError, InputError
from .ingest import FileScan, is_supported, iter_file_documents, scan_input_files
from .ingest_report import DOCUMENT, FILE, IngestFailure, IngestReport
from .storage import ApplyResult, DocumentWrite, MetadataUpdate, Store
from .types import Chunk, Document

__all__ = ["Chunker", "CommitClock", "IngestFailure", "IngestReport", "Ingestor", "scan_report"]

Chunker = Callable[[str, str], Iterable[Chunk]]
#: A commit is due once this many mini-batches of chunks (of ``embed_batch_size``) are waiting.
COMMIT_BATCHES = 16
#: ... or once ``commit_interval_s`` has passed, but at least this many times the last commit's own
#: duration: commits (which rewrite the index file) then take at most about 1/(1 + this) of the time.
SLOW_COMMIT_FACTOR = 4.0
#: Documents looked up in the store together.
LOOKUP_BATCH = 256


class CommitClock:
    """When the next commit is due (pure logic over an injectable clock).

    ``interval`` None: only on ``max_chunks`` (or never, when that is None too: one write at the end).
    """

    def __init__(self, interval: float | None, max_chunks: int | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._max_chunks = max_chunks
        self._clock = clock
        self._last = clock()
        self._last_duration = 0.0

    def now(self) -> float:
        return self._clock()

    def due(self, *, documents: int, chunks: int) -> bool:
        """Whether ``documents`` finished documents holding ``chunks`` chunks should be written now."""
        if not documents:
            return False
        if self._max_chunks is not None and chunks >= self._max_chunks:
            return True
        if self._interval is None:
            return False
        wait = max(self._interval, SLOW_COMMIT_FACTOR * self._last_duration)
        return self._clock() - self._last >= wait

    def committed(self, started: float) -> None:
        """A commit that began at ``started`` (from :meth:`now`) has finished."""
        self._last = self._clock()
        self._last_duration = self._last - started


class _Progress:
    """The bar over the input's bytes, with the work's counts as its postfix."""

    def __init__(self, enabled: bool, total_bytes: int) -> None:
        self._bar = tqdm(total=total_bytes, desc="ingest", unit="B", unit_scale=True, unit_divisor=1024,
                         disable=not enabled, dynamic_ncols=True)
        self._began = time.perf_counter()
        self._done = 0.0  # bytes accounted, fractional
        self._shown = 0
        self.chunks = 0
        self.written = 0

    def advance(self, n_bytes: float) -> None:
        self._done += max(n_bytes, 0.0)
        step = round(self._done) - self._shown
        if step > 0:
            self._shown += step
            self._bar.update(step)

    def embedded(self, n_chunks: int) -> None:
        self.chunks += n_chunks
        self._postfix()

    def writing(self, n_documents: int) -> None:
        self._postfix(f"writing {n_documents} documents")

    def committed(self, n_written: int) -> None:
        self.written += n_written
        self._postfix()

    def _postfix(self, doing: str = "") -> None:
        rate = self.chunks / max(time.perf_counter() - self._began, 1e-9)
        text = f"{self.chunks} chunks ({rate:.0f}/s), {self.written} documents written"
        self._bar.set_postfix_str(f"{text}, {doing}" if doing else text)

    def close(self) -> None:
        self._bar.close()


@dataclass(eq=False)  # compared (and hashed) by identity
class _Pending:
    """A document being chunked and embedded; ``share``: the input bytes it accounts for."""

    document: Document
    share: float
    n_chunks: int = 0
    chunked: bool = False
    chunks: list[Chunk] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    reached: int = 0  # the text offset its embedded chunks reach

    @property
    def complete(self) -> bool:
        return self.chunked and len(self.chunks) == self.n_chunks

    def bytes_to(self, offset: int) -> float:
        """The bytes of its share from the text offset reached so far to ``offset`` (if further)."""
        offset = max(self.reached, offset)
        step = self.share * (offset - self.reached) / max(len(self.document.text), 1)
        self.reached = offset
        return step


@dataclass
class _Tally:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    commits: int = 0
    failed: list[IngestFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, result: ApplyResult) -> None:
        self.added += result.added
        self.updated += result.updated
        self.unchanged += result.unchanged
        self.chunks_added += result.chunks_added
        self.chunks_removed += result.chunks_removed
        self.commits += int(result.changed)
        self.failed.extend(IngestFailure(s, "removed by another writer during this ingest; ingest it again",
                                         DOCUMENT) for s in result.missing)


class _Run:
    """One ingest's staging, embedding and commits."""

    def __init__(self, store: Store, embedder: Embedder, chunker: Chunker, *, batch_size: int,
                 clock: CommitClock, progress: _Progress) -> None:
        self._store = store
        self._embedder = embedder
        self._chunker = chunker
        self._batch_size = batch_size
        self._clock = clock
        self.progress = progress
        self.tally = _Tally()
        self._seen: set[str] = set()
        self._queue: list[tuple[_Pending, Chunk]] = []  # chunks waiting to be embedded
        self._ready: list[DocumentWrite | MetadataUpdate] = []  # documents waiting to be written
        self._ready_chunks = 0

    def add(self, documents: Sequence[tuple[Document, float]]) -> None:
        """Stage documents (with the input bytes each accounts for); embeds and commits as due."""
        states = self._store.source_states([d.source for d, _ in documents])
        same_text = [d for d, _ in documents if states.get(d.source, ("", ""))[0] == d.id]
        unchanged = self._store.unchanged_documents(same_text) if same_text else set()
        same_ids = {d.id for d in same_text}
        for doc, share in documents:
            repeated = doc.source in self._seen  # within this ingest
            self._seen.add(doc.source)
            if repeated or doc.id in unchanged:
                self.tally.unchanged += 1
                self.progress.advance(share)
            elif doc.id in same_ids:  # only the title or metadata changed
                self._ready.append(MetadataUpdate(doc))
                self.progress.advance(share)
            else:
                self._embed_document(_Pending(doc, share))
            self._commit_if_due()

    def _embed_document(self, pending: _Pending) -> None:
        for chunk in self._chunker(pending.document.id, pending.document.text):
            pending.n_chunks += 1
            self._queue.append((pending, chunk))
            if len(self._queue) >= self._batch_size:
                self._embed_queue()
        pending.chunked = True
        if not pending.n_chunks:
            self.tally.failed.append(IngestFailure(pending.document.source, "no text to index", DOCUMENT))
            self.progress.advance(pending.bytes_to(len(pending.document.text)))
        elif pending.complete:
            self._finish_document(pending)

    def _embed_queue(self) -> None:
        if not self._queue:
            return
        batch, self._queue = self._queue, []
        vectors = self._embedder.encode([c.text for _, c in batch], batch_size=self._batch_size)
        for (pending, chunk), vector in zip(batch, vectors, strict=True):
            pending.chunks.append(chunk)
            pending.vectors.append(vector)
            self.progress.advance(pending.bytes_to(chunk.end))
        self.progress.embedded(len(batch))
        for pending in dict.fromkeys(p for p, _ in batch):
            if pending.complete:
                self._finish_document(pending)
        self._commit_if_due()

    def _finish_document(self, pending: _Pending) -> None:
        vectors = np.ascontiguousarray(np.stack(pending.vectors), dtype=np.float32)
        self._ready.append(DocumentWrite(pending.document, pending.chunks, vectors))
        self._ready_chunks += len(pending.chunks)
        self.progress.advance(pending.bytes_to(len(pending.document.text)))

    def _commit_if_due(self) -> None:
        if self._clock.due(documents=len(self._ready), chunks=self._ready_chunks):
            self.commit()

    def commit(self) -> None:
        if not self._ready:
            return
        started = self._clock.now()
        self.progress.writing(len(self._ready))
        result = self._store.apply(self._ready)
        self.tally.count(result)
        self._ready, self._ready_chunks = [], 0
        self._clock.committed(started)
        self.progress.committed(result.added + result.updated)

    def finish(self) -> None:
        """Embed what is queued and write every finished document."""
        self._embed_queue()
        self.commit()


class Ingestor:
    """Runs the ingestion steps against one store with one embedder and chunker."""

    def __init__(self, store: Store, embedder: Embedder, chunker: Chunker, settings: Settings, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``clock``: seconds, for when commits are due (tests step it)."""
        self._store = store
        self._embedder = embedder
        self._chunker = chunker
        self._settings = settings
        self._clock = clock

    def ingest_paths(
        self, paths: Sequence[str | Path], *, progress: bool = False,
        csv_text_column: str = "text", csv_title_column: str | None = None,
    ) -> IngestReport:
        """Ingest the files of ``paths`` (folders walked), committing as it goes (see the module)."""
        began = time.perf_counter()
        scan = scan_input_files(paths)
        sizes = [_file_size(path) for path in scan.files]
        clock = CommitClock(self._settings.commit_interval_s, self._settings.embed_batch_size * COMMIT_BATCHES,
                            self._clock)
        run = self._run(clock, _Progress(progress, sum(sizes)))
        run.tally.failed.extend(IngestFailure(e.source, e.reason) for e in scan.errors)
        files_read = 0
        try:
            for path, size in zip(scan.files, sizes, strict=True):
                accounted = 0.0  # the bytes of the file its documents so far account for
                try:
                    documents = self._file_documents(path, size, run.tally, csv_text_column, csv_title_column)
                    for group in _groups(documents, LOOKUP_BATCH):
                        accounted += sum(share for _, share in group)
                        run.add(group)
                except DocumentParseError as e:
                    run.tally.failed.append(IngestFailure(e.source, e.reason))
                else:
                    files_read += 1
                run.progress.advance(size - accounted)  # what was not read (rounding, or a failure)
            run.finish()
        finally:
            run.progress.close()
        return _report(run.tally, scan, files_read, time.perf_counter() - began)

    def ingest_documents(self, documents: Iterable[Document]) -> IngestReport:
        """Ingest documents built by the caller, in one atomic write."""
        began = time.perf_counter()
        docs = list(documents)
        for doc in docs:
            if not doc.text.strip():
                raise InputError(f"{doc.source}: the document has no text")
        run = self._run(CommitClock(None, None, self._clock), _Progress(False, 0))
        run.add([(doc, 0.0) for doc in docs])
        run.finish()
        return _report(run.tally, None, 0, time.perf_counter() - began)

    def _run(self, clock: CommitClock, progress: _Progress) -> _Run:
        return _Run(self._store, self._embedder, self._chunker, batch_size=self._settings.embed_batch_size,
                    clock=clock, progress=progress)

    def _file_documents(self, path: Path, size: int, tally: _Tally, csv_text_column: str,
                        csv_title_column: str | None) -> Iterator[tuple[Document, float]]:
        """The documents of one file as the loader streams them, each with the bytes of the file
        read since the previous one (for the progress bar). Once the file is read, the records the
        loader skipped and its warnings become notes naming the file (when the file fails, its
        DocumentParseError names them instead). Raises DocumentParseError when the file cannot be
        read."""
        stream = iter_file_documents(path, max_file_bytes=self._settings.max_file_bytes,
                                     csv_text_column=csv_text_column, csv_title_column=csv_title_column)
        scale = size / stream.total_bytes if stream.total_bytes else 0.0
        reported = 0.0
        for doc in stream:
            share = stream.bytes_read * scale - reported
            reported += share
            yield doc, share
        tally.notes.extend(f"{path}: skipped {s}" for s in stream.skipped)
        tally.notes.extend(f"{path}: warning: {w}" for w in stream.warnings)


def scan_report(scan: FileScan) -> IngestReport:
    """The report of an ingest of ``scan`` before anything is read: its failures, and the files
    of unsupported types (those named explicitly too) as skipped."""
    failed = tuple(IngestFailure(e.source, e.reason) for e in scan.errors)
    unsupported = [p for p in scan.files if not is_supported(p)] + list(scan.skipped_unsupported)
    return IngestReport(failed=failed, files=len(scan.files) + len(scan.skipped_unsupported) + len(failed),
                        unsupported=tuple(p.as_posix() for p in unsupported))


def _report(tally: _Tally, scan: FileScan | None, files_read: int, seconds: float) -> IngestReport:
    failed = tuple(tally.failed)
    unsupported = tuple(p.as_posix() for p in scan.skipped_unsupported) if scan is not None else ()
    files = files_read + sum(f.kind == FILE for f in failed) + len(unsupported) if scan is not None else 0
    return IngestReport(
        added=tally.added, updated=tally.updated, unchanged=tally.unchanged, failed=failed, files=files,
        files_read=files_read, unsupported=unsupported, chunks_added=tally.chunks_added,
        chunks_removed=tally.chunks_removed, commits=tally.commits, seconds=seconds, notes=tuple(tally.notes),
    )


def _groups(items: Iterator[tuple[Document, float]], size: int) -> Iterator[list[tuple[Document, float]]]:
    while group := list(itertools.islice(items, size)):
        yield group


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
