"""Issue 27, a store that holds a million passages: writes, opening, search latency and recall,
and memory, at 100,000 and 1,000,000 passages, for one or more code trees side by side.

Only the public Store API is used (``Store.open``, ``apply``, ``delete``, ``search``, ``stats``,
``close``, and ``compact`` when a tree has it), so trees with different store designs compare.
Every measurement runs in a fresh subprocess with ``PYTHONPATH=TREE`` (this python), one tree
after the other; the first tree is the baseline of the ratio columns.

Data (benchmarks/_scale_data.py, deterministic from --seed): 3 chunks per document, 80-120
Zipf-distributed words per chunk (function words, then 50,000 made-up ones); metadata ``tenant``
(100 values: a filter matches ~1%) and ``half`` (2: ~50%); 384-d vectors around 2,000 random
centres with overlapping clusters; 200 queries made from stored passages (vector plus noise, 5-8
of the passage's words as text). No embedder runs: store time only.

Stores are built once per tree and size through ``store.apply`` (--batch-docs documents per call;
then ``compact()`` once if the store has it) and cached in stores/scale/<tree>-<N>/ (rebuilt when
the tree's qa_system/ or migrations/ code changes; --rebuild forces it). The exact answers
(numpy over the generated vectors) are cached beside them. Per tree and size, in this order:

  open     a fresh process opens the store (--open-repeats times): seconds, peak RSS
           (ru_maxrss), RSS after open, and its first search;
  search   one process: dense k=10, filtered to 1% (tenant) and 50% (half), hybrid (query texts,
           lexical weight 0.3): one query per call, p50/p95 ms; recall@10 against the exact top-10
           (filtered: the exact filtered top-10), and whether k hits came back every time;
  memory   one process that opened the store and ran the 200 dense searches: RSS and PSS
           (/proc/PID/smaps_rollup); then --processes such processes running together (started
           one after another, so their loading peaks do not add up): their total PSS and its ratio
           to the one process's PSS (one per process when they share nothing);
  writes   on a copy of the store (the cached one stays untouched): add 1,000 chunks (334
           documents, vectors made beforehand) in one apply, --add-repeats times; then delete
           1,000 random documents in one call, --delete-repeats times: p50 ms.

Measuring processes run on --threads threads (OMP/MKL/OpenBLAS variables, faiss, torch).

    .venv/bin/python benchmarks/scale.py --quick                       # 20,000 passages, this tree
    .venv/bin/python benchmarks/scale.py --sizes 100000                # 100,000 passages
    .venv/bin/python benchmarks/scale.py --code /work/wt/old --code .  # old design vs this tree,
                                                                       # 100,000 and 1,000,000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _scale_data import (
    BLOCK_DOCUMENTS,
    CHUNKS_PER_DOCUMENT,
    CLUSTERS,
    DATA_VERSION,
    DIMENSION,
    PASSAGE_NOISE,
    QUERY_NOISE,
    Corpus,
    GroundTruth,
    Neighbours,
    Queries,
    SyntheticDocument,
    document_of_source,
    exact_neighbours,
    recall_at,
)

REPO = Path(__file__).resolve().parents[1]
MODEL = "scale-benchmark-synthetic"
TRUTH_K = 20  # exact neighbours kept per query (ties at the 10th count as hits)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")
READY = "SCALE-READY "
MODES = ("dense", "tenant", "half", "hybrid")
TRUTH_MODE = {"dense": "all", "tenant": "tenant", "half": "half"}
WARM_UP = 5  # queries run before each timed mode (not counted)
ADD_CHUNKS = 1_000
DELETE_DOCUMENTS = 1_000


# =============================================================================== workers
# Run with PYTHONPATH=TREE: they import qa_system from that tree, and nothing from this checkout
# but _scale_data (pure numpy). _common is not imported here: it would put this checkout first.


def _vm_kib(field: str, pid: int | str = "self") -> int:
    """A ``kB`` field of /proc/PID/status (VmRSS) or smaps_rollup (Pss, Rss)."""
    name = "smaps_rollup" if field in ("Pss", "Rss") else "status"
    for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/{name}")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker_setup(code: Path, threads: int) -> None:
    """Check that qa_system comes from ``code``; pin faiss (and torch, if loaded) threads."""
    import qa_system

    where = Path(qa_system.__file__).resolve()
    if not where.is_relative_to(code.resolve()):
        raise SystemExit(f"qa_system was imported from {where}, not from the tree {code}")
    from qa_system.storage import Store  # noqa: F401 - loads faiss (and whatever else the store needs)

    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _open(store_dir: Path) -> Any:
    from qa_system.storage import Store

    return Store.open(store_dir, embedding_model=MODEL, dimension=DIMENSION)


def _check_count(store: Any, passages: int) -> None:
    chunks = store.stats().chunks
    if chunks != passages:
        raise SystemExit(f"the store at {store.directory} holds {chunks} chunks, expected {passages}")


def _document_write(doc: SyntheticDocument, vectors: np.ndarray) -> Any:
    from qa_system.storage import DocumentWrite
    from qa_system.types import Chunk, Document

    document = Document(source=doc.source, text=doc.text, title=f"Synthetic document {doc.index}",
                        metadata=doc.metadata)
    chunks = [Chunk(document.id, j, start, start + len(text), text, text.count(" ") + 1)
              for j, (start, text) in enumerate(zip(doc.starts, doc.chunk_texts, strict=True))]
    return DocumentWrite(document, chunks, vectors)


def _document_id(doc: SyntheticDocument) -> str:
    from qa_system.types import Document

    return Document(source=doc.source, text=doc.text).id


def _load_queries(truth: Path) -> Queries:
    with np.load(truth, allow_pickle=False) as data:
        return Queries(data["passages"], data["vectors"], tuple(data["texts"].tolist()),
                       tuple(data["tenants"].tolist()), tuple(data["halves"].tolist()))


def worker_build(args: argparse.Namespace, corpus: Corpus) -> dict:
    """Build the store in ``args.store`` (a new folder) through ``apply`` batches."""
    store = _open(args.store)
    applied = generated = 0.0
    began = time.perf_counter()
    writes_done = 0
    for lo in range(0, corpus.documents, args.batch_docs):
        t0 = time.perf_counter()
        writes = []
        for block in range(lo // BLOCK_DOCUMENTS, min(corpus.blocks, (lo + args.batch_docs) // BLOCK_DOCUMENTS)):
            vectors, _ = corpus.block_vectors(block)
            first = corpus.block_passages(block).start
            for i in corpus.block_documents(block):
                doc = corpus.document(i)
                at = i * CHUNKS_PER_DOCUMENT - first
                writes.append(_document_write(doc, vectors[at:at + len(doc.chunk_texts)]))
        t1 = time.perf_counter()
        store.apply(writes)
        t2 = time.perf_counter()
        generated += t1 - t0
        applied += t2 - t1
        writes_done += 1
        done = min((lo + args.batch_docs) * CHUNKS_PER_DOCUMENT, corpus.passages)
        print(f"  [{args.tree}] {done:,}/{corpus.passages:,} passages: this apply {t2 - t1:.1f} s, "
              f"all applies {applied:.0f} s ({done / applied:,.0f} passages/s), generating {generated:.0f} s",
              file=sys.stderr, flush=True)
    compact = None
    if callable(getattr(store, "compact", None)):
        t0 = time.perf_counter()
        store.compact()
        compact = time.perf_counter() - t0
        print(f"  [{args.tree}] compact(): {compact:.1f} s", file=sys.stderr, flush=True)
    _check_count(store, corpus.passages)
    documents = store.stats().documents
    store.close()
    return {"apply_seconds": applied, "applies": writes_done, "generate_seconds": generated,
            "compact_seconds": compact, "wall_seconds": time.perf_counter() - began,
            "documents": documents, "peak_rss_mib": _peak_mib()}


def worker_open(args: argparse.Namespace, corpus: Corpus) -> dict:
    queries = _load_queries(args.truth)
    rss_imports = _vm_kib("VmRSS") / 1024
    t0 = time.perf_counter()
    store = _open(args.store)
    seconds = time.perf_counter() - t0
    peak, rss_open = _peak_mib(), _vm_kib("VmRSS") / 1024
    t0 = time.perf_counter()
    store.search(queries.vectors[:1], args.k)
    first = time.perf_counter() - t0
    _check_count(store, corpus.passages)
    store.close()
    return {"open_seconds": seconds, "rss_imports_mib": rss_imports, "peak_open_mib": peak,
            "rss_open_mib": rss_open, "first_search_ms": first * 1000}


def _search_kwargs(mode: str, queries: Queries, row: int, lexical_weight: float) -> dict:
    if mode == "tenant":
        return {"filters": {"tenant": queries.tenants[row]}}
    if mode == "half":
        return {"filters": {"half": queries.halves[row]}}
    if mode == "hybrid":
        return {"query_texts": [queries.texts[row]], "lexical_weight": lexical_weight}
    return {}


def worker_search(args: argparse.Namespace, corpus: Corpus) -> dict:
    queries = _load_queries(args.truth)
    store = _open(args.store)
    _check_count(store, corpus.passages)
    out: dict[str, Any] = {}
    for mode in MODES:
        for row in range(min(WARM_UP, len(queries.passages))):
            store.search(queries.vectors[row:row + 1], args.k,
                         **_search_kwargs(mode, queries, row, args.lexical_weight))
        times, hits = [], []
        for row in range(len(queries.passages)):
            kwargs = _search_kwargs(mode, queries, row, args.lexical_weight)
            t0 = time.perf_counter()
            found = store.search(queries.vectors[row:row + 1], args.k, **kwargs)[0]
            times.append(time.perf_counter() - t0)
            hits.append([(p.source, p.start) for p in found])
        out[mode] = {"seconds": times, "passages": [[_passage_number(corpus, s, a) for s, a in row]
                                                    for row in hits]}
    store.close()
    return out


def _passage_number(corpus: Corpus, source: str, start: int) -> int:
    """The corpus passage a search returned, from its source and start offset (-1: unknown)."""
    try:
        document = document_of_source(source)
        starts = _starts(corpus, document)
    except (ValueError, IndexError):
        return -1
    return document * CHUNKS_PER_DOCUMENT + starts.index(start) if start in starts else -1


_STARTS: dict[int, tuple[int, ...]] = {}


def _starts(corpus: Corpus, document: int) -> tuple[int, ...]:
    if document not in _STARTS:
        _STARTS[document] = corpus.document(document).starts
    return _STARTS[document]


def worker_memory(args: argparse.Namespace, corpus: Corpus) -> None:
    """Open, run the dense searches, report, and stay alive until stdin closes (so that the
    parent can read the PSS of several such processes at the same moment)."""
    queries = _load_queries(args.truth)
    store = _open(args.store)
    for row in range(len(queries.passages)):
        store.search(queries.vectors[row:row + 1], args.k)
    print(READY + json.dumps({"rss_mib": _vm_kib("VmRSS") / 1024, "pss_mib": _vm_kib("Pss") / 1024}), flush=True)
    sys.stdin.read()
    store.close()


def worker_writes(args: argparse.Namespace, corpus: Corpus) -> dict:
    """Adds, then deletes, on ``args.store`` (a scratch copy: it is changed)."""
    batches = []
    next_document = corpus.documents
    for repeat in range(args.add_repeats):
        vectors = corpus.extra_vectors(repeat, ADD_CHUNKS)
        writes, at = [], 0
        while at < ADD_CHUNKS:
            n = min(CHUNKS_PER_DOCUMENT, ADD_CHUNKS - at)
            writes.append(_document_write(corpus.document(next_document, chunks=n), vectors[at:at + n]))
            next_document, at = next_document + 1, at + n
        batches.append(writes)
    rng = np.random.default_rng([corpus.seed, 99])
    wanted = min(DELETE_DOCUMENTS * args.delete_repeats, corpus.documents)
    doomed = rng.choice(corpus.documents, size=wanted, replace=False).tolist()
    deletes = [[_document_id(corpus.document(i)) for i in doomed[lo:lo + DELETE_DOCUMENTS]]
               for lo in range(0, wanted, DELETE_DOCUMENTS)]
    store = _open(args.store)
    _check_count(store, corpus.passages)
    add_times, delete_times = [], []
    for writes in batches:
        t0 = time.perf_counter()
        store.apply(writes)
        add_times.append(time.perf_counter() - t0)
    for ids in deletes:
        t0 = time.perf_counter()
        deleted = store.delete(document_ids=ids)
        delete_times.append(time.perf_counter() - t0)
        if deleted != len(ids):
            raise SystemExit(f"deleted {deleted} documents, expected {len(ids)}")
    removed = sum(corpus.chunk_count(i) for i in doomed)
    _check_count(store, corpus.passages + ADD_CHUNKS * len(batches) - removed)
    store.close()
    return {"add_seconds": add_times, "delete_seconds": delete_times,
            "delete_documents": [len(ids) for ids in deletes]}


WORKERS = {"build": worker_build, "open": worker_open, "search": worker_search, "memory": worker_memory,
           "writes": worker_writes}


def run_worker(args: argparse.Namespace) -> None:
    _worker_setup(args.code_dir, args.threads)
    corpus = Corpus(args.passages, args.seed)
    result = WORKERS[args.worker](args, corpus)
    if result is not None:
        Path(args.out).write_text(json.dumps(result), encoding="utf-8")


# =============================================================================== driver


class Tree:
    """A code tree to measure: its folder and a unique short name (the folder's name)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path).resolve()
        if not (self.path / "qa_system" / "__init__.py").is_file():
            raise SystemExit(f"--code {path}: no qa_system package in {self.path}")
        self.name = self.path.name

    def fingerprint(self) -> str:
        """SHA-256 of the tree's qa_system/ and migrations/ Python files (a cached store built by
        other code is rebuilt)."""
        digest = hashlib.sha256()
        for folder in ("qa_system", "migrations"):
            for path in sorted((self.path / folder).rglob("*.py")):
                digest.update(str(path.relative_to(self.path)).encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()[:16]

    def revision(self) -> str:
        try:
            head = subprocess.run(["git", "-C", str(self.path), "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True, check=True).stdout.strip()
            dirty = subprocess.run(["git", "-C", str(self.path), "status", "--porcelain", "--", "qa_system",
                                    "migrations"], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "not a git checkout"
        return head + (" + uncommitted changes" if dirty else "")


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root: Path = args.stores
        self.root.mkdir(parents=True, exist_ok=True)

    def env(self, tree: Tree, threads: int) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(tree.path)
        env.update({name: str(threads) for name in THREAD_VARIABLES})
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env.setdefault("TRANSFORMERS_VERBOSITY", "error")
        return env

    def command(self, kind: str, tree: Tree, n: int, store: Path, out: Path | None, threads: int) -> list[str]:
        a = self.args
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--code-dir", str(tree.path),
               "--tree", tree.name, "--store", str(store), "--passages", str(n), "--seed", str(a.seed),
               "--truth", str(self.truth_path(n)), "--threads", str(threads), "--k", str(a.k),
               "--lexical-weight", str(a.lexical_weight), "--batch-docs", str(a.batch_docs),
               "--add-repeats", str(a.add_repeats), "--delete-repeats", str(a.delete_repeats)]
        return cmd + (["--out", str(out)] if out is not None else [])

    def worker(self, kind: str, tree: Tree, n: int, store: Path, *, threads: int | None = None) -> dict:
        threads = self.args.threads if threads is None else threads
        out = self.root / f".result-{os.getpid()}.json"
        out.unlink(missing_ok=True)
        done = subprocess.run(self.command(kind, tree, n, store, out, threads), env=self.env(tree, threads))
        if done.returncode != 0:
            raise SystemExit(f"the {kind} step failed for {tree.name} at {n:,} passages (exit {done.returncode})")
        try:
            return json.loads(out.read_text(encoding="utf-8"))
        finally:
            out.unlink(missing_ok=True)

    # --------------------------------------------------------------- truth

    def truth_path(self, n: int) -> Path:
        return self.root / f"truth-{n}-seed{self.args.seed}-data{DATA_VERSION}-q{self.args.queries}.npz"

    def truth(self, n: int) -> GroundTruth:
        """The queries and their exact neighbours for ``n`` passages (cached)."""
        path = self.truth_path(n)
        if not path.is_file():
            t0 = time.perf_counter()
            corpus = Corpus(n, self.args.seed)
            queries = corpus.queries(self.args.queries)
            truth = exact_neighbours(corpus, queries, TRUTH_K)
            arrays = {f"{mode}_{part}": getattr(nb, part) for mode, nb in truth.neighbours.items()
                      for part in ("ids", "scores")}
            tmp = path.with_name(path.name + ".tmp.npz")
            np.savez(tmp, passages=queries.passages, vectors=queries.vectors, texts=np.asarray(queries.texts),
                     tenants=np.asarray(queries.tenants), halves=np.asarray(queries.halves),
                     foreign_top10=truth.foreign_top10, own_centre=truth.own_centre, **arrays)
            tmp.replace(path)
            print(f"exact neighbours of {len(queries.passages)} queries over {n:,} passages: "
                  f"{time.perf_counter() - t0:.0f} s ({path})", file=sys.stderr, flush=True)
        with np.load(path, allow_pickle=False) as data:
            neighbours = {mode: Neighbours(data[f"{mode}_ids"], data[f"{mode}_scores"])
                          for mode in ("all", "tenant", "half")}
            return GroundTruth(neighbours, float(data["foreign_top10"]), float(data["own_centre"]))

    # --------------------------------------------------------------- stores

    def store_dir(self, tree: Tree, n: int) -> Path:
        suffix = "" if self.args.seed == 0 else f"-seed{self.args.seed}"
        return self.root / f"{tree.name}-{n}{suffix}"

    def built(self, tree: Tree, n: int) -> dict:
        """The cached store of ``tree`` at ``n`` passages, built now if missing or stale."""
        store = self.store_dir(tree, n)
        meta_path = store.with_name(store.name + ".json")
        wanted = {"passages": n, "seed": self.args.seed, "data_version": DATA_VERSION,
                  "batch_docs": self.args.batch_docs, "fingerprint": tree.fingerprint()}
        if store.is_dir() and meta_path.is_file() and not self.args.rebuild:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            same_data = all(meta.get(key) == wanted[key] for key in ("passages", "seed", "data_version", "batch_docs"))
            if same_data and (meta.get("fingerprint") == wanted["fingerprint"] or self.args.reuse_stale):
                if meta.get("fingerprint") != wanted["fingerprint"]:
                    print(f"note: {store} was built by other code of {tree.name} (--reuse-stale)", file=sys.stderr)
                return {**meta, "cached": True}
            why = "its data settings differ" if not same_data else "the tree's code changed since"
            print(f"rebuilding {store}: {why}", file=sys.stderr, flush=True)
        building = store.with_name(store.name + ".building")
        for old in (building, store):
            shutil.rmtree(old, ignore_errors=True)
        meta_path.unlink(missing_ok=True)
        print(f"building {store} ({n:,} passages, {tree.name}, batches of {self.args.batch_docs:,} "
              "documents)", file=sys.stderr, flush=True)
        result = self.worker("build", tree, n, building, threads=self.args.build_threads)
        building.rename(store)
        meta = {**wanted, **result, "built_at": time.strftime("%Y-%m-%d %H:%M:%S"),
                "revision": tree.revision(), "threads": self.args.build_threads}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return {**meta, "cached": False}

    # --------------------------------------------------------------- memory

    def memory(self, tree: Tree, n: int, store: Path, processes: int) -> list[dict]:
        """Start ``processes`` memory workers, each once the one before is ready (their loading
        peaks do not add up), and read every one's PSS once all of them are running."""
        threads = self.args.threads
        started: list[subprocess.Popen] = []
        reports = []
        try:
            for _ in range(processes):
                proc = subprocess.Popen(self.command("memory", tree, n, store, None, threads),
                                        env=self.env(tree, threads), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
                started.append(proc)
                for line in proc.stdout:
                    if line.startswith(READY):
                        reports.append(json.loads(line[len(READY):]))
                        break
                else:
                    raise SystemExit(f"a memory process of {tree.name} ended early (exit {proc.wait()})")
            for proc, report in zip(started, reports, strict=True):
                report["pss_all_ready_mib"] = _vm_kib("Pss", proc.pid) / 1024
                report["rss_all_ready_mib"] = _vm_kib("Rss", proc.pid) / 1024
        finally:
            for proc in started:
                if proc.stdin:
                    proc.stdin.close()
            for proc in started:
                proc.wait()
        return reports

    # --------------------------------------------------------------- one tree, one size

    def measure(self, tree: Tree, n: int, truth: GroundTruth) -> dict:
        a = self.args
        build = self.built(tree, n)
        store = self.store_dir(tree, n)
        result: dict[str, Any] = {"tree": tree.name, "path": str(tree.path), "revision": tree.revision(),
                                  "passages": n, "build": build,
                                  "disk_mib": sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / 2**20}
        print(f"[{tree.name} {n:,}] open x{a.open_repeats}", file=sys.stderr, flush=True)
        result["open"] = [self.worker("open", tree, n, store) for _ in range(a.open_repeats)]
        print(f"[{tree.name} {n:,}] search", file=sys.stderr, flush=True)
        searched = self.worker("search", tree, n, store)
        result["search"] = {}
        for mode in MODES:
            found = searched[mode]["passages"]
            row: dict[str, Any] = {"seconds": searched[mode]["seconds"],
                                   "full_k": sum(len(hits) >= a.k for hits in found), "queries": len(found)}
            if mode in TRUTH_MODE:
                row["recall"] = recall_at(found, truth.neighbours[TRUTH_MODE[mode]], a.k)
            else:
                passages = self.queries_of(n).passages.tolist()
                row["source_in_top_k"] = sum(p in hits for p, hits in zip(passages, found, strict=True)) / len(found)
            result["search"][mode] = row
        print(f"[{tree.name} {n:,}] memory: 1 process, then {a.processes} together", file=sys.stderr, flush=True)
        result["memory_one"] = self.memory(tree, n, store, 1)[0]
        result["memory_many"] = self.memory(tree, n, store, a.processes)
        print(f"[{tree.name} {n:,}] writes (on a copy)", file=sys.stderr, flush=True)
        scratch = self.root / f".scratch-{tree.name}-{n}"
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.copytree(store, scratch)
        try:
            result["writes"] = self.worker("writes", tree, n, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return result

    def queries_of(self, n: int) -> Queries:
        return _load_queries(self.truth_path(n))


# =============================================================================== report


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def rows_for(results: list[dict], args: argparse.Namespace) -> list[tuple[str, list[float | str | None], bool]]:
    """(label, value per tree, ratios make sense) for one size."""
    from _common import percentile

    def per(fn: Any) -> list[Any]:
        return [fn(r) for r in results]

    def ms(mode: str, p: float) -> list[float]:
        return per(lambda r: percentile(r["search"][mode]["seconds"], p) * 1000)

    def full(mode: str) -> list[str]:
        return per(lambda r: f"{r['search'][mode]['full_k']}/{r['search'][mode]['queries']}")

    one_pss = per(lambda r: r["memory_one"]["pss_all_ready_mib"])
    many_pss = per(lambda r: sum(p["pss_all_ready_mib"] for p in r["memory_many"]))
    k, w, procs = args.k, args.lexical_weight, args.processes
    return [
        ("build: all applies, s", per(lambda r: r["build"]["apply_seconds"]), True),
        ("build: compact(), s", per(lambda r: r["build"].get("compact_seconds")), True),
        ("store on disk, MiB", per(lambda r: r["disk_mib"]), True),
        (f"add {ADD_CHUNKS:,} chunks (1 apply), p50 ms",
         per(lambda r: _median(r["writes"]["add_seconds"]) * 1000), True),
        (f"delete {DELETE_DOCUMENTS:,} documents (1 call), p50 ms",
         per(lambda r: _median(r["writes"]["delete_seconds"]) * 1000), True),
        ("open (fresh process), s", per(lambda r: _median([o["open_seconds"] for o in r["open"]])), True),
        ("open: RSS after imports, MiB", per(lambda r: _median([o["rss_imports_mib"] for o in r["open"]])), True),
        ("open: peak RSS, MiB", per(lambda r: _median([o["peak_open_mib"] for o in r["open"]])), True),
        ("open: RSS after open, MiB", per(lambda r: _median([o["rss_open_mib"] for o in r["open"]])), True),
        ("open: first search, ms", per(lambda r: _median([o["first_search_ms"] for o in r["open"]])), True),
        (f"dense k={k}: p50 ms", ms("dense", 50), True),
        (f"dense k={k}: p95 ms", ms("dense", 95), True),
        (f"dense: recall@{k}", per(lambda r: r["search"]["dense"]["recall"]), False),
        ("filter 1% (tenant): p50 ms", ms("tenant", 50), True),
        (f"filter 1%: queries with {k} hits", full("tenant"), False),
        (f"filter 1%: recall@{k}", per(lambda r: r["search"]["tenant"]["recall"]), False),
        ("filter 50% (half): p50 ms", ms("half", 50), True),
        (f"filter 50%: queries with {k} hits", full("half"), False),
        (f"filter 50%: recall@{k}", per(lambda r: r["search"]["half"]["recall"]), False),
        (f"hybrid (w={w:g}): p50 ms", ms("hybrid", 50), True),
        (f"hybrid (w={w:g}): p95 ms", ms("hybrid", 95), True),
        (f"hybrid: query's passage in top {k}", per(lambda r: r["search"]["hybrid"]["source_in_top_k"]), False),
        (f"memory: RSS after {args.queries} searches, MiB", per(lambda r: r["memory_one"]["rss_all_ready_mib"]), True),
        ("memory: PSS of that process, MiB", one_pss, True),
        (f"memory: total PSS of {procs} processes, MiB", many_pss, True),
        (f"memory: {procs} processes' PSS / 1 process's", [m / o for m, o in zip(many_pss, one_pss, strict=True)],
         False),
    ]


def _cell(label: str, value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if "recall" in label or "passage in top" in label:
        return f"{value:.3f}"
    if "/ 1 process" in label:
        return f"{value:.2f}x"
    if value < 10:
        return f"{value:.2f}"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def report(results: dict[int, list[dict]], truths: dict[int, GroundTruth], trees: list[Tree],
           args: argparse.Namespace) -> str:
    from _common import table

    headers = ["measure", "passages"] + [t.name for t in trees] + [f"{t.name}/{trees[0].name}" for t in trees[1:]]
    body = []
    for n, per_tree in results.items():
        for label, values, ratio in rows_for(per_tree, args):
            cells = [label, f"{n:,}"] + [_cell(label, v) for v in values]
            for v in values[1:]:
                base = values[0]
                usable = ratio and isinstance(v, float) and isinstance(base, float) and base > 0
                cells.append(f"{v / base:.2f}x" if usable else "")
            body.append(cells)
    lines = [f"\nscale (issue 27): {args.queries} queries, k={args.k}, {args.threads} thread(s) per measuring "
             f"process; {CHUNKS_PER_DOCUMENT} chunks per document, {DIMENSION}-d vectors around {CLUSTERS:,} "
             f"centres (passage noise {PASSAGE_NOISE}, query noise {QUERY_NOISE}), seed {args.seed}"]
    for n, truth in truths.items():
        lines.append(f"  {n:,} passages: {truth.foreign_top10:.1%} of the exact top-10 from other clusters than "
                     f"the query's passage; nearest centre is a passage's own for {truth.own_centre:.1%}")
    for t in trees:
        lines.append(f"  {t.name}: {t.path} ({t.revision()})")
    lines.append(table(headers, body))
    lines.append("builds (store.apply of the generated writes; generating them is not counted):")
    for n, per_tree in results.items():
        for r in per_tree:
            b = r["build"]
            compact = f", compact() {b['compact_seconds']:.1f} s" if b.get("compact_seconds") is not None else ""
            lines.append(f"  {r['tree']} {n:,}: {b['applies']} apply call(s) of up to {b['batch_docs']:,} documents in "
                         f"{b['apply_seconds']:.0f} s{compact}, peak RSS {b['peak_rss_mib']:,.0f} MiB, "
                         f"{b.get('threads', '?')} thread(s); built {b['built_at']} at {b['revision']}"
                         + (" (cached)" if b["cached"] else ""))
    return "\n".join(lines)


# =============================================================================== main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--code", action="append", metavar="DIR",
                    help="a code tree to measure (repeat; the first is the baseline); default: this checkout")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="passages")
    ap.add_argument("--quick", action="store_true", help="20,000 passages (a test of the script)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--lexical-weight", type=float, default=0.3, help="of the hybrid searches")
    ap.add_argument("--threads", type=int, default=1, help="threads of the measuring processes")
    ap.add_argument("--build-threads", type=int, help="threads of the build processes (default: --threads)")
    ap.add_argument("--batch-docs", type=int, default=20_000,
                    help=f"documents per apply when building (a multiple of {BLOCK_DOCUMENTS:,})")
    ap.add_argument("--open-repeats", type=int, default=3)
    ap.add_argument("--add-repeats", type=int, default=5)
    ap.add_argument("--delete-repeats", type=int, default=3)
    ap.add_argument("--processes", type=int, default=4, help="memory processes running at once")
    ap.add_argument("--stores", type=Path, default=REPO / "stores" / "scale", help="cache of built stores")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached stores")
    ap.add_argument("--reuse-stale", action="store_true",
                    help="use a cached store even though the tree's code changed since it was built")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    hidden = argparse.SUPPRESS
    ap.add_argument("--worker", choices=sorted(WORKERS), help=hidden)
    ap.add_argument("--code-dir", type=Path, help=hidden)
    ap.add_argument("--tree", help=hidden)
    ap.add_argument("--store", type=Path, help=hidden)
    ap.add_argument("--passages", type=int, help=hidden)
    ap.add_argument("--truth", type=Path, help=hidden)
    ap.add_argument("--out", type=Path, help=hidden)
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes = [20_000]
    if args.batch_docs <= 0 or args.batch_docs % BLOCK_DOCUMENTS:
        ap.error(f"--batch-docs must be a positive multiple of {BLOCK_DOCUMENTS}")
    if min(args.threads, args.queries, args.k, args.open_repeats, args.add_repeats, args.delete_repeats,
           args.processes, *args.sizes) <= 0:
        ap.error("sizes, counts and repeats must be positive")
    if args.build_threads is None:
        args.build_threads = args.threads
    args.stores = args.stores.resolve()
    return args


def main() -> None:
    args = parse_args()
    if args.worker:
        run_worker(args)
        return
    for name in THREAD_VARIABLES:  # also this process's numpy, and what the machine line reports
        os.environ[name] = str(args.threads)
    from _machine import format_machine, machine_info

    trees = [Tree(path) for path in (args.code or [str(REPO)])]
    names = [t.name for t in trees]
    if len(set(names)) != len(names):
        raise SystemExit(f"two trees have the same folder name ({names}); their cached stores would clash")
    runner = Runner(args)
    results: dict[int, list[dict]] = {}
    truths: dict[int, GroundTruth] = {}
    for n in args.sizes:
        truths[n] = runner.truth(n)
        results[n] = [runner.measure(tree, n, truths[n]) for tree in trees]
    print(report(results, truths, trees, args))
    info = machine_info()
    print(format_machine(info))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                   "data": {str(n): {"foreign_top10": t.foreign_top10, "own_centre": t.own_centre}
                            for n, t in truths.items()},
                   "results": {str(n): r for n, r in results.items()}, "machine": info}
        args.json.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
