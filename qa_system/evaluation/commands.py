"""`qa-system eval`: retrieval and question-answering benchmarks.

    qa-system eval subjqa --domain electronics --split test [--datasets DIR | --csv FILE] [--out DIR]
    qa-system eval squad FILE [--out DIR]

Each run prints a table, and writes ``<out>/<name>.json`` and ``<out>/<name>.png`` (recall@k,
ours beside the published anchors). Models load only when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError

DEFAULT_DATASETS = "../shared/datasets"
DEFAULT_OUT = Path("eval-results")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"folder for the JSON results and the PNG chart (default: {DEFAULT_OUT})")
    p.add_argument("--limit", type=int, help="evaluate only the first N questions (quick runs; the corpus "
                                             "stays complete)")
    p.add_argument("--reader-model", help="QA model folder or name (default: the packaged reader)")
    p.add_argument("--embedding-model", help="sentence-transformers model (default: the product's embedder)")
    p.add_argument("--top-k-retriever", type=int, default=10, help="passages read per question (pipeline)")
    p.add_argument("--top-k-reader", type=int, default=4, help="answers the reader returns (pipeline)")
    p.add_argument("--lexical-weight", type=float, metavar="W",
                   help="hybrid retrieval weight, 0 to 1; 0: dense alone (default: the setting, "
                        "QA_SYSTEM_LEXICAL_WEIGHT)")
    p.add_argument("--db-url", help="an empty database to index the corpus into, e.g. PostgreSQL to measure "
                                    "its full-text ranking (default: a temporary SQLite file); refused if it "
                                    "holds a qa_system schema; the schema made there is dropped afterwards")
    p.add_argument("--reranker", metavar="DIR",
                   help="re-rank the retrieved passages with this cross-encoder (qa-system train-reranker; "
                        "default: the setting, QA_SYSTEM_RERANKER, off unless set)")
    p.add_argument("--rerank-top-n", type=int, metavar="N",
                   help="passages the re-ranker re-scores (default: the setting, QA_SYSTEM_RERANK_TOP_N, 10)")
    p.add_argument("--retrieval-only", action="store_true", help="skip the reader and the pipeline")
    p.add_argument("--always-answer", action="store_true",
                   help="score the best span even where the reader says 'no answer' (for data without "
                        "unanswerable questions, such as SQuAD v1.1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on standard error")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    targets = p.add_subparsers(dest="eval_target", required=True, metavar="{subjqa,squad}")
    s = targets.add_parser("subjqa", help="the SubjQA benchmark of NLP with Transformers, chapter 7")
    s.add_argument("--domain", default="electronics", help="SubjQA domain (a folder of --datasets/subjqa)")
    s.add_argument("--split", default="test", help="SubjQA split: train, dev or test")
    source = s.add_mutually_exclusive_group()
    source.add_argument("--datasets", default=DEFAULT_DATASETS,
                        help=f"folder of the public datasets (default: {DEFAULT_DATASETS})")
    source.add_argument("--csv", type=Path, help="a SubjQA-format CSV file instead of --datasets/--domain/--split")
    _common(s)
    q = targets.add_parser("squad", help="open retrieval over every context of a SQuAD-format file")
    q.add_argument("file", type=Path, help="SQuAD v1.1/v2.0 JSON file")
    q.add_argument("--read", choices=["all", "heldout", "dev"], default="all",
                   help="questions the reader and pipeline answer: all, or only those of SQuAD dev articles "
                        "the default reader was not trained on: its recipe's held-out test split (heldout), "
                        "or the split it keeps for fitting its threshold, for tuning settings (dev)")
    q.add_argument("--read-limit", type=int, help="read at most N of those questions (retrieval still "
                                                  "covers every question)")
    _common(q)


def _check_args(args: argparse.Namespace) -> None:
    for name in ("limit", "top_k_retriever", "top_k_reader", "read_limit", "rerank_top_n"):
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise InputError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if not args.retrieval_only and args.reader_model is None:
        from ..config import PACKAGED_READER_DIR, load_settings

        default = load_settings().resolved_reader_model
        if Path(default) == PACKAGED_READER_DIR and not (PACKAGED_READER_DIR / "config.json").is_file():
            raise ConfigError(f"no packaged reader at {PACKAGED_READER_DIR} yet: pass --reader-model MODEL "
                              "or --retrieval-only")


def eval_command(args: argparse.Namespace) -> int:
    from .report import render_text, write_chart, write_json

    _check_args(args)
    options: dict[str, Any] = dict(
        reader_model=args.reader_model, retrieval_only=args.retrieval_only,
        top_k_retriever=args.top_k_retriever, top_k_reader=args.top_k_reader,
        embedding_model=args.embedding_model, progress=not args.no_progress, always_answer=args.always_answer,
        lexical_weight=args.lexical_weight, db_url=args.db_url, reranker=args.reranker,
        rerank_top_n=args.rerank_top_n,
    )
    if args.eval_target == "subjqa":
        from .subjqa import evaluate_subjqa, load_subjqa_benchmark, subjqa_csv_path

        if args.csv is not None:
            path, title = args.csv, f"SubjQA {args.csv.stem}"
        else:
            path = subjqa_csv_path(args.datasets, args.domain, args.split)
            title = f"SubjQA {args.domain} {args.split}"
        result = evaluate_subjqa(load_subjqa_benchmark(path, limit=args.limit), title=title, **options)
    else:
        from .open_squad import evaluate_open_squad, load_open_squad

        if not args.file.is_file():
            raise InputError(f"no such file: {args.file}")
        bench = load_open_squad(args.file, limit=args.limit, read=args.read, read_limit=args.read_limit)
        title = f"open SQuAD {args.file.stem}" + ("" if args.read == "all" else f" {args.read}")
        result = evaluate_open_squad(bench, title=title, **options)
    print(render_text(result))
    stem = result.slug + (f"-limit{args.limit}" if args.limit else "")
    stem += f"-read{args.read_limit}" if getattr(args, "read_limit", None) else ""
    stem += "-always-answer" if args.always_answer else ""
    stem += f"-rerank{args.rerank_top_n or ''}" if args.reranker else ""
    print(f"\nresults: {write_json(result, args.out / f'{stem}.json')}")
    chart = write_chart(result, args.out / f"{stem}.png")
    print(f"chart: {chart}" if chart else "chart: skipped (matplotlib is not installed: pip install 'qa_system[eval]')")
    return 0
