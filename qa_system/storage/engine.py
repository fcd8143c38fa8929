"""Engines for the store: SQLite pragmas, write transactions, password-free URLs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..errors import ConfigError, StoreError

#: Execution option that makes a SQLite transaction start with ``BEGIN IMMEDIATE``, taking the
#: database write lock up front (a deferred transaction that reads first can fail to upgrade).
WRITE_OPTION = "qa_system_write"
SQLITE_BUSY_TIMEOUT_S = 60


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def create_store_engine(url: str) -> Engine:
    """An engine with foreign keys, WAL and explicit transactions on SQLite."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ConfigError(f"invalid database URL {redact_url(url)!r}") from e
    # the store's own option (``pgvector.URL_OPTION``), read by Store.open, is no driver option
    parsed = parsed.difference_update_query(["vector_backend"])
    is_sqlite = parsed.get_backend_name() == "sqlite"
    kwargs: dict[str, Any] = {}
    if is_sqlite:
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (SQLAlchemyError, ImportError) as e:
        raise StoreError(f"cannot use database {redact_url(url)!r}: {e}") from e
    if is_sqlite:
        _install_sqlite_listeners(engine, in_memory=parsed.database in (None, "", ":memory:"))
    return engine


def write_engine(engine: Engine) -> Engine:
    """A view of ``engine`` whose transactions take the write lock when they begin."""
    return engine.execution_options(**{WRITE_OPTION: True})


def _install_sqlite_listeners(engine: Engine, *, in_memory: bool) -> None:
    # The documented recipe: switch off pysqlite's own transaction handling and emit BEGIN
    # ourselves, so that DDL is transactional and writers can use BEGIN IMMEDIATE.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
