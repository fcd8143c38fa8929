"""Segments against brute-force numpy: exact flat search, IVF recall, id selectors, merging of
per-segment hits, mmap-ed files, and the merge policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa_system.errors import InputError
from qa_system.storage.compaction import MERGE_FACTOR, TOMBSTONE_SHARE, level, plan
from qa_system.storage.segment_set import VectorSnapshot, remove_strays, write_segment_file
from qa_system.storage.segments import (
    FLAT,
    IVF,
    IdBitmap,
    Segment,
    SegmentFileError,
    SegmentInfo,
    merge_hits,
    nlist_for,
    normalised,
)

DIM = 24


def clustered(n: int, seed: int = 0, centres: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centres, DIM))
    points = middle[rng.integers(0, centres, n)] + 0.35 * rng.standard_normal((n, DIM))
    return normalised(points, DIM, "vectors")


def make_segment(tmp_path: Path, ids: np.ndarray, vectors: np.ndarray, kind: str, segment_id: int = 1) -> Segment:
    path = tmp_path / f"seg-{segment_id:08d}.faiss"
    size, digest = write_segment_file(path, ids, vectors, kind)
    info = SegmentInfo(segment_id, kind, len(ids), int(ids.min()), int(ids.max()), size, digest)
    return Segment.open(path, info, DIM)


def exact(queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int) -> list[list[int]]:
    scores = queries @ vectors.T
    return [ids[np.argsort(-row, kind="stable")[:k]].tolist() for row in scores]


def test_flat_segment_search_is_exact_and_its_contents_round_trip(tmp_path: Path) -> None:
    vectors = clustered(500)
    ids = np.arange(100, 600, dtype=np.int64)
    segment = make_segment(tmp_path, ids, vectors, FLAT)
    queries = clustered(20, seed=1)
    _, found = segment.search(queries, 10)
    assert found.tolist() == exact(queries, ids, vectors, 10)
    got_ids, got_vectors = segment.contents()
    assert np.array_equal(got_ids, ids) and np.allclose(got_vectors, vectors)


def test_batched_search_on_blas_finds_what_one_query_at_a_time_finds(tmp_path: Path) -> None:
    import faiss

    from qa_system.storage.segments import BLAS_MIN_QUERIES, FAISS_BLAS_THRESHOLD

    vectors = clustered(2000)
    ids = np.arange(2000, dtype=np.int64)
    segment = make_segment(tmp_path, ids, vectors, FLAT)
    queries = clustered(3 * BLAS_MIN_QUERIES, seed=2)
    scores, found = segment.search(queries, 10)
    assert faiss.cvar.distance_compute_blas_threshold == 1  # the batch went to BLAS
    one_by_one = [segment.search(queries[i: i + 1], 10) for i in range(len(queries))]
    assert faiss.cvar.distance_compute_blas_threshold == FAISS_BLAS_THRESHOLD  # single queries did not
    assert found.tolist() == [f[0].tolist() for _, f in one_by_one] == exact(queries, ids, vectors, 10)
    assert np.allclose(scores, np.vstack([s for s, _ in one_by_one]), atol=1e-5)


def test_ivf_segment_recall_and_exhaustive_search(tmp_path: Path) -> None:
    vectors = clustered(6000)
    ids = np.arange(6000, dtype=np.int64) * 3 + 7
    segment = make_segment(tmp_path, ids, vectors, IVF)
    queries = clustered(50, seed=2)
    truth = exact(queries, ids, vectors, 10)
    _, approximate = segment.search(queries, 10, nprobe=8)
    recall = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(approximate.tolist(), truth, strict=True)])
    assert recall > 0.7
    _, everything = segment.search(queries, 10, exhaustive=True)
    assert everything.tolist() == truth
    got_ids, got_vectors = segment.contents()
    assert np.array_equal(got_ids, ids) and np.allclose(got_vectors, vectors)
    assert nlist_for(6000) == 128 and nlist_for(10) == 64


def test_selectors_restrict_and_exclude_inside_the_search(tmp_path: Path) -> None:
    vectors = clustered(800)
    ids = np.arange(800, dtype=np.int64)
    queries = clustered(5, seed=3)
    for kind in (FLAT, IVF):
        segment = make_segment(tmp_path, ids, vectors, kind, segment_id=1 if kind == FLAT else 2)
        allowed = ids[ids % 17 == 0]
        _, found = segment.search(queries, 10, selector=IdBitmap(allowed).selector, exhaustive=True)
        assert found.tolist() == exact(queries, allowed, vectors[allowed], 10)
        dead = ids[ids % 2 == 0]
        _, found = segment.search(queries, 10, selector=IdBitmap(dead, exclude=True).selector, exhaustive=True)
        live = ids[ids % 2 == 1]
        assert found.tolist() == exact(queries, live, vectors[live], 10)


def test_a_snapshot_merges_segments_and_hides_tombstones(tmp_path: Path) -> None:
    vectors = clustered(900)
    ids = np.arange(1, 901, dtype=np.int64)
    parts = [make_segment(tmp_path, ids[i:i + 300], vectors[i:i + 300], FLAT, segment_id=i + 1)
             for i in range(0, 900, 300)]
    dead = ids[::5]
    snapshot = VectorSnapshot.make(3, DIM, parts, dead)
    live = np.setdiff1d(ids, dead)
    queries = clustered(10, seed=4)
    _, found = snapshot.search(queries, 12)
    assert found.tolist() == exact(queries, live, vectors[live - 1], 12)
    assert len(snapshot) == len(live) and snapshot.segment_of(np.asarray([1, 300, 301, 900, 901])) == {
        1: 1, 300: 1, 301: 301, 900: 601}
    allowed = live[live % 7 == 0]
    _, found = snapshot.search(queries, 5, allowed=allowed)
    assert found.tolist() == exact(queries, allowed, vectors[allowed - 1], 5)
    scores = snapshot.scores_of(queries[:1], [2, 6, 600, 5000])
    assert set(scores) == {2, 600}  # 6 is tombstoned, 5000 does not exist
    assert scores[600] == pytest.approx(float(queries[0] @ vectors[599]), abs=1e-5)


def test_merge_hits_orders_by_score_then_id_and_pads() -> None:
    scores, ids = merge_hits([(np.asarray([[0.9, 0.5]], np.float32), np.asarray([[4, 2]])),
                              (np.asarray([[0.5, -1.0]], np.float32), np.asarray([[1, -1]]))], 1, 4)
    assert ids.tolist() == [[4, 1, 2, -1]] and scores[0, 3] == 0


def test_opening_refuses_a_file_that_is_not_the_recorded_segment(tmp_path: Path) -> None:
    vectors, ids = clustered(50), np.arange(50, dtype=np.int64)
    segment = make_segment(tmp_path, ids, vectors, FLAT)
    path = tmp_path / segment.info.file_name
    with pytest.raises(SegmentFileError, match="expected a ivf segment"):
        Segment.open(path, SegmentInfo(1, IVF, 50, 0, 49, segment.info.bytes, ""), DIM)
    with pytest.raises(SegmentFileError, match="recorded 51"):
        Segment.open(path, SegmentInfo(1, FLAT, 51, 0, 49, segment.info.bytes, ""), DIM)
    path.write_bytes(b"x" * segment.info.bytes)
    with pytest.raises(SegmentFileError, match="not a readable faiss index"):
        Segment.open(path, segment.info, DIM)
    with pytest.raises(SegmentFileError, match="cannot read"):
        Segment.open(tmp_path / "absent.faiss", segment.info, DIM)
    with pytest.raises(InputError, match="NaN"):
        normalised(np.full((1, DIM), np.nan), DIM, "vectors")


def test_stray_sweep_keeps_live_segments_and_running_merges(tmp_path: Path) -> None:
    import fcntl
    import os

    index = tmp_path / "index"
    index.mkdir()
    for name in ("seg-00000001.faiss", "seg-00000002.faiss", ".seg-x.tmp", "vectors-00000004.faiss",
                 ".build-dead.faiss", ".build-alive.faiss", "notes.txt"):
        (index / name).write_bytes(b"x")
    fd = os.open(index / ".build-alive.faiss", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        removed = remove_strays(tmp_path, {1})
    finally:
        os.close(fd)
    assert sorted(removed) == [".build-dead.faiss", ".seg-x.tmp", "seg-00000002.faiss", "vectors-00000004.faiss"]
    assert sorted(p.name for p in index.iterdir()) == [".build-alive.faiss", "notes.txt", "seg-00000001.faiss"]


def info(segment_id: int, vectors: int, kind: str | None = None) -> SegmentInfo:
    kind = kind or (IVF if vectors >= 20_000 else FLAT)
    return SegmentInfo(segment_id, kind, vectors, segment_id * 10**6, segment_id * 10**6 + vectors, 1, "")


def test_merge_policy_merges_runs_of_one_level_and_heavily_deleted_segments() -> None:
    assert [level(n) for n in (1, 999, 9_999, 10_000, 99_999, 100_000, 10**6)] == [0, 0, 0, 1, 1, 2, 3]
    small = [info(i, 30) for i in range(1, MERGE_FACTOR)]
    assert plan(small, {}) == []  # one short of a run
    more = [*small, info(MERGE_FACTOR, 30), info(MERGE_FACTOR + 1, 50_000), info(MERGE_FACTOR + 2, 30)]
    assert plan(more, {}) == [tuple(range(1, MERGE_FACTOR + 1))]
    big = info(99, 50_000)
    assert plan([big], {99: int(TOMBSTONE_SHARE * 50_000) + 1}) == [(99,)]
    assert plan([big], {99: int(TOMBSTONE_SHARE * 50_000)}) == []
    assert plan([big], {}, force=True) == [] and plan([big], {99: 1}, force=True) == [(99,)]
    assert plan(small[:2], {}, force=True) == [(1, 2)]
    assert plan([info(7, 30_000, FLAT), info(8, 30_000)], {}) == [(7,)]  # one large write: made IVF
    assert plan([info(9, 25_000)], {9: 6_000}) == [(9,)]  # 19,000 live left: flat again
