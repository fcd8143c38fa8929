"""Index segments: immutable faiss files holding the vectors of one write (or of a merge).

This module and ``vector_files`` are the only ones that import faiss. A segment holds the
L2-normalised vectors of a set of chunks under their chunk ids (so inner product is cosine
similarity). Two kinds, by size:

* ``flat``: ``IndexIDMap(IndexFlatIP)``, exact search. Every write makes one; small merges too.
* ``ivf``: ``IndexIVFFlat`` (inner product) with ``nlist`` about ``2 * sqrt(n)`` lists, for
  segments of at least :data:`IVF_MIN_VECTORS` vectors, made by compaction. A search scans the
  ``nprobe`` lists nearest the query in each, so it is approximate; ``nprobe`` is the knob that
  trades recall for speed (``QA_SYSTEM_SEARCH_NPROBE``; ``benchmarks/scale_nprobe.py``). A
  small segment scanned with the same ``nprobe`` as a large one sees a larger share of its
  lists: scaling it down by share cost recall (0.846 against 0.956 at 256, docs/scale.md).

IVF was chosen over HNSW: it builds in one k-means and one assignment pass, it is memory-mapped
by faiss as it is written (its inverted lists are read in place), and its search honours an id
selector without losing the selected hits, which filtered search and deletions need.

An IVF file also carries its vectors in id order after the faiss index (``encode_segment``): a
search among given ids (a selective filter, the exact cosines hybrid search needs) gathers them
from there instead of scanning every list. A flat file's vectors already are in id order.

Files are read with faiss's mmap flags, so N processes that open a store share one copy in the
page cache and opening a segment costs about nothing. A segment is never changed: deletions
are tombstones (SQL) that searches exclude with an id selector until compaction rewrites it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ..errors import InputError, StoreError, StoreInconsistentError

FLAT = "flat"
IVF = "ivf"
KINDS = (FLAT, IVF)
#: Segments with at least this many vectors are built as IVF (when made by compaction).
IVF_MIN_VECTORS = 20_000
#: IVF lists a search scans in each IVF segment (all of them in a segment with fewer): the
#: recall/speed knob. Chosen on the synthetic million-passage store (docs/scale.md).
DEFAULT_NPROBE = 64
#: k-means trains on at most this many vectors per list (a sample; faiss's own cap is 256), for
#: this many iterations (faiss's default is 25; 10 lost no recall on the synthetic million).
TRAIN_POINTS_PER_LIST = 40
TRAIN_ITERATIONS = 10
MAX_NLIST = 2048
# Exact search computes query-vector scores with faiss's own kernel or with a BLAS matrix product,
# by faiss's global ``distance_compute_blas_threshold`` (faiss 1.15: 128,000, which in practice
# keeps batches off BLAS). Measured on one core (docs/performance.md, benchmarks/retrieval_search.py):
# over 100k vectors, BLAS searched a batch of 200 queries 3.3x faster per query and a batch of 4
# 1.4x faster, but a single query 2x slower. So batches of at least BLAS_MIN_QUERIES queries use
# BLAS and smaller ones faiss's kernel; the answers are the same (up to float rounding).
BLAS_MIN_QUERIES = 4
FAISS_BLAS_THRESHOLD = int(faiss.cvar.distance_compute_blas_threshold)


def use_blas_for(n_queries: int) -> None:
    """Set faiss's (process-wide) kernel choice for a search of ``n_queries`` queries. A search in
    another thread at the same moment may run on the other kernel: same results, other speed."""
    faiss.cvar.distance_compute_blas_threshold = 1 if n_queries >= BLAS_MIN_QUERIES else FAISS_BLAS_THRESHOLD


_TRAILER_MAGIC = b"QASEG01\0"
_ALIGN = 64
#: Both kinds are mapped in place by faiss's MMAP_IFC reader (flat codes; IVF inverted lists as
#: read-only arrays). Its other mapping, IO_FLAG_MMAP (OnDiskInvertedLists), searched an IVF
#: segment of 600,000 vectors 2.9x slower (2.79 against 0.98 ms at nprobe 32).
_READ_FLAGS = {FLAT: faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY,
               IVF: faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY}


class SegmentFileError(StoreInconsistentError):
    """A segment file is missing, unreadable or not what SQL says it is."""


def as_ids(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    array = ids if isinstance(ids, np.ndarray) else np.fromiter(ids, dtype=np.int64)
    return np.ascontiguousarray(array, dtype=np.int64).reshape(-1)


def normalised(vectors: np.ndarray, dimension: int, what: str) -> np.ndarray:
    """A float32 C-contiguous copy of ``vectors`` with unit rows; InputError on a bad shape or
    on NaN/infinite values."""
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[1] != dimension:
        raise InputError(f"{what} must have shape (n, {dimension}), got {array.shape}")
    array = np.array(array, dtype=np.float32, order="C", copy=True)
    if not np.isfinite(array).all():
        raise InputError(f"{what} contain NaN or infinite values")
    if len(array):
        faiss.normalize_L2(array)
    return array


def nlist_for(n: int) -> int:
    """IVF lists for ``n`` vectors: a power of two near the larger of 2 * sqrt(n) and n / 40,
    from 64 to MAX_NLIST. Lists of about 40 vectors in mid-sized segments route a query to its
    neighbours' lists far better than sqrt-sized ones (a 60,000-vector segment of the synthetic
    million, recall@10 at 32 lists: 0.83 with 2,048 lists, 0.37 with 512); the cap keeps
    k-means affordable (it costs about nlist squared)."""
    wanted = max(2.0 * math.sqrt(n), n / 40.0, 1.0)
    return int(min(MAX_NLIST, max(64, 1 << round(math.log2(wanted)))))


class IdBitmap:
    """A set of ids as a faiss bitmap selector (ids are non-negative; absent ids cost one bit
    each up to the largest id). ``exclude`` turns it into "every id but these"."""

    def __init__(self, ids: np.ndarray, *, exclude: bool = False) -> None:
        ids = as_ids(ids)
        if len(ids) and ids.min() < 0:
            raise InputError("ids must not be negative")
        size = int(ids.max()) + 1 if len(ids) else 1
        bits = np.zeros(size, dtype=bool)
        bits[ids] = True
        self._bitmap = np.packbits(bits, bitorder="little")  # faiss reads bit (i & 7) of byte i >> 3
        self._member = faiss.IDSelectorBitmap(len(self._bitmap), faiss.swig_ptr(self._bitmap))  # n: bytes
        self.selector: faiss.IDSelector = faiss.IDSelectorNot(self._member) if exclude else self._member
        self.count = len(np.unique(ids)) if len(ids) else 0


@dataclass(frozen=True)
class SegmentInfo:
    """What SQL records of a segment (``segments`` table)."""

    id: int
    kind: str
    vectors: int
    min_id: int
    max_id: int
    bytes: int
    sha256: str

    @property
    def file_name(self) -> str:
        return segment_file_name(self.id)


def segment_file_name(segment_id: int) -> str:
    return f"seg-{segment_id:08d}.faiss"


class Segment:
    """One open (memory-mapped) segment file. Thread-safe for searches; never mutated."""

    def __init__(self, info: SegmentInfo, index: faiss.Index, dimension: int,
                 owner: faiss.Index | None = None, path: Path | None = None) -> None:
        self.info = info
        self._index = index
        self._owner = owner  # the object faiss returned, which owns the index ``index`` views
        self.dimension = dimension
        self._nlist = int(index.nlist) if info.kind == IVF else 0
        n = int(index.ntotal)
        if info.kind == FLAT:
            self._ids = faiss.vector_to_array(index.id_map).astype(np.int64)
            flat = faiss.downcast_index(index.index)
            self._vectors = (faiss.rev_swig_ptr(flat.get_xb(), n * dimension).reshape(n, dimension)
                             if n else np.zeros((0, dimension), np.float32))
        else:
            if path is None:
                raise SegmentFileError("an IVF segment needs its file for its id-ordered vectors")
            self._ids, self._vectors = _read_trailer(path, n, dimension)
        if len(self._ids) > 1 and not (self._ids[1:] > self._ids[:-1]).all():
            raise SegmentFileError(f"{info.file_name}: ids are not sorted and unique")

    @classmethod
    def open(cls, path: Path, info: SegmentInfo, dimension: int) -> Segment:
        """Map ``path``; SegmentFileError when it is missing or not the segment SQL describes
        (size, kind, dimension, count). The content hash is checked by :func:`file_sha256`
        (``Store.check``), not here: opening must not read the whole file."""
        try:
            size = path.stat().st_size
        except OSError as e:
            raise SegmentFileError(f"cannot read segment file {path.name}: {e.strerror or e}") from None
        if size != info.bytes:
            raise SegmentFileError(f"{path.name} has {size} bytes, the store recorded {info.bytes}")
        try:
            raw = faiss.read_index(str(path), _READ_FLAGS.get(info.kind, 0))
        except RuntimeError as e:
            raise SegmentFileError(f"{path.name} is not a readable faiss index: {e}") from None
        index = faiss.downcast_index(raw)
        if info.kind == FLAT and isinstance(index, faiss.IndexIDMap):
            inner = faiss.downcast_index(index.index)
            expected = isinstance(inner, faiss.IndexFlatIP)
        else:
            expected = info.kind == IVF and isinstance(index, faiss.IndexIVFFlat)
        if not expected:
            raise SegmentFileError(f"{path.name} holds a {type(index).__name__}, expected a {info.kind} segment")
        if index.d != dimension or index.ntotal != info.vectors:
            raise SegmentFileError(f"{path.name} holds {index.ntotal} vectors of dimension {index.d}; "
                                   f"the store recorded {info.vectors} of dimension {dimension}")
        return cls(info, index, dimension, owner=raw, path=path)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def search(self, queries: np.ndarray, k: int, *, selector: faiss.IDSelector | None = None,
               nprobe: int = DEFAULT_NPROBE, exhaustive: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query row (normalised float32); missing slots have id -1.
        ``exhaustive``: an IVF segment scans every list (exact; for selective filters)."""
        k = min(k, len(self))
        if k <= 0:
            return (np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64))
        if self.info.kind == IVF:
            params = faiss.SearchParametersIVF()
            params.nprobe = self._nlist if exhaustive else max(1, min(nprobe, self._nlist))
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        use_blas_for(len(queries))
        try:
            scores, ids = self._index.search(queries, k, params=params)
        except RuntimeError as e:
            raise StoreError(f"vector search in {self.info.file_name} failed: {e}") from e
        return scores, ids

    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        """All (ids, vectors) of the segment, sorted by id (new arrays)."""
        return np.array(self._ids, dtype=np.int64, copy=True), np.array(self._vectors, dtype=np.float32, copy=True)

    def ids(self) -> np.ndarray:
        """The sorted ids (a read-only view)."""
        return self._ids

    def _positions(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids present here, their row numbers)."""
        at = np.searchsorted(self._ids, ids)
        inside = at < len(self._ids)
        present = np.zeros(len(ids), dtype=bool)
        present[inside] = self._ids[at[inside]] == ids[inside]
        return ids[present], at[present]

    def scores_of(self, query: np.ndarray, ids: np.ndarray) -> dict[int, float]:
        """Cosine of one query (normalised, shape (1, d)) with the vectors of those ``ids`` that
        are in this segment (exact, whatever the kind)."""
        found, rows = self._positions(ids)
        if not len(found):
            return {}
        scores = self._vectors[rows] @ query[0]
        return {int(i): float(v) for i, v in zip(found.tolist(), scores.tolist(), strict=True)}

    def search_among(self, queries: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` among ``ids`` (sorted) that are in this segment: their vectors are
        gathered by id and scored with one matrix product."""
        found, rows = self._positions(ids)
        n = len(queries)
        if not len(found):
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
        scores = queries @ self._vectors[rows].T
        take = min(k, len(found))
        best = np.argpartition(-scores, take - 1, axis=1)[:, :take] if take < len(found) else np.tile(
            np.arange(len(found)), (n, 1))
        return np.take_along_axis(scores, best, axis=1).astype(np.float32), found[best]


