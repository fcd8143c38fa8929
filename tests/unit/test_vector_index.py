"""VectorIndex against brute-force numpy; filtered search; atomic, verified files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from qa_system.errors import InputError, StoreError, StoreInconsistentError
from qa_system.vector_index import (
    IndexFileError,
    VectorIndex,
    atomic_write_bytes,
    manifest_path,
    read_manifest,
)

DIM = 12


def unit_vectors(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), dtype=np.float32)


def brute_force(data: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int,
                allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    if allowed is not None:
        keep = np.isin(ids, allowed)
        data, ids = data[keep], ids[keep]
    scores = queries @ data.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


@pytest.fixture
def filled() -> tuple[VectorIndex, np.ndarray, np.ndarray]:
    data = unit_vectors(300, seed=1)
    ids = np.arange(1000, 1300, dtype=np.int64) * 7  # sparse, non-contiguous ids
    index = VectorIndex(DIM)
    index.add(data, ids)
    return index, data, ids


def test_search_matches_brute_force(filled: tuple[VectorIndex, np.ndarray, np.ndarray]) -> None:
    index, data, ids = filled
    queries = unit_vectors(5, seed=2)
    scores, found = index.search(queries, 10)
    want_scores, want_ids = brute_force(data, ids, queries, 10)
    np.testing.assert_array_equal(found, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)


def test_vectors_are_normalised_so_scores_are_cosine() -> None:
    index = VectorIndex(DIM)
    data = unit_vectors(4, seed=3)
    index.add(data * 5.0, [1, 2, 3, 4])
    scores, ids = index.search(data[:1] * 0.1, 1)
    assert ids[0, 0] == 1
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_filtered_search_returns_full_k_from_allowed_ids(
    filled: tuple[VectorIndex, np.ndarray, np.ndarray],
) -> None:
    index, data, ids = filled
    allowed = ids[::37]  # 9 allowed among 300
    queries = data[[1, 2]]  # the nearest neighbours are not allowed
    scores, found = index.search(queries, 5, allowed_ids=allowed)
    want_scores, want_ids = brute_force(data, ids, queries, 5, allowed=allowed)
    np.testing.assert_array_equal(found, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    assert set(found.flat) <= set(allowed.tolist())


def test_filtered_search_with_fewer_matches_pads_with_minus_one(
    filled: tuple[VectorIndex, np.ndarray, np.ndarray],
) -> None:
    index, _, ids = filled
    _, found = index.search(unit_vectors(1, seed=4), 5, allowed_ids=ids[:2])
    assert sorted(found[0, :2].tolist()) == sorted(ids[:2].tolist())
    assert found[0, 2:].tolist() == [-1, -1, -1]
    _, none = index.search(unit_vectors(1, seed=4), 3, allowed_ids=[])
    assert none.tolist() == [[-1, -1, -1]]


def test_empty_index_and_k_beyond_size() -> None:
    index = VectorIndex(DIM)
    scores, ids = index.search(unit_vectors(2, seed=5), 3)
    assert ids.shape == (2, 3) and (ids == -1).all() and (scores == 0).all()
    index.add(unit_vectors(2, seed=6), [10, 11])
    _, ids = index.search(unit_vectors(1, seed=7), 4)
    assert sorted(ids[0, :2].tolist()) == [10, 11] and ids[0, 2:].tolist() == [-1, -1]


def test_remove_and_copy_are_independent(filled: tuple[VectorIndex, np.ndarray, np.ndarray]) -> None:
    index, data, ids = filled
    copy = index.copy()
    assert copy.remove(ids[:10]) == 10
    assert copy.remove([123456789]) == 0
    assert len(index) == 300 and len(copy) == 290
    assert not np.isin(ids[:10], copy.ids()).any()
    queries = data[:3]
    _, found = copy.search(queries, 4)
    _, want = brute_force(data[10:], ids[10:], queries, 4)
    np.testing.assert_array_equal(found, want)


def test_add_rejects_bad_input(filled: tuple[VectorIndex, np.ndarray, np.ndarray]) -> None:
    index, data, ids = filled
    with pytest.raises(StoreError, match="already in the index"):
        index.add(data[:1], ids[:1])
    with pytest.raises(InputError, match="duplicate"):
        index.add(data[:2], [5, 5])
    with pytest.raises(InputError, match="shape"):
        index.add(np.zeros((1, DIM + 1), dtype=np.float32), [1])
    with pytest.raises(InputError, match="2 vectors but 1 ids"):
        index.add(data[:2], [1])
    with pytest.raises(InputError, match="NaN"):
        index.add(np.full((1, DIM), np.nan, dtype=np.float32), [1])
    with pytest.raises(InputError, match="k must be positive"):
        index.search(data[:1], 0)
    assert len(index) == 300


def test_save_load_round_trip_with_manifest(
    tmp_path: Path, filled: tuple[VectorIndex, np.ndarray, np.ndarray],
) -> None:
    index, _, ids = filled
    path = tmp_path / "vectors-00000003.faiss"
    manifest = index.save(path, embedding_model="fake-model", generation=3)
    assert (manifest.embedding_model, manifest.dimension, manifest.count, manifest.generation) == (
        "fake-model", DIM, 300, 3)
    assert read_manifest(path) == manifest
    assert json.loads(manifest_path(path).read_text())["sha256"] == manifest.sha256
    loaded, loaded_manifest = VectorIndex.load(path)
    assert loaded_manifest == manifest
    np.testing.assert_array_equal(np.sort(loaded.ids()), np.sort(ids))
    queries = unit_vectors(3, seed=8)
    np.testing.assert_array_equal(loaded.search(queries, 7)[1], index.search(queries, 7)[1])
    assert not list(tmp_path.glob("*.tmp"))


def test_load_detects_tampering_and_missing_files(
    tmp_path: Path, filled: tuple[VectorIndex, np.ndarray, np.ndarray],
) -> None:
    index, _, _ = filled
    path = tmp_path / "vectors.faiss"
    index.save(path, embedding_model="m", generation=1)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="sha256"):
        VectorIndex.load(path)
    assert issubclass(IndexFileError, StoreInconsistentError)

    index.save(path, embedding_model="m", generation=1)
    manifest_path(path).write_text("{not json")
    with pytest.raises(IndexFileError, match="unreadable"):
        VectorIndex.load(path)

    manifest_path(path).unlink()
    with pytest.raises(IndexFileError, match="missing"):
        VectorIndex.load(path)

    index.save(path, embedding_model="m", generation=1)
    path.unlink()
    with pytest.raises(IndexFileError, match="cannot read"):
        VectorIndex.load(path)


def test_load_rejects_garbage_with_a_matching_manifest(tmp_path: Path) -> None:
    index = VectorIndex(DIM)
    path = tmp_path / "vectors.faiss"
    index.save(path, embedding_model="m", generation=1)
    garbage = b"not a faiss index at all"
    path.write_bytes(garbage)
    manifest = json.loads(manifest_path(path).read_text())
    manifest["sha256"] = hashlib.sha256(garbage).hexdigest()
    manifest_path(path).write_text(json.dumps(manifest))
    with pytest.raises(IndexFileError, match="not a readable faiss index"):
        VectorIndex.load(path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "file.bin"
    atomic_write_bytes(path, b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr("qa_system.vector_index.os.fsync", broken_fsync)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_similarities_and_vectors_of_stored_ids() -> None:
    index = VectorIndex(4)
    index.add(np.eye(4, dtype=np.float32) * 3, [10, 20, 30, 40])  # stored normalised
    assert np.allclose(index.vectors([30, 10]), np.eye(4)[[2, 0]])
    sims = index.similarities(np.array([2.0, 0.0, 2.0, 0.0]), [10, 20, 99, 30])
    assert sims.keys() == {10, 20, 30}  # 99 is not in the index
    assert sims[10] == pytest.approx(2 ** -0.5) and sims[20] == pytest.approx(0.0)
    assert index.similarities(np.ones(4), []) == {}
    with pytest.raises(StoreError):
        index.vectors([99])
