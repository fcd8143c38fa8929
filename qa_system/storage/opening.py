"""Helpers of `Store.open` and `Store.refresh`, plus small shared utilities of the store."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from ..errors import IndexMismatchError, StoreError
from . import repository as repo
from . import segment_set as segments
from .engine import write_engine
from .models import StoreStateRow
from .segment_set import VectorSnapshot
from .segments import Segment

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


def check_store_path(directory: Path) -> None:
    """StoreError naming the problem when ``directory`` cannot be a store folder: it is a file, a
    folder above it is a file, or (when it must be created) the nearest folder above it is not
    writable. Only looks; creates nothing."""
    try:
        _check_store_path(directory)
    except OSError as e:  # e.g. a folder above it that may not be read
        raise StoreError(f"{directory} cannot be a store folder: {e.strerror or e}") from None


def _check_store_path(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise StoreError(f"{directory} is a file, not a store folder: give a folder (new or existing)")
    if directory.is_dir():
        return
    for parent in directory.parents:
        if parent.exists():
            if not parent.is_dir():
                raise StoreError(f"{directory} cannot be a store folder: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise StoreError(f"{directory} cannot be a store folder: {parent} is not writable")
            return


def make_store_folder(directory: Path) -> None:
    """Create ``directory`` (and the folders above it); StoreError naming it when that fails."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create a store at {directory}: {e.strerror or e}") from None


def recorded_embedding(engine: Engine) -> tuple[str, int] | None:
    """The embedding model and dimension the store records; None before its first open."""
    with sql_errors("reading the store state"), sessionmaker(engine)() as session:
        state = repo.state(session)
        if state.embedding_model is None or state.dimension is None:
            return None
        return state.embedding_model, int(state.dimension)


def mismatch_error(directory: Path, recorded: tuple[str, int], model: str, dimension: int | None,
                   ) -> IndexMismatchError:
    """The error for opening a store of ``recorded`` (model, dimension) with another model."""
    asked = f"{model!r}" if dimension is None else f"{model!r} (dimension {dimension})"
    return IndexMismatchError(
        f"the store at {directory} was built with {recorded[0]!r} (dimension {recorded[1]}); "
        f"asked for {asked}. Use the same embedding model, ingest into a new store, or re-embed this "
        f"one with `qa-system reindex --model {model}`.")


def check_embedding(directory: Path, state: StoreStateRow, model: str | None, dimension: int) -> None:
    """IndexMismatchError when the store no longer records the ``model`` (None: any) and
    ``dimension`` this process opened it with: another process re-embedded it (``reindex.py``)
    since, and this one must neither search nor write with the old model's vectors."""
    if state.dimension == dimension and (model is None or state.embedding_model == model):
        return
    opened = f"{model!r}" if model is not None else f"dimension {dimension}"
    raise IndexMismatchError(
        f"the store at {directory} now uses {state.embedding_model!r} (dimension {state.dimension}): "
        f"it was re-embedded (`qa-system reindex`) after this process opened it with {opened}; "
        "open it again with that model")


def claim_store(engine: Engine, directory: Path, model: str, dimension: int | None, *,
                create: bool) -> tuple[int, int]:
    """Record (first open) or compare the embedding model and dimension, turn an index of the
    format before segments into a segment, and drop stray index files, all under the database
    write lock. ``dimension`` None: whatever the store records (a new store needs one).
    Returns the committed generation and the store's dimension."""
    from . import legacy

    converted: Path | None = None
    with sql_errors("opening the store"), sessionmaker(write_engine(engine))() as session:
        try:
            state = repo.state(session, lock=True)
            if state.embedding_model is None:
                if not create:
                    raise StoreError(f"no store at {directory} (the database is empty)")
                if dimension is None:
                    raise StoreError(f"a new store at {directory} needs the embedding dimension")
                state.embedding_model, state.dimension, state.updated_at = model, dimension, utcnow()
            elif state.embedding_model != model or dimension not in (None, state.dimension):
                raise mismatch_error(directory, (state.embedding_model, state.dimension), model, dimension)
            converted = legacy.convert(session, directory, state, now=utcnow())
            live = {info.id for info in repo.segment_infos(session)}
            segments.remove_strays(directory, live, keep_legacy=True)
            generation, recorded_dimension = state.generation, int(state.dimension)
            legacy_needed = not live and state.chunk_count > 0
            session.commit()
        except BaseException:
            if converted is not None:
                converted.unlink(missing_ok=True)
            raise
    if not legacy_needed:  # a segment holds its vectors (or it had none): no writer uses it
        for path in segments.legacy_files(directory).values():
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
    return generation, recorded_dimension


def consistent_reads(engine: Engine) -> Engine:
    """``engine`` whose transactions see one snapshot (SQLite's already do; PostgreSQL needs
    REPEATABLE READ)."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


def load_snapshot(engine: Engine, directory: Path, dimension: int, *,
                  reuse: Mapping[int, Segment] | None = None, model: str | None = None) -> VectorSnapshot:
    """Open the segments of the committed generation (one read transaction for the generation,
    the segment rows and the tombstones). If a segment cannot be opened because another process
    has committed a merge meanwhile (and removed the file), read the newer generation instead.
    IndexMismatchError when the store now records another dimension (or another ``model``, when
    given): it was re-embedded since this process opened it."""
    snapshot: VectorSnapshot | None = None
    reads = sessionmaker(consistent_reads(engine))
    for _ in range(RETRIES):
        with sql_errors("reading the store state"), reads() as session:
            state = repo.state(session)
            check_embedding(directory, state, model, dimension)
            generation = int(state.generation)
            infos, tombstones = repo.segment_infos(session), repo.tombstone_ids(session)
        snapshot = segments.open_snapshot(directory, generation, dimension, infos, tombstones, reuse=reuse)
        if not snapshot.problems:
            break
        with sql_errors("reading the store state"), sessionmaker(engine)() as session:
            if repo.current_generation(session) == generation:
                break
    assert snapshot is not None
    return snapshot
