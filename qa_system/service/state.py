"""What one app instance holds: the QASystem, its loading state, the thread limits, readiness.

The model work blocks, so it runs in worker threads: questions through an `AskBatcher`
(``ask_concurrency`` batches at once, each of up to ``ask_batch_size`` waiting questions with the
same top-k and filters; ``ask_queue`` more may wait, then 503), writes under their own limiter of
one (QASystem serialises writes anyway; this keeps them from taking question slots).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ..config import Settings
from ..errors import QASystemError
from ..types import LoadedModels
from .batching import AskBatcher, QueueFull
from .errors import ApiError
from .metrics import Metrics
from .settings import ServiceSettings

logger = logging.getLogger("qa_system.service")
T = TypeVar("T")

READY_CHECK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class AskJob:
    """One question with its parameters; questions with equal ``key`` can share a batch."""

    question: str
    top_k_retriever: int | None = None
    top_k_reader: int | None = None
    filters: Mapping[str, Any] | None = None
    lexical_weight: float | None = None

    @property
    def key(self) -> str:
        return json.dumps([self.top_k_retriever, self.top_k_reader, self.filters or {}, self.lexical_weight],
                          sort_keys=True, default=str)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: tuple[str, ...]


class ServiceState:
    def __init__(self, settings: Settings, service: ServiceSettings, metrics: Metrics, *,
                 system: Any = None, factory: Callable[[Settings], Any] | None = None) -> None:
        self.settings = settings
        self.service = service
        self.metrics = metrics
        self._system = system
        self._owns_system = system is None
        self._factory = factory
        self._loaded = False
        self._load_error: str | None = None
        self._loading_thread: threading.Thread | None = None
        self._asks: AskBatcher[AskJob, Any] | None = None
        self._write_limiter: anyio.CapacityLimiter | None = None
        self._check_lock = threading.Lock()
        self._last_check: tuple[float, Readiness] | None = None

    # ------------------------------------------------------------------------- lifecycle

    def start(self, *, background: bool = True) -> None:
        """Load the models and open the store, in a thread unless ``background`` is False."""
        self._asks = AskBatcher(self._answer_batch, slots=self.service.ask_concurrency,
                                max_batch=self.service.ask_batch_size, queue=self.service.ask_queue,
                                observe=self._observe_batch)
        self._write_limiter = anyio.CapacityLimiter(1)
        if background:
            self._loading_thread = threading.Thread(target=self._load, name="qa-load", daemon=True)
            self._loading_thread.start()
        else:
            self._load()

    def _load(self) -> None:
        began = time.perf_counter()
        try:
            system = self._system
            if system is None:
                if self._factory is None:
                    from ..system import QASystem

                    system = QASystem(self.settings)
                else:
                    system = self._factory(self.settings)
            system.load()
            system.load_embedder()  # both models now, so that ready means "can answer"
            system.load_reader()
            if hasattr(system, "load_reranker"):  # a custom system (factory) may have none
                system.load_reranker()
            self._system = system
            self._loaded = True
            logger.info("qa_system service ready: models loaded and store open in %.1fs",
                        time.perf_counter() - began)
        except QASystemError as e:
            self._load_error = f"{type(e).__name__}: {e}"
            logger.error("qa_system service cannot start: %s", self._load_error)
        except Exception as e:  # noqa: BLE001 - reported by /readyz, the process stays up for probes
            self._load_error = f"{type(e).__name__}: {e}"
            logger.exception("qa_system service failed to load")

    def stop(self) -> None:
        if self._loading_thread is not None:
            self._loading_thread.join(timeout=30)
        if self._owns_system and self._system is not None:
            try:
                self._system.close()
            except QASystemError as e:
                logger.warning("closing the store failed: %s", e)

    @property
    def loaded(self) -> bool:
        return self._loaded

    def system(self) -> Any:
        """The loaded QASystem, or a 503 while it is loading / after loading failed."""
        if not self._loaded:
            if self._load_error is not None:
                raise ApiError(503, "the service failed to start; see /readyz and the server log",
                               type="NotReady")
            raise ApiError(503, "the service is still loading its models", type="NotReady",
                           headers={"Retry-After": "5"})
        return self._system

    def models(self) -> LoadedModels:
        """The loaded models as ``QASystem.describe_models`` reports them; none while loading."""
        if not self._loaded:
            return LoadedModels()
        return self._system.describe_models()

    def stats_or_none(self) -> Any:
        if not self._loaded:
            return None
        try:
            return self._system.stats()
        except QASystemError:
            return None

    # ---------------------------------------------------------------------- thread pools

    async def ask(self, job: AskJob) -> Any:
        """Answer one question, batched with others waiting with the same parameters."""
        if self._asks is None:
            raise ApiError(503, "the service has not started", type="NotReady")
        self.metrics.ask_in_flight.inc()
        try:
            return await self._asks.submit(job.key, job)
        except QueueFull:
            self.metrics.ask_rejected.inc()
            raise ApiError(503, "too many questions at once; retry shortly", type="Overloaded",
                           headers={"Retry-After": "1"}) from None
        finally:
            self.metrics.ask_in_flight.dec()

    def _answer_batch(self, jobs: Sequence[AskJob]) -> list[Any]:
        first = jobs[0]
        return self.system().ask_many([j.question for j in jobs], top_k_retriever=first.top_k_retriever,
                                      top_k_reader=first.top_k_reader, filters=first.filters,
                                      lexical_weight=first.lexical_weight)

    def _observe_batch(self, size: int, seconds: float) -> None:
        self.metrics.ask_batch_size.observe(size)
        for _ in range(size):
            self.metrics.ask_seconds.observe(seconds)

    async def run_write(self, func: Callable[[], T]) -> T:
        if self._write_limiter is None:
            raise ApiError(503, "the service has not started", type="NotReady")
        return await anyio.to_thread.run_sync(func, limiter=self._write_limiter)

    async def run_read(self, func: Callable[[], T]) -> T:
        """Short store calls (a document, stats, feedback) on anyio's default thread pool."""
        return await anyio.to_thread.run_sync(func)

    # ------------------------------------------------------------------------- readiness

    async def readiness(self) -> Readiness:
        """Models loaded and the store's SQL rows and index agree by count, every segment open
        (``Store.quick_check``: no file or id list is read; at most every
        ``ready_check_interval_s``; a check running longer than 5 s keeps the previous result)."""
        if not self._loaded:
            reason = self._load_error or "loading the models and opening the store"
            return Readiness(False, (reason,))
        cached = self._cached_check()
        if cached is not None:
            return cached
        with anyio.move_on_after(READY_CHECK_TIMEOUT_S):
            return await anyio.to_thread.run_sync(self._check_store, abandon_on_cancel=True)
        previous = self._last_check
        if previous is not None:
            return previous[1]
        return Readiness(False, ("the store check is still running",))

    def _cached_check(self) -> Readiness | None:
        last = self._last_check
        if last is not None and time.monotonic() - last[0] < self.service.ready_check_interval_s:
            return last[1]
        return None

    def _check_store(self) -> Readiness:
        with self._check_lock:  # one check at a time; later callers reuse its result
            cached = self._cached_check()
            if cached is not None:
                return cached
            try:
                report = self._system.quick_check()
                result = (Readiness(True, ()) if report.ok
                          else Readiness(False, (f"store check failed: {report.summary()}",)))
            except QASystemError as e:
                result = Readiness(False, (f"store check failed: {type(e).__name__}: {e}",))
            self._last_check = (time.monotonic(), result)
            return result
