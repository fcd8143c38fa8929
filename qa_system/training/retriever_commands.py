"""`qa-system train-retriever`: the command line of `retriever_train`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import DEFAULT_EMBEDDING_MODEL
from ..errors import ConfigError

DATASETS = "../shared/datasets"
#: --recipe default: the training files and the dev file under --datasets.
RECIPE_TRAIN = ("squad/train-v1.1.json", "subjqa/electronics/train.csv", "subjqa/grocery/train.csv",
                "subjqa/restaurants/train.csv", "subjqa/tripadvisor/train.csv")
RECIPE_DEV = ("subjqa/electronics/dev.csv",)

if TYPE_CHECKING:
    from .retriever_data import HeldOutSet, Pair


def add_pair_training_arguments(p: argparse.ArgumentParser, *, batch_help: str, eval_every: int,
                                eval_questions: int) -> None:
    """The options `train-retriever` and `train-reranker` share: data, held-out sets, run folder,
    schedule, hardware."""
    p.add_argument("--train", nargs="*", default=[], metavar="FILE",
                   help="SQuAD-format JSON and SubjQA CSV files of (question, passage) pairs")
    p.add_argument("--dev", nargs="*", default=[], metavar="FILE",
                   help="held-out files scored during and after training (never a test set); their "
                        "articles/products are taken out of training")
    p.add_argument("--recipe", choices=["default"],
                   help="default: train on --datasets' " + ", ".join(RECIPE_TRAIN) + "; dev: "
                        + ", ".join(RECIPE_DEV))
    p.add_argument("--datasets", default=DATASETS, help=f"folder of the public datasets (default: {DATASETS})")
    p.add_argument("--heldout-percent", type=float, default=5.0,
                   help="share of each training file's articles/products (by a hash of the title or item_id) "
                        "held out for evaluation (default: 5)")
    p.add_argument("--output", required=True, type=Path, help="run folder: pairs, checkpoint, history, model/")
    p.add_argument("--batch-size", type=int, default=32, help=batch_help)
    p.add_argument("--lr", type=float, default=5e-5, help="peak learning rate, after a warm-up, decaying to 0 "
                                                                 "(default: 5e-5)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the sampled pairs (default: 1)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (default: as --epochs asks)")
    p.add_argument("--max-pairs", type=int, help="train on at most this many pairs of each --train file "
                                                 "(articles/products drawn at random; default: all)")
    p.add_argument("--per-group", type=int, help="at most this many pairs of one article/product")
    p.add_argument("--no-hard-negatives", dest="hard_negatives", action="store_false",
                   help="in-batch negatives only (no mining)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto: bf16 autocast where the CPU/GPU computes bf16 natively, else fp32")
    p.add_argument("--device", default="auto", help="auto (CUDA when torch sees a GPU, else cpu), cpu, cuda")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--time-budget", type=float, metavar="MINUTES",
                   help="end the training steps within this many minutes of the command's start (mining "
                        "and the first evaluation included): the pace sets how many steps fit and the "
                        "learning-rate schedule follows without jumps")
    p.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints (default: 50)")
    p.add_argument("--eval-every", type=int, default=eval_every,
                   help=f"steps between held-out evaluations (default: {eval_every}; 0: before and after only)")
    p.add_argument("--eval-questions", type=int, default=eval_questions,
                   help="questions of each held-out set scored: a fixed sample, all of its passages searched "
                        f"(default: {eval_questions})")
    p.add_argument("--seed", type=int, default=13, help="random seed: sample, batch order (default: 13)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_train_retriever_arguments(p: argparse.ArgumentParser) -> None:
    add_pair_training_arguments(p, batch_help="pairs per step; each question's negatives are the others' passages "
                                              "(default: 32)", eval_every=200, eval_questions=1000)
    p.add_argument("--base-model", default=DEFAULT_EMBEDDING_MODEL,
                   help="sentence-transformers model name or folder to start from (default: the product's "
                        "embedder)")
    p.add_argument("--scale", type=float, default=20.0, help="cosine scale of the ranking loss (default: 20)")
    p.add_argument("--max-query-tokens", type=int, default=64, help="questions are cut here (default: 64)")
    p.add_argument("--max-passage-tokens", type=int, default=192, help="passages are cut here (default: 192, "
                                                                       "the product's longest chunk)")
    p.add_argument("--query-prompt", help="text before each question (default: the model's own prompt)")
    p.add_argument("--passage-prompt", help="text before each passage (default: the model's own prompt)")
    p.add_argument("--export-fp16", type=Path, help="also write the final model with half-precision weights here")
    p.add_argument("--overwrite-export", action="store_true", help="let --export-fp16 replace a model there")


def train_files_of(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    train, dev = list(args.train), list(args.dev)
    if args.recipe == "default":
        root = Path(args.datasets)
        train += [str(root / f) for f in RECIPE_TRAIN]
        dev += [str(root / f) for f in RECIPE_DEV]
    if not train:
        raise ConfigError("give --train FILE... or --recipe default")
    for f in train + dev:
        if not Path(f).is_file():
            raise ConfigError(f"no such file: {f}")
    return train, dev


def train_retriever_command(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    from .folders import check_model_output
    from .pair_loop import check_positive

    check_positive(args, ("batch_size", "epochs", "max_steps", "max_pairs", "per_group", "checkpoint_every",
                          "eval_questions", "time_budget", "max_query_tokens", "max_passage_tokens"))
    train_files, dev_files = train_files_of(args)
    if args.export_fp16 is not None:
        check_model_output(args.export_fp16, args.overwrite_export, "--overwrite-export")
    from .pair_loop import pick_device
    from .retriever_train import RESUME_KEYS, TrainOptions

    device = pick_device(args.device)
    opts = TrainOptions(
        base_model=args.base_model, batch_size=args.batch_size, lr=args.lr, epochs=args.epochs,
        max_steps=args.max_steps, scale=args.scale, max_query_tokens=args.max_query_tokens,
        max_passage_tokens=args.max_passage_tokens, hard_negatives=args.hard_negatives, precision=args.precision,
        device=device, time_budget_min=args.time_budget, checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every, eval_questions=args.eval_questions, seed=args.seed,
    )
    config = {**asdict(opts), "train": train_files, "dev": dev_files, "heldout_percent": args.heldout_percent,
              "max_pairs": args.max_pairs, "per_group": args.per_group, "query_prompt": args.query_prompt,
              "passage_prompt": args.passage_prompt}
    folder = start_run(args, config, RESUME_KEYS, "train-retriever")
    from ..embedding import model_prompts
    from .retriever_train import Encoder, export_fp16, train

    model = load_sentence_transformer(args.base_model, device).float()
    prompts = model_prompts(getattr(model, "prompts", None), query_prompt=args.query_prompt,
                            passage_prompt=args.passage_prompt)
    pairs, heldout = prepare_pairs(args, folder, Encoder(model, prompts), prompts)
    result = train(folder, model, pairs, heldout, opts, prompts, began=began, progress=not args.no_progress)
    model.eval()
    from .folders import atomic_save_dir

    atomic_save_dir(lambda tmp: model.save(str(tmp)), folder / "model")
    if args.export_fp16 is not None:
        export_fp16(model, args.export_fp16)
    result["pairs"] = len(pairs)
    result["elapsed_s"] = round(time.perf_counter() - began, 1)
    (folder / "results.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print(f"model: {folder / 'model'}" + (f"; fp16 copy: {args.export_fp16}" if args.export_fp16 else ""))
    return 0


def prepare_pairs(args: argparse.Namespace, folder: Path, encode: Any,
                  prompts: tuple[str, str] = ("", "")) -> tuple[list[Pair], list[HeldOutSet]]:
    """The run's training pairs (``folder/pairs.jsonl`` when a run made them already; else sampled
    from ``args.train`` and given hard negatives mined with ``encode``) and its held-out sets."""
    from .retriever_data import load_retriever_data, mine_hard_negatives, read_pairs, sample_pairs, write_pairs
    from .retriever_train import PAIRS_FILE

    train_files, dev_files = train_files_of(args)
    by_file, heldout = load_retriever_data(train_files, dev_files, heldout_percent=args.heldout_percent)
    sets = ", ".join(f"{h.name} ({len(h.pairs)} pairs, searched {'by group' if h.scope == 'group' else 'open'})"
                     for h in heldout)
    shown = f"; prompts: query {prompts[0]!r}, passage {prompts[1]!r}" if any(prompts) else ""
    all_pairs = [p for pairs in by_file.values() for p in pairs]
    print(f"{len(all_pairs)} training pairs; held out: {sets or 'none'}{shown}", file=sys.stderr)
    pairs_path = folder / PAIRS_FILE
    if pairs_path.is_file():
        return read_pairs(pairs_path), heldout
    pairs = sample_pairs(by_file, max_pairs=args.max_pairs, per_group=args.per_group, seed=args.seed)
    if args.hard_negatives:
        from tqdm.auto import tqdm

        mined_began = time.perf_counter()
        with tqdm(total=len(pairs), desc="mine hard negatives", unit="pair", disable=args.no_progress,
                  dynamic_ncols=True) as bar:
            pairs = mine_hard_negatives(pairs, all_pairs, encode, progress=bar.update)
        found = sum(1 for p in pairs if p.negative)
        print(f"hard negatives: {found} of {len(pairs)} pairs in {time.perf_counter() - mined_began:.0f}s",
              file=sys.stderr)
    write_pairs(pairs, pairs_path)
    return pairs, heldout


def start_run(args: argparse.Namespace, config: dict[str, Any], resume_keys: Sequence[str], command: str) -> Path:
    """The run folder ``args.output`` (a new one, or a run of ``command`` with the same options,
    resumed) with ``config`` saved in it; torch's threads and seed set."""
    import torch

    from .pair_loop import CONFIG_FILE, check_run_folder

    folder: Path = args.output
    check_run_folder(folder, config, resume_keys, command)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return folder


def load_sentence_transformer(name: str, device: str) -> Any:
    from ..embedding import resolve_embedding_model
    from ..quiet import quiet_model_loading

    with quiet_model_loading():
        from sentence_transformers import SentenceTransformer

        try:
            return SentenceTransformer(resolve_embedding_model(name), device=device)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot load {name!r}: {e}") from e
