"""`Store.reindex`: re-embed every chunk with another embedding model (or the same one) and swap
the new vectors in atomically.

The store records the model its vectors come from (``store_state``); opening it with another is
an IndexMismatchError. Re-embedding runs in three steps; the first two run outside the store's
write lock, so searches and writes go on meanwhile, with the old model:

1. **Embed.** Chunk texts are read in id order, ``batch_size`` at a time (one short read
   transaction each), embedded, and saved as a *part* file in the work folder (``index/reindex/``
   by default; ``segment_set.remove_strays`` sweeps the files of ``index/`` itself, never a folder
   in it). After each part, ``progress.json`` records the parts, the last chunk id done and the
   target model, atomically. A reindex killed at any point and started again with the same model
   (on the same store and database) continues after the last part saved; another model starts
   over. Chunks written meanwhile are reached by the same scan: chunk ids grow in commit order
   (writers insert chunks while holding the store's write lock), and a chunk's text never
   changes (a changed document gets new chunks), so a saved vector stays right for its id.
2. **Build.** The parts become segment files (at most :data:`SEGMENT_VECTORS` vectors each, IVF
   when large, as a merge would build them), without the chunks deleted since they were
   embedded, under flock-ed build names in ``index/`` (``compaction._BuildFile``), which the
   stray sweep of other writers leaves alone.
3. **Swap.** One short locked transaction: the chunks added since the build are embedded (when
   there are more than a batch of them, the lock is let go and they go through steps 1 and 2
   first), those deleted since become tombstones of the new segments; the store's embedding
   model and dimension become the new model's, the new segments replace every old segment row
   and tombstone, and the generation moves on. The old segment files and the work folder are
   removed after the commit.

A crash before the commit leaves the old store as it was, still usable with the old model (a
build file or a renamed segment file left over is a stray the next writer removes; the work
folder is what a rerun resumes from); a crash after it leaves the new store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..config import REINDEX_BATCH_SIZE
from ..embedding import Embedder
from ..errors import IndexMismatchError, InputError, StoreError
from . import migrate
from . import repository as repo
from .compaction import _BuildFile
from .durable import atomic_write_bytes, file_sha256, fsync_directory
from .engine import create_store_engine
from .opening import (
    DB_FILE,
    check_store_path,
    default_db_url,
    load_snapshot,
    recorded_embedding,
    sql_errors,
    utcnow,
)
from .segment_set import index_directory, segment_path, write_segment_file
from .segments import FLAT, encode_segment, kind_for, normalised

if TYPE_CHECKING:
    from .store import Store

#: The work folder's name in ``index/``, its progress record and its lock file.
WORK_DIR = "reindex"
PROGRESS_FILE = "progress.json"
LOCK_FILE = "lock"
PART_PREFIX = "part-"
FORMAT = 1
#: Chunks embedded and saved per step: a killed reindex redoes at most this many.
DEFAULT_BATCH_SIZE = REINDEX_BATCH_SIZE
#: The most vectors one new segment holds (memory while building it: a few times its size).
SEGMENT_VECTORS = 250_000
#: Times the swap lets go of the lock to embed the chunks written meanwhile outside it; then it
#: embeds them under the lock, however many.
SWAP_ROUNDS = 4


@dataclass(frozen=True)
class ReindexProgress:
    """What a reindex is doing: ``stage`` is ``embedding``, ``building`` or ``swapping``;
    ``done`` chunks of ``total`` (the store's chunks, as last counted) have new vectors,
    ``resumed`` of them from an interrupted run."""

    stage: str
    done: int
    total: int
    resumed: int = 0


@dataclass(frozen=True)
class ReindexResult:
    """A finished reindex: the store's model and dimension before and after, its chunks (one
    vector each), the chunks embedded by this run and those taken from an interrupted one,
    the re-embedded chunks deleted meanwhile (dropped or tombstoned), and the new segments."""

    model: str
    dimension: int
    previous_model: str
    previous_dimension: int
    chunks: int
    embedded: int
    resumed: int
    dropped: int
    segments: int
    generation: int
    seconds: float
    discarded: str | None = None  # the target model of unfinished work thrown away, if any

    def summary(self) -> str:
        resumed = f", {self.resumed} saved by an interrupted run" if self.resumed else ""
        dropped = f"; {self.dropped} deleted meanwhile" if self.dropped else ""
        return (f"re-embedded {self.chunks} chunks with {self.model!r} (dimension {self.dimension}; was "
                f"{self.previous_model!r}, dimension {self.previous_dimension}): {self.embedded} embedded "
                f"now{resumed}{dropped}; {self.segments} segments, generation {self.generation}, "
                f"{self.seconds:.1f} s")


ProgressCallback = Callable[[ReindexProgress], None]


def open_recorded(directory: str | Path, *, db_url: str | None = None, **options: Any) -> Store:
    """Open an existing store with the embedding model it records, whatever that is (what a
    reindex starts from); StoreError when there is no store. ``options``: those of ``Store.open``."""
    from .store import Store

    directory = Path(directory)
    check_store_path(directory)
    if db_url is None and not (directory / DB_FILE).is_file():
        raise StoreError(f"no store at {directory} ({DB_FILE} is missing)")
    engine = create_store_engine(db_url or default_db_url(directory))
    try:
        migrate.upgrade(engine)
        recorded = recorded_embedding(engine)
    finally:
        engine.dispose()
    if recorded is None:
        raise StoreError(f"no store at {directory} (the database is empty)")
    return Store.open(directory, embedding_model=recorded[0], dimension=recorded[1], db_url=db_url,
                      create=False, **options)


# ------------------------------------------------------------------------ work folder


@dataclass(frozen=True)
class Part:
    """A saved step: ``vectors`` chunk ids (int64) then their vectors (float32) in ``file``."""

    file: str
    vectors: int
    min_id: int
    max_id: int
    sha256: str


@dataclass
class Progress:
    """``progress.json``: the target model, what it replaces, the database, and the parts saved."""

    model: str
    dimension: int
    source_model: str
    source_dimension: int
    database: str
    last_chunk_id: int = 0  # chunk ids start at 1
    parts: list[Part] = field(default_factory=list)

    def same_work(self, other: Progress) -> bool:
        return (self.model, self.dimension, self.source_model, self.source_dimension, self.database) == (
            other.model, other.dimension, other.source_model, other.source_dimension, other.database)

    def to_json(self) -> bytes:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Progress:
        raw = json.loads(data)
        if raw.pop("format", None) != FORMAT:
            raise ValueError("unknown format")
        parts = [Part(**p) for p in raw.pop("parts")]
        return cls(**raw, parts=parts)


class WorkFolder:
    """The reindex work folder, flock-ed while a reindex uses it (one reindex per store)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> WorkFolder:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"cannot use the reindex work folder {self.path}: {e.strerror or e}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise StoreError(f"another reindex of this store is running (it holds {self.path / LOCK_FILE})") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def resume(self, wanted: Progress, dimension: int) -> tuple[Progress, str | None]:
        """The saved progress when it is ``wanted``'s work (its parts checked, cut at the first
        damaged one), else a fresh start; and the target model of work thrown away, if any.
        Files the progress does not name (a part saved just before a crash) are removed."""
        saved: Progress | None = None
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            saved = Progress.from_json((self.path / PROGRESS_FILE).read_bytes())
        discarded = None
        if saved is not None and not saved.same_work(wanted):
            discarded, saved = saved.model, None
        progress = wanted
        if saved is not None:
            good: list[Part] = []
            for part in saved.parts:
                if not self._intact(part, dimension):
                    break
                good.append(part)
            saved.parts = good
            saved.last_chunk_id = good[-1].max_id if good else 0
            progress = saved
        keep = {PROGRESS_FILE, *(p.file for p in progress.parts)}
        for path in self._own_files():
            if path.name not in keep:
                path.unlink(missing_ok=True)
        self.save(progress)
        return progress, discarded

    def _own_files(self) -> list[Path]:
        """The files a reindex writes here (parts, the progress record, their temporary files):
        only these are ever removed, whatever else a given work folder holds."""
        return [path for path in self.path.iterdir() if path.is_file() and (
            path.name.startswith((PART_PREFIX, PROGRESS_FILE, f".{PART_PREFIX}", f".{PROGRESS_FILE}.")))]

    def _intact(self, part: Part, dimension: int) -> bool:
        path = self.path / part.file
        try:
            return (path.stat().st_size == part.vectors * (8 + 4 * dimension)
                    and file_sha256(path) == part.sha256)
        except OSError:
            return False

    def save(self, progress: Progress) -> None:
        atomic_write_bytes(self.path / PROGRESS_FILE, progress.to_json())

    def write_part(self, number: int, ids: np.ndarray, vectors: np.ndarray) -> Part:
        import hashlib

        data = np.ascontiguousarray(ids, dtype=np.int64).tobytes() + np.ascontiguousarray(
            vectors, dtype=np.float32).tobytes()
        name = f"{PART_PREFIX}{number:08d}.bin"
        try:
            atomic_write_bytes(self.path / name, data)
        except OSError as e:
            raise StoreError(f"cannot write {self.path / name}: {e.strerror or e}") from e
        return Part(name, len(ids), int(ids[0]), int(ids[-1]), hashlib.sha256(data).hexdigest())

    def read_part(self, part: Part, dimension: int) -> tuple[np.ndarray, np.ndarray]:
        path = self.path / part.file
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as e:
            raise StoreError(f"cannot read {path}: {e.strerror or e}") from e
        split = part.vectors * 8
        if len(data) != part.vectors * (8 + 4 * dimension):
            raise StoreError(f"{path} has {len(data)} bytes, expected {part.vectors * (8 + 4 * dimension)}")
        return data[:split].view(np.int64), data[split:].view(np.float32).reshape(part.vectors, dimension)

    def remove(self) -> None:
        """Remove the work (the folder too, when nothing else is in it)."""
        for path in [*self._own_files(), self.path / LOCK_FILE]:
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.rmdir()


