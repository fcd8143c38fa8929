"""The time-budget probe of the trainer, on a fake clock: which steps it times and what it decides."""
from __future__ import annotations

import torch

from qa_system.training.trainer import PROBE_STEPS, WARMUP_STEPS, _BudgetProbe


class FakeRun:
    """Calls the probe before each step as the training loop does; step ``i`` lasts ``step_s(i)``."""

    def __init__(self, budget_s: float, step_s, total: int) -> None:
        self.now = 0.0
        self.total = total
        self.step_s = step_s
        self.probe = _BudgetProbe(budget_s, torch.device("cpu"), began=0.0, clock=lambda: self.now)
        self.looks: list[tuple[int, int]] = []  # (step, steps that fit) whenever the run was shortened

    def run(self) -> int:
        step = 0
        while step < self.total:
            fits = self.probe.steps_that_fit(step, step, self.total)
            if fits is not None and fits < self.total:
                self.looks.append((step, fits))
                self.total = fits
                if step >= self.total:
                    break
            self.now += self.step_s(step)
            step += 1
        return step


def test_slow_first_steps_do_not_cut_a_run_that_fits() -> None:
    # The first 10 steps take 1 s (kernel selection on new shapes), the rest 0.1 s: 1,000 steps need
    # 109 s, well inside 200 s. Timing steps 5-25 alone would say 0.325 s/step and fit 600 steps.
    run = FakeRun(200.0, lambda i: 1.0 if i < 10 else 0.1, total=1000)
    assert run.run() == 1000
    assert run.looks == []
    assert abs(run.probe.per_step - 0.1) < 1e-9


def test_a_run_that_cannot_fit_is_cut_to_the_budget() -> None:
    run = FakeRun(50.0, lambda i: 0.5, total=1000)
    done = run.run()
    first_look = WARMUP_STEPS + PROBE_STEPS  # 12.5 s spent: past a tenth of the budget
    assert run.looks[0] == (first_look, first_look + int((50.0 - 0.5 * first_look) / 0.5))
    assert done == 100 and run.now == 50.0


def test_the_first_look_waits_for_a_tenth_of_the_budget() -> None:
    run = FakeRun(1000.0, lambda i: 0.5, total=10_000)
    run.run()
    assert run.looks[0][0] == 200  # 100 s = a tenth of 1,000 s, at 0.5 s/step


def test_a_run_that_slows_down_later_is_cut_again() -> None:
    # 0.1 s/step until step 400, then 0.3 s/step (another job took the machine): the first look fits
    # 1,000 steps, a later one sees the slower pace and shortens the run so it still ends in time.
    run = FakeRun(100.0, lambda i: 0.1 if i < 400 else 0.3, total=2000)
    done = run.run()
    assert len(run.looks) >= 2
    assert run.looks[0][1] == 1000
    assert run.now <= 100.0 * 1.02 + 0.3
    assert done < 1000


def test_small_pace_noise_does_not_shorten_again() -> None:
    # Within the 2% slack, a later look leaves the run alone.
    run = FakeRun(100.0, lambda i: 0.1 if i % 2 else 0.1015, total=2000)
    run.run()
    assert len(run.looks) == 1


def test_a_budget_shorter_than_the_probe_steps_still_ends_near_it() -> None:
    # 8 s steps and a 60 s budget: waiting for 25 timed steps would take 200 s. The look comes once
    # half the budget is spent, and the run ends within a step of the budget.
    run = FakeRun(60.0, lambda i: 8.0, total=500)
    done = run.run()
    assert run.looks[0] == (WARMUP_STEPS + 1, WARMUP_STEPS + 2)  # 48 s spent at one timed step of 8 s
    assert done == 7 and run.now == 56.0