def _read_trailer(path: Path, n: int, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """The id-ordered ids and vectors stored after an IVF segment's faiss index (memory-mapped)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            handle.seek(size - 16)
            footer = handle.read(16)
    except OSError as e:
        raise SegmentFileError(f"cannot read segment file {path.name}: {e.strerror or e}") from None
    if len(footer) != 16 or footer[8:] != _TRAILER_MAGIC:
        raise SegmentFileError(f"{path.name} has no vector trailer")
    start = _aligned(int.from_bytes(footer[:8], "little"))
    vector_bytes, id_bytes = n * dimension * 4, n * 8
    if start + vector_bytes + id_bytes + 16 != size:
        raise SegmentFileError(f"{path.name}: its vector trailer does not fit the file")
    vectors = np.memmap(path, dtype=np.float32, mode="r", offset=start, shape=(n, dimension)) if n else (
        np.zeros((0, dimension), np.float32))
    ids = np.memmap(path, dtype=np.int64, mode="r", offset=start + vector_bytes, shape=(n,)) if n else (
        np.zeros(0, np.int64))  # mapped too: worker processes share it
    return ids, vectors


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def encode_segment(ids: np.ndarray, vectors: np.ndarray, kind: str) -> list[np.ndarray]:
    """The bytes of a segment file, as consecutive parts (written one after another, never
    joined: a merge of a million vectors would otherwise hold them twice more): the faiss
    index, and for IVF the id-ordered vectors and ids after it with a footer giving the index's
    length."""
    payload = serialise(build_index(ids, vectors, kind=kind))
    if kind == FLAT:
        return [payload]
    return [payload, np.zeros(_aligned(len(payload)) - len(payload), np.uint8),
            np.ascontiguousarray(vectors, dtype=np.float32).view(np.uint8).reshape(-1),
            np.ascontiguousarray(ids, dtype=np.int64).view(np.uint8).reshape(-1),
            np.frombuffer(len(payload).to_bytes(8, "little") + _TRAILER_MAGIC, dtype=np.uint8)]


def build_index(ids: np.ndarray, vectors: np.ndarray, *, kind: str) -> faiss.Index:
    """A faiss index of ``kind`` over normalised ``vectors`` under ``ids`` (sorted, unique)."""
    dimension = vectors.shape[1]
    if kind == FLAT:
        index = faiss.IndexIDMap(faiss.IndexFlatIP(dimension))
    else:
        nlist = nlist_for(len(ids))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = min(len(vectors), nlist * TRAIN_POINTS_PER_LIST)
        chosen = np.random.default_rng(len(ids)).choice(len(vectors), sample, replace=False)
        index.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
        index.cp.niter = TRAIN_ITERATIONS
        index.cp.min_points_per_centroid = 16  # lists of ~40 vectors are meant: no warning on stderr
        index.train(vectors[np.sort(chosen)])
    if len(ids):
        index.add_with_ids(vectors, ids)
    return index


def serialise(index: faiss.Index) -> np.ndarray:
    try:
        return faiss.serialize_index(index)
    except RuntimeError as e:
        raise StoreError(f"cannot serialise a segment: {e}") from e


def kind_for(n: int, *, merged: bool) -> str:
    """Writes make flat segments; merges of at least IVF_MIN_VECTORS make IVF ones."""
    return IVF if merged and n >= IVF_MIN_VECTORS else FLAT


def merge_hits(parts: Sequence[tuple[np.ndarray, np.ndarray]], n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-segment (scores, ids) into the top-``k`` per query: best first, ties by smaller
    id; missing slots are id -1 with score 0."""
    scores = np.zeros((n, k), dtype=np.float32)
    ids = np.full((n, k), -1, dtype=np.int64)
    if not parts:
        return scores, ids
    all_scores = np.hstack([p[0] for p in parts])
    all_ids = np.hstack([p[1] for p in parts])
    for row in range(n):
        valid = all_ids[row] >= 0
        row_ids, row_scores = all_ids[row][valid], all_scores[row][valid]
        order = np.lexsort((row_ids, -row_scores))[:k]
        ids[row, :len(order)] = row_ids[order]
        scores[row, :len(order)] = row_scores[order]
    return scores, ids
