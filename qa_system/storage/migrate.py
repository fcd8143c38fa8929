"""Run the Alembic migrations programmatically (the store never uses ``create_all``).

Two chains share ``env.py``: the main one (``versions/``, table ``alembic_version``) that every
store runs, and the pgvector one (``pgvector/``, table ``alembic_version_pgvector``) that only
stores with the pgvector vector backend run, once their dimension is recorded
(``qa_system.storage.pgvector``). ``chain`` picks one; downgrading the main chain to ``base``
takes the pgvector chain down first (its table refers to ``chunks``).

The migration scripts live in ``migrations/`` at the top of the repository. An installed
package carries the same directory as the package ``qa_system._migrations`` (see the
``[tool.setuptools]`` section of ``pyproject.toml``); code imported from a source checkout uses
that checkout's folder first.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from ..errors import ConfigError, StoreError
from .engine import redact_url, write_engine

MIGRATIONS_PACKAGE = "qa_system._migrations"
#: Key of the PostgreSQL advisory lock that serialises concurrent migration runs.
_PG_MIGRATION_LOCK = 0x5141_5359  # "QASY"


def migrations_directory() -> Path:
    """The directory holding ``env.py`` and ``versions/``."""
    checkout = Path(__file__).resolve().parents[2]
    # a source checkout uses its own migrations, even where another checkout is installed
    candidates: list[Path] = [checkout / "migrations"] if (checkout / "pyproject.toml").is_file() else []
    try:
        spec = importlib.util.find_spec(MIGRATIONS_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(Path(p) for p in spec.submodule_search_locations)
    candidates.append(checkout / "migrations")
    for candidate in candidates:
        if (candidate / "env.py").is_file() and (candidate / "versions").is_dir():
            return candidate
    raise ConfigError(
        "cannot find the database migrations; looked in " + ", ".join(str(c) for c in candidates)
    )


MAIN, PGVECTOR = "main", "pgvector"
_VERSION_TABLES = {MAIN: "alembic_version", PGVECTOR: "alembic_version_pgvector"}


def alembic_config(connection: Connection | None = None, *, chain: str = MAIN) -> Config:
    """An Alembic config for the packaged migrations of ``chain``, bound to ``connection`` if given."""
    if chain not in _VERSION_TABLES:
        raise ConfigError(f"unknown migration chain {chain!r}")
    config = Config()
    directory = migrations_directory()
    config.set_main_option("script_location", str(directory))
    config.set_main_option("path_separator", "os")
    if chain == PGVECTOR:
        config.set_main_option("version_locations", str(directory / "pgvector"))
    config.attributes["version_table"] = _VERSION_TABLES[chain]
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision(chain: str = MAIN) -> str | None:
    return ScriptDirectory.from_config(alembic_config(chain=chain)).get_current_head()


def current_revision(engine: Engine, chain: str = MAIN) -> str | None:
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(
                connection, opts={"version_table": _VERSION_TABLES[chain]}).get_current_revision()
    except SQLAlchemyError as e:
        raise StoreError(f"cannot read the schema version of {redact_url(str(engine.url))}: {e}") from e


def upgrade(engine: Engine, revision: str = "head", *, chain: str = MAIN) -> None:
    """Migrate the database up to ``revision`` in one transaction holding the write lock."""
    _run(engine, lambda config: command.upgrade(config, revision), f"upgrade to {revision}", chain)


def downgrade(engine: Engine, revision: str, *, chain: str = MAIN) -> None:
    if chain == MAIN and revision == "base" and current_revision(engine, PGVECTOR) is not None:
        downgrade(engine, "base", chain=PGVECTOR)
    _run(engine, lambda config: command.downgrade(config, revision), f"downgrade to {revision}", chain)


def _run(engine: Engine, step: Callable[[Config], None], what: str, chain: str = MAIN) -> None:
    try:
        with write_engine(engine).begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            step(alembic_config(connection, chain=chain))
    except (SQLAlchemyError, CommandError) as e:
        which = what if chain == MAIN else f"{what}, {chain} chain"
        raise StoreError(f"database migration ({which}) failed for {redact_url(str(engine.url))}: {e}") from e
