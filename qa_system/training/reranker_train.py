"""`qa-system train-reranker`: a cross-encoder that re-scores the retriever's first candidates
(``qa_system.retrieval.rerank``), trained on the (question, passage) pairs of `train-retriever`
(``retriever_data``: the same files, held-out sets and hard negatives mined with the current
retriever) in the same run folder layout and training loop (``pair_loop``).

The model is the product's MiniLM embedder's transformer with a fresh one-logit head
(``AutoModelForSequenceClassification``, ``num_labels=1``), reading question and passage together
(``[CLS] question [SEP] passage [SEP]``, at most ``max_tokens``). The loss is listwise: each
question's candidates are its own passage, its mined hard negative and ``in_batch_negatives``
other questions' passages of the batch; cross-entropy over their logits asks its own passage to
win (a candidate with the same text as its own passage is left out).

Held out: each set's questions are searched with the dense retriever (the base embedder, as in
`train-retriever`'s evaluation), the top ``eval_depth`` re-ranked, and the gold passage's rank
scored (gold@1/@5, MRR@10), beside the dense ranking's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .retriever_data import HeldOutSet, Pair

#: Options that must match to resume a run (the rest, e.g. the time budget, may change).
RESUME_KEYS = ("base_model", "batch_size", "lr", "seed", "max_tokens", "in_batch_negatives", "hard_negatives",
               "train", "dev", "heldout_percent", "max_pairs", "per_group", "epochs")


@dataclass(frozen=True)
class RerankOptions:
    base_model: str
    batch_size: int = 16
    lr: float = 5e-5
    epochs: float = 1.0
    max_steps: int | None = None
    warmup_fraction: float = 0.1
    max_tokens: int = 192
    in_batch_negatives: int = 1
    hard_negatives: bool = True
    precision: str = "auto"
    device: str = "auto"
    time_budget_min: float | None = None
    checkpoint_every: int = 20
    eval_every: int = 0
    eval_questions: int | None = 300
    eval_depth: int = 10
    seed: int = 13


def load_base(base_model: str, device: str) -> tuple[Any, Any]:
    """(model, tokenizer): ``base_model``'s transformer (a sentence-transformers or Hugging Face
    folder or name; the default embedder resolves to its shipped copy) with a one-logit head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..embedding import resolve_embedding_model
    from ..errors import ConfigError
    from ..quiet import quiet_model_loading

    path = resolve_embedding_model(base_model)
    try:
        with quiet_model_loading():
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
            tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load {base_model!r} as a cross-encoder: {e}") from e
    return model.float().to(device), tokenizer


def candidates_of(batch: Sequence[Pair], in_batch: int, hard_negatives: bool) -> list[list[str]]:
    """Each question's candidate passages, its own first: the hard negative, then the next
    ``in_batch`` other passages of the batch (cyclically) whose text differs from its own."""
    out = []
    for i, p in enumerate(batch):
        cands = [p.passage]
        if hard_negatives and p.negative and p.negative != p.passage:
            cands.append(p.negative)
        taken = 0
        for step in range(1, len(batch)):
            if taken >= in_batch:
                break
            other = batch[(i + step) % len(batch)].passage
            if other not in cands:
                cands.append(other)
                taken += 1
        out.append(cands)
    return out


def batch_loss(model: Any, tokenizer: Any, batch: Sequence[Pair], opts: RerankOptions, device: str,
               autocast: bool) -> Any:
    """Listwise cross-entropy: each question's own passage against its other candidates."""
    import torch
    import torch.nn.functional as F

    from ..hardware import bf16_autocast
    from ..retrieval.rerank import score_pairs

    cands = candidates_of(batch, opts.in_batch_negatives, opts.hard_negatives)
    questions = [p.question for p, cs in zip(batch, cands, strict=True) for _ in cs]
    passages = [c for cs in cands for c in cs]
    with bf16_autocast(device, autocast):
        logits = score_pairs(model, tokenizer, questions, passages, opts.max_tokens, device).float()
    width = max(len(cs) for cs in cands)
    table = torch.full((len(batch), width), -1e4, device=logits.device)
    at = 0
    for row, cs in enumerate(cands):
        table[row, : len(cs)] = logits[at: at + len(cs)]
        at += len(cs)
    return F.cross_entropy(table, torch.zeros(len(batch), dtype=torch.long, device=logits.device))


