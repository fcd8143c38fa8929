"""The learning-rate schedule of a training run, and the probe that fits a run to a time budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

WARMUP_STEPS = 5  # not timed: the first steps pay for allocation and kernel selection (GPU)
PROBE_STEPS = 20  # the fewest steps timed (after WARMUP_STEPS) before a time budget fixes the run's length
PROBE_SHARE = 0.1  # the share of a time budget spent before each look at the pace (see BudgetProbe)


class LrSchedule:
    """The learning-rate factor of each step: a linear warm-up, then a linear decay to 0 at ``total``.

    A time budget may move ``total`` (``move``) before any step. The factor then goes on from its value
    at that step, still warming up if it was (to 1 at the warm-up's end, pulled in if the run got short),
    then decays linearly to 0 at the new total: the learning rate never jumps."""

    def __init__(self, total: int, warmup_fraction: float) -> None:
        self.warmup_fraction = warmup_fraction
        self.total = total
        self.warmup = int(total * warmup_fraction)
        self.anchor: tuple[int, float] | None = None  # (step, its factor) of the last move

    def move(self, total: int, step: int) -> None:
        here = self.factor(step)
        self.warmup = max(step, min(self.warmup, int(total * self.warmup_fraction)))
        self.total, self.anchor = total, (step, here)

    def state(self) -> dict[str, Any]:
        return {"total": self.total, "warmup": self.warmup, "anchor": self.anchor}

    def restore(self, state: dict[str, Any]) -> None:
        """The schedule a checkpoint was written under, moves included."""
        self.total, self.warmup = int(state["total"]), int(state["warmup"])
        self.anchor = None if state["anchor"] is None else (int(state["anchor"][0]), float(state["anchor"][1]))

    def factor(self, step: int) -> float:
        if self.anchor is None:
            if step < self.warmup:
                return (step + 1) / max(1, self.warmup)
            return max(0.0, (self.total - step) / max(1, self.total - self.warmup))
        at, here = self.anchor
        if step < self.warmup:  # still warming up: from here to 1 at the warm-up's end
            return here + (1.0 - here) * (step - at) / max(1, self.warmup - at)
        top = 1.0 if self.warmup > at else here
        return max(0.0, top * (self.total - step) / max(1, self.total - self.warmup))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class BudgetProbe:
    """Fits a run to a time budget: never more steps than planned, never (by more than ``slack`` of the
    budget) more time than the budget.

    The first look comes once WARMUP_STEPS + PROBE_STEPS steps are done and PROBE_SHARE of the budget is
    spent (or, when steps are slow and the budget short, once half of it is spent). Then it looks again
    each time another PROBE_SHARE of the budget is spent. Each look times the later half of the steps so
    far (never the first WARMUP_STEPS): many steps, as batch lengths vary, yet not the slow early ones;
    later looks take the steps since the last look instead when those were slower. After the first
    look it moves the end again only if the run would overrun by more than ``slack`` of the budget, or
    (while short of its planned steps) finish more than ``slack`` early.

    A GPU speeds up for hundreds of steps, as it meets each batch shape for the first time
    (length-grouped batches have many): timing steps 5 to 25 alone once cut a 4-epoch run to a quarter
    of its steps when all of them would have fitted."""

    def __init__(self, budget_s: float, device: torch.device, began: float,
                 clock: Callable[[], float] = time.perf_counter, slack: float = 0.02) -> None:
        self.budget_s, self.device, self.began, self.clock, self.slack = budget_s, device, began, clock, slack
        self.marks: list[float] = []  # the time before each step of this invocation
        self.look: tuple[int, float] | None = None  # (steps done, time) at the last look
        self.per_step = 0.0

    def steps_that_fit(self, done: int, step: int, total: int, planned: int) -> int | None:
        """Called before each step (``done`` steps into this invocation, ``step`` overall, ``total`` now
        the end, ``planned`` the end without a budget): the new end when this step is a look that moves
        it, else None."""
        now = self.clock()
        self.marks.append(now)
        if self.look is None:
            spent = now - self.began
            probed = done >= WARMUP_STEPS + PROBE_STEPS and spent >= PROBE_SHARE * self.budget_s
            if not probed and not (done > WARMUP_STEPS and spent >= 0.5 * self.budget_s):  # slow steps, short budget
                return None
        elif now - self.look[1] < PROBE_SHARE * self.budget_s:
            return None
        since = max(WARMUP_STEPS, done // 2)
        since_time = self.marks[since]
        synchronize(self.device)
        now = self.clock()
        self.per_step = (now - since_time) / (done - since)
        first = self.look is None
        if not first:  # the pace since the last look, if slower: a machine that slows down is seen at once
            self.per_step = max(self.per_step, (now - self.look[1]) / max(1, done - self.look[0]))
        self.look = (done, now)
        left = max(0.0, self.budget_s - (now - self.began))
        fits = min(planned, step + int(left / self.per_step))
        if first:
            return fits if fits < total else None
        over = (total - step) * self.per_step - left  # seconds past the budget at the present end
        moves = over > self.slack * self.budget_s or (total < planned and -over > self.slack * self.budget_s)
        return fits if moves and abs(fits - total) * self.per_step > self.slack * self.budget_s else None
