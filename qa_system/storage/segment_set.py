"""The vector side of one store generation: its open segments and its tombstones.

Files live in ``<store>/index/``: ``seg-<id>.faiss`` per live segment (named by the SQL
``segments`` row), nothing else once a write has settled, apart from the ``reindex/`` folder of
a re-embedding in progress or interrupted (``reindex.py``; folders are never swept). Left-overs
are removed while the database write lock is held (:func:`remove_strays`): a segment file SQL
does not name (a write or merge that did not commit), an atomic-write temp file, a merge's or a
reindex's build file whose builder is gone (it holds an flock on it while alive), and index
files of the format before segments.

A :class:`VectorSnapshot` is immutable; searches use whichever snapshot is published, writers
publish a new one that shares the unchanged segments (they are memory-mapped, so this is free).
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .durable import atomic_write_bytes
from .segments import (
    DEFAULT_NPROBE,
    IdBitmap,
    Segment,
    SegmentFileError,
    SegmentInfo,
    encode_segment,
    merge_hits,
    segment_file_name,
)

INDEX_DIR = "index"
BUILD_PREFIX = ".build-"
_SEGMENT_NAME = re.compile(r"^seg-(\d+)\.faiss$")
_LEGACY_NAME = re.compile(r"^vectors-(\d+)\.(faiss|json)$")


def index_directory(store_directory: Path) -> Path:
    return Path(store_directory) / INDEX_DIR


def segment_path(store_directory: Path, segment_id: int) -> Path:
    return index_directory(store_directory) / segment_file_name(segment_id)


def write_segment_file(path: Path, ids: np.ndarray, vectors: np.ndarray, kind: str) -> tuple[int, str]:
    """Build and atomically write a segment; returns (bytes, sha256)."""
    parts = encode_segment(ids, vectors, kind)
    atomic_write_bytes(path, parts)
    return parts_digest(parts)


def parts_digest(parts: list[np.ndarray]) -> tuple[int, str]:
    """(size, SHA-256) of the bytes ``parts`` make one after another."""
    import hashlib

    digest = hashlib.sha256()
    for part in parts:
        digest.update(memoryview(np.ascontiguousarray(part, dtype=np.uint8)))
    return sum(len(p) for p in parts), digest.hexdigest()


@dataclass(frozen=True)
class VectorSnapshot:
    """The segments (sorted by their id ranges) and tombstoned chunk ids of one generation."""

    generation: int
    dimension: int
    segments: tuple[Segment, ...]
    tombstones: np.ndarray  # sorted chunk ids whose vectors are still in a segment
    problems: tuple[str, ...] = ()  # segments that could not be opened
    _exclude: IdBitmap | None = field(default=None, repr=False, compare=False)

    @classmethod
    def make(cls, generation: int, dimension: int, segments: Sequence[Segment], tombstones: np.ndarray,
             problems: Sequence[str] = ()) -> VectorSnapshot:
        ordered = tuple(sorted(segments, key=lambda s: s.info.min_id))
        dead = np.unique(np.asarray(tombstones, dtype=np.int64))
        return cls(generation, dimension, ordered, dead, tuple(problems),
                   IdBitmap(dead, exclude=True) if len(dead) else None)

    @property
    def stored_vectors(self) -> int:
        return sum(len(s) for s in self.segments)

    def __len__(self) -> int:
        """Live vectors: stored minus tombstoned."""
        return self.stored_vectors - len(self.tombstones)

    def segment_ids(self) -> set[int]:
        return {s.info.id for s in self.segments}

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               nprobe: int = DEFAULT_NPROBE) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) over every segment, tombstones excluded. ``allowed`` (live
        chunk ids) restricts the search to those ids and makes it exact."""
        n = len(queries)
        if allowed is not None:
            wanted = np.setdiff1d(np.asarray(allowed, dtype=np.int64), self.tombstones)  # sorted, unique
            parts = []
            for segment in self.segments:  # each gets the slice of ids in its range
                lo, hi = np.searchsorted(wanted, [segment.info.min_id, segment.info.max_id + 1])
                if hi > lo:
                    parts.append(segment.search_among(queries, k, wanted[lo:hi]))
        else:
            selector = self._exclude.selector if self._exclude is not None else None
            parts = [s.search(queries, k, selector=selector, nprobe=nprobe) for s in self.segments]
        return merge_hits(parts, n, k)

    def scores_of(self, query: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """Cosine of one normalised query (shape (1, d)) with the live vectors of ``ids``."""
        wanted = np.setdiff1d(np.asarray(list(ids), dtype=np.int64), self.tombstones)
        found: dict[int, float] = {}
        for segment in self.segments:
            found.update(segment.scores_of(query, wanted))
        return found

    def segment_of(self, chunk_ids: np.ndarray) -> dict[int, int]:
        """``chunk id -> segment id`` for the ids that lie in a segment's id range."""
        if not self.segments:
            return {}
        lows = np.asarray([s.info.min_id for s in self.segments], dtype=np.int64)
        position = np.searchsorted(lows, chunk_ids, side="right") - 1
        found: dict[int, int] = {}
        for chunk_id, at in zip(chunk_ids.tolist(), position.tolist(), strict=True):
            if at >= 0 and chunk_id <= self.segments[at].info.max_id:
                found[chunk_id] = self.segments[at].info.id
        return found

    def with_changes(self, generation: int, *, added: Sequence[Segment] = (), removed: Sequence[int] = (),
                     tombstones: np.ndarray | None = None) -> VectorSnapshot:
        """The snapshot after a write: ``added`` segments, ``removed`` segment ids, and the new
        tombstone set (default: the current one plus nothing)."""
        kept = [s for s in self.segments if s.info.id not in set(removed)]
        dead = self.tombstones if tombstones is None else tombstones
        return VectorSnapshot.make(generation, self.dimension, [*kept, *added], dead, self.problems)


def open_snapshot(store_directory: Path, generation: int, dimension: int, infos: Sequence[SegmentInfo],
                  tombstones: np.ndarray, *, reuse: Mapping[int, Segment] | None = None) -> VectorSnapshot:
    """Open the segments ``infos`` (reusing already open ones by id). A segment that cannot be
    opened is left out and named in ``problems``."""
    segments: list[Segment] = []
    problems: list[str] = []
    for info in infos:
        known = (reuse or {}).get(info.id)
        if known is not None and known.info == info:
            segments.append(known)
            continue
        try:
            segments.append(Segment.open(segment_path(store_directory, info.id), info, dimension))
        except SegmentFileError as e:
            problems.append(f"segment {info.id}: {e}")
    return VectorSnapshot.make(generation, dimension, segments, tombstones, problems)


# ----------------------------------------------------------------------------- files


def segment_files_on_disk(store_directory: Path) -> set[int]:
    directory = index_directory(store_directory)
    if not directory.is_dir():
        return set()
    return {int(m.group(1)) for p in directory.iterdir() if (m := _SEGMENT_NAME.match(p.name))}


def legacy_files(store_directory: Path) -> dict[int, Path]:
    """Index files of the format before segments: ``vectors-<generation>.faiss`` by generation."""
    directory = index_directory(store_directory)
    if not directory.is_dir():
        return {}
    found: dict[int, Path] = {}
    for path in directory.iterdir():
        match = _LEGACY_NAME.match(path.name)
        if match and match.group(2) == "faiss":
            found[int(match.group(1))] = path
    return found


def remove_strays(store_directory: Path, live: set[int], *, keep_legacy: bool = False) -> list[str]:
    """Delete every file in the index folder that no live segment needs (call under the write
    lock). Build files of a merge still running (flock held) are kept."""
    directory = index_directory(store_directory)
    removed: list[str] = []
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        name = path.name
        segment = _SEGMENT_NAME.match(name)
        stray = (
            (segment is not None and int(segment.group(1)) not in live)
            or (name.startswith(".") and name.endswith(".tmp"))
            or (not keep_legacy and _LEGACY_NAME.match(name) is not None)
            or (name.startswith(BUILD_PREFIX) and not _locked(path))
        )
        if stray:
            path.unlink(missing_ok=True)
            removed.append(name)
    return removed


def _locked(path: Path) -> bool:
    """Whether another process (a merge in progress) holds an flock on ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return False


def segment_bytes(infos: Sequence[SegmentInfo]) -> int:
    return sum(info.bytes for info in infos)
