"""The reader training loop: length-grouped batches, bf16 autocast, checkpoints that resume,
on the CPU or a CUDA GPU, optionally within a time budget."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..hardware import physical_memory_bytes, release_freed_memory
from .batching import collate, grouped_batches, length_grouped_batches
from .features import TrainWindow
from .folders import atomic_save_dir, check_model_output, check_run_output
from .schedule import BudgetProbe, LrSchedule


@dataclass(frozen=True)
class TrainConfig:
    output_dir: str
    base_model: str
    max_length: int = 192
    stride: int = 64
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    epochs: float = 1.0
    seed: int = 13
    bf16: bool = False  # bf16 autocast: a win only on CPUs with native bf16 (AVX512-BF16/AMX)
    freeze_word_embeddings: bool = True
    checkpoint_every_steps: int = 100
    eval_every_steps: int = 200
    torch_threads: int | None = None
    max_steps: int | None = None
    device: str = "cpu"  # "cpu" or "cuda[:N]"
    # Seconds for the training steps of this invocation: once a tenth of it is spent (half, if 25
    # steps take longer) the pace is measured, again after each further tenth, and the run's end
    # (learning-rate schedule included, without jumps) is moved to fit: never past the budget by
    # more than 2% of it, never past its epochs or max_steps.
    time_budget_s: float | None = None
    # Weight of the shared-normalisation loss (0: off). With it, all windows cut from one long
    # context share a batch, and the gold span's logits are also scored against the context
    # tokens of all those windows at once: raw span scores then compare across windows, as
    # inference compares them (the per-window loss alone never asks for that).
    shared_norm: float = 0.0
    # Distillation (training.distill): the loss is (1 - w) x the gold-label loss + w x the KL
    # divergence from the teacher's start/end distributions at this temperature; 0: no teacher.
    distill_weight: float = 0.0
    distill_temperature: float = 2.0


def shared_norm_loss(start_logits: torch.Tensor, end_logits: torch.Tensor,
                     windows: Sequence[TrainWindow]) -> torch.Tensor | None:
    """Mean over the batch's multi-window groups with an answer of the negative log of the
    probability of the gold start (and end) token, a softmax taken over the context tokens of
    all the group's windows together (marginal over the windows holding the answer). ``None``
    when the batch has no such group."""
    by_group: dict[int, list[int]] = {}
    for row, w in enumerate(windows):
        by_group.setdefault(w.group, []).append(row)
    losses = []
    for rows in by_group.values():
        gold_rows = [r for r in rows if windows[r].has_span]
        if len(rows) < 2 or not gold_rows:
            continue
        for logits, gold_of in ((start_logits, lambda w: w.start), (end_logits, lambda w: w.end)):
            scores = torch.cat([logits[r, windows[r].context_first : windows[r].context_last + 1] for r in rows])
            gold = torch.stack([logits[r, gold_of(windows[r])] for r in gold_rows])
            losses.append(torch.logsumexp(scores.float(), 0) - torch.logsumexp(gold.float(), 0))
    return torch.stack(losses).mean() if losses else None


def _resumable(config: dict[str, Any]) -> dict[str, Any]:
    """The settings a checkpoint must share with the run resuming it. A setting added to
    ``TrainConfig`` after the checkpoint was written counts as its default (off)."""
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    config = {**defaults, **config}
    return {k: v for k, v in config.items()
            if k not in {"max_steps", "checkpoint_every_steps", "eval_every_steps", "torch_threads", "device",
                         "time_budget_s"}}


def checked_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device must be cpu or cuda, got {name!r}") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    if device.type not in {"cpu", "cuda"}:
        raise ConfigError(f"device must be cpu or cuda, got {name!r}")
    return device


@dataclass
class _Run:
    """One training run's state: the model, its optimiser and learning-rate schedule, the step it is
    at, and the folder that holds its checkpoint and history."""

    config: TrainConfig
    out: Path
    device: torch.device
    model: Any
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    plan: LrSchedule  # plan.total: the run's end, as a time budget moves it
    planned: int  # the steps the run was planned with (epochs or max_steps), before any budget
    n_windows: int
    step: int = 0

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint"

    def write_config(self) -> None:
        (self.out / "train_config.json").write_text(
            json.dumps({**asdict(self.config), "steps": self.plan.total, "windows": self.n_windows}, indent=2))

    def save_checkpoint(self) -> None:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "step": self.step, "config": asdict(self.config),
                 "n_windows": self.n_windows, "plan": {**self.plan.state(), "planned": self.planned}}
        atomic_save_dir(lambda d: torch.save(state, d / "state.pt"), self.checkpoint)

    def resume(self, log: Callable[[str], None]) -> None:
        """Go on from the run's checkpoint, if it has one (same settings and data, or ``ConfigError``)."""
        if not (self.checkpoint / "state.pt").exists():
            return
        state = torch.load(self.checkpoint / "state.pt", weights_only=False, map_location=self.device)
        # max_steps may change on resume (to shorten or extend a run); the rest must match.
        if _resumable(state["config"]) != _resumable(asdict(self.config)) or state["n_windows"] != self.n_windows:
            raise ConfigError(f"{self.checkpoint} was written by another configuration or data; use a new output_dir")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        saved = state.get("plan")
        if saved is not None and saved["planned"] == self.planned:
            # the schedule it was written under, as a time budget moved it: the learning rate goes on
            # where it was, and a run that a budget ended stays ended (a changed max_steps starts anew)
            self.plan.restore(saved)
        _forget_history_after(self.out / "history.jsonl", self.step)  # the steps after the checkpoint are done again
        log(f"resuming from step {self.step} of {self.plan.total}" if self.step < self.plan.total
            else f"checkpoint at step {self.step} is already at the end of its schedule ({self.plan.total} steps); to "
                 "train further, start a new run from its model")

    def train_step(self, windows: Sequence[TrainWindow], pad_id: int) -> float:
        """One optimiser step on one batch; its loss."""
        config = self.config
        batch = collate(windows, pad_id, self.device)
        teacher = (batch.pop("teacher_start", None), batch.pop("teacher_end", None))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=config.bf16):
            output = self.model(**batch)
            loss = output.loss
            if config.distill_weight:
                if teacher[0] is None:
                    raise ConfigError("distillation asked for, but the batch's windows have no teacher scores")
                from .distill import distillation_loss

                soft = (distillation_loss(output.start_logits, teacher[0], config.distill_temperature)
                        + distillation_loss(output.end_logits, teacher[1], config.distill_temperature)) / 2
                loss = (1 - config.distill_weight) * loss + config.distill_weight * soft
            if config.shared_norm:
                shared = shared_norm_loss(output.start_logits, output.end_logits, windows)
                if shared is not None:
                    loss = loss + config.shared_norm * shared
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss.item()

    def fit_budget(self, probe: BudgetProbe, first_step: int, bar: Any, log: Callable[[str], None]) -> bool:
        """Move the run's end to fit the time budget, as the probe measures the pace; True when the
        budget ends the run at this step (its checkpoint is then written here)."""
        fits = probe.steps_that_fit(self.step - first_step, self.step, self.plan.total, self.planned)
        if fits is None or fits == self.plan.total:
            return False
        log(f"time budget {self.config.time_budget_s:.0f}s at {probe.per_step:.3f}s/step: {fits} steps instead of "
            f"{self.plan.total}" + (f" (of {self.planned} planned)" if fits < self.planned else ""))
        self.plan.move(fits, self.step)
        bar.total = fits
        self.write_config()
        if self.step < self.plan.total:
            return False
        self.save_checkpoint()
        return True


