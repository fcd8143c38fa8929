"""Compaction: merge adjacent segments into one, dropping tombstoned vectors.

Every write adds a segment, so without merges a store would end up with one segment per write
and a search would visit them all. The merge policy is logarithmic, like Lucene's
LogMergePolicy: a segment's *level* is ``floor(log10(live vectors / 1000))`` (level 0 below
10,000), and a run of :data:`MERGE_FACTOR` adjacent segments of one level is merged into one of
the next level, so each vector is rewritten about once per level (O(log n) in all) and a store
keeps at most ``MERGE_FACTOR - 1`` segments per level. A segment with more than
:data:`TOMBSTONE_SHARE` of its vectors deleted is rewritten alone, and so is a flat segment of at
least ``segments.IVF_MIN_VECTORS`` (one large write): merges of that size build an IVF segment,
which a search scans a few lists of instead of every vector.

Only *adjacent* segments (by chunk-id range) are merged, so segments keep disjoint id ranges
and a deleted chunk's segment is found by range.

A merge reads its segments from the published snapshot and builds the new file *outside* the
store's write lock, under a name the stray sweep leaves alone while the builder holds an flock
on it. Then one short locked transaction swaps it in: the new segment row, the old rows gone,
tombstones of chunks deleted during the merge moved onto the new segment (their vectors are in
it), the others dropped, the generation moved on. If the merged segments changed meanwhile
(another merge, a repair) the result is thrown away. A crash at any point leaves either the old
segment set or the new one, plus at most a stray file.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import StoreError
from . import repository as repo
from .durable import fsync_directory
from .opening import load_snapshot, sql_errors, utcnow
from .segment_set import BUILD_PREFIX, index_directory, parts_digest, segment_path
from .segments import SegmentInfo, encode_segment, kind_for

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

MERGE_FACTOR = 10
LEVEL_BASE = 1000
TOMBSTONE_SHARE = 0.3


@dataclass(frozen=True)
class CompactionResult:
    """Merges done: the segment ids merged by each, and the vectors written and dropped."""

    merges: tuple[tuple[int, ...], ...] = ()
    vectors_written: int = 0
    vectors_dropped: int = 0
    segments_before: int = 0
    segments_after: int = 0
    skipped: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        if not self.merges:
            return f"nothing to merge ({self.segments_before} segments)"
        return (f"{len(self.merges)} merges: {self.segments_before} segments -> {self.segments_after}; "
                f"{self.vectors_written} vectors written, {self.vectors_dropped} deleted ones dropped")


def level(vectors: int) -> int:
    return max(0, int(math.floor(math.log10(max(vectors, 1) / LEVEL_BASE))))


def plan(infos: Sequence[SegmentInfo], dead: dict[int, int], *, force: bool = False) -> list[tuple[int, ...]]:
    """Groups of adjacent segment ids to merge (``infos`` in id-range order; ``dead``: tombstones
    per segment). ``force``: everything into one, when that changes anything."""
    if force:
        if len(infos) > 1 or any(dead.get(i.id, 0) for i in infos):
            return [tuple(i.id for i in infos)]
        return []
    live = [i.vectors - dead.get(i.id, 0) for i in infos]
    groups: list[tuple[int, ...]] = []
    taken: set[int] = set()
    start = 0
    while start < len(infos):
        end = start
        while end + 1 < len(infos) and level(live[end + 1]) == level(live[start]):
            end += 1
        run = list(range(start, end + 1))
        while len(run) >= MERGE_FACTOR:
            chosen, run = run[:MERGE_FACTOR], run[MERGE_FACTOR:]
            groups.append(tuple(infos[j].id for j in chosen))
            taken.update(chosen)
        start = end + 1
    for j, info in enumerate(infos):
        if j in taken or not info.vectors:
            continue
        heavily_deleted = dead.get(info.id, 0) > TOMBSTONE_SHARE * info.vectors
        if heavily_deleted or kind_for(live[j], merged=True) != info.kind:
            groups.append((info.id,))
    return groups


class Compactor:
    """Runs merges for one Store: on demand (:meth:`run`) or, when ``automatic``, in one
    background thread after writes that leave the policy something to merge."""

    def __init__(self, store: Store, *, automatic: bool) -> None:
        self._store = store
        self._automatic = automatic
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()  # one merge run at a time per Store
        self._stopping = threading.Event()

    def after_write(self) -> None:
        if not self._automatic or self._stopping.is_set():
            return
        if self._thread is not None and self._thread.is_alive():
            return
        if not self._pending(force=False):
            return
        self._thread = threading.Thread(target=self._background, name="qa-system-compaction", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def stop(self) -> None:
        """Let a background merge finish its current step and stop (called by ``close``)."""
        self._stopping.set()
        self.wait()

    def _background(self) -> None:
        try:
            self.run(force=False)
        except Exception:  # a failed merge changes nothing; the next write tries again
            log.exception("background compaction failed")

    def _pending(self, *, force: bool) -> list[tuple[int, ...]]:
        with sql_errors("planning compaction"), self._store._reads() as session:
            return plan(repo.segment_infos(session), repo.tombstone_counts(session), force=force)

    def run(self, *, force: bool) -> CompactionResult:
        with self._guard:
            before = len(self._store._snapshot().segments)
            merges: list[tuple[int, ...]] = []
            written = dropped = 0
            skipped: list[str] = []
            for _ in range(64):  # merges can cascade a level up; bounded all the same
                if self._stopping.is_set() and not force:
                    break
                groups = self._pending(force=force)
                if not groups:
                    break
                progressed = False
                for group in groups:
                    outcome = self._merge(group)
                    if outcome is None:
                        skipped.append(f"segments {list(group)} changed during the merge")
                        continue
                    merges.append(group)
                    written, dropped = written + outcome[0], dropped + outcome[1]
                    progressed = True
                if force or not progressed:
                    break
            after = len(self._store._snapshot().segments)
            return CompactionResult(tuple(merges), written, dropped, before, after, tuple(skipped))

    def _merge(self, group: tuple[int, ...]) -> tuple[int, int] | None:
        """Merge ``group``; (vectors written, vectors dropped), or None when it changed meanwhile."""
        store = self._store
        snapshot = store._snapshot()
        segments = [s for s in snapshot.segments if s.info.id in group]
        if len(segments) != len(group):
            store.refresh()
            snapshot = store._snapshot()
            segments = [s for s in snapshot.segments if s.info.id in group]
            if len(segments) != len(group):
                return None
        id_parts, vector_parts = [], []
        for segment in segments:
            ids, vectors = segment.contents()
            keep = ~np.isin(ids, snapshot.tombstones)
            id_parts.append(ids[keep])
            vector_parts.append(vectors[keep])
        ids = np.concatenate(id_parts)
        vectors = np.vstack(vector_parts) if vector_parts else np.zeros((0, store.dimension), np.float32)
        dropped = sum(len(s) for s in segments) - len(ids)
        with _BuildFile(index_directory(store.directory)) as build:
            kind = kind_for(len(ids), merged=True)
            info: tuple[int, str] | None = None
            if len(ids):
                info = build.write(encode_segment(ids, vectors, kind))
            if not self._swap(group, build.path if len(ids) else None, kind, ids, info):
                return None
        return len(ids), dropped

    def _swap(self, group: tuple[int, ...], built: Path | None, kind: str, ids: np.ndarray,
              info: tuple[int, str] | None) -> bool:
        """The short locked transaction that replaces ``group`` with the built file."""
        store = self._store
        with store._write_lock:
            store._usable()
            session = store._writes()
            target: Path | None = None
            committing = False
            try:
                state = repo.state(session, lock=True)
                live = {i.id for i in repo.segment_infos(session)}
                if not set(group) <= live:
                    session.rollback()
                    return False
                dead = repo.tombstones_of(session, list(group))
                new_id: int | None = None
                if built is not None and info is not None:
                    row = repo.insert_segment(session, kind=kind, ids=ids, now=utcnow())
                    row.bytes, row.sha256 = info
                    new_id = int(row.id)
                    target = segment_path(store.directory, new_id)
                    os.replace(built, target)
                    fsync_directory(target.parent)
                    later = np.intersect1d(dead, ids)  # deleted while we merged: still in the new file
                    repo.move_tombstones(session, later.tolist(), new_id)
                repo.delete_tombstones(session, segment_ids=list(group))
                repo.delete_segments(session, list(group))
                state.generation += 1
                state.updated_at = utcnow()
                committing = True
                session.commit()
            except BaseException:
                if target is not None and not committing:
                    # before the rollback lets other writers in: SQLite gives the rolled-back
                    # segment id to the next one at once, and its file must not go with ours
                    target.unlink(missing_ok=True)
                    target = None
                session.rollback()
                # a commit that raised may have landed: its file stays; if it did not land, the
                # next stray sweep (under the write lock, which sees what SQL names) removes it
                raise
            finally:
                session.close()
            for segment_id in group:
                segment_path(store.directory, segment_id).unlink(missing_ok=True)
            store._publish(load_snapshot(store._engine, store.directory, store.dimension,
                                         reuse={s.info.id: s for s in store._snapshot().segments}))
        return True


class _BuildFile:
    """A merge's output file, ``index/.build-<uuid>.faiss``, flock-ed while it exists so that
    the stray sweep of other writers and processes leaves it alone; removed on exit unless it
    was moved into place."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{BUILD_PREFIX}{uuid.uuid4().hex}.faiss"
        self._fd: int | None = None

    def __enter__(self) -> _BuildFile:
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError as e:
            raise StoreError(f"cannot create a merge file in {self.path.parent}: {e.strerror or e}") from e
        return self

    def write(self, parts: list[np.ndarray]) -> tuple[int, str]:
        """Write the parts of a segment file (``segments.encode_segment``) and fsync; (size, sha256)."""
        assert self._fd is not None
        for part in parts:
            view = memoryview(np.ascontiguousarray(part, dtype=np.uint8))
            while view:
                done = os.write(self._fd, view)
                view = view[done:]
        os.fsync(self._fd)
        return parts_digest(parts)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self.path.unlink(missing_ok=True)
