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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .pair_loop import CHECKPOINT, CONFIG_FILE, HISTORY_FILE, pick_device  # noqa: F401 (re-exported)
from .retriever_data import HeldOutSet, Pair, heldout_ranks

PAIRS_FILE = "pairs.jsonl"
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


def _format_scores(scores: dict[str, Any]) -> str:
    return "; ".join(f"{name}: R@1 {s['recall@1']:.3f} R@5 {s['recall@5']:.3f} R@10 {s['recall@10']:.3f} "
                     f"MRR {s['mrr@10']:.3f} ({s['questions']} q)" for name, s in scores.items())


def train(folder: Path, model: Any, pairs: Sequence[Pair], heldout: Sequence[HeldOutSet], opts: TrainOptions,
          prompts: tuple[str, str], *, began: float, progress: bool = True) -> dict[str, Any]:
    """Train ``model`` (a loaded SentenceTransformer on its device) on ``pairs``, resuming from
    ``folder/checkpoint`` when there is one; evaluate on ``heldout`` before, every
    ``eval_every`` steps, and after; return the final held-out scores and the run's figures."""
    from ..hardware import resolve_precision
    from .pair_loop import run_steps

    device = str(next(model.parameters()).device)
    autocast = resolve_precision(opts.precision, device) == "bf16"
    encode = Encoder(model, prompts)
    result = run_steps(
        folder, model, len(pairs), opts,
        step_loss=lambda batch: batch_loss(model, [pairs[i] for i in batch], opts, prompts, device, autocast),
        evaluate=(lambda: evaluate_heldout(encode, heldout, opts.eval_questions)) if heldout else None,
        describe=_format_scores, began=began, desc="train-retriever", progress=progress)
    return {**result, "bf16_autocast": autocast}


def export_fp16(model: Any, target: Path) -> None:
    """The model as a sentence-transformers folder with half-precision weights."""
    import copy

    import torch

    from .folders import atomic_save_dir

    half = copy.deepcopy(model).to("cpu").to(torch.float16)
    atomic_save_dir(lambda tmp: half.save(str(tmp)), target)
