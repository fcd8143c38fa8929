"""`qa-system train-reranker`: the command line of `reranker_train` (data options shared with
`train-retriever`, ``retriever_commands``)."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

from ..config import DEFAULT_EMBEDDING_MODEL
from ..errors import ConfigError
from .retriever_commands import (
    add_pair_training_arguments,
    load_sentence_transformer,
    prepare_pairs,
    start_run,
    train_files_of,
)


def add_train_reranker_arguments(p: argparse.ArgumentParser) -> None:
    add_pair_training_arguments(p, batch_help="questions per step, each scored against its own passage, its hard "
                                              "negative and --in-batch-negatives others' (default: 16)",
                                eval_every=0, eval_questions=300)
    p.set_defaults(batch_size=16, checkpoint_every=20)
    p.add_argument("--base-model", default=DEFAULT_EMBEDDING_MODEL,
                   help="transformer to start from, given a fresh one-logit head (default: the product's embedder)")
    p.add_argument("--embedding-model", default=DEFAULT_EMBEDDING_MODEL,
                   help="the retriever that mines the hard negatives and ranks the held-out candidates "
                        "(default: the product's embedder)")
    p.add_argument("--max-tokens", type=int, default=192, help="question and passage are cut to this many tokens "
                                                               "together (default: 192)")
    p.add_argument("--in-batch-negatives", type=int, default=1,
                   help="other questions' passages of the batch each question is scored against (default: 1)")
    p.add_argument("--eval-depth", type=int, default=10, help="held-out candidates re-ranked (default: 10)")


def train_reranker_command(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    from .pair_loop import check_positive, pick_device
    from .reranker_train import RESUME_KEYS, RerankOptions

    check_positive(args, ("batch_size", "epochs", "max_steps", "max_pairs", "per_group", "checkpoint_every",
                          "eval_questions", "time_budget", "max_tokens", "eval_depth"))
    if args.in_batch_negatives < 0:
        raise ConfigError(f"--in-batch-negatives must be >= 0, got {args.in_batch_negatives}")
    train_files, dev_files = train_files_of(args)
    device = pick_device(args.device)
    opts = RerankOptions(
        base_model=args.base_model, batch_size=args.batch_size, lr=args.lr, epochs=args.epochs,
        max_steps=args.max_steps, max_tokens=args.max_tokens, in_batch_negatives=args.in_batch_negatives,
        hard_negatives=args.hard_negatives, precision=args.precision, device=device,
        time_budget_min=args.time_budget, checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
        eval_questions=args.eval_questions, eval_depth=args.eval_depth, seed=args.seed,
    )
    config = {**asdict(opts), "train": train_files, "dev": dev_files, "heldout_percent": args.heldout_percent,
              "max_pairs": args.max_pairs, "per_group": args.per_group, "embedding_model": args.embedding_model}
    folder = start_run(args, config, RESUME_KEYS, "train-reranker")
    from ..embedding import model_prompts
    from .reranker_train import HeldOutReranking, load_base, save_model, train
    from .retriever_train import Encoder

    embedder = load_sentence_transformer(args.embedding_model, device)
    encode = Encoder(embedder.float().eval(), model_prompts(getattr(embedder, "prompts", None)))
    pairs, heldout = prepare_pairs(args, folder, encode)
    candidates = HeldOutReranking(heldout, encode, opts) if heldout else None
    del embedder, encode
    model, tokenizer = load_base(args.base_model, device)
    result = train(folder, model, tokenizer, pairs, candidates, opts, began=began, progress=not args.no_progress)
    save_model(model, tokenizer, folder / "model", opts)
    result["pairs"] = len(pairs)
    result["elapsed_s"] = round(time.perf_counter() - began, 1)
    (folder / "results.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print(f"model: {folder / 'model'} (qa-system ask --reranker {folder / 'model'}, or QA_SYSTEM_RERANKER)")
    return 0
