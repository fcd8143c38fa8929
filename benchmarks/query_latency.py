"""Single-question latency of the whole system: retrieval, reading and total, p50/p95.

A store of >= 10,000 passages is built once from the paragraphs of ../shared/datasets (SQuAD,
SQuADShifts, QED, ...) and cached in --store; then, for each top-k, >= 200 questions about those
paragraphs are asked one at a time (as a user would): retrieve top-k passages (embed + filtered
vector search + SQL), then read them all (top 3 answers).

    .venv/bin/python benchmarks/query_latency.py                 # full: 11,000 paragraphs, 200 questions
    .venv/bin/python benchmarks/query_latency.py --quick         # smoke test: 300 paragraphs, 8 questions
    .venv/bin/python benchmarks/query_latency.py --retrieval-only --top-k 10   # dense vs hybrid retrieval only

Each top-k runs once per ``--lexical-weights`` value (default: 0, dense alone, and the setting's
hybrid weight), so hybrid retrieval's cost shows as a ratio against dense retrieval in the same run,
and once per ``--first-passages`` value (reading the best passages first; 0: all at once).
``--reranker DIR`` adds, for each of those, a row with the passages re-ranked by that cross-encoder
(``qa-system train-reranker``; its first ``--rerank-top-n`` re-scored), so that the re-ranker's cost
shows against the same store and questions in the same run (the systems take turns on each
question):

    .venv/bin/python benchmarks/query_latency.py --top-k 10 --lexical-weights 0.3 --first-passages 5 \
        --reranker RUN_DIR/model
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import DEFAULT_DATASETS, REPO, load_corpus, percentile, reader_model, sample, table  # noqa: E402
from _machine import format_machine, machine_info  # noqa: E402


def build_store(store_dir: Path, paragraphs: list, batch: int = 1000):
    from qa_system.config import load_settings
    from qa_system.system import QASystem
    from qa_system.types import Document

    settings = load_settings(store_dir=store_dir, db_url=f"sqlite:///{(store_dir / 'qa.sqlite3').resolve()}")
    qa = QASystem(settings).load()
    documents = [
        Document(source=f"bench/{p.file}#{hashlib.sha256(p.context.encode()).hexdigest()[:20]}",
                 text=p.context, title=p.title, metadata={"file": p.file})
        for p in paragraphs
    ]
    began = time.perf_counter()
    for lo in range(0, len(documents), batch):  # re-running skips what is already stored
        report = qa.ingest_documents(documents[lo: lo + batch])
        if report.added:
            print(f"  ingested {lo + len(documents[lo: lo + batch])}/{len(documents)} documents "
                  f"({time.perf_counter() - began:.0f}s)", flush=True)
    return qa


def measure(systems: dict, reader, questions, top_k: int, top_n: int, warmup: int, lexical_weight: float) -> list:
    """One row per system (name -> QASystem), the systems taking turns on each question, so that a
    machine that slows down or speeds up meanwhile weighs on every row alike. ``reader`` None:
    retrieval only (reading counts 0 ms)."""
    def read(question, passages):
        if reader is not None:
            reader.read(question, passages, top_n=top_n)

    for qa in systems.values():
        for q in questions[:warmup]:
            read(q.question, qa.retrieve(q.question, top_k=top_k, lexical_weight=lexical_weight))
    times = {name: ([], [], [], [0]) for name in systems}
    for q in questions:
        for name, qa in systems.items():
            retrieve, read_s, total, found = times[name]
            t0 = time.perf_counter()
            passages = qa.retrieve(q.question, top_k=top_k, lexical_weight=lexical_weight)
            t1 = time.perf_counter()
            read(q.question, passages)
            t2 = time.perf_counter()
            retrieve.append(t1 - t0)
            read_s.append(t2 - t1)
            total.append(t2 - t0)
            found[0] += any(p.text == q.context or p.text in q.context for p in passages)
    ms = lambda xs, p: 1000 * percentile(xs, p)  # noqa: E731
    return [{
        "top_k": top_k, "lexical_weight": lexical_weight, "questions": len(questions), "reranker": name,
        "retrieve_p50_ms": ms(retrieve, 50), "retrieve_p95_ms": ms(retrieve, 95),
        "read_p50_ms": ms(read_s, 50), "read_p95_ms": ms(read_s, 95),
        "total_p50_ms": ms(total, 50), "total_p95_ms": ms(total, 95),
        "gold_passage_retrieved": found[0] / max(1, len(questions)),
    } for name, (retrieve, read_s, total, found) in times.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    ap.add_argument("--store", type=Path, default=REPO / "stores" / "bench-latency",
                    help="cache folder for the benchmark store (one sub-folder per corpus size)")
    ap.add_argument("--paragraphs", type=int, default=11_000, help="corpus size in paragraphs")
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--top-k", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--top-n", type=int, default=3, help="answers per question")
    ap.add_argument("--reader-model", help="QA model (default: packaged reader, else a random-head MiniLM)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: 300 paragraphs, 8 questions, top-k 5 10")
    ap.add_argument("--lexical-weights", type=float, nargs="+",
                    help="hybrid retrieval weights to compare (default: 0, i.e. dense alone, and the setting's)")
    ap.add_argument("--retrieval-only", action="store_true", help="time retrieval only (no reader)")
    ap.add_argument("--first-passages", type=int, nargs="+",
                    help="reader_first_passages values to compare (0: every passage at once; default: 0 and the "
                         "setting's, when it is not 0)")
    ap.add_argument("--reranker", help="also time every row with this cross-encoder re-ranking the passages")
    ap.add_argument("--rerank-top-n", type=int, help="passages the re-ranker re-scores (default: the setting's)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.quick:
        args.paragraphs, args.questions, args.top_k, args.warmup = 300, 8, [5, 10], 1

    from qa_system.config import load_settings
    from qa_system.reader import ExtractiveReader

    weights = args.lexical_weights or sorted({0.0, load_settings().lexical_weight})

    paragraphs, all_questions = load_corpus(args.datasets, args.paragraphs)
    store_dir = args.store / f"paragraphs-{len(paragraphs)}"
    print(f"store {store_dir}: {len(paragraphs)} paragraphs")
    qa = build_store(store_dir, paragraphs)
    stats = qa.stats()
    model, trained = reader_model(args.reader_model, args.store)
    firsts = args.first_passages or sorted({0, qa.settings.reader_first_passages})
    readers = {f: None if args.retrieval_only else
               ExtractiveReader(model, settings=replace(qa.settings, reader_first_passages=f)).load() for f in firsts}
    questions = sample(all_questions, args.questions)
    systems = {"off": qa}
    if args.reranker:  # the same store and embedder, its passages re-ranked
        from qa_system.system import QASystem

        reranked = replace(qa.settings, reranker=args.reranker,
                           rerank_top_n=args.rerank_top_n or qa.settings.rerank_top_n)
        systems[f"top {reranked.rerank_top_n}"] = QASystem(reranked, embedder=qa.embedder).load()
        systems[f"top {reranked.rerank_top_n}"].load_reranker()
    rows = [row | {"first_passages": f} for k in args.top_k for w in weights for f in firsts
            for row in measure(systems, readers[f], questions, k, args.top_n, args.warmup, w)]
    for system in systems.values():
        system.close()

    base = rows[0]["total_p50_ms"]
    first_weight = {r["top_k"]: r for r in rows if r["lexical_weight"] == weights[0] and r["reranker"] == "off"}
    reader = readers[firsts[0]]
    print(f"\nquery latency, one question at a time: {stats.documents} documents, {stats.chunks} passages "
          f"(embedder {stats.embedding_model}); "
          + ("retrieval only" if reader is None else
             f"reader {model}{'' if trained else ' (random QA head)'}, top {args.top_n} answers")
          + f"; {len(questions)} questions, {args.warmup} warm-up; lexical weight 0 = dense retrieval alone")
    print(table(
        ["top-k", "lexical w", "first passages", "re-ranker", "retrieve p50", "p95",
         f"retrieve p50 vs w={weights[0]:g}", "read p50", "p95",
         "total p50", "p95", "total p50 vs first row", "gold in top-k"],
        [[r["top_k"], f"{r['lexical_weight']:g}", r["first_passages"] or "all", r["reranker"],
          f"{r['retrieve_p50_ms']:.1f} ms", f"{r['retrieve_p95_ms']:.1f} ms",
          f"{r['retrieve_p50_ms'] / first_weight[r['top_k']]['retrieve_p50_ms']:.2f}x",
          f"{r['read_p50_ms']:.0f} ms", f"{r['read_p95_ms']:.0f} ms", f"{r['total_p50_ms']:.0f} ms",
          f"{r['total_p95_ms']:.0f} ms", f"{r['total_p50_ms'] / base:.2f}x", f"{r['gold_passage_retrieved']:.2f}"]
         for r in rows],
    ))
    if stats.chunks < 10_000 and not args.quick:
        print(f"warning: only {stats.chunks} passages (< 10,000): raise --paragraphs")
    info = machine_info()
    print(format_machine(info))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "documents": stats.documents, "passages": stats.chunks,
                                         "reader": model, "trained_reader": trained, "machine": info}, indent=2))


if __name__ == "__main__":
    main()
