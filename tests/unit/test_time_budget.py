"""The time budget of the trainer on a fake clock: when the probe looks, what it decides, and the
learning-rate plan it moves (which must never jump)."""
from __future__ import annotations

import json
from itertools import pairwise

import torch

from qa_system.training.schedule import PROBE_STEPS, WARMUP_STEPS, BudgetProbe, LrSchedule


class FakeRun:
    """Drives the probe and the plan as the training loop does; step ``i`` lasts ``step_s(i)``."""

    def __init__(self, budget_s: float, step_s, planned: int, warmup_fraction: float = 0.06) -> None:
        self.now = 0.0
        self.planned = self.total = planned
        self.step_s = step_s
        self.probe = BudgetProbe(budget_s, torch.device("cpu"), began=0.0, clock=lambda: self.now)
        self.plan = LrSchedule(planned, warmup_fraction)
        self.moves: list[tuple[int, int]] = []  # (step, new end)
        self.factors: list[float] = []  # the learning-rate factor of each step run

    def run(self) -> int:
        step = 0
        while step < self.total:
            fits = self.probe.steps_that_fit(step, step, self.total, self.planned)
            if fits is not None and fits != self.total:
                self.moves.append((step, fits))
                self.total = fits
                self.plan.move(fits, step)
                if step >= self.total:
                    break
            self.factors.append(self.plan.factor(step))
            self.now += self.step_s(step)
            step += 1
        return step


def biggest_jump(factors: list[float]) -> float:
    return max(abs(b - a) for a, b in pairwise(factors))


def test_slow_first_steps_do_not_cut_a_run_that_fits() -> None:
    # The first 10 steps take 1 s (kernel selection on new shapes), the rest 0.1 s: 1,000 steps need
    # 109 s, well inside 200 s. Timing steps 5-25 alone would say 0.325 s/step and fit 600 steps.
    run = FakeRun(200.0, lambda i: 1.0 if i < 10 else 0.1, planned=1000)
    assert run.run() == 1000
    assert run.moves == []
    assert abs(run.probe.per_step - 0.1) < 1e-9


def test_a_gpu_that_keeps_speeding_up_gets_its_steps_back() -> None:
    # The pace improves over the first 800 steps (0.15 s down to 0.04 s a step, as seen on an H200 with
    # length-grouped batches). The first look sees a slow pace and cuts the run; later looks give the
    # steps back, and the whole plan (about 176 s) ends inside the 260 s budget.
    run = FakeRun(260.0, lambda i: max(0.04, 0.15 - i * 0.11 / 800), planned=3300)
    assert run.run() == 3300
    assert run.moves[0][1] < 3300 and run.moves[-1][1] == 3300
    assert run.now <= 260.0
    assert biggest_jump(run.factors) < 0.02  # the learning rate moves smoothly through every move


def test_a_run_that_cannot_fit_is_cut_to_the_budget() -> None:
    run = FakeRun(50.0, lambda i: 0.5, planned=1000)
    done = run.run()
    first_look = WARMUP_STEPS + PROBE_STEPS  # 12.5 s spent: past a tenth of the budget
    assert run.moves == [(first_look, first_look + int((50.0 - 0.5 * first_look) / 0.5))]
    assert done == 100 and run.now == 50.0
    assert run.factors[-1] < 0.02  # the schedule was fitted to the shorter run: it decays to the end


def test_the_first_look_waits_for_a_tenth_of_the_budget() -> None:
    run = FakeRun(1000.0, lambda i: 0.5, planned=10_000)
    run.run()
    assert run.moves[0][0] == 200  # 100 s = a tenth of 1,000 s, at 0.5 s/step


def test_a_run_that_slows_down_later_is_cut_again() -> None:
    # 0.1 s/step until step 400, then 0.3 s/step (another job took the machine): the first look fits
    # 1,000 steps, a later one sees the slower pace and shortens the run so it still ends in time.
    run = FakeRun(100.0, lambda i: 0.1 if i < 400 else 0.3, planned=2000)
    done = run.run()
    assert len(run.moves) >= 2 and run.moves[0][1] == 1000
    assert run.now <= 100.0 * 1.02 + 0.3
    assert done < 1000
    assert biggest_jump(run.factors) < 0.02


def test_small_pace_noise_moves_nothing_after_the_first_look() -> None:
    run = FakeRun(100.0, lambda i: 0.1 if i % 2 else 0.1015, planned=2000)
    run.run()
    assert len(run.moves) == 1


def test_a_budget_shorter_than_the_probe_steps_still_ends_near_it() -> None:
    # 8 s steps and a 60 s budget: waiting for 25 timed steps would take 200 s. The look comes once
    # half the budget is spent, and the run ends within a step of the budget.
    run = FakeRun(60.0, lambda i: 8.0, planned=500)
    done = run.run()
    assert run.moves[0] == (WARMUP_STEPS + 1, WARMUP_STEPS + 2)  # 48 s spent at one timed step of 8 s
    assert done == 7 and run.now == 56.0


def test_plan_without_moves_is_warmup_then_linear_decay() -> None:
    plan = LrSchedule(100, 0.1)
    assert [plan.factor(s) for s in (0, 9, 10, 55, 100)] == [0.1, 1.0, 1.0, 0.5, 0.0]


def test_plan_moved_during_warmup_keeps_warming_up_then_decays_to_the_new_end() -> None:
    plan = LrSchedule(1000, 0.1)  # warm-up of 100 steps
    before = plan.factor(50)
    plan.move(500, 50)  # warm-up now ends at 50 (a tenth of 500): decay from here
    assert plan.factor(50) == before
    assert plan.factor(500) == 0.0 and abs(plan.factor(275) - before / 2) < 1e-9
    plan = LrSchedule(1000, 0.1)
    plan.move(2000, 50)  # lengthened: the warm-up keeps its end, then the longer decay
    assert plan.factor(50) == LrSchedule(1000, 0.1).factor(50)
    assert plan.factor(99) < 1.0 and plan.factor(100) == 1.0 and plan.factor(2000) == 0.0


def test_a_moved_schedule_survives_a_checkpoint() -> None:
    plan = LrSchedule(1000, 0.06)
    plan.move(400, 30)  # a time budget cut the run during its warm-up
    restored = LrSchedule(1000, 0.06)  # what a resumed run builds from its config
    assert [restored.factor(s) for s in (30, 200, 399)] != [plan.factor(s) for s in (30, 200, 399)]
    restored.restore(json.loads(json.dumps(plan.state())))  # as stored, through JSON-like types
    assert [restored.factor(s) for s in range(400)] == [plan.factor(s) for s in range(400)]
    assert restored.factor(400) == 0.0
