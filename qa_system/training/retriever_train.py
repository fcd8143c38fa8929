"""`qa-system train-retriever`: fine-tune a sentence-transformers embedder on (question, passage)
pairs with in-batch negatives plus one mined hard negative per pair.

The loss is MultipleNegativesRankingLoss written in plain torch: each question's scores against
every passage of the batch (all positives, then all hard negatives) are ``scale x cosine``, and
cross-entropy asks its own passage to win. A passage that is another question's positive but the
same text as this question's own (two questions of one paragraph in one batch), or this
question's positive appearing as another's hard negative, is masked out: it is not a negative.

The run folder holds ``train_config.json`` (the options), ``pairs.jsonl`` (the sampled pairs with
their mined negatives, so that a resumed run needs no mining), ``checkpoint/`` (weights,
optimizer, schedule, step; written every ``--checkpoint-every`` steps and at the end),
``history.jsonl`` (losses and held-out scores) and ``model/`` (the final sentence-transformers
folder). Running the same command again resumes from the checkpoint.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .retriever_data import HeldOutSet, Pair, heldout_ranks

CONFIG_FILE = "train_config.json"
PAIRS_FILE = "pairs.jsonl"
HISTORY_FILE = "history.jsonl"
CHECKPOINT = "checkpoint"
#: Options that must match to resume a run (the rest, e.g. the time budget, may change).
RESUME_KEYS = ("base_model", "batch_size", "lr", "scale", "seed", "max_query_tokens", "max_passage_tokens",
               "hard_negatives", "train", "dev", "heldout_percent", "max_pairs", "per_group", "epochs")


@dataclass(frozen=True)
class TrainOptions:
    base_model: str
    batch_size: int = 32
    lr: float = 5e-5
    epochs: float = 1.0
    max_steps: int | None = None
    scale: float = 20.0
    warmup_fraction: float = 0.1
    max_query_tokens: int = 64
    max_passage_tokens: int = 192
    hard_negatives: bool = True
    precision: str = "auto"
    device: str = "auto"
    time_budget_min: float | None = None
    checkpoint_every: int = 50
    eval_every: int = 200
    eval_questions: int | None = 1000
    seed: int = 13


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: torch sees no CUDA GPU")
    return device


class Encoder:
    """The model being trained, as the function (texts, kind) -> unit vectors that mining and the
    held-out evaluation use, with the model's query/passage prompts."""

    def __init__(self, model: Any, prompts: tuple[str, str], batch_size: int = 64) -> None:
        self.model, self.prompts, self.batch_size = model, prompts, batch_size

    def __call__(self, texts: Sequence[str], kind: str) -> np.ndarray:
        import torch

        prompt = self.prompts[0] if kind == "query" else self.prompts[1]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                vectors = self.model.encode(list(texts), prompt=prompt, batch_size=self.batch_size,
                                            convert_to_numpy=True, normalize_embeddings=True,
                                            show_progress_bar=False)
        finally:
            self.model.train(was_training)
        return np.asarray(vectors, dtype=np.float32)


def evaluate_heldout(encode: Encoder, heldout: Sequence[HeldOutSet], max_questions: int | None) -> dict[str, Any]:
    """Dense recall@1/5/10 and MRR@10 of each held-out set (own passage's rank)."""
    from ..evaluation.retrieval_metrics import retrieval_scores

    out: dict[str, Any] = {}
    for held in heldout:
        ranks = heldout_ranks(held, encode, max_questions=max_questions)
        scores = retrieval_scores(ranks, (1, 5, 10))
        out[held.name] = {"recall@1": round(scores.recall[1], 4), "recall@5": round(scores.recall[5], 4),
                          "recall@10": round(scores.recall[10], 4), "mrr@10": round(scores.mrr, 4),
                          "questions": scores.questions}
    return out


def _tokenize(model: Any, texts: Sequence[str], max_tokens: int, device: str) -> dict[str, Any]:
    features = model.tokenizer(list(texts), padding=True, truncation=True, max_length=max_tokens + 2,
                               return_tensors="pt")
    return {k: v.to(device) for k, v in features.items()}


def _embed(model: Any, features: dict[str, Any]) -> Any:
    import torch.nn.functional as F

    return F.normalize(model(dict(features))["sentence_embedding"].float(), dim=-1)


def batch_loss(model: Any, batch: Sequence[Pair], opts: TrainOptions, prompts: tuple[str, str],
               device: str, autocast: bool) -> Any:
    """MultipleNegativesRankingLoss over the batch's positives and hard negatives."""
    import torch
    import torch.nn.functional as F

    from ..hardware import bf16_autocast

    qp, pp = prompts
    passages = [pp + p.passage for p in batch]
    keys = [p.passage for p in batch]
    negatives = [p.negative for p in batch if opts.hard_negatives and p.negative]
    passages += [pp + n for n in negatives]
    keys += negatives
    with bf16_autocast(device, autocast):
        q = _embed(model, _tokenize(model, [qp + p.question for p in batch], opts.max_query_tokens, device))
        d = _embed(model, _tokenize(model, passages, opts.max_passage_tokens, device))
    scores = opts.scale * (q @ d.T)
    own = [p.passage for p in batch]
    same = torch.tensor([[k == o for k in keys] for o in own], device=scores.device)
    labels = torch.arange(len(batch), device=scores.device)
    same[labels, labels] = False  # its own positive stays
    scores = scores.masked_fill(same, -1e4)
    return F.cross_entropy(scores, labels)


def _order(n: int, epoch: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 1000 + epoch).shuffle(order)
    return order


