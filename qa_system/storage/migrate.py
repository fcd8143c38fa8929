"""Run the Alembic migrations programmatically (the store never uses ``create_all``).

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


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged migrations, bound to ``connection`` if given."""
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as e:
        raise StoreError(f"cannot read the schema version of {redact_url(str(engine.url))}: {e}") from e


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` in one transaction holding the write lock."""
    _run(engine, lambda config: command.upgrade(config, revision), f"upgrade to {revision}")


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, lambda config: command.downgrade(config, revision), f"downgrade to {revision}")


def _run(engine: Engine, step: Callable[[Config], None], what: str) -> None:
    try:
        with write_engine(engine).begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            step(alembic_config(connection))
    except (SQLAlchemyError, CommandError) as e:
        raise StoreError(
            f"database migration ({what}) failed for {redact_url(str(engine.url))}: {e}"
        ) from e
