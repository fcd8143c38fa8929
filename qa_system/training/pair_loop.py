"""The training loop shared by `train-retriever` and `train-reranker`: batches of sampled items in
a seeded order, AdamW with the shared learning-rate schedule (``schedule.py``: warm-up, decay to 0,
moved without jumps when ``--time-budget`` says how many steps fit), a resumable ``checkpoint/``
(weights, optimizer, schedule, step), ``history.jsonl`` (each step's loss; the held-out scores
before, every ``eval_every`` steps and after) and a progress bar.

What a step computes (the loss of a batch) and what a held-out evaluation scores are the caller's.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError

CONFIG_FILE = "train_config.json"
HISTORY_FILE = "history.jsonl"
CHECKPOINT = "checkpoint"


class LoopOptions(Protocol):
    batch_size: int
    lr: float
    epochs: float
    max_steps: int | None
    warmup_fraction: float
    time_budget_min: float | None
    checkpoint_every: int
    eval_every: int
    seed: int


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: torch sees no CUDA GPU")
    return device


def check_run_folder(folder: Path, config: dict[str, Any], resume_keys: Sequence[str], command: str) -> None:
    """Refuse a folder that is not empty unless it holds a run of ``command`` with the same
    ``resume_keys`` options (it is then resumed)."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a folder")
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    saved = folder / CONFIG_FILE
    if not saved.is_file():
        raise ConfigError(f"{folder} is not empty and is not a {command} run folder (no {CONFIG_FILE})")
    before = json.loads(saved.read_text())
    changed = [k for k in resume_keys if before.get(k) != config.get(k)]
    if changed:
        raise ConfigError(f"{folder} holds a run with other options ({', '.join(changed)}): "
                          "resume it with the same ones, or choose a new --output")


def check_positive(args: Any, names: Sequence[str]) -> None:
    for name in names:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")


def batches_of(n: int, batch_size: int, epoch: int, seed: int) -> list[list[int]]:
    """Epoch ``epoch``'s batches of item positions (a seeded shuffle; the last partial batch dropped)."""
    order = list(range(n))
    random.Random(seed * 1000 + epoch).shuffle(order)
    return [order[i: i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def log_history(folder: Path, record: dict[str, Any]) -> None:
    with (folder / HISTORY_FILE).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def save_checkpoint(folder: Path, model: Any, optimizer: Any, schedule: Any, step: int, planned: int) -> None:
    """``folder/checkpoint/state.pt``, replaced atomically (a kill leaves the old or the new one)."""
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


def run_steps(folder: Path, model: Any, n_items: int, opts: LoopOptions, *,
              step_loss: Callable[[list[int]], Any], evaluate: Callable[[], dict[str, Any]] | None,
              describe: Callable[[dict[str, Any]], str], began: float, desc: str,
              progress: bool = True) -> dict[str, Any]:
    """Train ``model`` (on its device) for the planned steps over ``n_items`` items, resuming from
    ``folder/checkpoint``; ``step_loss(positions)`` is a batch's loss; ``evaluate()`` (if given)
    scores the held-out sets before training, every ``eval_every`` steps and after. Returns the
    run's figures with the final held-out scores under ``heldout``."""
    import torch
    from tqdm.auto import tqdm

    from .schedule import BudgetProbe, LrSchedule

    device = str(next(model.parameters()).device)
    per_epoch = n_items // opts.batch_size
    if per_epoch == 0:
        raise ConfigError(f"{n_items} training items make no batch of {opts.batch_size}")
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

    def held_out(label: str, final: bool = False) -> dict[str, Any]:
        scores = evaluate() if evaluate is not None else {}
        if scores:
            record = {"step": step, "heldout": scores, "elapsed_s": round(time.perf_counter() - began, 1)}
            log_history(folder, {**record, "final": True} if final else record)
            print(f"held out, {label}: {describe(scores)}", file=sys.stderr)
        return scores

    if step == 0:
        held_out("before training")
    probe = BudgetProbe(opts.time_budget_min * 60, torch.device(device), began) if opts.time_budget_min else None
    model.train()
    bar = tqdm(total=schedule.total, initial=step, desc=desc, unit="step", disable=not progress, dynamic_ncols=True)
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
        for group in optimizer.param_groups:
            group["lr"] = opts.lr * schedule.factor(step)
        loss = step_loss(batches_of(n_items, opts.batch_size, epoch, opts.seed)[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        done += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        log_history(folder, {"step": step, "loss": round(losses[-1], 4), "lr": optimizer.param_groups[0]["lr"],
                             "elapsed_s": round(time.perf_counter() - began, 1)})
        if step % opts.checkpoint_every == 0 or step == schedule.total:
            save_checkpoint(folder, model, optimizer, schedule, step, planned)
        if opts.eval_every and step % opts.eval_every == 0 and step < schedule.total:
            held_out(f"at step {step}")
            model.train()
    bar.close()
    train_s = time.perf_counter() - train_began
    model.eval()
    final = held_out(f"after training (step {step})", final=True)
    return {"steps": step, "planned_steps": planned, "train_seconds_this_run": round(train_s, 1),
            "seconds_per_step": round(train_s / done, 3) if done else None, "device": device, "heldout": final}