# --------------------------------------------------------------------------- reindex


@dataclass
class _Built:
    """A new segment file, built and flock-ed under its build name until the swap renames it."""

    file: _BuildFile
    ids: np.ndarray
    kind: str
    bytes: int
    sha256: str


class Reindexer:
    """One run of ``Store.reindex`` (module docstring). ``adopt(model, dimension)`` is called
    under the store's write lock right after the swap commits, to make them the Store's."""

    def __init__(self, store: Store, embedder: Embedder, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 encode_batch_size: int = 64, progress: ProgressCallback | None = None,
                 work_dir: str | Path | None = None, adopt: Callable[[str, int], None]) -> None:
        if batch_size < 1 or encode_batch_size < 1:
            raise InputError(f"batch sizes must be positive, got {batch_size} and {encode_batch_size}")
        self._store = store
        self._embedder = embedder
        self._model = str(embedder.model_name)
        self._dimension = int(embedder.dimension)
        if self._dimension < 1:
            raise InputError(f"{self._model!r} reports dimension {self._dimension}")
        self._batch_size = batch_size
        self._encode_batch_size = encode_batch_size
        self._report = progress or (lambda _event: None)
        self._work = Path(work_dir) if work_dir is not None else index_directory(store.directory) / WORK_DIR
        self._adopt = adopt
        self._progress: Progress | None = None
        self._built_parts = 0  # parts already turned into build files
        self._done = self._resumed = self._embedded = self._dropped = 0
        self._total = 0

    def run(self) -> ReindexResult:
        began = time.perf_counter()
        store = self._store
        store._usable()
        previous = (store.embedding_model, store.dimension)
        wanted = Progress(model=self._model, dimension=self._dimension, source_model=previous[0],
                          source_dimension=previous[1], database=store.db_url)
        with WorkFolder(self._work) as work, contextlib.ExitStack() as builds:
            self._progress, discarded = work.resume(wanted, self._dimension)
            self._done = self._resumed = sum(p.vectors for p in self._progress.parts)
            built: list[_Built] = []
            generation: int | None = None
            for round_ in range(SWAP_ROUNDS + 1):
                self._embed_remaining(work)
                built.extend(self._build(work, builds))
                generation = self._swap(built, last_round=round_ == SWAP_ROUNDS)
                if generation is not None:
                    break
            assert generation is not None
            work.remove()
        return ReindexResult(
            model=self._model, dimension=self._dimension, previous_model=previous[0],
            previous_dimension=previous[1], chunks=self._total, embedded=self._embedded, resumed=self._resumed,
            dropped=self._dropped, segments=len(store._snapshot().segments), generation=generation,
            seconds=time.perf_counter() - began, discarded=discarded)

    # ------------------------------------------------------------------------ steps

    def _event(self, stage: str, total: int) -> None:
        self._report(ReindexProgress(stage, self._done, max(total, self._done), self._resumed))

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._embedder.encode(texts, batch_size=self._encode_batch_size))
        if vectors.shape != (len(texts), self._dimension):
            raise IndexMismatchError(f"{self._model!r} returned vectors of shape {vectors.shape}, "
                                     f"expected ({len(texts)}, {self._dimension})")
        return normalised(vectors, self._dimension, f"the vectors of {self._model!r}")

    def _embed_remaining(self, work: WorkFolder) -> None:
        """Step 1: embed and save, a batch at a time, every chunk after the last one done."""
        store, progress = self._store, self._progress
        assert progress is not None
        with sql_errors("counting chunks"), store._reads() as session:
            total = self._done + repo.count_chunks_after(session, progress.last_chunk_id)
        self._event("embedding", total)
        while True:
            store._usable()
            with sql_errors("reading chunks"), store._reads() as session:
                rows = repo.chunk_texts_after(session, progress.last_chunk_id, self._batch_size)
            if not rows:
                return
            ids = np.asarray([i for i, _ in rows], dtype=np.int64)
            vectors = self._encode([t for _, t in rows])
            progress.parts.append(work.write_part(len(progress.parts) + 1, ids, vectors))
            progress.last_chunk_id = int(ids[-1])
            work.save(progress)
            self._done += len(ids)
            self._embedded += len(ids)
            self._event("embedding", total)

    def _build(self, work: WorkFolder, builds: contextlib.ExitStack) -> list[_Built]:
        """Step 2: the parts not built yet as segment files, without the chunks deleted since."""
        store, progress = self._store, self._progress
        assert progress is not None
        parts = progress.parts[self._built_parts:]
        self._built_parts = len(progress.parts)
        if not parts:
            return []
        self._event("building", self._done)
        with sql_errors("reading chunk ids"), store._reads() as session:
            live = repo.all_chunk_ids(session)
        groups: list[list[Part]] = [[]]
        for part in parts:
            if groups[-1] and sum(p.vectors for p in groups[-1]) + part.vectors > SEGMENT_VECTORS:
                groups.append([])
            groups[-1].append(part)
        built: list[_Built] = []
        for group in groups:
            loaded = [work.read_part(part, self._dimension) for part in group]
            ids = np.concatenate([i for i, _ in loaded])
            vectors = np.vstack([v for _, v in loaded])
            keep = np.isin(ids, live)
            self._dropped += int((~keep).sum())
            ids, vectors = ids[keep], vectors[keep]
            if not len(ids):
                continue
            kind = kind_for(len(ids), merged=True)
            file = builds.enter_context(_BuildFile(index_directory(store.directory)))
            size, digest = file.write(encode_segment(ids, vectors, kind))
            built.append(_Built(file, ids, kind, size, digest))
        return built

    def _swap(self, built: list[_Built], *, last_round: bool) -> int | None:
        """Step 3: the locked transaction; the new generation, or None when more than a batch of
        chunks was written meanwhile (embed them outside the lock first) and this is not the
        last round."""
        store = self._store
        built_ids = np.concatenate([b.ids for b in built]) if built else np.zeros(0, np.int64)
        with store._write_lock:
            store._usable()
            session = store._writes()
            placed: list[Path] = []
            generation: int | None = None
            try:
                state = repo.state(session, lock=True)
                sql_ids = repo.all_chunk_ids(session)
                extra = np.setdiff1d(sql_ids, built_ids)  # written since the build
                if len(extra) > self._batch_size and not last_round:
                    session.rollback()
                    return None
                if len(extra) and len(built_ids) and extra[0] <= built_ids.max():
                    raise StoreError(f"chunk {int(extra[0])} appeared among chunk ids already re-embedded; "
                                     "chunk ids must grow in commit order")
                self._event("swapping", len(sql_ids))
                old = repo.segment_infos(session)
                repo.delete_tombstones(session)
                repo.delete_segments(session, [info.id for info in old])
                ranges = self._place(session, built, extra, placed)
                gone = np.setdiff1d(built_ids, sql_ids)  # deleted since the build
                located = _locate(gone, ranges)
                if len(located) != len(gone):
                    raise StoreError(f"{len(gone) - len(located)} deleted chunks lie in no new segment")
                repo.add_tombstones(session, located)
                self._dropped += len(gone)
                generation = int(state.generation) + 1
                state.embedding_model, state.dimension = self._model, self._dimension
                state.generation, state.chunk_count, state.updated_at = generation, len(sql_ids), utcnow()
                session.commit()
            except BaseException as e:
                with contextlib.suppress(SQLAlchemyError):
                    session.rollback()
                if generation is None or not self._committed_anyway(generation):
                    for path in placed:
                        path.unlink(missing_ok=True)
                    if isinstance(e, SQLAlchemyError):
                        raise StoreError(f"swapping in the new vectors failed: {e}") from e
                    raise
            finally:
                session.close()
            for info in old:
                segment_path(store.directory, info.id).unlink(missing_ok=True)
            self._total = len(sql_ids)
            self._adopt(self._model, self._dimension)
            store._publish(load_snapshot(store._engine, store.directory, self._dimension, model=self._model))
        return generation

    def _place(self, session: Session, built: list[_Built], extra: np.ndarray,
               placed: list[Path]) -> list[tuple[int, int, int]]:
        """Segment rows for the built files (renamed into place) and for the ``extra`` chunks
        (embedded now); their ``(min id, max id, segment id)``."""
        store = self._store
        ranges: list[tuple[int, int, int]] = []
        for item in built:
            row = repo.insert_segment(session, kind=item.kind, ids=item.ids, now=utcnow())
            row.bytes, row.sha256 = item.bytes, item.sha256
            target = segment_path(store.directory, int(row.id))
            os.replace(item.file.path, target)
            placed.append(target)
            ranges.append((int(item.ids[0]), int(item.ids[-1]), int(row.id)))
        if len(extra):
            texts = repo.chunk_texts(session, extra.tolist())
            vectors = self._encode([texts[int(i)] for i in extra])
            self._done += len(extra)
            self._embedded += len(extra)
            row = repo.insert_segment(session, kind=FLAT, ids=extra, now=utcnow())
            target = segment_path(store.directory, int(row.id))
            placed.append(target)
            try:
                row.bytes, row.sha256 = write_segment_file(target, extra, vectors, FLAT)
            except OSError as e:
                raise StoreError(f"cannot write the segment file {target}: {e.strerror or e}") from e
            ranges.append((int(extra[0]), int(extra[-1]), int(row.id)))
        session.flush()
        fsync_directory(index_directory(store.directory))
        return ranges

    def _committed_anyway(self, generation: int) -> bool:
        """After a failed commit: did the database record the new model's generation nonetheless?"""
        try:
            with self._store._reads() as session:
                state = repo.state(session)
                return int(state.generation) == generation and state.embedding_model == self._model
        except (SQLAlchemyError, StoreError):
            return False


def _locate(chunk_ids: np.ndarray, ranges: list[tuple[int, int, int]]) -> dict[int, int]:
    """``chunk id -> segment id`` by the segments' (disjoint) id ranges."""
    found: dict[int, int] = {}
    for chunk_id in chunk_ids.tolist():
        for low, high, segment_id in ranges:
            if low <= chunk_id <= high:
                found[int(chunk_id)] = segment_id
                break
    return found
