"""Load test of the HTTP service: many questions at once while documents are added and deleted.

    .venv/bin/python benchmarks/load_test.py                 # 2000 questions, 16 at a time
    .venv/bin/python benchmarks/load_test.py -n 100          # a quick check

Steps: ingest data/sample_corpus into a fresh store (``qa-system ingest``), start
``qa-system serve`` on 127.0.0.1 (a free port), wait for /readyz, ask the known questions once
(the baseline), then fire N questions from data/sample_questions.jsonl with C in flight while a
writer adds documents (JSON and a file upload) and deletes them again. Afterwards the known
questions must get the same top answer source as before, and no request may have failed.
Prints requests/s, latency percentiles, failures, the workers' resident memory when ready and
at the end (from /metrics: growth under load shows there), and the machine; exits 1 on any failure.

Traffic goes only to the server this script starts on 127.0.0.1; every loop is bounded by the
request count and --time-limit. The reader is QA_SYSTEM_READER_MODEL (or --reader-model), else
the packaged one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "sample_corpus"
QUESTIONS = REPO / "data" / "sample_questions.jsonl"
KNOWN = 5  # known questions whose answers are checked before and after the load

# Unrelated to the corpus, so the writes cannot change the answers to the known questions.
WRITES = [
    {"id": "load-test-garden-1", "title": "Ferns", "text": "Water the ferns in the north bed every third day."},
    {"id": "load-test-garden-2", "title": "Roses", "text": "Prune the climbing roses in late March, never in frost."},
]
UPLOAD = ("load-test-orchard.md", b"# Orchard\n\nThe pear trees are thinned in June and picked in September.\n")


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    write_failures: list[str] = field(default_factory=list)
    done: int = 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--requests", type=int, default=2000, help="questions to send (default 2000)")
    p.add_argument("-c", "--concurrency", type=int, default=16, help="questions in flight (default 16)")
    p.add_argument("--time-limit", type=float, default=900.0, help="stop sending after this many seconds")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    p.add_argument("--ask-concurrency", type=int, help="QA_SYSTEM_ASK_CONCURRENCY for the server")
    p.add_argument("--ask-batch-size", type=int, help="QA_SYSTEM_ASK_BATCH_SIZE for the server (1: no batching)")
    p.add_argument("--reader-model", help="reader model folder (default: $QA_SYSTEM_READER_MODEL or packaged)")
    p.add_argument("--store", type=Path, help="store folder (default: a fresh temporary one, removed after)")
    p.add_argument("--request-timeout", type=float, default=300.0,
                   help="seconds a question may take before it counts as failed (default 300)")
    p.add_argument("--startup-timeout", type=float, default=600.0, help="seconds to wait for /readyz")
    p.add_argument("--json-out", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--memory-every", type=float, default=15.0, metavar="S",
                   help="read the workers' resident memory from /metrics every S seconds under load (default 15)")
    args = p.parse_args(argv)
    if args.requests <= 0 or args.concurrency <= 0 or args.time_limit <= 0 or args.memory_every <= 0:
        p.error("--requests, --concurrency, --time-limit and --memory-every must be positive")
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()}
    with contextlib.suppress(AttributeError):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), None)
        info["cpu_model"] = model
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = int(os.environ.get("QA_SYSTEM_TORCH_THREADS") or torch.get_num_threads())
    except ImportError:
        pass
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run(cmd: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=1800)


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            r = await client.get("/readyz")
            if r.status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the server was not ready after {timeout:.0f}s")


async def top_sources(client: httpx.AsyncClient, questions: list[str]) -> list[str | None]:
    sources = []
    for q in questions:
        r = await client.post("/v1/ask", json={"question": q})
        r.raise_for_status()
        answers = r.json()["answers"]
        sources.append(answers[0]["source"] if answers else None)
    return sources


async def ask_load(client: httpx.AsyncClient, questions: list[str], n: int, concurrency: int,
                   deadline: float, outcome: Outcome) -> None:
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            if time.monotonic() > deadline:
                return
            question = questions[i % len(questions)]
            began = time.perf_counter()
            try:
                r = await client.post("/v1/ask", json={"question": question})
                ok = r.status_code == 200 and r.json().get("question") == question.strip()
                detail = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as e:
                ok, detail = False, f"{type(e).__name__}: {e}"
            outcome.latencies.append(time.perf_counter() - began)
            outcome.done += 1
            if not ok:
                outcome.failures.append(f"question {i}: {detail}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def memory_sampler(client: httpx.AsyncClient, every: float, outcome: Outcome, finished: asyncio.Event,
                         samples: list[tuple[int, float]]) -> None:
    """(questions answered, workers' resident MiB) every `every` seconds until the questions end."""
    while True:
        try:
            await asyncio.wait_for(finished.wait(), timeout=every)
            return
        except asyncio.TimeoutError:
            pass
        try:
            mib = await worker_memory_mib(client)
        except httpx.HTTPError:
            continue  # a busy server may be slow to answer; the next sample will do
        if mib is not None:
            samples.append((outcome.done, mib))


async def writer(client: httpx.AsyncClient, outcome: Outcome, total: int, finished: asyncio.Event) -> None:
    """Add documents (JSON, then a file upload) while the questions run, then delete them."""

    async def step(name: str, request: Any) -> Any:
        began = time.perf_counter()
        try:
            r = await request
        except httpx.HTTPError as e:
            outcome.write_failures.append(f"{name}: {type(e).__name__}: {e}")
            return None
        outcome.writes.append(f"{name}: {r.status_code} in {time.perf_counter() - began:.2f}s")
        if r.status_code != 200:
            outcome.write_failures.append(f"{name}: {r.status_code} {r.text[:200]}")
            return None
        return r.json()

    async def reached(fraction: float) -> None:
        while outcome.done < total * fraction and not finished.is_set():
            await asyncio.sleep(0.05)

    await reached(0.1)
    added = await step("ingest JSON", client.post("/v1/documents", json={"documents": WRITES}))
    await reached(0.3)
    uploaded = await step("ingest upload", client.post(
        "/v1/documents", files={"files": (UPLOAD[0], UPLOAD[1], "text/markdown")}))
    await reached(0.5)
    for body in (added, uploaded):
        for doc in (body or {}).get("documents", []):
            await step(f"delete {doc['source']}", client.delete(f"/v1/documents/{doc['id']}"))


async def load_test(args: argparse.Namespace, base_url: str, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    texts = [q["question"] for q in questions]
    limits = httpx.Limits(max_connections=args.concurrency + 4, max_keepalive_connections=args.concurrency + 4)
    async with httpx.AsyncClient(base_url=base_url, timeout=args.request_timeout, limits=limits) as client:
        began_startup = time.monotonic()
        await wait_ready(client, proc, args.startup_timeout)
        startup_s = time.monotonic() - began_startup
        known = texts[:KNOWN]
        baseline = await top_sources(client, known)
        memory_ready = await worker_memory_mib(client)

        outcome = Outcome()
        began = time.perf_counter()
        deadline = time.monotonic() + args.time_limit
        finished = asyncio.Event()

        async def questions_then_signal() -> None:
            try:
                await ask_load(client, texts, args.requests, args.concurrency, deadline, outcome)
            finally:
                finished.set()

        samples: list[tuple[int, float]] = []
        await asyncio.gather(questions_then_signal(), writer(client, outcome, args.requests, finished),
                             memory_sampler(client, args.memory_every, outcome, finished, samples))
        wall = time.perf_counter() - began

        after = await top_sources(client, known)
        metrics = (await client.get("/metrics")).text
        stats = (await client.get("/v1/stats")).json()

    expected_files = [q["source_file"] for q in questions[:KNOWN]]
    changed = [f"{q!r}: {b} -> {a}" for q, b, a in zip(known, baseline, after, strict=True) if a != b]
    return {
        "requests_planned": args.requests, "requests_done": outcome.done, "concurrency": args.concurrency,
        "workers": args.workers, "wall_s": round(wall, 2), "startup_s": round(startup_s, 1),
        "requests_per_s": round(outcome.done / wall, 2) if wall > 0 else None,
        "latency_s": {"p50": round(percentile(outcome.latencies, 0.5), 3),
                      "p95": round(percentile(outcome.latencies, 0.95), 3),
                      "p99": round(percentile(outcome.latencies, 0.99), 3),
                      "max": round(max(outcome.latencies, default=float("nan")), 3),
                      "mean": round(statistics.fmean(outcome.latencies), 3) if outcome.latencies else None},
        "failures": len(outcome.failures), "failure_examples": outcome.failures[:5],
        "writes": outcome.writes, "write_failures": outcome.write_failures,
        "known_questions_changed": changed,
        "known_questions_on_expected_file": sum(
            1 for s, f in zip(after, expected_files, strict=True) if s is not None and s.split("#")[0].endswith(f)),
        "known_questions": len(known),
        "store_documents_after": stats.get("documents"),
        "server_ask_seconds_count": _metric(metrics, "qa_ask_duration_seconds_count"),
        "server_mean_batch_size": _ratio(_metric(metrics, "qa_ask_batch_size_sum"),
                                         _metric(metrics, "qa_ask_batch_size_count")),
        "timed_out": outcome.done < args.requests,
        # resident memory of the workers (summed; each as of its last request): does it grow under load?
        # and under load, as [questions answered, MiB] every --memory-every seconds: does it level off?
        "server_memory_mib": {"ready": memory_ready, "end": _worker_memory_mib(metrics),
                              "under_load": samples},
    }


async def worker_memory_mib(client: httpx.AsyncClient) -> float | None:
    return _worker_memory_mib((await client.get("/metrics")).text)


def _worker_memory_mib(text: str) -> float | None:
    """The workers' resident memory in MiB, summed over the pid-labelled samples."""
    values = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith("qa_worker_resident_memory_bytes")]
    return round(sum(values) / 2**20, 1) if values else None


def _metric(text: str, name: str) -> float | None:
    """The value of an unlabelled Prometheus sample."""
    return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")), None)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="qa-load-"))
    store = args.store or workdir / "store"
    log = workdir / "server.log"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}
    if args.reader_model:
        env["QA_SYSTEM_READER_MODEL"] = str(Path(args.reader_model).resolve())
    if args.ask_concurrency:
        env["QA_SYSTEM_ASK_CONCURRENCY"] = str(args.ask_concurrency)
    if args.ask_batch_size:
        env["QA_SYSTEM_ASK_BATCH_SIZE"] = str(args.ask_batch_size)
    for name in ("QA_SYSTEM_API_KEYS_READ", "QA_SYSTEM_API_KEYS_WRITE", "QA_SYSTEM_DB_URL"):
        env.pop(name, None)  # a fresh, open store of its own
    info = machine_info()
    print(f"machine: {json.dumps(info)}", flush=True)
    cli = [sys.executable, "-m", "qa_system.cli"]
    proc: subprocess.Popen[bytes] | None = None
    try:
        print(f"ingesting {CORPUS} into {store} ...", flush=True)
        run(cli + ["ingest", str(CORPUS), "--store", str(store), "--no-progress"], env, log)
        port = free_port()
        serve = cli + ["serve", "--store", str(store), "--host", "127.0.0.1", "--port", str(port),
                       "--workers", str(args.workers), "--log-level", "warning"]
        print(f"starting: {' '.join(serve[1:])}", flush=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(serve, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        results = asyncio.run(load_test(args, f"http://127.0.0.1:{port}", proc))
    except (RuntimeError, subprocess.SubprocessError, httpx.HTTPError) as e:
        print(f"load test could not run: {e}\nserver log: {log}", file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
    results["machine"] = info
    if hasattr(os, "getloadavg"):
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=2))
    lat = results["latency_s"]
    print(f"\n{results['requests_done']}/{results['requests_planned']} questions, concurrency "
          f"{results['concurrency']}, {results['workers']} worker(s): {results['requests_per_s']} req/s, "
          f"p50 {lat['p50']}s, p95 {lat['p95']}s, failures {results['failures']}, "
          f"write failures {len(results['write_failures'])}, known answers changed "
          f"{len(results['known_questions_changed'])}, mean batch {results['server_mean_batch_size']}, "
          f"server memory {results['server_memory_mib']['ready']} -> {results['server_memory_mib']['end']} MiB; "
          f"cores {info.get('cpu_count')}, "
          f"torch threads {info.get('torch_threads')}")
    curve = results["server_memory_mib"]["under_load"]
    if curve:
        shown = [curve[round(i * (len(curve) - 1) / 7)] for i in range(8)] if len(curve) > 8 else curve
        print("server memory under load (questions answered: MiB): "
              + ", ".join(f"{done}: {mib:.0f}" for done, mib in shown))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    ok = (results["failures"] == 0 and not results["write_failures"] and not results["known_questions_changed"]
          and len(results["writes"]) == 5 and not results["timed_out"])
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"FAILED (server log kept: {log})", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
