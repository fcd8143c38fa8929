"""The store contract on SQLite, and on PostgreSQL when QA_SYSTEM_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from qa_system.errors import ConfigError, IndexMismatchError, InputError, StoreError, StoreInconsistentError
from qa_system.storage import Store
from qa_system.storage.engine import create_store_engine, redact_url
from qa_system.types import Passage
from tests.lexical_suite import LexicalSearchContract
from tests.store_suite import (  # needs the repository root on sys.path
    DIM,
    MODEL,
    OTHER,
    OTHER_DIM,
    OTHER_MODEL,
    FailingEmbedder,
    FakeEmbedder,
    StoreContract,
    StoreEnv,
    corpus,
    reembedded,
    vector,
    write_for,
)
from tests.support import POSTGRES_URL_VARIABLE, reset_database


class TestSQLiteStore(StoreContract, LexicalSearchContract):
    @pytest.fixture
    def store_env(self, tmp_path: Path) -> StoreEnv:
        return StoreEnv(directory=tmp_path / "store", db_url=None)

    def test_sqlite_uses_wal_and_foreign_keys(self, store_env: StoreEnv) -> None:
        store_env.open().close()
        engine = store_env.engine()
        try:
            with engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        finally:
            engine.dispose()


@pytest.mark.skipif(not os.environ.get(POSTGRES_URL_VARIABLE),
                    reason=f"set {POSTGRES_URL_VARIABLE} to run the store suite on PostgreSQL")
class TestPostgresStore(StoreContract, LexicalSearchContract):
    @pytest.fixture
    def store_env(self, tmp_path: Path) -> Iterator[StoreEnv]:
        url = os.environ[POSTGRES_URL_VARIABLE]
        reset_database(url)  # each test starts on an empty database
        yield StoreEnv(directory=tmp_path / "store", db_url=url)
        reset_database(url)

    def test_stats_redact_the_password(self, store_env: StoreEnv) -> None:
        with store_env.open() as store:
            assert "***" in store.stats().db_url or "@" not in store.stats().db_url


def test_redact_url_hides_passwords() -> None:
    assert redact_url("postgresql+psycopg://qa:s3cret@db:5432/qa") == "postgresql+psycopg://qa:***@db:5432/qa"
    assert redact_url("sqlite:////tmp/x.sqlite3") == "sqlite:////tmp/x.sqlite3"


PGVECTOR_URL_VARIABLE = "QA_SYSTEM_TEST_PGVECTOR_URL"
NO_SEGMENT_FILES = "the pgvector backend keeps its vectors in PostgreSQL: there are no segment files to damage"
#: Tests of the contract about the FAISS backend's segment files and its resumable reindex, which
#: the pgvector backend has not; what they protect is tested for pgvector below.
FAISS_FILE_TESTS = {
    "test_failed_index_write_leaves_the_previous_generation": NO_SEGMENT_FILES,
    "test_a_failed_write_is_not_taken_for_another_writers_commit": NO_SEGMENT_FILES,
    "test_a_failed_merge_does_not_remove_another_writers_segment": "nothing to merge in pgvector",
    "test_a_store_from_before_segments_is_converted_on_open": NO_SEGMENT_FILES,
    "test_a_commit_that_raised_but_landed_is_recognised_by_its_segment": NO_SEGMENT_FILES,
    "test_reopen_after_a_crash_removes_stray_files": NO_SEGMENT_FILES,
    "test_missing_vectors_are_detected_and_repaired": NO_SEGMENT_FILES + " (pgvector: see below)",
    "test_orphan_vectors_are_detected_and_repaired": "a foreign key deletes a vector with its chunk",
    "test_deleted_index_file_is_detected_and_rebuilt": NO_SEGMENT_FILES,
    "test_truncated_index_file_is_detected_on_open_and_rebuilt": NO_SEGMENT_FILES,
    "test_tampered_index_file_is_detected_by_check_and_rebuilt": NO_SEGMENT_FILES,
    "test_unloadable_index_blocks_writes_until_repaired": NO_SEGMENT_FILES,
    "test_a_store_from_before_full_text_search_is_indexed_on_open": "pgvector stores postdate full-text search",
    "test_failed_commit_leaves_the_previous_generation": NO_SEGMENT_FILES + " (pgvector: see below)",
    "test_reindex_changes_the_model_and_dimension": "segment counts (pgvector: see below)",
    "test_writes_during_the_build_and_before_the_swap_are_honoured": "the FAISS reindex's build events",
    "test_a_failed_swap_leaves_the_old_store_and_a_rerun_finishes": "the FAISS reindex's segment swap (pgvector: "
                                                                    "the killed swap above)",
    "test_one_reindex_at_a_time_and_stale_instances_are_refused": "the FAISS reindex's work folder (pgvector: "
                                                                  "see below)",
}


def scores(results: list[list[Passage]]) -> list[list[float]]:
    return [[round(p.score, 5) for p in row] for row in results]


def _skipped(reason: str):  # noqa: ANN202
    def test(self: object, *args: object, **kwargs: object) -> None:
        pytest.skip(reason)
    return test


@pytest.mark.skipif(not os.environ.get(PGVECTOR_URL_VARIABLE),
                    reason=f"set {PGVECTOR_URL_VARIABLE} (scripts/start_pgvector.sh) to run the store suite "
                           "on pgvector")
class TestPgVectorStore(StoreContract, LexicalSearchContract):
    """The same contract with the vectors in PostgreSQL (pgvector) instead of segment files."""

    locals().update({name: _skipped(reason) for name, reason in FAISS_FILE_TESTS.items()})

    @pytest.fixture
    def store_env(self, tmp_path: Path) -> Iterator[StoreEnv]:
        url = os.environ[PGVECTOR_URL_VARIABLE]
        reset_database(url)
        yield StoreEnv(directory=tmp_path / "store", db_url=f"{url}?vector_backend=pgvector")
        reset_database(url)

    def _sql(self, store_env: StoreEnv, statement: str) -> list[tuple]:
        engine = store_env.engine()
        try:
            with engine.begin() as connection:
                result = connection.execute(text(statement))
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def test_the_vectors_are_rows_with_an_hnsw_index_and_no_files(self, filled: Store, store_env: StoreEnv) -> None:
        assert filled.vector_backend == "pgvector"
        assert self._sql(store_env, "SELECT count(*) FROM chunk_vectors") == [(filled.stats().chunks,)]
        assert self._sql(store_env, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
                                    "attrelid = 'chunk_vectors'::regclass AND attname = 'embedding'") == [
            (f"vector({DIM})",)]
        [(definition,)] = self._sql(
            store_env, "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_chunk_vectors_hnsw'")
        assert "USING hnsw" in definition and "vector_ip_ops" in definition
        assert store_env.segment_files() == []
        # a deleted document's vectors go in the same transaction
        filled.delete(document_ids=[corpus(6)[0].document.id])
        assert self._sql(store_env, "SELECT count(*) FROM chunk_vectors") == [(filled.stats().chunks,)]

    def test_reopening_detects_the_backend_and_refuses_the_other(self, filled: Store, store_env: StoreEnv) -> None:
        url, chunks = os.environ[PGVECTOR_URL_VARIABLE], filled.stats().chunks
        filled.close()
        with Store.open(store_env.directory, embedding_model=MODEL, dimension=DIM, db_url=url) as store:
            assert store.vector_backend == "pgvector" and store.stats().chunks == chunks
        with pytest.raises(ConfigError, match="--vector-backend pgvector"):
            Store.open(store_env.directory, embedding_model=MODEL, dimension=DIM, db_url=url, vector_backend="faiss")
        with pytest.raises(ConfigError, match="unknown vector backend 'annoy'"):
            Store.open(store_env.directory, embedding_model=MODEL, dimension=DIM, db_url=url, vector_backend="annoy")

    def test_a_missing_or_mis_sized_vector_is_found_by_check_and_repaired(self, filled: Store,
                                                                          store_env: StoreEnv) -> None:
        queries = np.vstack([w.vectors[0] for w in corpus(6)])
        results = scores(filled.search(queries, 5))
        [(gone,)] = self._sql(store_env, "DELETE FROM chunk_vectors WHERE chunk_id = "
                                         "(SELECT min(chunk_id) FROM chunk_vectors) RETURNING chunk_id")
        report = filled.check()
        assert not report.ok and report.missing_vectors == (gone,)
        with pytest.raises(StoreInconsistentError, match="vectors for"):
            store_env.open()
        embedder = FakeEmbedder()
        assert filled.repair(embedder).ok and embedder.encoded == 1
        assert scores(filled.search(queries, 5)) == results
        # a column of another dimension than the store's (what a botched manual change leaves)
        self._sql(store_env, "DROP INDEX ix_chunk_vectors_hnsw")
        self._sql(store_env, "DELETE FROM chunk_vectors")
        self._sql(store_env, "ALTER TABLE chunk_vectors ALTER COLUMN embedding TYPE vector(3)")
        problems = " ".join(filled.check().manifest_problems)
        assert f"vector(3), the store's dimension is {DIM}" in problems and "HNSW index" in problems

    def test_a_failed_commit_leaves_the_previous_generation(self, filled: Store, store_env: StoreEnv,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
        before = filled.stats()

        def broken_commit(self: Session) -> None:
            raise OperationalError("COMMIT", {}, Exception("connection lost"))

        monkeypatch.setattr(Session, "commit", broken_commit)
        with pytest.raises(StoreError, match="connection lost"):
            filled.apply([write_for("new", "new document text")], [corpus(6)[0].document.id])
        monkeypatch.undo()
        after = filled.stats()
        assert (after.documents, after.chunks, after.vectors, after.generation) == (
            before.documents, before.chunks, before.vectors, before.generation)
        assert filled.check().ok and filled.apply([write_for("new", "new document text")]).added == 1

    def test_reindex_moves_the_column_to_the_new_dimension(self, filled: Store, store_env: StoreEnv) -> None:
        chunks, generation = filled.stats().chunks, filled.generation
        result = filled.reindex(OTHER, batch_size=4)
        assert (result.model, result.dimension, result.chunks, result.embedded) == (
            OTHER_MODEL, OTHER_DIM, chunks, chunks)
        assert filled.generation == generation + 1 and filled.check().ok
        target = reembedded(corpus(6)[2], OTHER)
        assert filled.search(target.vectors[:1], 1)[0][0].document_id == target.document.id
        filled.close()
        with pytest.raises(IndexMismatchError):
            store_env.open()
        with store_env.open(embedding_model=OTHER_MODEL, dimension=OTHER_DIM) as reopened:
            assert reopened.check().ok and reopened.stats().vectors == chunks

    def test_one_reindex_per_database_at_a_time(self, filled: Store, store_env: StoreEnv) -> None:
        from qa_system.storage import pgvector

        engine = store_env.engine()
        try:
            with engine.connect() as holder:  # another process's reindex holds the lock
                assert holder.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": pgvector.REINDEX_LOCK_KEY})
                with pytest.raises(StoreError, match="another reindex of the store"):
                    filled.reindex(FakeEmbedder(OTHER_MODEL, OTHER_DIM), batch_size=4)
                assert filled.embedding_model == MODEL and filled.check().ok
                holder.scalar(text("SELECT pg_advisory_unlock(:k)"), {"k": pgvector.REINDEX_LOCK_KEY})
            # released after a run, a failed one included
            with pytest.raises(RuntimeError, match="the embedder broke"):
                filled.reindex(FailingEmbedder(after_calls=1), batch_size=4)
            result = filled.reindex(FakeEmbedder(OTHER_MODEL, OTHER_DIM), batch_size=4)
            assert (result.resumed, result.chunks) == (4, filled.stats().chunks)
            with engine.connect() as connection:
                assert connection.scalar(text("SELECT count(*) FROM reindex_vectors")) == 0
        finally:
            engine.dispose()

    def test_ef_search_is_the_hnsw_walks_breadth_and_never_below_k(self, filled: Store,
                                                                   store_env: StoreEnv) -> None:
        filled.close()
        query = np.vstack([corpus(6)[1].vectors[0]])
        with store_env.open(ef_search=40) as store:
            for k, expected in ((10, "40"), (60, "60")):
                with store.view() as view:
                    hits = view.vector_search(query, k)[1][0]
                    assert view._session.scalar(text("SHOW hnsw.ef_search")) == expected
                    assert hits[0] == store.search(query, 1)[0][0].chunk_id
        with store_env.open() as store, store.view() as view:  # the default
            view.vector_search(query, 10)
            assert view._session.scalar(text("SHOW hnsw.ef_search")) == "100"
        with pytest.raises(InputError, match="ef_search must be between 1 and 1000"):
            store_env.open(ef_search=1001)

    def test_a_selective_filter_returns_a_full_k_past_the_scan_budget(self, store: Store,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
        from qa_system.storage import pgvector

        store.apply(corpus(300, prefix="common", team="a") + corpus(12, prefix="rare", team="b"))
        monkeypatch.setattr(pgvector, "MAX_SCAN_TUPLES", 20)  # the iterative scan gives up early
        query = vector("common number 3")
        hits = store.search(query, 10, filters={"team": "b"})[0]
        assert len(hits) == 10 and {h.source.split("-")[0] for h in hits} == {"rare"}
        exact = sorted(((float(w.vectors[i] @ query[0]), w.document.id) for w in corpus(12, prefix="rare", team="b")
                        for i in range(len(w.chunks))), reverse=True)
        assert hits[0].score == pytest.approx(exact[0][0], abs=1e-5)

    def test_a_database_without_the_extension_is_a_clear_error(self, tmp_path: Path) -> None:
        url = os.environ[PGVECTOR_URL_VARIABLE]
        name = f"qa_noext_{os.getpid()}"
        admin = create_store_engine(url).execution_options(isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
                connection.execute(text(f"CREATE DATABASE {name}"))
            other = url.rsplit("/", 1)[0] + f"/{name}"
            with pytest.raises(StoreError, match=r"CREATE EXTENSION vector;.*superuser"):
                Store.open(tmp_path / "s", embedding_model=MODEL, dimension=DIM, db_url=other,
                           vector_backend="pgvector")
        finally:
            with admin.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            admin.dispose()
