"""The feedback loop, measured: agents' feedback on SubjQA electronics train fine-tunes the reader,
scored before and after on SubjQA electronics test (questions never given as feedback).

1. A store of every SubjQA electronics review (train, dev and test; one document per review, its
   ``item_id`` as metadata), built once under --store.
2. Simulated agents ask each train question within its product (``filters={"item_id": ...}``,
   as a support agent would) and give feedback on the top answer through ``QASystem.add_feedback``,
   as the search page does: ``right`` when it is in the gold review and its text overlaps a gold
   answer (F1 >= 0.5), else ``here`` at the gold answer in the gold review; on a question with no
   answer in its review, ``wrong`` on an answer the system gave.
3. ``qa-system feedback export --format squad`` writes the training data.
4. ``qa-system train-reader --base-model <shipped reader> --train <export>`` fine-tunes (the
   trainer holds out a tenth of the feedback's documents and fits the no-answer threshold there).
5. ``qa-system eval-reader`` scores the shipped and the new reader on SubjQA electronics test.

The shipped reader was trained on most of SubjQA's electronics, grocery, restaurants and
tripadvisor train splits (model card): this measures what a second pass over a domain it knows
gives, not a new domain (the datasets here have no other SubjQA domain with train and test).

    .venv/bin/python benchmarks/feedback_loop.py                       # about 20 minutes on 2 cores
    .venv/bin/python benchmarks/feedback_loop.py --quick               # 60 questions, a few steps
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import DEFAULT_DATASETS, REPO, table  # noqa: E402
from _machine import format_machine, machine_info  # noqa: E402

SHIPPED = REPO / "qa_system" / "models" / "reader"


def build_store(store_dir: Path, subjqa: Path):  # type: ignore[no-untyped-def]
    from qa_system.config import load_settings
    from qa_system.qa_datasets import load_subjqa_csv
    from qa_system.system import QASystem
    from qa_system.types import Document

    documents: dict[str, Document] = {}
    for split in ("train", "dev", "test"):
        for e in load_subjqa_csv(subjqa / f"{split}.csv"):
            documents.setdefault(e.context, Document(source=f"subjqa-electronics/{e.group}/{len(documents)}",
                                                     text=e.context, title=e.group, metadata={"item_id": e.group}))
    settings = load_settings(store_dir=store_dir, db_url=f"sqlite:///{(store_dir / 'qa.sqlite3').resolve()}")
    qa = QASystem(settings).load()
    report = qa.ingest_documents(list(documents.values()))
    print(f"store {store_dir}: {len(documents)} reviews ({report.added} added now)", flush=True)
    return qa, documents


def give_feedback(qa, documents, questions, batch: int = 16) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """What the simulated agents said, by kind."""
    from qa_system.evaluation.squad_metrics import f1_score
    from qa_system.storage.feedback import FeedbackInput

    said = {"right": 0, "here": 0, "wrong": 0, "agreed no answer": 0}
    if qa.list_feedback(limit=1):
        raise SystemExit(f"the store under {qa.settings.store_dir} holds feedback already: remove it to start over")
    for lo in range(0, len(questions), batch):
        group = questions[lo: lo + batch]
        for e in group:
            gold_doc = documents[e.context]
            result = qa.ask(e.question, filters={"item_id": e.group})
            top = result.answers[0] if result.has_answer and result.answers else None
            if e.answers:
                if top is not None and top.document_id == gold_doc.id and max(
                        f1_score(top.text, a.text) for a in e.answers) >= 0.5:
                    qa.add_feedback(FeedbackInput(e.question, top.document_id, "right", top.start, top.end))
                    said["right"] += 1
                else:
                    a = e.answers[0]
                    qa.add_feedback(FeedbackInput(e.question, gold_doc.id, "here", a.start, a.start + len(a.text)))
                    said["here"] += 1
            elif top is not None:
                qa.add_feedback(FeedbackInput(e.question, top.document_id, "wrong", top.start, top.end))
                said["wrong"] += 1
            else:
                said["agreed no answer"] += 1
        print(f"  feedback on {min(lo + batch, len(questions))}/{len(questions)} questions", flush=True)
    return said


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "qa_system.cli", *args], check=True)


def scores(model: Path, test: Path, out: Path) -> dict:
    cli("eval-reader", str(model), str(test), "--json", str(out))
    [result] = json.loads(out.read_text())["results"].values()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    ap.add_argument("--store", type=Path, default=REPO / "stores" / "feedback-loop")
    ap.add_argument("--runs", type=Path, default=REPO / "runs" / "feedback-loop")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=3e-5, help="peak learning rate of the fine-tuning")
    ap.add_argument("--time-budget", type=float, default=20.0, metavar="MINUTES", help="training time budget")
    ap.add_argument("--questions", type=int, help="use only the first N train questions")
    ap.add_argument("--quick", action="store_true", help="smoke test: 60 questions, 10 training steps")
    args = ap.parse_args()

    from qa_system.feedback_export import feedback_to_squad
    from qa_system.qa_datasets import load_subjqa_csv

    subjqa = args.datasets / "subjqa" / "electronics"
    suffix = "-quick" if args.quick else ""
    store_dir, runs = Path(f"{args.store}{suffix}"), Path(f"{args.runs}{suffix}")
    store_dir.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    qa, documents = build_store(store_dir, subjqa)
    train = load_subjqa_csv(subjqa / "train.csv")
    if args.quick or args.questions:
        train = train[: 60 if args.quick else args.questions]
    said = give_feedback(qa, documents, train)
    dataset, counts = feedback_to_squad(qa.all_feedback())
    qa.close()
    export = runs / "feedback.json"
    export.write_text(json.dumps(dataset))
    print(f"export: {counts.summary()}", flush=True)

    model_run = runs / "train"
    train_args = ["train-reader", "--base-model", str(SHIPPED), "--train", str(export), "--output", str(model_run),
                  "--max-length", "384", "--stride", "128", "--lr", str(args.lr), "--epochs", str(args.epochs),
                  "--time-budget", str(args.time_budget)]
    if args.quick:
        train_args += ["--max-steps", "10"]
    cli(*train_args)
    test = subjqa / "test.csv"
    before = scores(SHIPPED, test, runs / "eval-before.json")
    after = scores(model_run / "model", test, runs / "eval-after.json")
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}"  # noqa: E731
    rows = [[name, pct(r["f1"]), pct(r["exact_match"]), pct(r["has_answer_f1"]), pct(r["no_answer_f1"]),
             f"{r['threshold']:.2f}"] for name, r in (("shipped reader", before), ("after the feedback loop", after))]
    print(f"\nfeedback loop: {len(train)} SubjQA electronics train questions as agents' feedback ({said}); "
          f"{counts.answered} answered and {counts.unanswerable} unanswerable training examples; "
          f"scored on SubjQA electronics test ({before['total']} question-review pairs, gold review); "
          f"{time.perf_counter() - began:.0f}s in all")
    print(table(["reader", "F1", "EM", "HasAns F1", "NoAns F1", "no-answer threshold"], rows))
    print(format_machine(machine_info()))


if __name__ == "__main__":
    main()
