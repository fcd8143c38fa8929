"""The vector index: exact cosine search over chunk vectors, keyed by chunk id.

This is the only module that imports faiss. The index is ``IndexIDMap2(IndexFlatIP(dim))``:
vectors are L2-normalised on the way in, so inner product is cosine similarity, and the faiss
vector ids *are* the chunk ids of the SQL store. An index object that has been handed to readers
is never mutated: writers :meth:`VectorIndex.copy` it, change the copy and publish the copy.

On disk an index is two files written atomically (temp file in the same directory, fsync,
``os.replace``): the serialised faiss index and a JSON manifest beside it that records the
embedding model, dimension, vector count, store generation and the SHA-256 of the index file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from .errors import InputError, StoreError, StoreInconsistentError

MANIFEST_FORMAT = 1
MANIFEST_SUFFIX = ".json"


class IndexFileError(StoreInconsistentError):
    """An index file or its manifest is missing, unreadable or does not match its manifest."""


@dataclass(frozen=True)
class IndexManifest:
    """What is known about an index file without loading it."""

    embedding_model: str
    dimension: int
    count: int
    generation: int
    sha256: str
    index_file: str
    format: int = MANIFEST_FORMAT


def manifest_path(index_path: Path) -> Path:
    return index_path.with_suffix(MANIFEST_SUFFIX)


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _as_ids(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    array = ids if isinstance(ids, np.ndarray) else np.fromiter(ids, dtype=np.int64)
    return np.ascontiguousarray(array, dtype=np.int64).reshape(-1)


def _normalised(vectors: np.ndarray, dimension: int, what: str) -> np.ndarray:
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[1] != dimension:
        raise InputError(f"{what} must have shape (n, {dimension}), got {array.shape}")
    array = np.array(array, dtype=np.float32, order="C", copy=True)
    if not np.isfinite(array).all():
        raise InputError(f"{what} contain NaN or infinite values")
    if len(array):
        faiss.normalize_L2(array)
    return array


class VectorIndex:
    """Exact inner-product search over normalised vectors with int64 ids (the chunk ids)."""

    def __init__(self, dimension: int, *, _index: faiss.IndexIDMap2 | None = None) -> None:
        if dimension <= 0:
            raise InputError(f"dimension must be positive, got {dimension}")
        self._dimension = int(dimension)
        self._index: faiss.IndexIDMap2 = (
            _index if _index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))

    @property
    def dimension(self) -> int:
        return self._dimension

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        """All vector ids, as a new int64 array."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)

    def vectors(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """The stored (normalised) vectors of ``ids``, one row each, in order."""
        id_array = _as_ids(ids)
        if not len(id_array):
            return np.zeros((0, self._dimension), dtype=np.float32)
        try:
            return np.asarray(self._index.reconstruct_batch(id_array), dtype=np.float32)
        except RuntimeError as e:
            raise StoreError(f"cannot read vectors from the index: {e}") from e

    def similarities(self, query: np.ndarray, ids: Iterable[int] | np.ndarray) -> dict[int, float]:
        """Cosine of one query vector with the stored vectors of ``ids``; ids not in the index
        are left out."""
        q = _normalised(np.asarray(query).reshape(1, -1), self._dimension, "query vector")[0]
        id_array = _as_ids(ids)
        try:
            found, vectors = id_array, self.vectors(id_array)
        except StoreError:  # some id is not here (a write removed it): take the others one by one
            kept = [(i, v) for i in id_array.tolist() if (v := self._vector_or_none(i)) is not None]
            found = np.asarray([i for i, _ in kept], dtype=np.int64)
            vectors = np.stack([v for _, v in kept]) if kept else np.zeros((0, self._dimension), np.float32)
        return {int(i): float(s) for i, s in zip(found.tolist(), (vectors @ q).tolist(), strict=True)}

    def _vector_or_none(self, vector_id: int) -> np.ndarray | None:
        try:
            return np.asarray(self._index.reconstruct(int(vector_id)), dtype=np.float32)
        except RuntimeError:
            return None

    def copy(self) -> VectorIndex:
        try:
            clone = faiss.clone_index(self._index)
        except RuntimeError as e:
            raise StoreError(f"cannot copy the vector index: {e}") from e
        return VectorIndex(self._dimension, _index=_id_map(clone))

    def add(self, vectors: np.ndarray, ids: Iterable[int] | np.ndarray) -> None:
        """Add vectors under ``ids``; an id that is already present is an error."""
        id_array = _as_ids(ids)
        array = _normalised(vectors, self._dimension, "vectors")
        if len(array) != len(id_array):
            raise InputError(f"{len(array)} vectors but {len(id_array)} ids")
        if len(np.unique(id_array)) != len(id_array):
            raise InputError("duplicate ids in one add")
        clash = np.intersect1d(id_array, self.ids())
        if len(clash):
            raise StoreError(f"vector ids already in the index: {clash[:10].tolist()}")
        if len(array):
            try:
                self._index.add_with_ids(array, id_array)
            except RuntimeError as e:
                raise StoreError(f"cannot add vectors: {e}") from e

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Remove the vectors with these ids (absent ids are ignored); returns how many went."""
        id_array = _as_ids(ids)
        if not len(id_array):
            return 0
        try:
            return int(self._index.remove_ids(faiss.IDSelectorBatch(id_array)))
        except RuntimeError as e:
            raise StoreError(f"cannot remove vectors: {e}") from e

    def search(
        self, queries: np.ndarray, k: int, *, allowed_ids: Iterable[int] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` cosine scores and ids per query, best first; missing slots have id -1.

        ``allowed_ids`` restricts the search itself (a faiss ID selector), so a filtered search
        still returns ``k`` hits whenever at least ``k`` allowed vectors exist.
        """
        if k <= 0:
            raise InputError(f"k must be positive, got {k}")
        array = _normalised(queries, self._dimension, "query vectors")
        n = len(array)
        empty = (np.zeros((n, k), dtype=np.float32), np.full((n, k), -1, dtype=np.int64))
        if n == 0 or len(self) == 0:
            return empty
        try:
            if allowed_ids is None:
                scores, ids = self._index.search(array, k)
            else:
                allowed = _as_ids(allowed_ids)
                if not len(allowed):
                    return empty
                selector = faiss.IDSelectorBatch(allowed)
                params = faiss.SearchParameters()
                params.sel = selector  # `selector` stays referenced until the search returns
                scores, ids = self._index.search(array, k, params=params)
        except RuntimeError as e:
            raise StoreError(f"vector search failed: {e}") from e
        scores = np.where(ids < 0, np.float32(0.0), scores).astype(np.float32, copy=False)
        return scores, ids.astype(np.int64, copy=False)

    # ----------------------------------------------------------------------- files

    def save(self, path: Path, *, embedding_model: str, generation: int) -> IndexManifest:
        """Write the index and then its manifest, each atomically."""
        path = Path(path)
        try:
            data = faiss.serialize_index(self._index)
        except RuntimeError as e:
            raise StoreError(f"cannot serialise the vector index: {e}") from e
        payload = np.ascontiguousarray(data, dtype=np.uint8).data
        manifest = IndexManifest(
            embedding_model=embedding_model,
            dimension=self._dimension,
            count=len(self),
            generation=generation,
            sha256=hashlib.sha256(payload).hexdigest(),
            index_file=path.name,
        )
        try:
            atomic_write_bytes(path, payload)
            text = json.dumps(asdict(manifest), indent=2, sort_keys=True) + "\n"
            atomic_write_bytes(manifest_path(path), text.encode("utf-8"))
        except OSError as e:
            raise StoreError(f"cannot write the vector index {path}: {e}") from e
        return manifest

    @classmethod
    def load(cls, path: Path) -> tuple[VectorIndex, IndexManifest]:
        """Load an index file, checking it against its manifest; raises IndexFileError."""
        path = Path(path)
        manifest = read_manifest(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise IndexFileError(f"cannot read the index file {path}: {e}") from e
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest.sha256:
            raise IndexFileError(f"{path.name} does not match its manifest (sha256 differs)")
        try:
            raw = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as e:
            raise IndexFileError(f"{path.name} is not a readable faiss index: {e}") from e
        index = cls._checked(raw, path)
        if index.dimension != manifest.dimension or len(index) != manifest.count:
            raise IndexFileError(
                f"{path.name} holds {len(index)} vectors of dimension {index.dimension}, "
                f"its manifest says {manifest.count} of dimension {manifest.dimension}"
            )
        return index, manifest

    @classmethod
    def _checked(cls, raw: faiss.Index, path: Path) -> VectorIndex:
        try:
            id_map = _id_map(raw)
        except IndexFileError as e:
            raise IndexFileError(f"{path.name}: {e}") from e
        inner = faiss.downcast_index(id_map.index)
        if not isinstance(inner, faiss.IndexFlatIP):
            raise IndexFileError(f"{path.name} wraps a {type(inner).__name__}, expected IndexFlatIP")
        return cls(int(id_map.d), _index=id_map)


def _id_map(raw: faiss.Index) -> faiss.IndexIDMap2:
    if not isinstance(raw, faiss.IndexIDMap2):
        raise IndexFileError(f"expected an IndexIDMap2, got a {type(raw).__name__}")
    return raw


def read_manifest(index_path: Path) -> IndexManifest:
    """The manifest beside ``index_path``; raises IndexFileError when missing or malformed."""
    path = manifest_path(Path(index_path))
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise IndexFileError(f"the manifest {path.name} is missing") from e
    except (OSError, ValueError) as e:
        raise IndexFileError(f"the manifest {path.name} is unreadable: {e}") from e
    try:
        manifest = IndexManifest(
            embedding_model=str(raw["embedding_model"]),
            dimension=int(raw["dimension"]),
            count=int(raw["count"]),
            generation=int(raw["generation"]),
            sha256=str(raw["sha256"]),
            index_file=str(raw["index_file"]),
            format=int(raw.get("format", MANIFEST_FORMAT)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise IndexFileError(f"the manifest {path.name} is malformed: {e}") from e
    if manifest.format != MANIFEST_FORMAT:
        raise IndexFileError(f"the manifest {path.name} has unknown format {manifest.format}")
    return manifest
