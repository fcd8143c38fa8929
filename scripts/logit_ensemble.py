"""Score logit ensembles of readers on the default recipe's threshold dev set (model card,
"Logit ensembles of the two lineages").

    python scripts/logit_ensemble.py cache NAME=MODEL_DIR...   # run each reader once, keep its logits
    python scripts/logit_ensemble.py mix NAME+NAME...          # score each ensemble from the cache

``cache`` reads every dev question on its gold context with each reader (fp32, 384-token windows,
stride 128) and stores every window's start and end logits, keyed by the window's tokens, in
``CACHE_DIR/NAME.pkl``; it prints the reader's own scores. ``mix`` averages the cached logits of
the named readers (all must share one tokenizer), decodes them with the product's reader, fits
the no-answer threshold on dev and prints: the threshold, dev F1 at it, and answer-all HasAns F1
on the dev review questions, in all and in two halves split by a hash of the product or article.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer

from qa_system.errors import ConfigError
from qa_system.evaluation.reader_eval import ReaderRun, fit_threshold, gold_answers, run_reader
from qa_system.evaluation.squad_metrics import f1_score, max_over_gold
from qa_system.reader import ExtractiveReader
from qa_system.reader.inference import load_pretrained
from qa_system.reader.model_config import ReaderModelConfig
from qa_system.training.recipe import REVIEWS_DEV_PART, ReaderData, _bucket, load_recipe_data

WINDOWS = ReaderModelConfig(no_answer_threshold=0.0, max_seq_length=384, doc_stride=128, max_answer_tokens=30)
Logits = dict[bytes, tuple[np.ndarray, np.ndarray]]


def _window_keys(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[bytes]:
    return [ids[: int(mask.sum())].numpy().tobytes() for ids, mask in zip(input_ids, attention_mask, strict=True)]


class _Recorder(torch.nn.Module):
    """The model, keeping every window's (unpadded) logits as it reads."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.logits: Logits = {}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> Any:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **kw)
        for row, key in enumerate(_window_keys(input_ids, attention_mask)):
            n = int(attention_mask[row].sum())
            self.logits[key] = (out.start_logits[row, :n].float().numpy().copy(),
                                out.end_logits[row, :n].float().numpy().copy())
        return out


class _Mixer(torch.nn.Module):
    """Stands in for a model: the mean of cached logits of the same windows."""

    def __init__(self, members: list[Logits]) -> None:
        super().__init__()
        self.members = members
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # a parameter, so that device/dtype checks work

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> Any:
        starts = torch.full(input_ids.shape, -1e4)
        ends = torch.full(input_ids.shape, -1e4)
        for row, key in enumerate(_window_keys(input_ids, attention_mask)):
            try:
                pairs = [m[key] for m in self.members]
            except KeyError:
                sys.exit("a window is missing from a cache: were all readers cached on this dev set and tokenizer?")
            n = len(pairs[0][0])
            starts[row, :n] = torch.from_numpy(np.mean([p[0] for p in pairs], axis=0))
            ends[row, :n] = torch.from_numpy(np.mean([p[1] for p in pairs], axis=0))
        return types.SimpleNamespace(start_logits=starts, end_logits=ends)


def report(name: str, run: ReaderRun, data: ReaderData) -> None:
    dev = data.threshold_dev
    fit = fit_threshold(run, dev)
    gold = gold_answers(dev)
    reviews = data.dev_parts[REVIEWS_DEV_PART]
    answerable = [k for k, e in enumerate(dev) if e.id in reviews and e.answers]
    f1 = {k: max_over_gold(f1_score, run.best_text[k], gold[dev[k].id]) for k in answerable}

    def mean(half: int | None) -> float:
        xs = [f1[k] for k in answerable if half is None or _bucket(dev[k].group) % 2 == half]
        return 100 * sum(xs) / max(1, len(xs))

    print(f"{name:28s} threshold {fit.threshold:6.3f}  dev F1 {100 * fit.f1:6.2f}  review answer-all HasAns "
          f"{mean(None):6.2f} (A {mean(0):6.2f} / B {mean(1):6.2f}, {len(answerable)} q)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("cache", "mix"))
    parser.add_argument("items", nargs="+", help="cache: NAME=MODEL_DIR; mix: NAME+NAME...")
    parser.add_argument("--datasets", default="../shared/datasets")
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/logit-cache"))
    parser.add_argument("--limit", type=int, default=None, help="the first N dev questions only (a smoke run)")
    args = parser.parse_args()
    data = load_recipe_data("reviews-heldout", args.datasets)
    if args.limit:
        data = ReaderData(data.train, data.threshold_dev[: args.limit], data.squad_test, data.subjqa_test,
                          data.dev_parts)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    if args.action == "cache":
        for item in args.items:
            name, _, path = item.partition("=")
            if not path:
                parser.error(f"cache takes NAME=MODEL_DIR, got {item!r}")
            try:
                tokenizer, model = load_pretrained(path)
            except ConfigError as e:
                parser.error(str(e))
            recorder = _Recorder(model.float().eval())
            reader = ExtractiveReader.from_components(recorder, tokenizer, reader_config=WINDOWS, name=path,
                                                      precision="fp32")
            began = time.perf_counter()
            run = run_reader(reader, data.threshold_dev)
            with open(args.cache_dir / f"{name}.pkl", "wb") as f:
                pickle.dump({"model": path, "logits": recorder.logits}, f)
            print(f"{name}: {len(recorder.logits)} windows in {time.perf_counter() - began:.0f} s", flush=True)
            report(name, run, data)
        return
    loaded: dict[str, dict[str, Any]] = {}
    tokenizers: dict[str, Any] = {}  # by model folder: the mixer reads no weights
    for combo in args.items:
        names = combo.split("+")
        for name in names:
            if name not in loaded:
                if not (args.cache_dir / f"{name}.pkl").is_file():
                    parser.error(f"no cached logits for {name!r} in {args.cache_dir}: "
                                 f"run `cache {name}=MODEL_DIR` first")
                with open(args.cache_dir / f"{name}.pkl", "rb") as f:
                    loaded[name] = pickle.load(f)
        path = loaded[names[0]]["model"]
        if path not in tokenizers:
            tokenizers[path] = AutoTokenizer.from_pretrained(path)
        mixer = _Mixer([loaded[n]["logits"] for n in names])
        reader = ExtractiveReader.from_components(mixer, tokenizers[path], reader_config=WINDOWS, name=combo,
                                                  precision="fp32")
        report(combo, run_reader(reader, data.threshold_dev), data)


if __name__ == "__main__":
    main()