def gold_scores(ranks: Sequence[int | None]) -> dict[str, Any]:
    """gold@1/@5/@10 and MRR@10 of 1-based ranks (None: not among the candidates)."""
    from ..evaluation.retrieval_metrics import retrieval_scores

    scores = retrieval_scores(ranks, (1, 5, 10))
    return {**{f"gold@{k}": round(v, 4) for k, v in scores.recall.items()}, "mrr@10": round(scores.mrr, 4),
            "questions": scores.questions}


class HeldOutReranking:
    """The held-out sets' dense candidates (computed once: the dense retriever does not train)
    and their scores re-ranked by the model being trained."""

    def __init__(self, heldout: Sequence[HeldOutSet], encode: Any, opts: RerankOptions) -> None:
        from .retriever_data import heldout_candidates

        self.opts = opts
        self.sets = {h.name: heldout_candidates(h, encode, depth=opts.eval_depth, max_questions=opts.eval_questions)
                     for h in heldout}
        self.dense = {name: gold_scores([_rank(p.passage, cands) for p, cands in items])
                      for name, items in self.sets.items()}

    def __call__(self, model: Any, tokenizer: Any, device: str, autocast: bool) -> dict[str, Any]:
        import torch

        from ..hardware import bf16_autocast
        from ..retrieval.rerank import rerank_order, score_pairs

        was_training = model.training
        model.eval()
        out: dict[str, Any] = {}
        try:
            for name, items in self.sets.items():
                ranks = []
                with torch.inference_mode(), bf16_autocast(device, autocast):
                    for p, cands in items:
                        if not cands:
                            ranks.append(None)
                            continue
                        logits = score_pairs(model, tokenizer, [p.question] * len(cands), cands,
                                             self.opts.max_tokens, device).float().cpu().tolist()
                        order = rerank_order(logits, [0.0] * len(cands))
                        ranks.append(_rank(p.passage, [cands[i] for i in order]))
                out[name] = {"reranked": gold_scores(ranks), "dense": self.dense[name]}
        finally:
            model.train(was_training)
        return out


def _rank(gold: str, ranked: Sequence[str]) -> int | None:
    from ..evaluation.retrieval_metrics import strict_rank

    return strict_rank(ranked, (gold,))


def format_scores(scores: dict[str, Any]) -> str:
    return "; ".join(f"{name}: gold@1 {s['dense']['gold@1']:.3f} -> {s['reranked']['gold@1']:.3f}, "
                     f"@5 {s['dense']['gold@5']:.3f} -> {s['reranked']['gold@5']:.3f}, "
                     f"MRR {s['dense']['mrr@10']:.3f} -> {s['reranked']['mrr@10']:.3f} "
                     f"({s['reranked']['questions']} q)" for name, s in scores.items())


def train(folder: Path, model: Any, tokenizer: Any, pairs: Sequence[Pair], heldout: HeldOutReranking | None,
          opts: RerankOptions, *, began: float, progress: bool = True) -> dict[str, Any]:
    """Train the cross-encoder on ``pairs`` (resuming from ``folder/checkpoint``), scoring the
    held-out re-ranking before and after (and every ``eval_every`` steps)."""
    from ..hardware import resolve_precision
    from .pair_loop import run_steps

    device = str(next(model.parameters()).device)
    autocast = resolve_precision(opts.precision, device) == "bf16"
    result = run_steps(
        folder, model, len(pairs), opts,
        step_loss=lambda batch: batch_loss(model, tokenizer, [pairs[i] for i in batch], opts, device, autocast),
        evaluate=(lambda: heldout(model, tokenizer, device, autocast)) if heldout is not None and heldout.sets
        else None,
        describe=format_scores, began=began, desc="train-reranker", progress=progress)
    return {**result, "bf16_autocast": autocast}


def save_model(model: Any, tokenizer: Any, target: Path, opts: RerankOptions) -> None:
    """The model folder `QA_SYSTEM_RERANKER` names: weights, tokenizer and ``qa_system_reranker.json``."""
    import json

    from ..retrieval.rerank import RERANKER_FILE
    from .folders import atomic_save_dir

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / RERANKER_FILE).write_text(json.dumps({"max_tokens": opts.max_tokens, "retrieval_weight": 0.0,
                                                     "base_model": opts.base_model}, indent=1))

    atomic_save_dir(write, target)
