"""Reading the best passages first: choose ``reader_first_passages`` and ``reader_settled_lead`` on dev.

Store: the query-latency benchmark's (11,000 paragraphs of ../shared/datasets, built on first
use). Questions: SQuAD v1.1 dev questions whose paragraph is in the store, split by article into
two halves: *choose* (even-numbered articles, in file order) and *check* (odd). Each question is
retrieved (top-k, the default hybrid retrieval) and every window of its k passages read once by
the default reader; each rule (first m passages, settled lead t; ``qa_system.reader.stages``) is
then replayed on those logits: the question's answer is decoded from the first m passages'
windows if they settle it, else from all windows, exactly as ``ExtractiveReader`` does.

The rule for choosing, fixed before any result was seen: on the *choose* half, among m in
--first and t in --leads, the rule that reads the fewest windows with top-1 F1 (the best answer,
no-answer ignored) at most 0.3 points (0.003) below reading every passage; none: early exit
stays off. The *check* half reports the chosen rule on questions it was not chosen on.

    .venv/bin/python benchmarks/early_exit.py                 # 300 questions a half
    .venv/bin/python benchmarks/early_exit.py --quick         # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import DEFAULT_DATASETS, REPO, load_corpus, read_squad_file, reader_model, sample, table  # noqa: E402
from _machine import format_machine, machine_info  # noqa: E402
from query_latency import build_store  # noqa: E402

F1_BUDGET = 0.003  # the most top-1 F1 (0..1) a rule may lose on the choose half


def read_all(qa, reader, questions, top_k: int) -> list[dict]:
    """Each question with its passages and every window's logits (all passages read)."""
    state = reader._loaded()
    records = []
    for i, q in enumerate(questions):
        passages = qa.retrieve(q.question, top_k=top_k)
        windows = reader._tokenize(state, [q.question], [passages])
        logits = reader._infer(state, windows)
        records.append({"question": q, "passages": passages, "windows": windows, "logits": logits})
        if (i + 1) % 50 == 0:
            print(f"  read {i + 1}/{len(questions)} questions", flush=True)
    return records


