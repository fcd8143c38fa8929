"""The document store: documents and chunks in SQL, their vectors in a generation-named index.

Invariants (ENGINEERING.md, principle 10):

* the faiss vector id of a chunk *is* ``chunks.id``;
* ``store_state.generation`` names the one index file that matches the committed SQL rows;
* a write builds a new index from a copy, writes it as the *next* generation's file, and only
  then commits the SQL transaction that moves ``store_state.generation`` to it. A failure before
  the commit leaves the previous generation untouched; a crash leaves at worst a stray file,
  which is removed under the database write lock;
* readers use whichever complete index object is published; writers never mutate it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from threading import Lock, RLock
from typing import TypeVar

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ..config import check_lexical_weight
from ..embedding import Embedder
from ..errors import (
    ConfigError,
    DocumentNotFoundError,
    IndexMismatchError,
    InputError,
    StoreError,
    StoreInconsistentError,
)
from ..types import Document, MetadataValue, Passage
from ..vector_index import VectorIndex
from . import index_files as files
from . import lexical, migrate
from . import repository as repo
from .consistency import build_report
from .engine import create_store_engine, write_engine
from .opening import (
    DB_FILE,
    REPAIR_HINT,
    RETRIES,
    check_store_path,
    claim_store,
    default_db_url,
    load_settled,
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
from .writes import Change, apply_change

R = TypeVar("R")


class Store:
    """Use :meth:`open`; the constructor only stores what ``open`` has prepared."""

    def __init__(self, *, directory: Path, engine: Engine, embedding_model: str, dimension: int,
                 index: VectorIndex, generation: int, load_problems: tuple[str, ...]) -> None:
        self._directory = directory
        self._engine = engine
        # One snapshot per read call (SQLite's transactions already are; PostgreSQL needs this).
        reads = (engine.execution_options(isolation_level="REPEATABLE READ")
                 if engine.dialect.name == "postgresql" else engine)
        self._reads = sessionmaker(reads, expire_on_commit=False)
        self._writes = sessionmaker(write_engine(engine), expire_on_commit=False)
        self._model = embedding_model
        self._dimension = dimension
        self._current = (index, generation)
        self._load_problems = load_problems
        self._swap_lock = Lock()
        self._write_lock = RLock()
        self._closed = False

    # ---------------------------------------------------------------------------- open

    @classmethod
    def open(cls, directory: str | Path, *, embedding_model: str, dimension: int | Callable[[], int],
             db_url: str | None = None, create: bool = True, verify: bool = True) -> Store:
        """Open the store in ``directory`` (its SQL database is ``db_url``, by default SQLite in
        that folder); with ``create``, make a new one where there is none (else StoreError).

        ``embedding_model`` must be the model the store records (else IndexMismatchError), and so
        must ``dimension`` -- or ``dimension`` is a function giving it (which may load the model),
        called only when the store is new: an existing store records its dimension, so opening one
        needs no model. A path that cannot hold a store (a file, under a file, not writable) is a
        StoreError naming it, raised before anything is created.
        """
        directory = Path(directory)
        check_store_path(directory)
        if not create and not directory.is_dir():
            raise StoreError(f"no store at {directory}")
        new = db_url is None and not (directory / DB_FILE).exists()
        if new and not create:
            raise StoreError(f"no store at {directory} ({DB_FILE} is missing)")
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
            generation, stored = claim_store(engine, directory, embedding_model, wanted, create=create)
            loaded, generation = load_settled(engine, directory, generation, embedding_model, stored)
            store = cls(directory=directory, engine=engine, embedding_model=embedding_model,
                        dimension=stored, index=loaded.index, generation=generation,
                        load_problems=loaded.problems)
            if verify:
                report = store._check(preloaded=(loaded, generation), full_text=False)
                if not report.ok:
                    raise StoreInconsistentError(
                        f"the store at {directory} is inconsistent: {report.summary()}; {REPAIR_HINT}")
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
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
        return self._snapshot()[1]

    @property
    def db_url(self) -> str:
        """The database URL with the password redacted."""
        return self._engine.url.render_as_string(hide_password=True)

    def _snapshot(self) -> tuple[VectorIndex, int]:
        with self._swap_lock:
            return self._current

    def _publish(self, index: VectorIndex, generation: int) -> None:
        with self._swap_lock:
            self._current = (index, generation)

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

    def list_documents(self, *, limit: int = 100, offset: int = 0) -> list[DocumentSummary]:
        self._usable()
        if limit < 0 or offset < 0:
            raise InputError("limit and offset must not be negative")
        with sql_errors("listing documents"), self._reads() as session:
            return repo.document_summaries(session, limit=limit, offset=offset)

    def stats(self) -> StoreStats:
        self._usable()
        index, generation = self._snapshot()
        with sql_errors("reading store statistics"), self._reads() as session:
            documents, chunks = repo.count_documents(session), repo.count_chunks(session)
        return StoreStats(
            documents=documents, chunks=chunks, vectors=len(index), generation=generation,
            embedding_model=self._model, dimension=self._dimension, db_url=self.db_url,
            directory=str(self._directory), index_bytes=files.index_bytes(self._directory, generation),
        )

    def search(self, query_vectors: np.ndarray, k: int, *,
               filters: Mapping[str, MetadataValue | Sequence[MetadataValue]] | None = None,
               query_texts: Sequence[str] | None = None, lexical_weight: float = 0.0,
               ) -> list[list[Passage]]:
        """Top-``k`` passages per query row, best first. ``filters`` match document metadata
        by equality (a list value: any of), plus the keys ``document_id`` and ``source``; they
        restrict the vector search itself, so ``k`` hits come back whenever ``k`` chunks match.

        With ``query_texts`` (the questions, one per row) and ``lexical_weight`` > 0 the search
        is hybrid: the best ``lexical.HYBRID_POOL`` (or ``k``) chunks of the vector search and of the
        database's full-text search, under the same filters, are ranked by
        ``(1 - w) * cosine + w * rank / best rank`` (``qa_system.fusion``), and ``Passage.score``
        is that fused score. On a database without a full-text index it is the vector search.
        """
        self._usable()
        if k <= 0:
            raise InputError(f"k must be positive, got {k}")
        queries = np.asarray(query_vectors, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self._dimension:
            raise InputError(f"query vectors must have shape (n, {self._dimension}), got {queries.shape}")
        try:
            weight = check_lexical_weight(lexical_weight)
        except ConfigError as e:
            raise InputError(str(e)) from e
        hybrid = query_texts is not None and weight > 0
        if hybrid and len(query_texts) != len(queries):
            raise InputError(f"{len(query_texts)} query texts for {len(queries)} query vectors")
        attempt = 0
        while True:
            index, _ = self._snapshot()
            with sql_errors("searching"), self._reads() as session:
                allowed = repo.allowed_chunk_ids(session, filters) if filters else None
                if allowed is not None and not len(allowed):
                    return [[] for _ in range(len(queries))]
                if hybrid and lexical.supported(session):
                    scores, ids = lexical.hybrid_search(session, index, queries, query_texts, k,
                                                        allowed=allowed, filters=filters, weight=weight)
                else:
                    scores, ids = index.search(queries, k, allowed_ids=allowed)
                rows = repo.passage_rows(session, (int(i) for i in ids.flat if i >= 0))
            missing = any(int(i) not in rows for i in ids.flat if i >= 0)
            attempt += 1
            # A writer committed after we took the index: retry on the index that matches SQL.
            if missing and attempt < RETRIES and (self.refresh() or self._snapshot()[0] is not index):
                continue
            return [repo.to_passages(row_scores, row_ids, rows)
                    for row_scores, row_ids in zip(scores, ids, strict=True)]

    # -------------------------------------------------------------------------- writes

    def apply(self, upserts: Sequence[Upsert],
              delete_document_ids: Sequence[str] = ()) -> ApplyResult:
        """Add/replace documents and delete others in one transaction and one index generation.

        An upsert whose document id is stored (same source and text) is unchanged when its title
        and metadata are too; otherwise only its title and metadata rows are rewritten (counted as
        updated; its chunks and vectors are kept, and no new index generation is written when
        nothing else changed). A :class:`MetadataUpdate` is such an upsert without chunks."""
        return self._change_documents(list(upserts), list(delete_document_ids), [])

    def delete(self, *, document_ids: Sequence[str] = (), sources: Sequence[str] = ()) -> int:
        """Delete documents by id and/or source; if any is missing nothing is deleted."""
        return self._change_documents([], list(document_ids), list(sources)).deleted

    def _change_documents(self, upserts: list[Upsert], delete_ids: list[str],
                          delete_sources: list[str]) -> ApplyResult:
        if self._load_problems:
            raise StoreInconsistentError(
                f"the vector index could not be loaded ({'; '.join(self._load_problems)}); {REPAIR_HINT}")

        def step(session: Session, base: VectorIndex) -> Change[ApplyResult]:
            return apply_change(session, base, upserts=upserts, delete_ids=delete_ids,
                                delete_sources=delete_sources, now=utcnow())

        change, generation = self._write(step)
        return replace(change.result, generation=generation)

    def _write(self, step: Callable[[Session, VectorIndex], Change[R]], *,
               from_disk: bool = False) -> tuple[Change[R], int]:
        """Run ``step`` in a locked transaction; publish its index as the next generation."""
        with self._write_lock:
            self._usable()
            session = self._writes()
            written: int | None = None
            try:
                state = repo.state(session, lock=True)
                files.remove_other_generations(self._directory, keep=state.generation)
                base = None if from_disk else self._base_for(state.generation)
                change = step(session, base if base is not None else VectorIndex(self._dimension))
                if change.index is None:
                    if change.rows_changed:  # the vectors are the same: the generation stays
                        session.commit()
                    else:
                        session.rollback()
                    return change, state.generation
                new_index, written = change.index, state.generation + 1
                new_index.save(files.generation_path(self._directory, written),
                               embedding_model=self._model, generation=written)
                state.generation, state.chunk_count = written, change.chunk_count
                state.updated_at = utcnow()
                session.commit()
            except BaseException as e:
                _rollback_quietly(session)
                if written is None or not self._committed_anyway(written):
                    if written is not None:
                        files.remove_generation(self._directory, written)
                    if isinstance(e, SQLAlchemyError):
                        raise StoreError(f"writing to the store failed: {e}") from e
                    raise
            finally:
                session.close()
            self._publish(new_index, written)
            self._load_problems = ()
            files.remove_older_generations(self._directory, below=written)
            return change, written

    def _committed_anyway(self, generation: int) -> bool:
        """After a failed commit: did the database record ``generation`` nonetheless?"""
        try:
            with self._reads() as session:
                return repo.current_generation(session) == generation
        except (SQLAlchemyError, StoreError):
            return False

    def _base_for(self, generation: int) -> VectorIndex:
        """The published index if it is ``generation``; else load it (another process wrote)."""
        index, current = self._snapshot()
        if current == generation:
            return index
        loaded = files.load_generation(self._directory, generation, embedding_model=self._model,
                                       dimension=self._dimension)
        if loaded.problems:
            raise StoreInconsistentError(f"{'; '.join(loaded.problems)}; {REPAIR_HINT}")
        self._publish(loaded.index, generation)
        return loaded.index

    def refresh(self) -> bool:
        """Load the index of a newer generation another process committed; True if reloaded."""
        with self._write_lock:
            self._usable()
            with sql_errors("reading the store state"), self._reads() as session:
                latest = repo.current_generation(session)
            if latest == self._snapshot()[1]:
                return False
            loaded, generation = load_settled(self._engine, self._directory, latest, self._model,
                                              self._dimension)
            if loaded.problems:
                raise StoreInconsistentError(f"{'; '.join(loaded.problems)}; {REPAIR_HINT}")
            self._publish(loaded.index, generation)
            return True

    # ---------------------------------------------------------------------- consistency

    def check(self) -> ConsistencyReport:
        """Compare the SQL chunk ids with the current generation's index file on disk, and
        (SQLite) the full-text index with the chunks."""
        return self._check()

    def _check(self, *, preloaded: tuple[files.LoadedGeneration, int] | None = None,
               full_text: bool = True) -> ConsistencyReport:
        """``full_text``: also run SQLite's full-text integrity check, which re-reads every chunk's
        text (about 0.15 s per 16,000 chunks): explicit checks do, opening a store does not."""
        with self._write_lock:
            self._usable()
            with sql_errors("checking the store"), self._writes() as session:
                state = repo.state(session, lock=True)  # no writer can move on meanwhile
                if preloaded is not None and preloaded[1] == state.generation:
                    loaded = preloaded[0]
                else:
                    loaded = files.load_generation(self._directory, state.generation,
                                                   embedding_model=self._model, dimension=self._dimension)
                report = build_report(sql_ids=repo.all_chunk_ids(session), sql_generation=state.generation,
                                      state_chunk_count=state.chunk_count, loaded=loaded)
                text_problem = lexical.check(session) if full_text else None
                if text_problem is not None:
                    report = replace(report, manifest_problems=(*report.manifest_problems, text_problem))
                return report

    def repair(self, embedder: Embedder, *, batch_size: int = 64) -> ConsistencyReport:
        """Drop orphan vectors, re-embed chunks without vectors, write a fresh generation."""
        from .repair import repair_step

        if (embedder.model_name, embedder.dimension) != (self._model, self._dimension):
            raise IndexMismatchError(
                f"cannot repair with {embedder.model_name!r} (dimension {embedder.dimension}); "
                f"the store uses {self._model!r} (dimension {self._dimension})")

        def step(session: Session, _base: VectorIndex) -> Change[None]:
            return repair_step(session, self._directory, embedder, model=self._model,
                               dimension=self._dimension, batch_size=batch_size)

        self._write(step, from_disk=True)
        return self.check()


def _rollback_quietly(session: Session) -> None:
    """Roll back after a failure without hiding that failure behind a second one."""
    with contextlib.suppress(SQLAlchemyError):
        session.rollback()
