"""Chunk one long document (about 20 M characters of the sample corpus repeated) with the default
embedder's tokenizer and print the time, the chunk count and the peak RSS of this process.

One version per process; to compare with an older commit, run it with that commit's package first
on the path:
    git worktree add /tmp/old REV
    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/chunk_long_document.py --label old
    .venv/bin/python benchmarks/chunk_long_document.py --label new
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

if "PYTHONPATH" not in os.environ:  # run from a checkout: its package first
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import AutoTokenizer

from qa_system.chunking import make_chunker
from qa_system.embedding import resolve_embedding_model

SAMPLE = Path(__file__).resolve().parents[1] / "data/sample_corpus/billing/plans-and-pricing.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chars", type=int, default=20_000_000, help="length of the document")
    parser.add_argument("--label", default="this tree", help="name of the version in the output line")
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(resolve_embedding_model("all-MiniLM-L6-v2"))
    paragraph = SAMPLE.read_text(encoding="utf-8") + "\n\n"
    text = paragraph * (args.chars // len(paragraph))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    n_chunks = sum(1 for _ in make_chunker(tokenizer, 192, 32)("doc", text))
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.label}: {len(text) / 1e6:.1f} M chars -> {n_chunks} chunks in {seconds:.1f} s; "
          f"peak RSS {peak:.0f} MB ({before:.0f} MB before chunking)")


if __name__ == "__main__":
    main()