def batch_schedule(windows: Sequence[TrainWindow], config: TrainConfig) -> tuple[list[list[int]], int]:
    """Every epoch's batches (window indices), and the steps planned: ``epochs`` of them (a
    fraction of the last epoch for fractional epochs), at most ``max_steps``."""
    epochs = max(1, math.ceil(config.epochs))
    schedule: list[list[int]] = []
    lengths = [len(w.input_ids) for w in windows]
    for epoch in range(epochs):
        schedule.extend(grouped_batches(windows, config.batch_size, config.seed + epoch) if config.shared_norm
                        else length_grouped_batches(lengths, config.batch_size, config.seed + epoch))
    planned = int(len(schedule) * config.epochs / epochs)
    return schedule, planned if config.max_steps is None else min(planned, config.max_steps)


def _new_run(config: TrainConfig, out: Path, device: torch.device, n_windows: int, planned: int) -> _Run:
    """The base model with fp32 master weights (whatever the folder stores: the shipped reader is
    fp16), AdamW without weight decay on biases and norms, warm-up then linear decay."""
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(config.base_model, dtype=torch.float32).to(device)
    if config.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
         {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    plan = LrSchedule(planned, config.warmup_fraction)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, plan.factor)
    return _Run(config, out, device, model, params, optimizer, scheduler, plan, planned, n_windows)


