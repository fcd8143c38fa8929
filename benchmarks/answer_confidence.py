"""Fit and check the answer confidence (qa_system.confidence) on whole-pipeline questions.

    # 1. run the dev split's questions through the pipeline (rows cached to --rows)
    python benchmarks/answer_confidence.py collect --split dev --rows runs/confidence/dev.json
    # 2. fit on dev and store the model in the reader folder's qa_system_reader.json
    python benchmarks/answer_confidence.py fit --rows runs/confidence/dev.json --reader qa_system/models/reader
    # 3. the held-out split, reported against the reader's margin rule
    python benchmarks/answer_confidence.py collect --split test --rows runs/confidence/test.json
    python benchmarks/answer_confidence.py report --rows runs/confidence/test.json

Splits, questions and stores: qa_system/evaluation/confidence_fit.py. The logistic model is fitted
on every dev row; the threshold is the lowest that answers at most 5% of the dev off-topic and
nonsense questions (``fit_model``: the rule first written down, the best SQuAD 2.0 F1 over all dev
rows, gave a threshold that failed the sample-corpus check; docs/reader.md). The test split is
only reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa_system.evaluation.confidence_fit import (  # noqa: E402
    PipelineQuestion,
    PipelineRow,
    fit_model,
    report,
    run_split,
    split_data,
)
from qa_system.evaluation.open_squad import temporary_system  # noqa: E402
from qa_system.reader.model_config import load_confidence_model, save_confidence_model  # noqa: E402


def collect(args: argparse.Namespace) -> None:
    entries, questions = split_data(args.datasets, args.split, questions=args.questions,
                                    off_topic=args.off_topic, background=args.background)
    began = time.perf_counter()
    with temporary_system(answer_confidence=False) as qa:
        rows = run_split(qa, entries, questions)
        embedder = qa.settings.embedding_model
    out = Path(args.rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"split": args.split, "documents": len(entries), "embedding_model": embedder,
               "seconds": time.perf_counter() - began,
               "rows": [{"question": dataclasses.asdict(r.question), "features": r.features, "f1": r.f1,
                         "margin_rule_answers": r.margin_rule_answers} for r in rows]}
    out.write_text(json.dumps(payload), encoding="utf-8")
    print(f"{len(rows)} questions over {len(entries)} documents in {payload['seconds']:.0f} s -> {out}")


def load_rows(path: str) -> tuple[list[PipelineRow], str]:
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    rows = [PipelineRow(PipelineQuestion(**{**r["question"], "answers": tuple(r["question"]["answers"])}),
                        tuple(r["features"]) if r["features"] is not None else None, r["f1"],
                        r["margin_rule_answers"]) for r in payload["rows"]]
    return rows, payload["embedding_model"]


def fit(args: argparse.Namespace) -> None:
    rows, embedder = load_rows(args.rows)
    model, point = fit_model(rows, embedder)
    print(json.dumps(model.to_dict(), indent=2))
    print(f"dev: threshold {point.threshold:.3f}, F1 {100 * point.f1:.1f}")
    show(report(model, rows), "dev (fitted on)")
    if args.reader:
        print("stored in", save_confidence_model(args.reader, model))


def show(result, title: str) -> None:
    print(f"\n## {title}: {result.rows} questions, ECE {result.ece:.3f}\n")
    print("| questions | n | answered (confidence) | answered (margin rule) | F1 (confidence) | F1 (margin rule) |")
    print("|---|---|---|---|---|---|")
    for kind, v in result.by_kind.items():
        print(f"| {kind} | {int(v['n'])} | {100 * v['confidence_answers']:.1f}% | {100 * v['margin_answers']:.1f}% | "
              f"{100 * v['confidence_f1']:.1f} | {100 * v['margin_f1']:.1f} |")
    c, m = result.confidence, result.margin_rule
    print(f"| all | {result.rows} | {100 * (1 - c.abstained):.1f}% | {100 * (1 - m.abstained):.1f}% | "
          f"{100 * c.f1:.1f} | {100 * m.f1:.1f} |")
    print("\ntrade-off (share of all questions):\n")
    print("| threshold | answered right | answered wrong | abstained | F1 |")
    print("|---|---|---|---|---|")
    for p in result.curve:
        print(f"| {p.threshold:.2f} | {100 * p.answered_right:.1f}% | {100 * p.answered_wrong:.1f}% | "
              f"{100 * p.abstained:.1f}% | {100 * p.f1:.1f} |")
    print(f"| margin rule | {100 * m.answered_right:.1f}% | {100 * m.answered_wrong:.1f}% | {100 * m.abstained:.1f}% | "
          f"{100 * m.f1:.1f} |")


def report_command(args: argparse.Namespace) -> None:
    rows, embedder = load_rows(args.rows)
    model = load_confidence_model(args.reader) if args.reader else None
    if model is None:
        raise SystemExit(f"no confidence model in {args.reader}")
    if model.embedding_model != embedder:
        raise SystemExit(f"the model was fitted with {model.embedding_model}, the rows use {embedder}")
    show(report(model, rows), f"held out ({args.rows})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--split", choices=("dev", "test"), required=True)
    c.add_argument("--rows", required=True)
    c.add_argument("--datasets", default=str(ROOT.parent / "shared" / "datasets"))
    c.add_argument("--questions", type=int, default=600, help="SQuAD v2.0 questions of the split (at most)")
    c.add_argument("--off-topic", type=int, default=300)
    c.add_argument("--background", type=int, default=1500, help="SQuAD train paragraphs added to the store")
    f = sub.add_parser("fit")
    f.add_argument("--rows", required=True)
    f.add_argument("--reader", help="reader folder to store the model in")
    r = sub.add_parser("report")
    r.add_argument("--rows", required=True)
    r.add_argument("--reader", default=str(ROOT / "qa_system" / "models" / "reader"))
    args = parser.parse_args()
    {"collect": collect, "fit": fit, "report": report_command}[args.command](args)


if __name__ == "__main__":
    main()
