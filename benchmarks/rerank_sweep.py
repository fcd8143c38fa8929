"""Re-ranker configurations on a dev set, each scored as `qa-system eval --retrieval-only` scores
retrieval (the same temporary store, `rank_documents` and `score_rankings`), with the cross-encoder
run once per (question, passage): gold passage ("strict") and book recall @1/@5 of the hybrid
retrieval alone and re-ranked, for each ``--top-n`` (passages re-scored) and ``--weights`` (the
retrieval weight of the fused order ``rerank_score + w x retrieval score``).

    .venv/bin/python benchmarks/rerank_sweep.py --reranker RUN/model squad squad-train-heldout5.json
    .venv/bin/python benchmarks/rerank_sweep.py --reranker RUN/model subjqa --split dev

Dev sets only: a configuration is chosen here, then measured on test with `qa-system eval`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class SweepRetriever:
    """The store's retriever, its hits cached per question, re-ranked by cached cross-encoder
    scores in the configuration ``top_n`` / ``weight`` (``top_n`` 0: not re-ranked)."""

    def __init__(self, inner, scorer) -> None:  # noqa: ANN001
        self.inner, self.scorer = inner, scorer
        self.top_n, self.weight = 0, 0.0
        self.hits: dict = {}
        self.scores: dict = {}
        self.scored_s = 0.0

    def retrieve(self, query_vectors, k, *, query_texts=None, filters=None):  # noqa: ANN001, ANN201
        from qa_system.retrieval.rerank import rerank_passages

        key = (tuple(sorted((filters or {}).items())), k)
        missing = [i for i, q in enumerate(query_texts) if (q, key) not in self.hits]
        if missing:
            found = self.inner.retrieve(query_vectors[missing], k, query_texts=[query_texts[i] for i in missing],
                                        filters=filters)
            for i, passages in zip(missing, found, strict=True):
                self.hits[(query_texts[i], key)] = passages
        out = []
        for q in query_texts:
            passages = self.hits[(q, key)]
            if not self.top_n:
                out.append(passages)
                continue
            head = passages[: self.top_n]
            todo = [p for p in head if (q, p.chunk_id) not in self.scores]
            if todo:
                began = time.perf_counter()
                for p, s in zip(todo, self.scorer.score([q] * len(todo), [p.text for p in todo]), strict=True):
                    self.scores[(q, p.chunk_id)] = float(s)
                self.scored_s += time.perf_counter() - began
            out.append(rerank_passages(passages, [self.scores[(q, p.chunk_id)] for p in head], k, self.weight))
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("benchmark", choices=["squad", "subjqa"])
    ap.add_argument("file", nargs="?", type=Path, help="squad: the SQuAD-format file")
    ap.add_argument("--datasets", default="../shared/datasets")
    ap.add_argument("--domain", default="electronics")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--reranker", required=True)
    ap.add_argument("--top-n", type=int, nargs="+", default=[3, 5, 10])
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 2.0, 5.0, 10.0, 20.0])
    ap.add_argument("--limit", type=int)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from qa_system.evaluation.open_squad import index_corpus, load_open_squad, rank_documents, score_rankings
    from qa_system.evaluation.open_squad import temporary_system as system
    from qa_system.evaluation.retrieval_metrics import DEFAULT_KS
    from qa_system.evaluation.subjqa import load_subjqa_benchmark, subjqa_csv_path
    from qa_system.retrieval import StoreRetriever
    from qa_system.retrieval.rerank import CrossEncoder

    if args.benchmark == "squad":
        data = load_open_squad(args.file, limit=args.limit)
    else:
        data = load_subjqa_benchmark(subjqa_csv_path(args.datasets, args.domain, args.split), limit=args.limit)
    scorer = CrossEncoder(args.reranker).load()
    made: list[SweepRetriever] = []

    def make(store, weight):  # noqa: ANN001, ANN202
        if not made:
            made.append(SweepRetriever(StoreRetriever(store, lexical_weight=weight), scorer))
        return made[0]

    questions = list(data.questions)
    rows = []
    with system(retriever=make) as qa:
        corpus = index_corpus(qa, data.corpus, source_prefix=data.source_prefix)
        configs = [(0, 0.0)] + [(n, w) for n in args.top_n for w in args.weights]
        for n, w in configs:
            qa.retriever()  # the sweep retriever, built on the first call
            made[0].top_n, made[0].weight = n, w
            began = time.perf_counter()
            ranked = rank_documents(qa, questions, corpus.key_of_document, max(DEFAULT_KS))
            result = score_rankings(questions, ranked, corpus.text_of_key, DEFAULT_KS)
            row = {"top_n": n, "weight": w, "questions": len(questions),
                   "seconds": round(time.perf_counter() - began, 1)}
            for name in ("strict", "book"):
                s = result.scores[name]
                row[f"{name}@1"], row[f"{name}@5"] = round(s.recall[1], 4), round(s.recall[5], 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"cross-encoder: {len(made[0].scores)} pairs scored in {made[0].scored_s:.0f}s "
          f"({len(made[0].scores) / max(made[0].scored_s, 1e-9):.0f} pairs/s)")
    base = rows[0]
    print("\n| re-ranked | retrieval weight | gold @1 | gold @5 | book @1 | change gold @1 / @5 (points) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['top_n'] or 'off'} | {r['weight']:g} | {r['strict@1']:.3f} | {r['strict@5']:.3f} | "
              f"{r['book@1']:.3f} | {100 * (r['strict@1'] - base['strict@1']):+.1f} / "
              f"{100 * (r['strict@5'] - base['strict@5']):+.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "reranker": args.reranker, "dataset": data.source}, indent=1))


if __name__ == "__main__":
    main()