def train_reader(
    config: TrainConfig,
    windows: Sequence[TrainWindow],
    *,
    eval_windows: Sequence[TrainWindow] = (),
    tokenizer: Any,
    log: Callable[[str], None] = print,
) -> Path:
    """Train (or resume) and save a Hugging Face QA model folder in ``output_dir/model``.

    A checkpoint (``output_dir/checkpoint``: model, optimiser, scheduler, step) is written
    atomically every ``checkpoint_every_steps``; running again with the same config and data
    resumes after the last checkpointed step.
    """
    if not windows:
        raise ConfigError("no training windows: the training data is empty")
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    device = checked_device(config.device)
    torch.manual_seed(config.seed)
    out = check_run_output(config.output_dir)  # a folder of other things is refused
    out.mkdir(parents=True, exist_ok=True)
    schedule, planned = batch_schedule(windows, config)
    run = _new_run(config, out, device, len(windows), planned)
    run.resume(log)
    run.write_config()
    pad_id = tokenizer.pad_token_id or 0
    run.model.train()
    seen = 0
    began = time.perf_counter()
    first_step = run.step
    probe = None if config.time_budget_s is None else BudgetProbe(config.time_budget_s, device, began)
    bar = tqdm(total=run.plan.total, initial=run.step, desc="train-reader", unit="step", dynamic_ncols=True)
    trim_above = (physical_memory_bytes() or 0) // 4  # hand freed memory back above a quarter of the RAM
    running = None
    while run.step < run.plan.total:
        if probe is not None and run.fit_budget(probe, first_step, bar, log):
            break
        batch_windows = [windows[i] for i in schedule[run.step]]
        loss = run.train_step(batch_windows, pad_id)
        seen += len(batch_windows)
        release_freed_memory(above_bytes=trim_above)  # else glibc's heap keeps growing until killed
        running = loss if running is None else 0.95 * running + 0.05 * loss
        rate = seen / max(1e-9, time.perf_counter() - began)
        bar.set_postfix(loss=f"{running:.3f}", win_s=f"{rate:.1f}", lr=f"{run.scheduler.get_last_lr()[0]:.2e}")
        bar.update(1)
        record: dict[str, Any] = {"step": run.step, "loss": round(running, 4), "windows_per_s": round(rate, 2)}
        if eval_windows and (run.step % config.eval_every_steps == 0 or run.step == run.plan.total):
            record["eval_loss"] = round(evaluate_loss(run.model, eval_windows, pad_id, config, device), 4)
            run.model.train()
            log(f"step {run.step}: held-out loss {record['eval_loss']}")
        if run.step % config.checkpoint_every_steps == 0 or run.step == run.plan.total:
            run.save_checkpoint()
        with (out / "history.jsonl").open("a") as h:
            h.write(json.dumps(record) + "\n")
    bar.close()
    run.model.eval()

    def _write(d: Path) -> None:
        run.model.save_pretrained(d)
        tokenizer.save_pretrained(d)

    atomic_save_dir(_write, out / "model")
    return out / "model"


def _forget_history_after(path: Path, step: int) -> None:
    """Drop the records of steps after ``step`` from a run's history (rewritten whole, atomically),
    so that a resumed run logs each step once; a line cut short by a killed run goes too."""
    if not path.is_file():
        return

    def keep(line: str) -> bool:
        try:
            return int(json.loads(line)["step"]) <= step
        except (ValueError, KeyError, TypeError):
            return False

    lines = path.read_text().splitlines()
    kept = [line for line in lines if keep(line)]
    if len(kept) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)


@torch.inference_mode()
def evaluate_loss(model: Any, windows: Sequence[TrainWindow], pad_id: int, config: TrainConfig,
                  device: torch.device | None = None) -> float:
    model.eval()
    device = device or torch.device("cpu")
    total, count = 0.0, 0
    for lo in range(0, len(windows), 64):
        batch = collate(windows[lo : lo + 64], pad_id, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
            loss = model(**batch).loss
        total += loss.item() * batch["input_ids"].shape[0]
        count += batch["input_ids"].shape[0]
    return total / max(1, count)


def export_checkpoint(run_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write the latest checkpoint of a (possibly still running) training run as a model folder.
    An existing model at ``out_dir`` is replaced only with ``overwrite`` (``check_model_output``)."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    check_model_output(out_dir, overwrite)
    run = Path(run_dir)
    config = json.loads((run / "train_config.json").read_text())
    state = torch.load(run / "checkpoint" / "state.pt", weights_only=False, map_location="cpu")
    model = AutoModelForQuestionAnswering.from_pretrained(config["base_model"])
    model.load_state_dict(state["model"])

    def _write(d: Path) -> None:
        model.save_pretrained(d)
        AutoTokenizer.from_pretrained(config["base_model"]).save_pretrained(d)

    target = Path(out_dir)
    atomic_save_dir(_write, target)
    return target
