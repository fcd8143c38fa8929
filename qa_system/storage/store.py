"""The document store: documents and chunks in SQL, their vectors in immutable segment files.

Invariants (ENGINEERING.md, principle 10):

* the faiss vector id of a chunk *is* ``chunks.id``;
* the SQL ``segments`` rows name the segment files of the committed generation, and the SQL
  ``tombstones`` the chunk ids deleted since their segment was written; the live vectors
  (segments minus tombstones) match the chunk rows;
* a write writes its new vectors as a *new* segment file, then commits the SQL transaction that
  adds its rows, segment row and tombstones and moves ``store_state.generation`` on. A failure
  before the commit leaves the previous generation untouched; a crash leaves at worst a stray
  file, removed under the database write lock. Cost follows the size of the change;
* compaction merges segments into a new file outside the lock and swaps it in with one short
  transaction (``compaction.py``);
* readers use whichever complete snapshot is published; writers never mutate one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from threading import Lock, RLock
from typing import TypeVar

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ..embedding import Embedder
from ..errors import (
    DocumentNotFoundError,
    IndexMismatchError,
    InputError,
    StoreError,
    StoreInconsistentError,
)
from ..types import Document, MetadataValue, Passage
from . import feedback, lexical, migrate
from . import repository as repo
from . import segment_set as files
from .compaction import CompactionResult, Compactor
from .consistency import build_report, read_segments
from .durable import file_sha256
from .engine import create_store_engine, write_engine
from .feedback import FeedbackInput, FeedbackRecord
from .opening import (
    DB_FILE,
    REPAIR_HINT,
    check_embedding,
    check_store_path,
    claim_store,
    consistent_reads,
    default_db_url,
    load_snapshot,
    make_store_folder,
    recorded_embedding,
    sql_errors,
    utcnow,
)
from .records import (
    ApplyResult,
    ConsistencyReport,
    DocumentSummary,
    StoredDocument,
    StoreStats,
    Upsert,
)
from .reindex import DEFAULT_BATCH_SIZE, ProgressCallback, Reindexer, ReindexResult
from .segment_set import VectorSnapshot
from .segments import DEFAULT_NPROBE, FLAT, Segment, kind_for, normalised
from .view import StoreView
from .writes import Change, apply_change

R = TypeVar("R")


class Store:
    """Use :meth:`open`; the constructor only stores what ``open`` has prepared."""

    def __init__(self, *, directory: Path, engine: Engine, embedding_model: str, dimension: int,
                 snapshot: VectorSnapshot, nprobe: int = DEFAULT_NPROBE, auto_compact: bool = True) -> None:
        self._directory = directory
        self._engine = engine
        # One snapshot per read call (SQLite's transactions already are; PostgreSQL needs this).
        self._reads = sessionmaker(consistent_reads(engine), expire_on_commit=False)
        self._writes = sessionmaker(write_engine(engine), expire_on_commit=False)
        self._model = embedding_model
        self._dimension = dimension
        self._current = snapshot
        self._nprobe = nprobe
        self._swap_lock = Lock()
        self._write_lock = RLock()
        self._closed = False
        self._compactor = Compactor(self, automatic=auto_compact)

    # ---------------------------------------------------------------------------- open

    @classmethod
    def open(cls, directory: str | Path, *, embedding_model: str, dimension: int | Callable[[], int],
             db_url: str | None = None, create: bool = True, verify: bool = True,
             nprobe: int = DEFAULT_NPROBE, auto_compact: bool = True,
             vector_backend: str | None = None, ef_search: int | None = None) -> Store:
        """Open the store in ``directory`` (its SQL database is ``db_url``, by default SQLite in
        that folder); with ``create``, make a new one where there is none (else StoreError).

        ``embedding_model`` must be the model the store records (else IndexMismatchError), and so
        must ``dimension`` -- or ``dimension`` is a function giving it (which may load the model),
        called only when the store is new: an existing store records its dimension, so opening one
        needs no model. A path that cannot hold a store (a file, under a file, not writable) is a
        StoreError naming it, raised before anything is created.

        Opening maps the segment files (no file is read whole) and, with ``verify``, checks that
        each is the file SQL recorded (size, kind, count) and that the live vectors add up to
        the chunk rows; ``check()`` compares every id and every file's digest. ``nprobe``: IVF
        lists each approximate search scans; ``auto_compact``: merge segments in the background
        after writes (``compaction.py``).

        ``vector_backend``: ``"faiss"`` (segment files in ``directory``) or ``"pgvector"`` (the
        vectors in the PostgreSQL database, ``pgvector.py``), also given as the URL option
        ``?vector_backend=``; None: what the store uses (a new store: faiss). ``ef_search``: with
        pgvector, the candidates its HNSW search keeps (None: ``pgvector.EF_SEARCH``).
        """
        from . import pgvector

        db_url, url_backend = pgvector.split_backend_option(db_url)
        vector_backend = pgvector.check_backend(vector_backend)
        url_backend = pgvector.check_backend(url_backend)
        if vector_backend is not None and url_backend is not None and vector_backend != url_backend:
            raise InputError(f"the vector backend is {vector_backend!r}, but the database URL says {url_backend!r}")
        vector_backend = vector_backend or url_backend
        directory = Path(directory)
        check_store_path(directory)
        if not create and not directory.is_dir():
            raise StoreError(f"no store at {directory}")
        new = db_url is None and not (directory / DB_FILE).exists()
        if new and not create:
            raise StoreError(f"no store at {directory} ({DB_FILE} is missing)")
        if nprobe < 1:
            raise InputError(f"nprobe must be at least 1, got {nprobe}")
        if ef_search is not None and not 1 <= ef_search <= 1000:
            raise InputError(f"ef_search must be between 1 and 1000 (pgvector's range), got {ef_search}")
        # an existing store records its dimension: ask the model only for a new one
        wanted = (dimension() if new else None) if callable(dimension) else dimension
        if wanted is not None and wanted <= 0:
            raise InputError(f"dimension must be positive, got {wanted}")
        make_store_folder(files.index_directory(directory))
        engine = create_store_engine(db_url or default_db_url(directory))
        try:
            migrate.upgrade(engine)
            if wanted is None and callable(dimension) and create and recorded_embedding(engine) is None:
                wanted = dimension()  # a new store in another database: ask the model
            backend = pgvector.choose_backend(engine, vector_backend, directory)
            generation, stored = claim_store(engine, directory, embedding_model, wanted, create=create)
            if backend == pgvector.PGVECTOR:
                pgvector.ensure_schema(engine)
                store = pgvector.PgVectorStore(
                    directory=directory, engine=engine, embedding_model=embedding_model, dimension=stored,
                    snapshot=pgvector.PgSnapshot(generation), nprobe=nprobe,  # type: ignore[arg-type]
                    auto_compact=False, ef_search=ef_search or pgvector.EF_SEARCH)
                store.refresh()
                snapshot = store._snapshot()
            else:
                snapshot = load_snapshot(engine, directory, stored)
                store = cls(directory=directory, engine=engine, embedding_model=embedding_model,
                            dimension=stored, snapshot=snapshot, nprobe=nprobe, auto_compact=auto_compact)
            if verify:
                problems = store._quick_problems(snapshot)
                if problems:
                    raise StoreInconsistentError(
                        f"the store at {directory} is inconsistent: {'; '.join(problems)}; {REPAIR_HINT}")
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        self._compactor.stop()
        with self._write_lock:
            if not self._closed:
                self._closed = True
                self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _usable(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    # ------------------------------------------------------------------------ properties

    #: Where the vectors live: "faiss" (segment files) or "pgvector" (``pgvector.PgVectorStore``).
    vector_backend = "faiss"

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def embedding_model(self) -> str:
        return self._model

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def generation(self) -> int:
        return self._snapshot().generation

    @property
    def nprobe(self) -> int:
        return self._nprobe

    @property
    def db_url(self) -> str:
        """The database URL with the password redacted."""
        return self._engine.url.render_as_string(hide_password=True)

    def _snapshot(self) -> VectorSnapshot:
        with self._swap_lock:
            return self._current

    def _publish(self, snapshot: VectorSnapshot) -> None:
        with self._swap_lock:
            self._current = snapshot

    # --------------------------------------------------------------------------- reads

    def source_states(self, sources: Sequence[str]) -> dict[str, tuple[str, str]]:
        """``source -> (document_id, content_hash)`` for the sources that are stored."""
        self._usable()
        with sql_errors("reading document states"), self._reads() as session:
            return repo.source_states(session, list(sources))

    def unchanged_documents(self, documents: Sequence[Document]) -> set[str]:
        """Ids of the ``documents`` stored exactly as given: the same source and text (so the same
        id), title and metadata. Writing them would change nothing."""
        self._usable()
        with sql_errors("reading documents"), self._reads() as session:
            stored = repo.stored_labels(session, [d.id for d in documents])
        return {d.id for d in documents if d.id in stored and stored[d.id] == repo.labels_of(d)}

    def get_document(self, document_id: str) -> StoredDocument:
        found = self.get_documents([document_id])
        if document_id not in found:
            raise DocumentNotFoundError(f"no such document: id {document_id}")
        return found[document_id]

    def get_documents(self, ids: Sequence[str]) -> dict[str, StoredDocument]:
        """The stored documents among ``ids`` (missing ids are left out)."""
        self._usable()
        with sql_errors("reading documents"), self._reads() as session:
            return repo.stored_documents(session, list(ids))

    def find_documents(self, filters: Mapping[str, MetadataValue | Sequence[MetadataValue]]) -> list[str]:
        """Ids of the documents matching ``filters`` (same rules as ``search``)."""
        self._usable()
        with sql_errors("finding documents"), self._reads() as session:
            return repo.matching_document_ids(session, filters)

    def metadata_choices(self, filters: Mapping[str, MetadataValue | Sequence[MetadataValue]] | None = None,
                         *, limit: int = 5000) -> list[tuple[str, MetadataValue]]:
        """Distinct ``(key, value)`` metadata pairs of the documents matching ``filters``, sorted by
        key, at most ``limit`` (values longer than 64 characters are left out)."""
        self._usable()
        with sql_errors("reading metadata"), self._reads() as session:
            return repo.metadata_choices(session, filters, limit=limit)

    def list_documents(self, *, limit: int = 100, offset: int = 0) -> list[DocumentSummary]:
        self._usable()
        if limit < 0 or offset < 0:
            raise InputError("limit and offset must not be negative")
        with sql_errors("listing documents"), self._reads() as session:
            return repo.document_summaries(session, limit=limit, offset=offset)

    def add_feedback(self, item: FeedbackInput) -> FeedbackRecord:
        """Store what a person said about a span of a document (``feedback.py``), checked against
        the document as it is now."""
        self._usable()
        with sql_errors("storing feedback"), self._writes() as session:
            record = feedback.add_feedback(session, item, now=utcnow())
            session.commit()
            return record

    def list_feedback(self, *, limit: int = 100, offset: int = 0) -> list[FeedbackRecord]:
        """Feedback, newest first, each marked stale when its document changed or went."""
        self._usable()
        with sql_errors("listing feedback"), self._reads() as session:
            return feedback.list_feedback(session, limit=limit, offset=offset)

    def stats(self) -> StoreStats:
        self._usable()
        snapshot = self._snapshot()
        with sql_errors("reading store statistics"), self._reads() as session:
            documents, chunks = repo.count_documents(session), repo.count_chunks(session)
        return StoreStats(
            documents=documents, chunks=chunks, vectors=len(snapshot), generation=snapshot.generation,
            embedding_model=self._model, dimension=self._dimension, db_url=self.db_url,
            directory=str(self._directory), index_bytes=sum(s.info.bytes for s in snapshot.segments),
            segments=len(snapshot.segments), tombstones=len(snapshot.tombstones),
        )

    @contextmanager
    def view(self) -> Iterator[StoreView]:
        """One consistent read: the published vector snapshot and one SQL read transaction
        (what ``qa_system.retrieval`` builds every search from)."""
        self._usable()
        snapshot = self._snapshot()
        with sql_errors("searching"), self._reads() as session:
            yield StoreView(session, snapshot, self._nprobe)

    def moved_on(self, generation: int) -> bool:
        """Whether the store is past ``generation`` now (after opening what another process
        committed): a read of ``generation`` may have missed rows a writer just replaced."""
        return self.refresh() or self._snapshot().generation != generation

    def normalise_queries(self, query_vectors: np.ndarray) -> np.ndarray:
        """Query vectors as float32 unit rows of this store's dimension (InputError otherwise)."""
        return normalised(query_vectors, self._dimension, "query vectors")

    def search(self, query_vectors: np.ndarray, k: int, *,
               filters: Mapping[str, MetadataValue | Sequence[MetadataValue]] | None = None,
               query_texts: Sequence[str] | None = None, lexical_weight: float = 0.0,
               ) -> list[list[Passage]]:
        """Top-``k`` passages per query row, best first: ``qa_system.retrieval.StoreRetriever``
        over this store (a convenience; retrieval itself lives there)."""
        from ..retrieval import StoreRetriever

        retriever = StoreRetriever(self, lexical_weight=lexical_weight)
        return retriever.retrieve(query_vectors, k, query_texts=query_texts, filters=filters)

    # -------------------------------------------------------------------------- writes

    def apply(self, upserts: Sequence[Upsert],
              delete_document_ids: Sequence[str] = ()) -> ApplyResult:
        """Add/replace documents and delete others in one transaction and one new generation: the
        new chunks' vectors become one new segment, the removed chunks' vectors tombstones.

        An upsert whose document id is stored (same source and text) is unchanged when its title
        and metadata are too; otherwise only its title and metadata rows are rewritten (counted as
        updated; its chunks and vectors are kept, and no new generation is written when nothing
        else changed). A :class:`MetadataUpdate` is such an upsert without chunks."""
        return self._change_documents(list(upserts), list(delete_document_ids), [])

    def delete(self, *, document_ids: Sequence[str] = (), sources: Sequence[str] = ()) -> int:
        """Delete documents by id and/or source; if any is missing nothing is deleted."""
        return self._change_documents([], list(document_ids), list(sources)).deleted

    def _change_documents(self, upserts: list[Upsert], delete_ids: list[str],
                          delete_sources: list[str]) -> ApplyResult:
        problems = self._snapshot().problems
        if problems:
            raise StoreInconsistentError(
                f"the vector index could not be loaded ({'; '.join(problems)}); {REPAIR_HINT}")

        def step(session: Session, _base: VectorSnapshot) -> Change[ApplyResult]:
            return apply_change(session, dimension=self._dimension, upserts=upserts, delete_ids=delete_ids,
                                delete_sources=delete_sources, now=utcnow())

        change, generation = self._write(step)
        return replace(change.result, generation=generation)

    def _write(self, step: Callable[[Session, VectorSnapshot], Change[R]], *,
               allow_problems: bool = False) -> tuple[Change[R], int]:
        """Run ``step`` in a locked transaction; write its vectors as a new segment and its
        removals as tombstones, and publish the next generation."""
        with self._write_lock:
            self._usable()
            session = self._writes()
            written: list[Path] = []
            generation: int | None = None
            committing: int | None = None  # the generation a commit was attempted for
            try:
                state = repo.state(session, lock=True)
                check_embedding(self._directory, state, self._model, self._dimension)  # not re-embedded since
                infos = repo.segment_infos(session)
                files.remove_strays(self._directory, {i.id for i in infos})
                base = self._base_for(session, state.generation, infos, allow_problems=allow_problems)
                change = step(session, base)
                if not change.vectors_changed:
                    if change.rows_changed:  # the vectors are the same: the generation stays
                        session.commit()
                    else:
                        session.rollback()
                    return change, state.generation
                generation = state.generation + 1
                snapshot = self._record_vectors(session, base, infos, change, generation, written)
                state.generation = generation
                state.chunk_count = (change.chunk_count if change.chunk_count >= 0 else
                                     state.chunk_count + len(change.added_ids) - len(change.removed_ids))
                state.updated_at = utcnow()
                committing = generation
                session.commit()
            except BaseException as e:
                if committing is None:
                    # Nothing committed: remove this write's files before the rollback lets other
                    # writers in (SQLite gives the rolled-back segment id to the next one at once).
                    for path in written:
                        path.unlink(missing_ok=True)
                    written.clear()
                _rollback_quietly(session)
                # Only a commit that raised can have committed all the same: an earlier failure
                # must not take another process's commit of the same generation for its own.
                # (after a commit that raised, this write's file stays: if the commit did not
                # land, the next stray sweep under the write lock removes it)
                if committing is None or not self._committed_anyway(committing, change, written):
                    if isinstance(e, SQLAlchemyError):
                        raise StoreError(f"writing to the store failed: {e}") from e
                    raise
                snapshot = load_snapshot(self._engine, self._directory, self._dimension,
                                         reuse=self._open_segments())
            finally:
                session.close()
            self._publish(snapshot)
        self._compactor.after_write()
        return change, generation

    def _record_vectors(self, session: Session, base: VectorSnapshot, infos: list, change: Change[R],
                        generation: int, written: list[Path]) -> VectorSnapshot:
        """In the write transaction: the new segment (file written and fsynced before the commit,
        its path added to ``written``) and the tombstones; returns the snapshot to publish."""
        added: list[Segment] = []
        if len(change.added_ids):
            order = np.argsort(change.added_ids, kind="stable")
            ids = change.added_ids[order]
            vectors = normalised(np.asarray(change.added_vectors)[order], self._dimension, "vectors")
            kind = kind_for(len(ids), merged=True) if change.rebuild else FLAT
            row = repo.insert_segment(session, kind=kind, ids=ids, now=utcnow())
            path = files.segment_path(self._directory, row.id)
            written.append(path)
            try:
                row.bytes, row.sha256 = files.write_segment_file(path, ids, vectors, kind)
            except OSError as e:
                raise StoreError(f"cannot write the segment file {path}: {e.strerror or e}") from e
            session.flush()
            added.append(Segment.open(path, repo.info_of(row), self._dimension))
        if change.rebuild:
            repo.delete_segments(session, [i.id for i in infos])
            repo.delete_tombstones(session)
            return VectorSnapshot.make(generation, self._dimension, added, np.zeros(0, dtype=np.int64))
        located = base.segment_of(change.removed_ids)
        repo.add_tombstones(session, located)
        dead = np.union1d(base.tombstones, np.asarray(sorted(located), dtype=np.int64))
        return base.with_changes(generation, added=added, tombstones=dead)

    def _committed_anyway(self, generation: int, change: Change[R], written: list[Path]) -> bool:
        """After a commit that raised (e.g. a lost connection): did it land nonetheless? Judged
        by this write's own traces, not by the generation number alone (another process may
        have committed a generation of that number, or moved past it, meanwhile): the segment
        row it wrote, with the file's digest; else its removed chunks gone and the store at or
        past ``generation``. Unknown counts as not committed."""
        try:
            with self._reads() as session:
                if written:
                    segment_id = int(written[0].stem.split("-")[1])
                    mine = {i.id: i.sha256 for i in repo.segment_infos(session)}.get(segment_id)
                    return mine is not None and mine == file_sha256(written[0])
                if repo.current_generation(session) < generation:
                    return False
                removed = [int(i) for i in change.removed_ids[:100]]
                return bool(removed) and not repo.chunk_texts(session, removed)
        except (SQLAlchemyError, StoreError, OSError):
            return False

    def _open_segments(self) -> dict[int, Segment]:
        return {s.info.id: s for s in self._snapshot().segments}

    def _base_for(self, session: Session, generation: int, infos: list, *,
                  allow_problems: bool = False) -> VectorSnapshot:
        """The published snapshot if it is ``generation``; else open it (another process wrote)."""
        current = self._snapshot()
        if current.generation == generation and not current.problems:
            return current
        snapshot = files.open_snapshot(self._directory, generation, self._dimension, infos,
                                       repo.tombstone_ids(session), reuse=self._open_segments())
        if snapshot.problems and not allow_problems:
            raise StoreInconsistentError(f"{'; '.join(snapshot.problems)}; {REPAIR_HINT}")
        self._publish(snapshot)
        return snapshot

    def refresh(self) -> bool:
        """Open the segments of a newer generation another process committed; True if it did.
        Costs one SQL read when nothing changed, and opens only segments it has not opened."""
        self._usable()
        with sql_errors("reading the store state"), self._reads() as session:
            latest = repo.current_generation(session)
        if latest == self._snapshot().generation:
            return False
        with self._write_lock:
            snapshot = load_snapshot(self._engine, self._directory, self._dimension, reuse=self._open_segments(),
                                     model=self._model)
            if snapshot.problems:
                raise StoreInconsistentError(f"{'; '.join(snapshot.problems)}; {REPAIR_HINT}")
            if snapshot.generation != self._snapshot().generation:
                self._publish(snapshot)
                return True
            return False

    # ---------------------------------------------------------------------- compaction

    def compact(self, *, force: bool = False) -> CompactionResult:
        """Merge segments now, as the merge policy says (``force``: all into one, dropping every
        tombstoned vector). Writers and readers go on meanwhile; the swap is one short
        transaction. Returns what was merged."""
        self._usable()
        return self._compactor.run(force=force)

    def wait_for_compaction(self, timeout: float | None = None) -> None:
        """Wait for a background merge started after a write (if any) to finish."""
        self._compactor.wait(timeout)

    # ---------------------------------------------------------------------- consistency

    def _quick_problems(self, snapshot: VectorSnapshot) -> list[str]:
        """What opening checks: every segment opened, and the live vectors add up to the chunk
        rows (counts only; ``check`` compares ids and digests)."""
        problems = list(snapshot.problems)
        with sql_errors("checking the store"), self._reads() as session:
            state = repo.state(session)
            if state.generation != snapshot.generation:
                return problems  # another process wrote meanwhile; it checked its own write
            rows = repo.count_chunks(session)
        if state.chunk_count != rows:
            problems.append(f"store_state.chunk_count is {state.chunk_count}, but there are {rows} chunk rows")
        if not snapshot.problems and len(snapshot) != rows:
            problems.append(f"{len(snapshot)} live vectors for {rows} chunks")
        return problems

    def quick_check(self) -> ConsistencyReport:
        """What opening checks, on the current generation: every segment is open and the live
        vectors add up to the chunk rows. Reads no file and no id list (``/readyz`` runs it);
        ``check`` is the full comparison."""
        self._usable()
        self.refresh()
        snapshot = self._snapshot()
        problems = self._quick_problems(snapshot)
        return ConsistencyReport(sql_chunks=len(snapshot), index_vectors=len(snapshot),
                                 manifest_problems=tuple(problems), sql_generation=snapshot.generation,
                                 index_generation=snapshot.generation)

    def check(self) -> ConsistencyReport:
        """Compare the SQL chunk ids with the live vectors of the segment files (each file's
        digest checked against the one recorded), and (SQLite) the full-text index with the
        chunks."""
        return self._check()

    def _check(self, *, full_text: bool = True) -> ConsistencyReport:
        with self._write_lock:
            self._usable()
            with sql_errors("checking the store"), self._writes() as session:
                state = repo.state(session, lock=True)  # no writer can move on meanwhile
                reading = read_segments(self._directory, repo.segment_infos(session), self._dimension,
                                        verify_hashes=True)
                report = build_report(sql_ids=repo.all_chunk_ids(session), sql_generation=state.generation,
                                      state_chunk_count=state.chunk_count, reading=reading,
                                      tombstones=repo.tombstone_ids(session))
                text_problem = lexical.check(session) if full_text else None
                if text_problem is not None:
                    report = replace(report, manifest_problems=(*report.manifest_problems, text_problem))
                return report

    def repair(self, embedder: Embedder, *, batch_size: int = 64) -> ConsistencyReport:
        """Rebuild the vector side from the segment files that are intact and the chunk rows:
        drop orphan vectors, re-embed chunks without one, write one fresh segment set."""
        from .repair import repair_step

        if (embedder.model_name, embedder.dimension) != (self._model, self._dimension):
            raise IndexMismatchError(
                f"cannot repair with {embedder.model_name!r} (dimension {embedder.dimension}); "
                f"the store uses {self._model!r} (dimension {self._dimension})")

        def step(session: Session, _base: VectorSnapshot) -> Change[None]:
            return repair_step(session, self._directory, embedder, dimension=self._dimension,
                               batch_size=batch_size)

        self._write(step, allow_problems=True)
        return self.check()

    # ---------------------------------------------------------------------- re-embedding

    def reindex(self, embedder: Embedder, *, batch_size: int = DEFAULT_BATCH_SIZE, encode_batch_size: int = 64,
                progress: ProgressCallback | None = None, work_dir: str | Path | None = None) -> ReindexResult:
        """Re-embed every chunk with ``embedder`` (any model and dimension) and make its model the
        store's (``reindex.py``): ``batch_size`` chunks are embedded and saved per step (a killed
        reindex run again with the same model continues after the last step saved), outside the
        write lock, so searches and writes go on with the old model; the new vectors replace the
        old ones, chunks written meanwhile included, in one short transaction. ``work_dir``:
        where the steps are saved (default ``index/reindex``)."""

        def adopt(model: str, dimension: int) -> None:  # under the write lock, right after the commit
            self._model, self._dimension = model, dimension

        result = Reindexer(self, embedder, batch_size=batch_size, encode_batch_size=encode_batch_size,
                           progress=progress, work_dir=work_dir, adopt=adopt).run()
        self._compactor.after_write()
        return result


def _rollback_quietly(session: Session) -> None:
    """Roll back after a failure without hiding that failure behind a second one."""
    with contextlib.suppress(SQLAlchemyError):
        session.rollback()
