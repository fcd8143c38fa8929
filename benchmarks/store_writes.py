"""What the full-text index costs a store write (SQLite): the same documents written into a store
with its full-text triggers (the product) and into one whose triggers were dropped (the store as
it was before migration 0002), one after the other in one process.

Vectors are random (no embedder runs), so the table shows the store's own cost: SQL rows,
full-text index, FAISS index file. Paragraphs come from ../shared/datasets, chunked the product's
way by characters (~800 per chunk) to keep the embedder out of it.

    .venv/bin/python benchmarks/store_writes.py                       # 4,000 paragraphs, 4 batches
    .venv/bin/python benchmarks/store_writes.py --paragraphs 400      # quick
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import DEFAULT_DATASETS, load_corpus, table
from _machine import format_machine, machine_info

DIM = 384
CHUNK_CHARS = 800


def writes(paragraphs: list, seed: int = 0) -> list:
    from qa_system.storage import DocumentWrite
    from qa_system.types import Chunk, Document

    rng = np.random.default_rng(seed)
    out = []
    for p in paragraphs:
        doc = Document(source=f"bench/{hashlib.sha256(p.context.encode()).hexdigest()[:24]}", text=p.context,
                       title=p.title)
        starts = range(0, len(p.context), CHUNK_CHARS)
        chunks = [Chunk(doc.id, i, s, min(s + CHUNK_CHARS, len(p.context)), p.context[s:s + CHUNK_CHARS], 1)
                  for i, s in enumerate(starts)]
        out.append(DocumentWrite(doc, chunks, rng.standard_normal((len(chunks), DIM)).astype(np.float32)))
    return out


def run(directory: Path, batches: list[list], *, full_text: bool) -> dict:
    from sqlalchemy import text

    from qa_system.storage import Store

    with Store.open(directory, embedding_model="bench-random", dimension=DIM) as store:
        if not full_text:
            with store._writes() as session:  # noqa: SLF001 - the store before migration 0002
                for trigger in ("insert", "delete", "update"):
                    session.execute(text(f"DROP TRIGGER chunks_fts_after_{trigger}"))
                session.commit()
        began = time.perf_counter()
        for batch in batches:
            store.apply(batch)
        seconds = time.perf_counter() - began
        stats = store.stats()
    db_bytes = sum(f.stat().st_size for f in directory.glob("qa.sqlite3*"))
    return {"full_text": full_text, "seconds": seconds, "documents": stats.documents, "chunks": stats.chunks,
            "db_mib": db_bytes / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    ap.add_argument("--paragraphs", type=int, default=4000)
    ap.add_argument("--batches", type=int, default=4, help="store writes (one transaction each)")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each kind, alternating")
    args = ap.parse_args()

    paragraphs, _ = load_corpus(args.datasets, args.paragraphs)
    docs = writes(paragraphs)
    size = -(-len(docs) // args.batches)
    batches = [docs[i:i + size] for i in range(0, len(docs), size)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="store-writes-") as tmp:
        for repeat in range(args.repeats):
            for full_text in (False, True):
                name = f"{'with' if full_text else 'without'}-{repeat}"
                rows.append(run(Path(tmp) / name, batches, full_text=full_text))
    without = [r["seconds"] for r in rows if not r["full_text"]]
    base = sum(without) / len(without)
    print(f"\nstore writes: {rows[0]['documents']} documents, {rows[0]['chunks']} chunks in {len(batches)} "
          f"transactions, random {DIM}-d vectors (SQLite)")
    print(table(["full-text index", "seconds", "docs/s", "time vs mean without", "database MiB"],
                [["yes (product)" if r["full_text"] else "no (triggers dropped)", f"{r['seconds']:.2f}",
                  f"{r['documents'] / r['seconds']:.0f}", f"{r['seconds'] / base:.2f}x", f"{r['db_mib']:.1f}"]
                 for r in rows]))
    print(format_machine(machine_info()))


if __name__ == "__main__":
    main()
