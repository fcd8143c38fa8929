"""pgvector against FAISS, in one run, on the same synthetic passages (benchmarks/_scale_data.py:
clustered 384-dimensional unit vectors, 80-120-word texts, a ``tenant`` metadata value that
matches ~1% of the passages).

Two stores are filled with the same passages through ``Store.apply`` (writes of 1,000 documents):
the default one (SQLite + FAISS segment files, merged into one IVF segment at the end: "index
settle") and a PostgreSQL one with the pgvector backend, loaded as pgvector advises for bulk loads
(HNSW index dropped, then built once after the load: "index settle"; afterwards every write
maintains it, as the 1,000-chunk write below measures). Then, for
each, over the same queries, one question at a time, k = 10:

* search p50 / p95 (ms) and recall@10 against the exact top-10 (numpy, all passages);
* filtered search on one tenant (~1% of the passages): p50 / p95 and recall@10 against the exact
  top-10 among that tenant's passages (pgvector: the filter is a WHERE in the vector query, with
  iterative index scans; FAISS: the store's pre-/post-filter planner);
* a write of 1,000 one-chunk documents (one ``Store.apply``, one transaction);
* with ``--ef-search 40 100 200 400``: pgvector's unfiltered p50 / p95 and recall@10 at each
  ``hnsw.ef_search`` (the setting ``QA_SYSTEM_SEARCH_EF``; the main table uses the default, 100).

The machine is shared and small (2 cores here): compare the two columns of one run, not the
absolute numbers across runs. FAISS uses one thread (OMP_NUM_THREADS=1); PostgreSQL is one
backend process per query anyway.

    eval "$(scripts/start_pgvector.sh)"
    .venv/bin/python benchmarks/pgvector_vs_faiss.py --db-url "$QA_SYSTEM_TEST_PGVECTOR_URL"
    .venv/bin/python benchmarks/pgvector_vs_faiss.py --db-url ... --passages 20000 --queries 50   # quick
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import format_machine, machine_info  # noqa: E402
from _scale_data import DIMENSION, Corpus, document_of_source, exact_neighbours, recall_at  # noqa: E402

MODEL = "synthetic-384"
WRITE_DOCUMENTS = 1_000


def writes_of_block(corpus: Corpus, block: int) -> list:
    from qa_system.storage import DocumentWrite
    from qa_system.types import Chunk, Document

    vectors, _ = corpus.block_vectors(block)
    writes, at = [], 0
    for index in corpus.block_documents(block):
        synthetic = corpus.document(index)
        document = Document(source=synthetic.source, text=synthetic.text, metadata=synthetic.metadata)
        chunks = [Chunk(document.id, j, start, start + len(text), text, len(text.split()))
                  for j, (start, text) in enumerate(zip(synthetic.starts, synthetic.chunk_texts, strict=True))]
        writes.append(DocumentWrite(document, chunks, vectors[at:at + len(chunks)]))
        at += len(chunks)
    return writes


def fill(store, corpus: Corpus) -> float:  # noqa: ANN001
    began = time.perf_counter()
    for block in range(corpus.blocks):
        store.apply(writes_of_block(corpus, block))
        print(f"  {store.vector_backend}: block {block + 1}/{corpus.blocks}", end="\r", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return time.perf_counter() - began


def passage_numbers(store) -> dict[int, int]:  # noqa: ANN001
    """chunk id -> the synthetic passage number (document * 3 + chunk index); the write
    benchmark's notes have none (-1: never a true neighbour)."""
    from sqlalchemy import select

    from qa_system.storage.models import ChunkRow, DocumentRow

    with store._reads() as session:  # noqa: SLF001 - a benchmark reads the rows directly
        rows = session.execute(select(ChunkRow.id, DocumentRow.source, ChunkRow.idx)
                               .join(DocumentRow, DocumentRow.id == ChunkRow.document_id))
        return {int(i): -1 if s.startswith("write/") else document_of_source(s) * 3 + int(idx)
                for i, s, idx in rows}


def timed_searches(store, queries, numbers: dict[int, int], *, tenant: bool) -> tuple[list[float], list[list[int]]]:  # noqa: ANN001
    times, found = [], []
    for row, vector in enumerate(queries.vectors):
        filters = {"tenant": queries.tenants[row]} if tenant else None
        began = time.perf_counter()
        hits = store.search(vector[None, :], 10, filters=filters)[0]
        times.append((time.perf_counter() - began) * 1000)
        found.append([numbers.get(h.chunk_id, -1) for h in hits])
    return times, found


def timed_write(store, corpus: Corpus) -> float:  # noqa: ANN001
    from qa_system.storage import DocumentWrite
    from qa_system.types import Chunk, Document

    vectors = corpus.extra_vectors(7, WRITE_DOCUMENTS)
    writes = []
    for i in range(WRITE_DOCUMENTS):
        text = f"written note {i} for the write benchmark"
        document = Document(source=f"write/{store.vector_backend}/{i:05d}", text=text, metadata={"tenant": "w"})
        writes.append(DocumentWrite(document, [Chunk(document.id, 0, 0, len(text), text, 7)], vectors[i:i + 1]))
    began = time.perf_counter()
    result = store.apply(writes)
    seconds = time.perf_counter() - began
    assert result.added == WRITE_DOCUMENTS, result
    return seconds


