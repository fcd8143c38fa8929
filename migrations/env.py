"""Alembic environment of the qa_system store.

The store runs the migrations itself (``qa_system.storage.migrate.upgrade``) and hands over an
open connection inside a transaction. Run from the command line (``alembic upgrade head`` in the
repository root), the database URL is taken from ``-x db_url=...``, else from ``sqlalchemy.url``
in ``alembic.ini``, else from the package settings (``QA_SYSTEM_DB_URL`` / ``QA_SYSTEM_STORE_DIR``)
-- the same settings object the application uses.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from qa_system.storage.models import Base, include_name

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite ALTER support through table copies
        compare_type=True,
        include_name=include_name,  # the full-text objects of migration 0002 have no models
        # the pgvector chain (migrations/pgvector) keeps its own version table
        version_table=config.attributes.get("version_table", "alembic_version"),
    )
    with context.begin_transaction():
        context.run_migrations()


def _url_from_settings() -> str:
    from qa_system.config import load_settings

    url = context.get_x_argument(as_dictionary=True).get("db_url") or config.get_main_option(
        "sqlalchemy.url"
    )
    return url or load_settings().resolved_db_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url_from_settings(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    from qa_system.storage.engine import create_store_engine, write_engine

    engine = create_store_engine(_url_from_settings())
    try:
        with write_engine(engine).begin() as connection:
            _configure_and_run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
