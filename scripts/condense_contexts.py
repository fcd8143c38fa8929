"""Read long contexts condensed to the sentences most like the question (model card, "Condensed
long contexts"; tried, not adopted).

    python scripts/condense_contexts.py dev  [MODEL_DIR]   # the recipe's threshold dev set
    python scripts/condense_contexts.py test [MODEL_DIR]   # SubjQA electronics test, at the model's threshold

A context that does not fit one window with its question is split into sentences; each sentence
is scored by the cosine of its embedding (the packaged all-MiniLM-L6-v2) with the question's, the
best are taken while they fit the window's token budget, and they are read in their original
order, as one window. Contexts that fit one window are read unchanged. Each action reads the set
twice, as it is and condensed, and prints both: on dev, the figures of ``logit_ensemble.py``
(threshold fitted on dev, dev F1, answer-all HasAns F1 on the review questions in halves A and B);
on test, official EM / F1 with the HasAns and NoAns breakdown, at the model folder's thresholds
(the model card's figures were measured while the shipped folder had one, 2.629).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import time
from collections.abc import Sequence

import numpy as np
import torch
from logit_ensemble import report
from transformers import AutoTokenizer

from qa_system.embedding import SentenceTransformerEmbedder
from qa_system.evaluation.reader_eval import run_reader, score_run
from qa_system.qa_datasets import QAExample
from qa_system.reader import ExtractiveReader
from qa_system.training.recipe import load_recipe_data

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """``text`` cut after ., ! or ? followed by white space, and at line breaks; blank pieces dropped."""
    pieces, pos = [], 0
    for m in _SENTENCE_BREAK.finditer(text):
        pieces.append(text[pos : m.start()])
        pos = m.end()
    pieces.append(text[pos:])
    return [p for p in pieces if p.strip()]


def condense(examples: Sequence[QAExample], tokenizer, embedder, max_length: int) -> tuple[list[QAExample], int]:
    """The examples with every context longer than one window condensed; and how many were."""
    def tokens(s: str) -> int:
        return len(tokenizer(s, add_special_tokens=False)["input_ids"])

    out, condensed = [], 0
    for e in examples:
        budget = max_length - tokens(e.question) - 3  # [CLS] question [SEP] context [SEP]
        if tokens(e.context) <= budget:
            out.append(e)
            continue
        condensed += 1
        parts = sentences(e.context)
        vectors = embedder.encode([e.question, *parts])
        keep, used = [], 0
        for j in np.argsort(-(vectors[1:] @ vectors[0])):
            n = tokens(parts[j]) + 1  # the joining space may add a token
            if used + n <= budget:
                keep.append(int(j))
                used += n
        out.append(dataclasses.replace(e, context=" ".join(parts[j] for j in sorted(keep))))
    return out, condensed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("split", choices=("dev", "test"))
    parser.add_argument("model", nargs="?", default="qa_system/models/reader")
    parser.add_argument("--datasets", default="../shared/datasets")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_recipe_data("reviews-heldout", args.datasets)
    reader = ExtractiveReader(args.model, precision="fp32").load()
    examples = data.threshold_dev if args.split == "dev" else data.subjqa_test
    began = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    embedder = SentenceTransformerEmbedder(precision="fp32").load()
    condensed, n = condense(examples, tokenizer, embedder, reader.params.max_seq_length)
    print(f"{n} of {len(examples)} contexts condensed in {time.perf_counter() - began:.0f} s", flush=True)
    for name, items in (("as is", examples), ("condensed", condensed)):
        run = run_reader(reader, items)
        if args.split == "dev":
            report(name, run, data)
        else:
            p = reader.params
            s = score_run(run, items, p.no_answer_threshold, p.long_passage_no_answer_threshold).as_percentages()
            print(f"{name:10s} F1 {s['f1']:.2f}  EM {s['exact']:.2f}  HasAns F1 {s['HasAns_f1']:.2f}  "
                  f"NoAns {s['NoAns_f1']:.2f}  ({len(items)} q)", flush=True)


if __name__ == "__main__":
    main()