def ef_search_sweep(store, values: list[int], queries, truth) -> list[list[str]]:  # noqa: ANN001
    """pgvector's search at each ``ef_search`` (what ``Store.open(ef_search=...)`` sets), on the
    loaded passages before the write benchmark adds its notes."""
    numbers, default = passage_numbers(store), store._ef_search  # noqa: SLF001
    rows = []
    for value in values:
        store._ef_search = value  # noqa: SLF001
        timed_searches(store, queries, numbers, tenant=False)  # warm
        times, found = timed_searches(store, queries, numbers, tenant=False)
        rows.append([str(value), f"{np.percentile(times, 50):.2f}", f"{np.percentile(times, 95):.2f}",
                     f"{recall_at(found, truth.neighbours['all'], 10):.3f}"])
    store._ef_search = default  # noqa: SLF001
    return rows


def measure(store, corpus: Corpus, queries, truth, sweep: list[list[str]],  # noqa: ANN001
            ef_values: list[int]) -> dict[str, float]:
    numbers = passage_numbers(store)
    timed_searches(store, queries, numbers, tenant=False)  # warm caches (both sides)
    times, found = timed_searches(store, queries, numbers, tenant=False)
    f_times, f_found = timed_searches(store, queries, numbers, tenant=True)
    if store.vector_backend == "pgvector" and ef_values:
        sweep += ef_search_sweep(store, ef_values, queries, truth)
    return {
        "search p50 (ms)": float(np.percentile(times, 50)), "search p95 (ms)": float(np.percentile(times, 95)),
        "recall@10": recall_at(found, truth.neighbours["all"], 10),
        "filtered 1% p50 (ms)": float(np.percentile(f_times, 50)),
        "filtered 1% p95 (ms)": float(np.percentile(f_times, 95)),
        "filtered recall@10": recall_at(f_found, truth.neighbours["tenant"], 10),
        "filtered hits (mean of k=10)": float(np.mean([sum(i >= 0 for i in row) for row in f_found])),
        "write 1,000 chunks (s)": timed_write(store, corpus),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db-url", required=True, help="a PostgreSQL database with pgvector available (emptied!)")
    ap.add_argument("--passages", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ef-search", type=int, nargs="*", default=[],
                    help="also time pgvector's unfiltered search at each of these hnsw.ef_search values")
    args = ap.parse_args()
    if args.passages < 3_000 or args.queries < 1:
        ap.error("--passages must be at least 3000 and --queries at least 1")

    from qa_system.storage import Store, migrate, pgvector
    from qa_system.storage.engine import create_store_engine

    engine = create_store_engine(args.db_url)
    migrate.downgrade(engine, "base")  # an empty database
    engine.dispose()
    corpus = Corpus(args.passages)
    queries = corpus.queries(args.queries)
    print(f"exact neighbours of {args.queries} queries over {args.passages:,} passages ...", file=sys.stderr)
    truth = exact_neighbours(corpus, queries, 10)
    results: dict[str, dict[str, float]] = {}
    sweep: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="pgv-bench-") as folder:
        for backend in ("faiss", "pgvector"):
            options = {"db_url": args.db_url, "vector_backend": "pgvector"} if backend == "pgvector" else {}
            store = Store.open(Path(folder) / backend, embedding_model=MODEL, dimension=DIMENSION, **options)
            try:
                if backend == "pgvector":  # a bulk load: the HNSW index is built once, after it
                    pgvector.drop_index(store._engine)  # noqa: SLF001
                load = fill(store, corpus)
                began = time.perf_counter()
                if backend == "pgvector":
                    pgvector.build_index(store._engine)  # noqa: SLF001
                store.wait_for_compaction()
                store.compact(force=True)  # FAISS: one IVF segment, as a settled store; pgvector: nothing
                results[backend] = {"load (s)": load, "index settle (s)": time.perf_counter() - began,
                                    **measure(store, corpus, queries, truth, sweep, args.ef_search)}
            finally:
                store.close()
    engine = create_store_engine(args.db_url)
    migrate.downgrade(engine, "base")
    engine.dispose()

    print(f"\npgvector vs FAISS: {args.passages:,} passages, {args.queries} queries, k = 10, dimension {DIMENSION}")
    print(format_machine(machine_info()))
    print(f"{'':32} {'FAISS (SQLite)':>15} {'pgvector':>12} {'pgvector/FAISS':>15}")
    for metric in results["faiss"]:
        a, b = results["faiss"][metric], results["pgvector"][metric]
        ratio = f"{b / a:.2f}x" if a else "-"
        print(f"{metric:32} {a:15.3f} {b:12.3f} {ratio:>15}")
    if sweep:
        from _common import table

        faiss = results["faiss"]
        print(f"\npgvector search by hnsw.ef_search (k = 10; FAISS above: p50 {faiss['search p50 (ms)']:.2f} ms, "
              f"recall@10 {faiss['recall@10']:.3f})")
        print(table(["ef_search", "p50 (ms)", "p95 (ms)", "recall@10"], sweep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
