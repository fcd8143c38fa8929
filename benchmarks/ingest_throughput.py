"""Ingestion throughput and peak memory for 1,000 and 10,000 documents.

Each size runs in its own fresh process on a fresh temporary store (SQLite + FAISS): documents
are paragraphs of ../shared/datasets, ingested with QASystem.ingest_documents in writes of
--batch-docs documents (each write is one SQL transaction and one new index generation). The
same process then times the baseline: chunking and embedding the same documents alone (no
store), so the table shows what the store adds. Peak memory is the process's ru_maxrss, reported
after loading (and warming up) the embedder and at the end.

    .venv/bin/python benchmarks/ingest_throughput.py                    # full: 1,000 and 10,000 documents
    .venv/bin/python benchmarks/ingest_throughput.py --quick            # smoke test: 50 and 200 documents
    .venv/bin/python benchmarks/ingest_throughput.py --sizes 1000 --embedding-precisions fp32 auto
                                                     # the embedder in fp32 against the default, same run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import DEFAULT_DATASETS, load_corpus, table  # noqa: E402
from _machine import format_machine, machine_info  # noqa: E402

from qa_system.hardware import EMBEDDING_PRECISIONS  # noqa: E402


def _maxrss_mib() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return usage / (1024 * 1024) if sys.platform == "darwin" else usage / 1024


def child(datasets: Path, n_docs: int, batch_docs: int, baseline_docs: int | None) -> dict:
    """One measurement, in this (fresh) process."""
    from qa_system.chunking import make_chunker
    from qa_system.config import load_settings
    from qa_system.system import QASystem
    from qa_system.types import Document

    paragraphs, _ = load_corpus(datasets, n_docs)
    documents = [Document(source=f"bench/{i}", text=p.context, title=p.title) for i, p in enumerate(paragraphs)]
    with tempfile.TemporaryDirectory(prefix="qa-ingest-bench-") as folder:
        store = Path(folder) / "store"
        qa = QASystem(load_settings(store_dir=store, db_url=f"sqlite:///{store / 'qa.sqlite3'}")).load()
        qa.embedder.encode([p.context for p in paragraphs[:16]])  # warm-up: first calls are slow
        rss_loaded = _maxrss_mib()
        began = time.perf_counter()
        chunks = 0
        for lo in range(0, len(documents), batch_docs):
            chunks += qa.ingest_documents(documents[lo: lo + batch_docs]).chunks_added
        seconds = time.perf_counter() - began
        stats = qa.stats()
        rss_ingested = _maxrss_mib()
        # baseline: the same chunking and embedding, without the store
        embedder, settings = qa.embedder, qa.settings
        max_tokens = min(settings.chunk_tokens, embedder.max_tokens)
        chunker = make_chunker(embedder.tokenizer, max_tokens, min(settings.chunk_overlap_tokens, max_tokens // 2))
        sample = documents[:baseline_docs]
        began = time.perf_counter()
        texts = [c.text for d in sample for c in chunker(d.id, d.text)]
        embedder.encode(texts, batch_size=settings.embed_batch_size)
        baseline = time.perf_counter() - began
        qa.close()
        disk = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())  # SQLite (+WAL) and index files
    return {"precision": embedder.precision, "documents": len(documents), "chunks": chunks,
            "chunks_in_store": stats.chunks, "seconds": seconds,
            "docs_per_s": len(documents) / seconds, "chunks_per_s": chunks / seconds,
            "writes": -(-len(documents) // batch_docs), "baseline_seconds": baseline, "baseline_chunks": len(texts),
            "baseline_documents": len(sample),
            "maxrss_after_load_mib": rss_loaded, "maxrss_peak_mib": rss_ingested,
            "index_mib": stats.index_bytes / 2**20, "store_mib": disk / 2**20}


def _versus_baseline(r: dict) -> float:
    """Ingest time per document over chunk+embed time per document."""
    return (r["seconds"] / r["documents"]) / (r["baseline_seconds"] / r["baseline_documents"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    ap.add_argument("--batch-docs", type=int, default=500, help="documents per ingest_documents() call (one write)")
    ap.add_argument("--baseline-docs", type=int,
                    help="time the chunk+embed baseline on only the first N documents of each size and compare "
                         "per-document times (default: all of them)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 50 and 200 documents")
    ap.add_argument("--embedding-precisions", nargs="+", choices=list(EMBEDDING_PRECISIONS),
                    help="run every size once per embedding precision (QA_SYSTEM_EMBEDDING_PRECISION), each in "
                         "its own process; docs/s is then also given against the first (default: as configured)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.datasets, args.child, args.batch_docs, args.baseline_docs)))
        return
    if args.quick:
        args.sizes, args.batch_docs = [50, 200], 100

    results = []
    for n in args.sizes:
        for precision in args.embedding_precisions or [None]:
            print(f"ingesting {n} documents in a fresh process"
                  + (f", embedding precision {precision}" if precision else "") + " ...", flush=True)
            command = [sys.executable, __file__, "--child", str(n), "--datasets", str(args.datasets),
                       "--batch-docs", str(args.batch_docs)]
            if args.baseline_docs:
                command += ["--baseline-docs", str(args.baseline_docs)]
            env = {**os.environ, "QA_SYSTEM_EMBEDDING_PRECISION": precision} if precision else None
            done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first = {}  # docs/s of each size's first precision
    for r in results:
        first.setdefault(r["documents"], r["docs_per_s"])
    rows = [[r["documents"], r["precision"], r["chunks"], r["writes"], f"{r['seconds']:.1f}s", f"{r['docs_per_s']:.1f}",
             f"{r['docs_per_s'] / first[r['documents']]:.2f}x",
             f"{r['chunks_per_s']:.1f}", f"{_versus_baseline(r):.2f}x",
             f"{r['maxrss_after_load_mib']:.0f}", f"{r['maxrss_peak_mib']:.0f}",
             f"{r['maxrss_peak_mib'] - r['maxrss_after_load_mib']:.0f}", f"{r['index_mib']:.1f}",
             f"{r['store_mib']:.1f}"]
            for r in results]
    print(f"\ningest throughput: QASystem.ingest_documents, {args.batch_docs} documents per write, fresh SQLite "
          "store per size, one process per size")
    print(table(["documents", "embedder", "chunks", "writes", "time", "docs/s", "docs/s vs first row of its size",
                 "chunks/s", "time vs chunk+embed only",
                 "RSS after load MiB", "peak RSS MiB", "peak - load", "index MiB", "store on disk MiB"], rows))
    print("baseline (time vs ...): chunking and embedding the same documents without the store, same process"
          + (f"; timed on the first {args.baseline_docs} documents of each size, per document" if args.baseline_docs
             else ""))
    info = machine_info()
    print(format_machine(info))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "batch_docs": args.batch_docs, "machine": info}, indent=2))


if __name__ == "__main__":
    main()
