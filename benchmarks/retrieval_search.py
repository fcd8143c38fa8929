"""Vector search: FAISS vs exact brute force in numpy on the same vectors, and approximate indexes.

Vectors: the product's embedder (all-MiniLM-L6-v2, 384 dimensions, L2-normalised) over the
paragraphs of ../shared/datasets, cached in --cache; queries: questions about those paragraphs.
Optionally --replicate R adds R-1 noisy copies of every vector (synthetic, labelled as such) to
see how the numbers scale.

Measured (best of --repeats runs, all queries in one call and one query per call):
  numpy exact (matrix product + argpartition) — the baseline;
  faiss IndexFlatIP (exact), the product's flat segment (IndexIDMap over IndexFlatIP, memory-mapped),
  the product's filtered search over 1% of the ids (exact, vectors gathered by id) and its IVF
  segment at each --nprobe;
  IVF-Flat at several nprobe and HNSW-Flat at several efSearch: time, and recall@k against the
  exact top-k (|approx ∩ exact| / k).

    .venv/bin/python benchmarks/retrieval_search.py             # full: up to 20,000 paragraphs, 1,000 queries
    .venv/bin/python benchmarks/retrieval_search.py --quick     # smoke test: 1,000 paragraphs, 50 queries
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import DEFAULT_DATASETS, REPO, load_corpus, sample, table  # noqa: E402
from _machine import format_machine, machine_info  # noqa: E402


def embed_cached(cache: Path, name: str, texts: list[str]) -> np.ndarray:
    path = cache / f"{name}-{len(texts)}.npy"
    if path.is_file():
        return np.load(path)
    from qa_system.embedding import SentenceTransformerEmbedder

    began = time.perf_counter()
    vectors = SentenceTransformerEmbedder().load().encode(texts, batch_size=64)
    print(f"  embedded {len(texts)} {name} in {time.perf_counter() - began:.0f}s", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def replicate(vectors: np.ndarray, times: int, seed: int = 0) -> np.ndarray:
    if times <= 1:
        return vectors
    rng = np.random.default_rng(seed)
    copies = [vectors]
    for _ in range(times - 1):
        noisy = vectors + rng.normal(0, 0.05, vectors.shape).astype(np.float32)
        copies.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    return np.ascontiguousarray(np.concatenate(copies), dtype=np.float32)


def numpy_search(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ base.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def timed(fn, queries: np.ndarray, repeats: int) -> tuple[float, float, np.ndarray]:
    """(best seconds for all queries in one call, best seconds one query per call, ids)."""
    ids = fn(queries)
    batch = min(_clock(lambda: fn(queries)) for _ in range(repeats))
    single = min(_clock(lambda: [fn(queries[i: i + 1]) for i in range(len(queries))]) for _ in range(repeats))
    return batch, single, ids


def _clock(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def overlap_recall(approx: np.ndarray, exact: np.ndarray) -> float:
    k = exact.shape[1]
    return float(np.mean([len(set(a) & set(e)) / k for a, e in zip(approx.tolist(), exact.tolist(), strict=True)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    ap.add_argument("--cache", type=Path, default=REPO / "stores" / "bench-vectors")
    ap.add_argument("--paragraphs", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--replicate", type=int, default=1, help="R: add R-1 noisy copies of the vectors (synthetic)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nprobe", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--ef-search", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--quick", action="store_true", help="smoke test: 1,000 paragraphs, 50 queries")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.paragraphs, args.queries, args.repeats, args.nprobe, args.ef_search = 1_000, 50, 1, [1, 8], [16, 64]

    import tempfile

    import faiss

    from qa_system.storage import segments
    from qa_system.storage.segment_set import VectorSnapshot, write_segment_file
    from qa_system.storage.segments import FLAT, IVF, Segment, SegmentInfo

    scratch = Path(tempfile.mkdtemp(prefix="retrieval-search-"))

    def product_snapshot(kind: str) -> VectorSnapshot:
        """The product's search path: one segment of ``kind`` over every vector, memory-mapped."""
        ids = np.arange(len(base), dtype=np.int64)
        path = scratch / f"seg-{kind}.faiss"
        size, digest = write_segment_file(path, ids, base, kind)
        info = SegmentInfo(1, kind, len(ids), 0, len(ids) - 1, size, digest)
        return VectorSnapshot.make(1, base.shape[1], [Segment.open(path, info, base.shape[1])], np.zeros(0, np.int64))

    paragraphs, questions = load_corpus(args.datasets, args.paragraphs)
    base = replicate(embed_cached(args.cache, "paragraphs", [p.context for p in paragraphs]), args.replicate)
    queries = embed_cached(args.cache, f"queries-seed13-of-{len(paragraphs)}",
                           [q.question for q in sample(questions, args.queries)])
    n, d, k = base.shape[0], base.shape[1], args.k
    rows, records = [], []

    def add(name: str, batch_s: float, single_s: float, ids: np.ndarray, exact: np.ndarray, build_s: float,
            ref_batch: float | None) -> None:
        recall = overlap_recall(ids, exact)
        ms_single = 1000 * single_s / len(queries)
        rows.append([name, f"{build_s:.2f}s", f"{1000 * batch_s / len(queries):.3f}", f"{ms_single:.3f}",
                     f"{batch_s / ref_batch:.2f}x" if ref_batch else "1.00x", f"{recall:.4f}"])
        records.append({"index": name, "build_s": build_s, "ms_per_query_batched": 1000 * batch_s / len(queries),
                        "ms_per_query_single": ms_single, "recall_vs_exact": recall})

    exact_batch, exact_single, exact = timed(lambda q: numpy_search(base, q, k), queries, args.repeats)
    add("numpy exact (baseline)", exact_batch, exact_single, exact, exact, 0.0, None)

    began = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(base)
    build = time.perf_counter() - began
    b, s, ids = timed(lambda q: flat.search(q, k)[1], queries, args.repeats)
    add("faiss IndexFlatIP (exact)", b, s, ids, exact, build, exact_batch)

    began = time.perf_counter()
    product = product_snapshot(FLAT)
    build = time.perf_counter() - began
    b, s, ids = timed(lambda q: product.search(q, k)[1], queries, args.repeats)
    add("qa_system flat segment (IDMap+FlatIP, mmap)", b, s, ids, exact, build, exact_batch)
    blas_min = segments.BLAS_MIN_QUERIES
    segments.BLAS_MIN_QUERIES = 1 << 62  # faiss's own kernel choice, as before batches went to BLAS
    b, s, ids = timed(lambda q: product.search(q, k)[1], queries, args.repeats)
    segments.BLAS_MIN_QUERIES = blas_min
    add("  the same, faiss's default kernel choice (before)", b, s, ids, exact, build, exact_batch)

    allowed = np.sort(np.random.default_rng(1).choice(n, size=max(k, n // 100), replace=False))
    sub_exact = allowed[numpy_search(base[allowed], queries, k)]
    b, s, ids = timed(lambda q: product.search(q, k, allowed=allowed)[1], queries, args.repeats)
    add(f"qa_system segments filtered to {len(allowed)} ids", b, s, ids, sub_exact, 0.0, exact_batch)

    began = time.perf_counter()
    product_ivf = product_snapshot(IVF)
    build = time.perf_counter() - began
    for nprobe in args.nprobe:
        b, s, ids = timed(lambda q, p=nprobe: product_ivf.search(q, k, nprobe=p)[1], queries, args.repeats)
        add(f"qa_system IVF segment (nprobe {nprobe}, mmap)", b, s, ids, exact, build, exact_batch)

    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
    began = time.perf_counter()
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(base)
    ivf.add(base)
    build = time.perf_counter() - began
    for nprobe in args.nprobe:
        ivf.nprobe = min(nprobe, nlist)
        b, s, ids = timed(lambda q: ivf.search(q, k)[1], queries, args.repeats)
        add(f"faiss IVF-Flat nlist={nlist} nprobe={ivf.nprobe}", b, s, ids, exact, build, exact_batch)

    began = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    hnsw.add(base)
    build = time.perf_counter() - began
    for ef in args.ef_search:
        hnsw.hnsw.efSearch = ef
        b, s, ids = timed(lambda q: hnsw.search(q, k)[1], queries, args.repeats)
        add(f"faiss HNSW-Flat M=32 efSearch={ef}", b, s, ids, exact, build, exact_batch)

    synthetic = f" ({len(paragraphs)} real x {args.replicate}, noisy copies)" if args.replicate > 1 else ""
    print(f"\nvector search: {n} vectors{synthetic}, dimension {d}, {len(queries)} queries, top-{k}; "
          f"best of {args.repeats} runs")
    print(table(["index", "build", "ms/query (batched)", "ms/query (1 per call)", "time vs numpy (batched)",
                 f"recall@{k} vs exact"], rows))
    print("recall vs exact: |approximate top-k ∩ exact top-k| / k, averaged over queries "
          "(the filtered row against the exact top-k within the allowed ids)")
    info = machine_info()
    print(format_machine(info))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": records, "vectors": n, "queries": len(queries), "k": k,
                                         "machine": info}, indent=2))


if __name__ == "__main__":
    main()
