"""Ingestion on a Ray cluster: parse, chunk and embed on worker actors; write from the driver.

``qa-system ingest PATH --ray auto|local|ADDRESS`` (the optional extra ``ray``). Each worker is a
Ray actor that loads the embedder and the chunker *once*, when it starts, and then does two kinds
of work, handed out by the driver to whichever actor is free:

* **parse** a file into documents (failures come back as the file's error, as locally);
* **embed** a batch of documents: chunk them exactly as a local ingest does (the embedder's own
  tokenizer, the same chunk settings) and embed the chunks.

Between the two the driver looks each parsed document up in the store, as a local ingest does:
one stored as it is is *unchanged* and never embedded, one whose title or metadata changed becomes
a metadata update, and the others go to the actors. The driver writes finished documents through
the store in batches (``Store.apply``, one transaction each), so the idempotence, the per-file
error report and the progress bar are those of ``qa_system.ingestion``: re-running adds nothing,
a changed file replaces its chunks, and a run that dies half-way leaves the store as of its last
write (re-run it to finish). The workers need only the model (no database access); the driver
needs the store.

Ray actors rather than a Ray Data pipeline: a store lookup sits between parsing and embedding
(so unchanged documents are never embedded), which a map over files cannot express without
re-embedding everything on every run.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Settings
from .errors import ConfigError, DocumentParseError, QASystemError
from .ingest import scan_input_files
from .ingest_report import DOCUMENT, IngestFailure, IngestReport
from .ingestion import COMMIT_BATCHES, _file_size, _Progress, _report, _Tally
from .storage import DocumentWrite, MetadataUpdate, Store
from .types import Chunk, Document

INSTALL_HINT = "--ray needs the 'ray' extra: pip install 'qa_system[ray]' (Ray 2.x, on the driver and every node)"
#: Documents per embed task (about a few mini-batches of chunks).
EMBED_DOCUMENTS = 64


def import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise QASystemError(f"{INSTALL_HINT} ({e})") from None
    return ray


def connect(address: str, *, workers: int | None = None) -> Any:
    """Connect to Ray: ``auto`` (the cluster ``ray start`` made on this machine, else RAY_ADDRESS),
    ``local`` (a new local Ray with ``workers`` CPUs, stopped with the ingest) or an address
    (``ray://host:10001`` or ``host:6379``)."""
    ray = import_ray()
    if not address:
        raise ConfigError("--ray needs auto, local or a cluster address")
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
    try:
        if address == "local":
            ray.init(num_cpus=workers or os.cpu_count() or 1, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise QASystemError(f"cannot connect to Ray at {address!r}: {e} (start a cluster with `ray start --head`, "
                            "or use --ray local for a Ray started for this ingest)") from e
    return ray


@dataclass
class _Parsed:
    path: str
    documents: list[Document] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class _Embedded:
    writes: list[tuple[Document, list[Chunk], np.ndarray]]
    empty: list[str]  # sources with no text to index
    chunks: int


class _Worker:
    """One worker actor's state: the embedder and chunker, loaded once when it starts."""

    def __init__(self, settings: Settings, threads: int) -> None:
        import torch

        from .chunking import make_chunker
        from .embedding import SentenceTransformerEmbedder, tokenizer_copy

        torch.set_num_threads(max(1, threads))
        self._settings = settings
        self._embedder = SentenceTransformerEmbedder(settings.embedding_model, device=settings.device,
                                                     precision=settings.embedding_precision).load()
        max_tokens = min(settings.chunk_tokens, self._embedder.max_tokens)
        overlap = min(settings.chunk_overlap_tokens, max_tokens // 2)
        self._chunker = make_chunker(tokenizer_copy(self._embedder.tokenizer), max_tokens, overlap)

    def describe(self) -> tuple[str, int, int]:
        return self._embedder.model_name, self._embedder.dimension, os.getpid()

    def parse(self, path: str, csv_text_column: str, csv_title_column: str | None) -> _Parsed:
        from .ingest import iter_file_documents

        try:
            stream = iter_file_documents(Path(path), max_file_bytes=self._settings.max_file_bytes,
                                         csv_text_column=csv_text_column, csv_title_column=csv_title_column)
            documents = list(stream)
        except DocumentParseError as e:
            return _Parsed(path, error=f"{e.source}\0{e.reason}")
        notes = [f"{path}: skipped {s}" for s in stream.skipped] + [f"{path}: warning: {w}" for w in stream.warnings]
        return _Parsed(path, documents, notes=notes)

    def embed(self, documents: list[Document]) -> _Embedded:
        chunked = [(doc, list(self._chunker(doc.id, doc.text))) for doc in documents]
        texts = [c.text for _, chunks in chunked for c in chunks]
        vectors = (np.asarray(self._embedder.encode(texts, batch_size=self._settings.embed_batch_size),
                              dtype=np.float32) if texts else np.zeros((0, self._embedder.dimension), np.float32))
        writes, empty, start = [], [], 0
        for doc, chunks in chunked:
            if not chunks:
                empty.append(doc.source)
                continue
            writes.append((doc, chunks, np.ascontiguousarray(vectors[start:start + len(chunks)])))
            start += len(chunks)
        return _Embedded(writes, empty, len(texts))


def ray_ingest(store: Store, settings: Settings, paths: Sequence[str | Path], *, address: str,
               workers: int | None = None, progress: bool = False, csv_text_column: str = "text",
               csv_title_column: str | None = None) -> IngestReport:
    """Ingest ``paths`` into ``store`` with ``workers`` Ray actors (default: the cluster's CPUs)
    doing the parsing, chunking and embedding (see the module)."""
    ray = connect(address, workers=workers)
    started_here = address == "local"
    try:
        return _Driver(ray, store, settings, workers, csv_text_column, csv_title_column).run(paths, progress)
    finally:
        if started_here:
            ray.shutdown()


class _Driver:
    def __init__(self, ray: Any, store: Store, settings: Settings, workers: int | None, csv_text_column: str,
                 csv_title_column: str | None) -> None:
        self._ray, self._store, self._settings = ray, store, settings
        count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        if count < 1:
            raise ConfigError(f"Ray workers must be at least 1, got {count}")
        actor = ray.remote(num_cpus=1)(_Worker)
        self._actors = [actor.remote(settings, 1) for _ in range(count)]
        self._csv = (csv_text_column, csv_title_column)
        for model, dimension, _pid in ray.get([a.describe.remote() for a in self._actors]):
            if (model, dimension) != (store.embedding_model, store.dimension):
                raise ConfigError(f"the Ray workers loaded {model!r} (dimension {dimension}); the store uses "
                                  f"{store.embedding_model!r} (dimension {store.dimension})")
        self.worker_pids = sorted({pid for *_, pid in ray.get([a.describe.remote() for a in self._actors])})

    def run(self, paths: Sequence[str | Path], show_progress: bool) -> IngestReport:
        began = time.perf_counter()
        scan = scan_input_files(paths)
        sizes = {str(p): _file_size(p) for p in scan.files}
        progress = _Progress(show_progress, sum(sizes.values()))
        tally = _Tally()
        tally.failed.extend(IngestFailure(e.source, e.reason) for e in scan.errors)
        files = deque(str(p) for p in scan.files)
        jobs: deque[tuple[str, list[Document]]] = deque()
        waiting: dict[str, int] = {}  # file -> embed jobs not back yet
        free = list(self._actors)
        inflight: dict[Any, tuple[str, Any, str]] = {}
        ready: list[DocumentWrite | MetadataUpdate] = []
        ready_chunks, files_read, seen = 0, 0, set()
        threshold = self._settings.embed_batch_size * COMMIT_BATCHES
        try:
            while files or jobs or inflight:
                while free and (jobs or files):
                    worker = free.pop()
                    if jobs:
                        path, documents = jobs.popleft()
                        inflight[worker.embed.remote(documents)] = ("embed", worker, path)
                    else:
                        path = files.popleft()
                        inflight[worker.parse.remote(path, *self._csv)] = ("parse", worker, path)
                [done], _ = self._ray.wait(list(inflight), num_returns=1)
                kind, worker, path = inflight.pop(done)
                free.append(worker)
                result = self._ray.get(done)
                if kind == "parse":
                    if result.error is not None:
                        source, reason = result.error.split("\0", 1)
                        tally.failed.append(IngestFailure(source, reason))
                        progress.advance(sizes[path])
                        continue
                    files_read += 1
                    tally.notes.extend(result.notes)
                    embed, updates = self._classify(result.documents, seen, tally)
                    ready.extend(updates)
                    for start in range(0, len(embed), EMBED_DOCUMENTS):
                        jobs.append((path, embed[start:start + EMBED_DOCUMENTS]))
                        waiting[path] = waiting.get(path, 0) + 1
                    if not waiting.get(path):
                        progress.advance(sizes[path])
                else:
                    for doc, chunks, vectors in result.writes:
                        ready.append(DocumentWrite(doc, chunks, vectors))
                        ready_chunks += len(chunks)
                    tally.failed.extend(IngestFailure(s, "no text to index", DOCUMENT) for s in result.empty)
                    progress.embedded(result.chunks)
                    waiting[path] -= 1
                    if not waiting[path]:
                        progress.advance(sizes[path])
                if ready and (ready_chunks >= threshold or not (files or jobs or inflight)):
                    self._write(ready, tally, progress)
                    ready, ready_chunks = [], 0
            if ready:
                self._write(ready, tally, progress)
        finally:
            progress.close()
            for actor in self._actors:
                self._ray.kill(actor)
        return _report(tally, scan, files_read, time.perf_counter() - began)

    def _classify(self, documents: list[Document], seen: set[str],
                  tally: _Tally) -> tuple[list[Document], list[MetadataUpdate]]:
        """What a local ingest does before embedding: unchanged documents (and repeats within
        this ingest) are counted, title/metadata changes become updates, the rest is embedded."""
        states = self._store.source_states([d.source for d in documents])
        same_text = [d for d in documents if states.get(d.source, ("", ""))[0] == d.id]
        unchanged = self._store.unchanged_documents(same_text) if same_text else set()
        same_ids = {d.id for d in same_text}
        embed: list[Document] = []
        updates: list[MetadataUpdate] = []
        for doc in documents:
            if doc.source in seen or doc.id in unchanged:
                tally.unchanged += 1
            elif doc.id in same_ids:
                updates.append(MetadataUpdate(doc))
            else:
                embed.append(doc)
            seen.add(doc.source)
        return embed, updates

    def _write(self, ready: list[DocumentWrite | MetadataUpdate], tally: _Tally, progress: _Progress) -> None:
        progress.writing(len(ready))
        result = self._store.apply(ready)
        tally.count(result)
        progress.committed(result.added + result.updated)
