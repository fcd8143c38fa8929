"""Answer concurrent questions in batches.

Reading several questions in one ``QASystem.ask_many`` call is much cheaper per question than one
call each (``benchmarks/reader_throughput.py`` measured 8 questions per call at 1.7x the speed of
one per call on a CPU). `AskBatcher` gets that for a service answering many questions at once,
with no timer and no added latency when it is idle:

- at most ``slots`` batches run at once, each in a worker thread;
- a question that finds a free slot starts at once, alone;
- questions that arrive while every slot is busy wait in arrival order; when a slot frees, the
  oldest waiting question leads the next batch and takes with it up to ``max_batch - 1`` other
  waiting questions with the same key (the same top-k values and filters);
- beyond ``queue`` waiting questions, new ones are refused (`QueueFull`).

No background task is needed: the leader of a batch runs it in its own request and hands the
results to the others; when it is done it wakes the next leader.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread

P = TypeVar("P")
R = TypeVar("R")


class QueueFull(Exception):
    """Too many questions are waiting."""


@dataclass(eq=False)
class _Waiter(Generic[P]):
    key: Hashable
    payload: P
    wake: anyio.Event = field(default_factory=anyio.Event)
    leads: bool = False  # holds a slot and runs the next batch
    finished: bool = False
    result: Any = None
    error: BaseException | None = None


class AskBatcher(Generic[P, R]):
    """``run_batch(payloads)`` must return one result per payload, in order; all payloads of a
    call share one key. ``observe(size, seconds)`` is called after every batch (metrics)."""

    def __init__(self, run_batch: Callable[[Sequence[P]], Sequence[R]], *, slots: int, max_batch: int,
                 queue: int, observe: Callable[[int, float], None] | None = None) -> None:
        if slots <= 0 or max_batch <= 0 or queue < 0:
            raise ValueError("slots and max_batch must be positive and queue not negative")
        self._run_batch = run_batch
        self.slots, self.max_batch, self.queue = slots, max_batch, queue
        self._observe = observe
        self._waiting: deque[_Waiter[P]] = deque()
        self._running = 0  # slots taken (batches running or leaders about to start one)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def submit(self, key: Hashable, payload: P) -> R:
        waiter: _Waiter[P] = _Waiter(key, payload)
        if self._running < self.slots and not self._waiting:
            self._running += 1
            waiter.leads = True
        elif len(self._waiting) >= self.queue:
            raise QueueFull(f"{len(self._waiting)} questions are already waiting")
        else:
            self._waiting.append(waiter)
            try:
                await waiter.wake.wait()
            except BaseException:
                self._abandon(waiter)
                raise
        if not waiter.finished:  # woken to lead: run a batch that starts with this question
            await self._lead(waiter)
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    async def _lead(self, leader: _Waiter[P]) -> None:
        batch = [leader] + self._take_same_key(leader.key, self.max_batch - 1)
        began = time.perf_counter()
        try:
            # Shielded: if the leader's client goes away, the other questions still need the results.
            with anyio.CancelScope(shield=True):
                results = await anyio.to_thread.run_sync(self._run_batch, [w.payload for w in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} questions returned {len(results)} results")
            for w, r in zip(batch, results, strict=True):
                w.result = r
        except BaseException as e:  # every question of the batch gets the error
            for w in batch:
                w.error = e
            if not isinstance(e, Exception):
                raise
        finally:
            for w in batch:
                w.finished = True
                if w is not leader:
                    w.wake.set()
            if self._observe is not None:
                self._observe(len(batch), time.perf_counter() - began)
            self._running -= 1
            self._wake_next_leader()

    def _take_same_key(self, key: Hashable, n: int) -> list[_Waiter[P]]:
        taken: list[_Waiter[P]] = []
        kept: deque[_Waiter[P]] = deque()
        while self._waiting:
            w = self._waiting.popleft()
            (taken if len(taken) < n and w.key == key else kept).append(w)
        self._waiting = kept
        return taken

    def _wake_next_leader(self) -> None:
        while self._running < self.slots and self._waiting:
            nxt = self._waiting.popleft()
            nxt.leads = True
            self._running += 1
            nxt.wake.set()

    def _abandon(self, waiter: _Waiter[P]) -> None:
        """A waiting request was cancelled (client gone): drop it, pass on its slot if it had one."""
        if waiter in self._waiting:
            self._waiting.remove(waiter)
        elif waiter.leads and not waiter.finished:
            self._running -= 1
            self._wake_next_leader()
