"""Ingest throughput: a local ingest against Ray with 1 and 2 worker processes, in one run.

The corpus is real text: the first --documents distinct paragraphs of the SQuAD-format files in
../shared/datasets (benchmarks/_common.py), written as JSON lines files of 50 documents each (with
their titles), so every run reads, parses, chunks, embeds (MiniLM, the default model) and writes
the same files. Each run ingests into a fresh SQLite + FAISS store:

* local: ``QASystem.ingest`` (this process embeds);
* Ray, N workers: ``QASystem.ingest_on_ray(address="local", workers=N)``: a local Ray with N CPUs
  and N worker actors, each loading the embedder once (its one-time start, Ray's and the models',
  is reported apart: "start (s)"), the driver writing.

Throughput is documents per second of the ingest itself (after start-up). This machine has 2
cores shared with other work: the ratios matter, not the absolute numbers.

    .venv/bin/python benchmarks/ray_ingest.py                       # 5,000 documents
    .venv/bin/python benchmarks/ray_ingest.py --documents 300       # quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import DEFAULT_DATASETS, load_corpus  # noqa: E402
from _machine import format_machine, machine_info  # noqa: E402

PER_FILE = 50


def write_corpus(datasets: Path, count: int, folder: Path) -> int:
    paragraphs, _ = load_corpus(datasets, count)
    folder.mkdir(parents=True)
    for start in range(0, len(paragraphs), PER_FILE):
        with open(folder / f"part-{start // PER_FILE:04d}.jsonl", "w", encoding="utf-8") as f:
            for p in paragraphs[start:start + PER_FILE]:
                f.write(json.dumps({"text": p.context, "title": p.title}) + "\n")
    return len(paragraphs)


def run(corpus: Path, store: Path, workers: int | None) -> dict[str, float]:
    from qa_system import QASystem, load_settings
    from qa_system.ray_ingest import connect

    system = QASystem(load_settings(store_dir=store))
    with system:
        began = time.perf_counter()
        system.load()
        system.embedder.encode(["warm up"])  # the driver's model (a new store needs its dimension)
        if workers is not None:
            ray = connect("local", workers=workers)
        start = time.perf_counter() - began
        began = time.perf_counter()
        if workers is None:
            report = system.ingest([corpus])
        else:
            report = system.ingest_on_ray([corpus], address="local", workers=workers)
        seconds = time.perf_counter() - began
        if workers is not None:
            ray.shutdown()
    assert not report.failed, report.failed
    return {"start (s)": start, "ingest (s)": seconds, "documents": report.added, "chunks": report.chunks_added,
            "documents/s": report.added / seconds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    ap.add_argument("--documents", type=int, default=5_000)
    args = ap.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="qa-ray-bench-") as folder:
        corpus = Path(folder) / "corpus"
        count = write_corpus(args.datasets, args.documents, corpus)
        print(f"{count} documents in {len(list(corpus.iterdir()))} files", file=sys.stderr)
        # Ray's workers inherit the environment: where this checkout's package is
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).resolve().parents[1])] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                          if p])
        for name, workers in (("local", None), ("Ray, 1 worker", 1), ("Ray, 2 workers", 2)):
            print(f"{name} ...", file=sys.stderr)
            results[name] = run(corpus, Path(folder) / f"store-{workers}", workers)
    base = results["local"]["documents/s"]
    print(f"\nIngest throughput, {count} documents (SQuAD-format paragraphs), MiniLM, SQLite + FAISS store")
    print(format_machine(machine_info()))
    print(f"{'':16} {'start (s)':>10} {'ingest (s)':>11} {'documents':>10} {'chunks':>8} {'docs/s':>8} {'vs local':>9}")
    for name, r in results.items():
        print(f"{name:16} {r['start (s)']:10.1f} {r['ingest (s)']:11.1f} {r['documents']:10.0f} {r['chunks']:8.0f} "
              f"{r['documents/s']:8.1f} {r['documents/s'] / base:8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
