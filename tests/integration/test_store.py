"""The store contract on SQLite, and on PostgreSQL when QA_SYSTEM_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa_system.storage.engine import redact_url
from tests.lexical_suite import LexicalSearchContract
from tests.store_suite import StoreContract, StoreEnv  # needs the repository root on sys.path
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


@pytest.mark.skipif(not os.environ.get(PGVECTOR_URL_VARIABLE),
                    reason=f"set {PGVECTOR_URL_VARIABLE} (scripts/start_pgvector.sh) to run the store suite on pgvector")
class TestPgVectorStore(StoreContract, LexicalSearchContract):
    """The same contract with the vectors in PostgreSQL (pgvector) instead of segment files."""

    @pytest.fixture
    def store_env(self, tmp_path: Path) -> Iterator[StoreEnv]:
        url = os.environ[PGVECTOR_URL_VARIABLE]
        reset_database(url)
        yield StoreEnv(directory=tmp_path / "store", db_url=f"{url}?vector_backend=pgvector")
        reset_database(url)