def replay(records: list[dict], params, first: int, settled_lead: float) -> dict:
    """Top-1 F1, windows read and answers changed under one rule (first 0: read everything)."""
    from qa_system.evaluation.squad_metrics import f1_score
    from qa_system.reader.answers import decode_question
    from qa_system.reader.stages import settled, split_first_passages

    def decode(record, keep):
        pairs = [(w, lg) for w, lg in zip(record["windows"], record["logits"], strict=True) if w.passage_index in keep]
        return decode_question(record["passages"], [w for w, _ in pairs], [lg for _, lg in pairs], top_n=1,
                               max_answer_tokens=params.max_answer_tokens,
                               no_answer_threshold=params.no_answer_threshold,
                               long_passage_threshold=params.long_passage_no_answer_threshold,
                               retrieval_weight=params.retrieval_weight), len(pairs)

    f1 = read = stopped = 0.0
    texts = []
    for record in records:
        everything = set(range(len(record["passages"])))
        result, n = decode(record, everything)
        if first > 0:
            head, rest = split_first_passages(record["passages"], first)
            early, n_early = decode(record, set(head))
            if rest and settled(early, max(record["passages"][i].score for i in rest), params.retrieval_weight,
                                settled_lead):
                result, n = early, n_early
                stopped += 1
        text = result.answers[0].text if result.answers else ""
        texts.append(text)
        f1 += max(f1_score(text, gold) for gold in record["question"].answers)
        read += n
    return {"first": first, "lead": settled_lead, "f1": f1 / len(records), "windows": read / len(records),
            "stopped": stopped / len(records), "texts": texts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    ap.add_argument("--store", type=Path, default=REPO / "stores" / "bench-latency")
    ap.add_argument("--paragraphs", type=int, default=11_000)
    ap.add_argument("--questions", type=int, default=300, help="questions in each half")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--first", type=int, nargs="+", default=[1, 2, 3, 5])
    ap.add_argument("--leads", type=float, nargs="+", default=[2, 4, 6, 8, 10, 12, 14, 16])
    ap.add_argument("--quick", action="store_true", help="smoke test: 300 paragraphs, 10 questions a half")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.paragraphs, args.questions = 300, 10

    from qa_system.reader import ExtractiveReader

    paragraphs, questions = load_corpus(args.datasets, args.paragraphs)
    dev_titles = list(dict.fromkeys(p.title for p in read_squad_file(args.datasets / "squad" / "dev-v1.1.json")[0]))
    half = {t: i % 2 for i, t in enumerate(dev_titles)}
    dev_contexts = {p.context for p in read_squad_file(args.datasets / "squad" / "dev-v1.1.json")[0]}
    squad = [q for q in questions if q.context in dev_contexts]
    choose = sample([q for q in squad if half[q.title] == 0], args.questions)
    check = sample([q for q in squad if half[q.title] == 1], args.questions)
    store_dir = args.store / f"paragraphs-{len(paragraphs)}"
    qa = build_store(store_dir, paragraphs)
    model, trained = reader_model(None, args.store)
    reader = ExtractiveReader(model, settings=qa.settings).load()
    params = reader.params
    began = time.perf_counter()
    records = {"choose": read_all(qa, reader, choose, args.top_k), "check": read_all(qa, reader, check, args.top_k)}
    print(f"read {len(choose) + len(check)} questions in {time.perf_counter() - began:.0f}s "
          f"(precision {reader.precision})")

    baseline = replay(records["choose"], params, 0, 0.0)
    rules = [replay(records["choose"], params, m, t) for m in args.first for t in args.leads]
    allowed = [r for r in rules if r["f1"] >= baseline["f1"] - F1_BUDGET]
    chosen = min(allowed, key=lambda r: (r["windows"], -r["f1"])) if allowed else None

    def row(r, base):
        changed = sum(a != b for a, b in zip(r["texts"], base["texts"], strict=True)) / len(base["texts"])
        return [f"{r['first']}" if r["first"] else "all", f"{r['lead']:g}" if r["first"] else "-",
                f"{r['f1']:.4f}", f"{100 * (r['f1'] - base['f1']):+.2f}", f"{r['windows']:.2f}",
                f"{base['windows'] / r['windows']:.2f}x", f"{r['stopped']:.2f}", f"{changed:.3f}"]

    header = ["first m", "lead t", "top-1 F1", "F1 change (points)", "windows/question", "less work",
              "settled early", "answers changed"]
    print(f"\nchoose half: {len(choose)} SQuAD v1.1 dev questions (even articles), top-{args.top_k} retrieval "
          f"from {len(paragraphs)} paragraphs; reader {model} ({reader.precision}), retrieval weight "
          f"{params.retrieval_weight:g}")
    print(table(header, [row(baseline, baseline)] + [row(r, baseline) for r in rules]))
    result = {"chosen": None, "budget_f1": F1_BUDGET}
    if chosen is None:
        print(f"\nno rule stays within {100 * F1_BUDGET:.1f} F1 points of reading everything: early exit stays off")
    else:
        check_base = replay(records["check"], params, 0, 0.0)
        check_rule = replay(records["check"], params, chosen["first"], chosen["lead"])
        print(f"\nchosen on the choose half: first {chosen['first']} passages, settled lead {chosen['lead']:g}")
        print(f"check half: {len(check)} questions (odd articles), not used to choose")
        print(table(header, [row(check_base, check_base), row(check_rule, check_base)]))
        result.update(chosen={"first": chosen["first"], "lead": chosen["lead"]},
                      check={"f1_all": check_base["f1"], "f1_rule": check_rule["f1"],
                             "windows_all": check_base["windows"], "windows_rule": check_rule["windows"]})
    info = machine_info()
    print(format_machine(info))
    if args.json:
        strip = lambda r: {k: v for k, v in r.items() if k != "texts"}  # noqa: E731
        args.json.write_text(json.dumps({**result, "choose": [strip(baseline)] + [strip(r) for r in rules],
                                         "machine": info}, indent=2))


if __name__ == "__main__":
    main()