def _batches_of(pairs: Sequence[Pair], batch_size: int, epoch: int, seed: int) -> list[list[int]]:
    order = _order(len(pairs), epoch, seed)
    return [order[i: i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def _log(folder: Path, record: dict[str, Any]) -> None:
    with (folder / HISTORY_FILE).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _save_checkpoint(folder: Path, model: Any, optimizer: Any, schedule: Any, step: int, planned: int) -> None:
    import torch

    tmp = folder / (CHECKPOINT + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state(),
                "step": step, "planned": planned}, tmp / "state.pt")
    target = folder / CHECKPOINT
    old = folder / (CHECKPOINT + ".old")
    if target.exists():
        if old.exists():
            shutil.rmtree(old)
        target.replace(old)
    tmp.replace(target)
    if old.exists():
        shutil.rmtree(old)


def _format_scores(scores: dict[str, Any]) -> str:
    return "; ".join(f"{name}: R@1 {s['recall@1']:.3f} R@5 {s['recall@5']:.3f} R@10 {s['recall@10']:.3f} "
                     f"MRR {s['mrr@10']:.3f} ({s['questions']} q)" for name, s in scores.items())


def train(folder: Path, model: Any, pairs: Sequence[Pair], heldout: Sequence[HeldOutSet], opts: TrainOptions,
          prompts: tuple[str, str], *, began: float, progress: bool = True) -> dict[str, Any]:
    """Train ``model`` (a loaded SentenceTransformer on its device) on ``pairs``, resuming from
    ``folder/checkpoint`` when there is one; evaluate on ``heldout`` before, every
    ``eval_every`` steps, and after; return the final held-out scores and the run's figures."""
    import torch
    from tqdm.auto import tqdm

    from ..hardware import resolve_precision
    from .schedule import BudgetProbe, LrSchedule

    device = str(next(model.parameters()).device)
    autocast = resolve_precision(opts.precision, device) == "bf16"
    per_epoch = len(pairs) // opts.batch_size
    if per_epoch == 0:
        raise ConfigError(f"{len(pairs)} pairs make no batch of {opts.batch_size}")
    planned = opts.max_steps or max(1, math.ceil(per_epoch * opts.epochs))
    optimizer = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=0.01)
    schedule = LrSchedule(planned, opts.warmup_fraction)
    step = 0
    state_path = folder / CHECKPOINT / "state.pt"
    if state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.restore(state["schedule"])
        step = int(state["step"])
        if int(state.get("planned", planned)) != planned:  # a changed --max-steps / --epochs: plan afresh
            schedule.move(max(planned, step), step)
        print(f"resuming at step {step} of {schedule.total}", file=sys.stderr)
    encode = Encoder(model, prompts)
    if step == 0 and heldout:
        scores = evaluate_heldout(encode, heldout, opts.eval_questions)
        _log(folder, {"step": 0, "heldout": scores, "elapsed_s": round(time.perf_counter() - began, 1)})
        print(f"held out, before training: {_format_scores(scores)}", file=sys.stderr)
    probe = BudgetProbe(opts.time_budget_min * 60, torch.device(device), began) if opts.time_budget_min else None
    model.train()
    bar = tqdm(total=schedule.total, initial=step, desc="train-retriever", unit="step", disable=not progress,
               dynamic_ncols=True)
    done = 0
    losses: list[float] = []
    train_began = time.perf_counter()
    while step < schedule.total:
        if probe is not None:
            moved = probe.steps_that_fit(done, step, schedule.total, planned)
            if moved is not None:
                schedule.move(max(moved, step + 1), step)
                bar.total = schedule.total
                bar.refresh()
        epoch, index = divmod(step, per_epoch)
        batch = [pairs[i] for i in _batches_of(pairs, opts.batch_size, epoch, opts.seed)[index]]
        for group in optimizer.param_groups:
            group["lr"] = opts.lr * schedule.factor(step)
        loss = batch_loss(model, batch, opts, prompts, device, autocast)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        done += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        _log(folder, {"step": step, "loss": round(losses[-1], 4),
                      "lr": optimizer.param_groups[0]["lr"], "elapsed_s": round(time.perf_counter() - began, 1)})
        if step % opts.checkpoint_every == 0 or step == schedule.total:
            _save_checkpoint(folder, model, optimizer, schedule, step, planned)
        if heldout and opts.eval_every and step % opts.eval_every == 0 and step < schedule.total:
            scores = evaluate_heldout(encode, heldout, opts.eval_questions)
            _log(folder, {"step": step, "heldout": scores, "elapsed_s": round(time.perf_counter() - began, 1)})
            bar.write(f"held out at step {step}: {_format_scores(scores)}")
            model.train()
    bar.close()
    train_s = time.perf_counter() - train_began
    final = evaluate_heldout(encode, heldout, opts.eval_questions) if heldout else {}
    if heldout:
        _log(folder, {"step": step, "heldout": final, "final": True,
                      "elapsed_s": round(time.perf_counter() - began, 1)})
        print(f"held out, after training (step {step}): {_format_scores(final)}", file=sys.stderr)
    return {"steps": step, "planned_steps": planned, "train_seconds_this_run": round(train_s, 1),
            "seconds_per_step": round(train_s / done, 3) if done else None, "bf16_autocast": autocast,
            "device": device, "heldout": final}


def export_fp16(model: Any, target: Path) -> None:
    """The model as a sentence-transformers folder with half-precision weights."""
    import copy

    import torch

    from .folders import atomic_save_dir

    half = copy.deepcopy(model).to("cpu").to(torch.float16)
    atomic_save_dir(lambda tmp: half.save(str(tmp)), target)
