"""Recall against speed of approximate search: one store built by ``benchmarks/scale.py``,
searched at several ``nprobe`` (IVF lists scanned per segment, the ``QA_SYSTEM_SEARCH_NPROBE``
knob), one core. Recall@10 is against the exact top-10 that scale.py computed (ties at the
10th count), p50/p95 over its 200 queries, dense k = 10; the last row is every list scanned.

    .venv/bin/python benchmarks/scale_nprobe.py --store stores/scale/main-1000000 --passages 1000000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import format_machine, machine_info  # noqa: E402
from _scale_data import Corpus, recall_at  # noqa: E402
from scale import MODEL, _load_queries, _passage_number  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="a store folder built by scale.py")
    ap.add_argument("--passages", type=int, required=True, help="its size (picks the truth file)")
    ap.add_argument("--truth", type=Path, help="default: stores/scale/truth-<N>-seed0-data1-q200.npz")
    ap.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    import faiss

    from qa_system.storage import Store

    faiss.omp_set_num_threads(1)
    truth_path = args.truth or Path("stores/scale") / f"truth-{args.passages}-seed0-data1-q200.npz"
    queries = _load_queries(truth_path)
    with np.load(truth_path) as data:
        from _scale_data import Neighbours

        exact = Neighbours(data["all_ids"], data["all_scores"])
    corpus = Corpus(args.passages, seed=0)
    rows = []
    for nprobe in [*args.nprobe, 1 << 20]:
        store = Store.open(args.store, embedding_model=MODEL, dimension=384, nprobe=nprobe, auto_compact=False)
        stats = store.stats()
        for row in range(5):
            store.search(queries.vectors[row:row + 1], args.k)
        times, found = [], []
        for row in range(len(queries.passages)):
            t0 = time.perf_counter()
            hits = store.search(queries.vectors[row:row + 1], args.k)[0]
            times.append(time.perf_counter() - t0)
            found.append([_passage_number(corpus, p.source, p.start) for p in hits])
        store.close()
        label = "all lists" if nprobe == 1 << 20 else str(nprobe)
        rows.append((label, 1000 * np.percentile(times, 50), 1000 * np.percentile(times, 95),
                     recall_at(found, exact, args.k)))
    print(f"{args.store}: {stats.chunks:,} passages in {stats.segments} segments, dense k={args.k}, one thread")
    print(f"{'nprobe':>10}  {'p50 ms':>8}  {'p95 ms':>8}  {'recall@10':>9}")
    for label, p50, p95, recall in rows:
        print(f"{label:>10}  {p50:8.2f}  {p95:8.2f}  {recall:9.4f}")
    print(format_machine(machine_info()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
