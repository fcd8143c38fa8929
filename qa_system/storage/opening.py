"""Helpers of `Store.open` and `Store.refresh`, plus small shared utilities of the store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from ..errors import IndexMismatchError, StoreError
from . import index_files as files
from . import repository as repo
from .engine import write_engine

DB_FILE = "qa.sqlite3"
REPAIR_HINT = "run `qa-system check --repair` to fix it"
RETRIES = 3


def default_db_url(directory: Path) -> str:
    """``sqlite:///<directory>/qa.sqlite3`` (the same default as ``Settings.resolved_db_url``)."""
    return f"sqlite:///{(Path(directory) / DB_FILE).resolve()}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@contextmanager
def sql_errors(what: str) -> Iterator[None]:
    """Turn SQLAlchemy errors into StoreError (the cause stays attached)."""
    try:
        yield
    except SQLAlchemyError as e:
        raise StoreError(f"{what} failed: {e}") from e


def claim_store(engine: Engine, directory: Path, model: str, dimension: int, *, create: bool) -> int:
    """Record (first open) or compare the embedding model and dimension, and drop stray index
    files, all under the database write lock. Returns the committed generation."""
    with sql_errors("opening the store"), sessionmaker(write_engine(engine))() as session:
        state = repo.state(session, lock=True)
        if state.embedding_model is None:
            if not create:
                raise StoreError(f"no store at {directory} (the database is empty)")
            state.embedding_model, state.dimension, state.updated_at = model, dimension, utcnow()
        elif (state.embedding_model, state.dimension) != (model, dimension):
            raise IndexMismatchError(
                f"the store at {directory} was built with {state.embedding_model!r} "
                f"(dimension {state.dimension}); asked for {model!r} (dimension {dimension}). "
                "Use the same embedding model, or ingest into a new store.")
        files.remove_other_generations(directory, keep=state.generation)
        generation = state.generation
        session.commit()
    return generation


def load_settled(engine: Engine, directory: Path, generation: int, model: str,
                 dimension: int) -> tuple[files.LoadedGeneration, int]:
    """Load the index of ``generation``. If that fails because another process has committed
    a newer generation meanwhile (and removed the older file), load the newer one instead."""
    for _ in range(RETRIES):
        loaded = files.load_generation(directory, generation, embedding_model=model, dimension=dimension)
        if not loaded.problems:
            break
        with sql_errors("reading the store state"), sessionmaker(engine)() as session:
            latest = repo.current_generation(session)
        if latest == generation:
            break
        generation = latest
    return loaded, generation
