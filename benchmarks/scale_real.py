"""The scale benchmark's real-embedding run: ~100,000 real passages embedded by the product's
embedder (all-MiniLM-L6-v2), real questions, the product's Store: approximate search's recall
on real vectors, which synthetic ones cannot tell.

Passages: the paragraphs of ../shared/datasets (the benchmark corpus files, then SQuAD v1.1
train) cut at sentence ends into pieces of about --chars characters, one document per paragraph.
Questions: --queries answerable ones whose answer lies inside one passage (that passage is the
"right" one). Vectors are cached in stores/scale/ (embedding 100,000 passages takes minutes).
Measured, one thread: dense k = 10 after the merge policy (``compact()``) and after
``compact(force=True)`` (one segment), at several nprobe: p50, recall@10 against the exact
top-10 (numpy over the same vectors), and how often the right passage is in the top 10 (exact
search's rate beside it); hybrid search (the product's lexical weight) p50 and the same rate.

    .venv/bin/python benchmarks/scale_real.py                 # 100,000 passages
    .venv/bin/python benchmarks/scale_real.py --passages 5000 # quick
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import time
from pathlib import Path

for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import numpy as np  # noqa: E402
from _common import CORPUS_FILES, DEFAULT_DATASETS, load_corpus, sample, table  # noqa: E402
from _machine import format_machine, machine_info  # noqa: E402

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def pieces(context: str, chars: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive pieces of ``context``, cut at sentence ends near ``chars``."""
    spans, start = [], 0
    ends = [m.start() for m in _SENTENCE_END.finditer(context)] + [len(context)]
    for end in ends:
        if end - start >= chars or end == len(context):
            if context[start:end].strip():
                spans.append((start, end))
            start = end + 1 if end < len(context) else end
    return spans


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=100_000)
    ap.add_argument("--chars", type=int, default=300, help="about this many characters per passage")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--nprobe", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    ap.add_argument("--root", type=Path, default=Path("stores/scale"))
    args = ap.parse_args()

    import faiss
    import torch

    from qa_system.config import load_settings
    from qa_system.embedding import SentenceTransformerEmbedder
    from qa_system.storage import DocumentWrite, Store
    from qa_system.types import Chunk, Document

    faiss.omp_set_num_threads(1)
    torch.set_num_threads(int(os.environ.get("SCALE_REAL_THREADS", "2")))  # embedding; searches use one
    paragraphs, questions = load_corpus(args.datasets, None, (*CORPUS_FILES, "squad/train-v1.1.json"))
    documents, spans, texts = [], [], []
    for p in paragraphs:
        cut = pieces(p.context, args.chars)
        if len(texts) + len(cut) > args.passages:
            break
        documents.append(p)
        spans.append(cut)
        texts.extend(p.context[s:e] for s, e in cut)
    where = {}  # (context, start) -> passage number
    number = 0
    for p, cut in zip(documents, spans, strict=True):
        for s, _ in cut:
            where[(p.context, s)] = number
            number += 1
    right: list[tuple[str, int]] = []
    contexts = {p.context: cut for p, cut in zip(documents, spans, strict=True)}
    for q in sample(questions, len(questions)):
        cut = contexts.get(q.context)
        at = q.context.find(q.answers[0]) if cut else -1
        if at < 0:
            continue
        inside = [s for s, e in cut if s <= at and at + len(q.answers[0]) <= e]
        if inside:
            right.append((q.question, where[(q.context, inside[0])]))
        if len(right) == args.queries:
            break
    settings = load_settings()
    embedder = SentenceTransformerEmbedder(settings.embedding_model, precision=settings.embedding_precision)
    embedder.load()
    args.root.mkdir(parents=True, exist_ok=True)
    cache = args.root / f"real-{len(texts)}-{args.chars}-vectors.npy"
    if cache.exists():
        vectors = np.load(cache)
    else:
        began = time.perf_counter()
        vectors = np.asarray(embedder.encode(texts, batch_size=64, progress=True), dtype=np.float32)
        np.save(cache, vectors)
        print(f"embedded {len(texts):,} passages in {time.perf_counter() - began:.0f} s")
    queries = np.asarray(embedder.encode([q for q, _ in right], batch_size=64), dtype=np.float32)
    wanted = np.asarray([n for _, n in right])
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]

    folder = args.root / f"real-{len(texts)}"
    shutil.rmtree(folder, ignore_errors=True)
    store = Store.open(folder, embedding_model=embedder.model_name, dimension=vectors.shape[1])
    began, at = time.perf_counter(), 0
    writes = []
    for p, cut in zip(documents, spans, strict=True):
        doc = Document(source=f"real/{len(writes)}", text=p.context, title=p.title)
        chunks = [Chunk(doc.id, i, s, e, p.context[s:e], 1) for i, (s, e) in enumerate(cut)]
        writes.append(DocumentWrite(doc, chunks, vectors[at:at + len(cut)]))
        at += len(cut)
    for lo in range(0, len(writes), 20_000):
        store.apply(writes[lo:lo + 20_000])
    store.compact()
    build = time.perf_counter() - began
    number_of = {}  # chunk id -> passage number, through (source, start)
    starts = {f"real/{i}": [s for s, _ in cut] for i, cut in enumerate(spans)}
    offsets = np.cumsum([0] + [len(c) for c in spans])

    def passage_number(p) -> int:
        key = (p.source, p.start)
        if key not in number_of:
            index = int(p.source.split("/")[1])
            number_of[key] = int(offsets[index] + starts[p.source].index(p.start))
        return number_of[key]

    def measure(label: str, nprobe: int | None, **kwargs) -> list:
        if nprobe is not None:
            store._nprobe = nprobe  # noqa: SLF001 - the knob, per row
        times, found = [], []
        for row in range(len(queries)):
            extra = {k: ([v[row]] if k == "query_texts" else v) for k, v in kwargs.items()}
            t0 = time.perf_counter()
            hits = store.search(queries[row:row + 1], 10, **extra)[0]
            times.append(time.perf_counter() - t0)
            found.append([passage_number(p) for p in hits])
        recall = np.mean([len(set(f) & set(e.tolist())) / 10 for f, e in zip(found, exact, strict=True)])
        right_in = np.mean([w in f for w, f in zip(wanted, found, strict=True)])
        return [label, f"{1000 * np.percentile(times, 50):.2f}", f"{1000 * np.percentile(times, 95):.2f}",
                f"{recall:.4f}" if "query_texts" not in kwargs else "-", f"{right_in:.3f}"]

    rows = []
    stats = store.stats()
    for nprobe in args.nprobe:
        rows.append(measure(f"dense, policy ({stats.segments} segments), nprobe {nprobe}", nprobe))
    rows.append(measure(f"hybrid w={settings.lexical_weight}, nprobe {settings.search_nprobe}",
                        settings.search_nprobe, query_texts=[q for q, _ in right],
                        lexical_weight=settings.lexical_weight))
    store.compact(force=True)
    for nprobe in args.nprobe:
        rows.append(measure(f"dense, one segment, nprobe {nprobe}", nprobe))
    exact_right = np.mean([w in e.tolist() for w, e in zip(wanted, exact, strict=True)])
    store.close()
    print(f"{len(texts):,} real passages ({len(documents):,} documents), {len(queries)} questions; "
          f"build (apply + compact) {build:.0f} s; exact search: right passage in top 10 {exact_right:.3f}")
    print(table(["search", "p50 ms", "p95 ms", "recall@10 vs exact", "right passage in top 10"], rows))
    print(format_machine(machine_info()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
