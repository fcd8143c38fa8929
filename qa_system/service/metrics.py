"""Prometheus metrics: requests by route and status, latency histograms, errors, store size, and
each worker's resident memory (a long-running service must show whether it grows).

Each app has its own registry (several apps can live in one process, as in the tests). With
several uvicorn workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before the workers
start (``run_server`` does) and every worker's counters are summed at scrape time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..hardware import resident_bytes
from .limits import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
UNMATCHED_ROUTE = "<unmatched>"

StatsSource = Callable[[], Any]  # returns StoreStats-like object or None when not loaded
ReadySource = Callable[[], bool]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        r = self.registry
        self.requests = Counter("qa_http_requests_total", "HTTP requests by route and status.",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("qa_http_request_duration_seconds", "HTTP request latency.",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("qa_http_errors_total", "Error responses by error type.",
                              ["type", "status"], registry=r)
        self.ask_seconds = Histogram("qa_ask_duration_seconds", "Time answering one question "
                                     "(retrieval + reading of its batch), without queueing.",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.ask_batch_size = Histogram("qa_ask_batch_size", "Questions answered together in one batch.",
                                        buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.ask_in_flight = Gauge("qa_ask_in_flight", "Questions being answered or waiting for a slot.",
                                   registry=r, multiprocess_mode="livesum")
        self.ask_rejected = Counter("qa_ask_rejected_total", "Questions refused because the queue was full.",
                                    registry=r)
        self.ingested = Counter("qa_ingested_documents_total", "Documents sent to the ingest endpoint by outcome.",
                                ["outcome"], registry=r)
        # per worker process (a pid label with several workers), as of its last request or scrape
        self.worker_memory = Gauge("qa_worker_resident_memory_bytes", "Resident memory of the worker process.",
                                   registry=r, multiprocess_mode="liveall")
        self._extra: list[Collector] = []

    def note_memory(self) -> None:
        held = resident_bytes()
        if held is not None:
            self.worker_memory.set(held)

    def add_store_collector(self, stats: StatsSource, ready: ReadySource) -> None:
        self._extra.append(_StoreCollector(stats, ready))

    def record_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        self.note_memory()

    def record_error(self, type_: str, status: int) -> None:
        self.errors.labels(type_, str(status)).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text (blocking: call it in a worker thread). ``qa_worker_resident_memory_bytes``
        is there always (one series per live worker, by pid, with several); one process also shows the
        standard ``process_*`` metrics (CPU seconds, resident memory, open files), which cannot be
        summed over workers."""
        self.note_memory()
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = CollectorRegistry()
            registry.register(_Forward(self.registry))
            ProcessCollector(registry=registry)
        for collector in self._extra:
            registry.register(collector)
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward(Collector):
    """Exposes another registry's metrics (so the store collector can be added per scrape)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self._registry.collect()


class _StoreCollector(Collector):
    def __init__(self, stats: StatsSource, ready: ReadySource) -> None:
        self._stats = stats
        self._ready = ready

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("qa_ready", "1 when the models are loaded and the store is open.",
                                value=1.0 if self._ready() else 0.0)
        stats = self._stats()
        if stats is None:
            return
        for name, doc, value in (
            ("qa_store_documents", "Documents in the store.", stats.documents),
            ("qa_store_chunks", "Chunks (passages) in the store.", stats.chunks),
            ("qa_index_vectors", "Vectors in this worker's index generation.", stats.vectors),
            ("qa_index_bytes", "Size of the live index segment files in bytes.", stats.index_bytes),
            ("qa_index_segments", "Live index segment files (compaction merges them).", stats.segments),
            ("qa_index_tombstones", "Deleted chunks whose vectors await compaction.", stats.tombstones),
            ("qa_index_generation", "Current index generation.", stats.generation),
        ):
            yield GaugeMetricFamily(name, doc, value=float(value))


class MetricsMiddleware:
    """Counts every HTTP request by its route template (never the raw path) and status."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, route_of: Callable[[Scope], str | None]) -> None:
        self.app = app
        self.metrics = metrics
        self.route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = self._route(scope)
            self.metrics.record_request(scope.get("method", ""), route, status, time.perf_counter() - began)

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        return self.route_of(scope) or UNMATCHED_ROUTE
