"""Crash safety under ``kill -9`` (issue 27): SIGKILL a process working on a store, again and
again, and check the store after every kill.

    python scripts/kill_loop.py --kills 30 [--store DIR] [--db-url URL] [--seed N] [--json]

The parent starts a child (this script with ``--child``) that opens the store and works on it
without pause: it ingests batches of new documents (some of thousands of chunks, so that merges
take a noticeable time and forced merges of the whole store, once it holds more than
``segments.IVF_MIN_VECTORS`` vectors, build IVF segments), replaces documents with new versions,
deletes documents, applies mixed batches (new, replaced and deleted documents in one call) and
runs ``compact()`` and ``compact(force=True)``; half the children also merge in the background
(``auto_compact``). Before each call the child appends what it *intends* to a journal, after it
what *committed* (each line fsynced).

The parent kills the child with SIGKILL: a quarter of the kills at a random moment, the others
aimed at a kind of operation (a write, a delete, a merge): it waits for one to start, sleeps a
random part of that kind's usual duration and kills it if it still runs (else it waits for the
next one). Then it notes the files the crash left in ``index/`` (stray segments, temp files, merge
build files), opens the store, and requires

* ``check()`` to be consistent, and no stray file left once the store is open;
* the stored documents to be exactly the ones the journal's committed operations leave, give or
  take the one operation that was interrupted, all of it or nothing (the parent records which,
  so the journal stays exact for the next child);
* the chunk count to match, and a few documents' vectors to be theirs (a search restricted to the
  document finds the chunk whose vector was asked for).

After the last kill it applies every document the journal says should exist (nothing may be
added: nothing was lost), checks again, merges everything and checks once more, and prints a
table (or, with ``--json``, one JSON object). Exit status 1 on any inconsistency, with the report;
the store and its journal are then kept for inspection.

A SIGKILL tests what survives the death of the process, not of the machine: written data that
reached the page cache stays, so fsync ordering (power loss) is not what this exercises.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if "PYTHONPATH" not in os.environ:  # run from a checkout: its package first
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from sqlalchemy.orm import Session

from qa_system.errors import QASystemError
from qa_system.storage import DocumentWrite, Store, segment_set
from qa_system.storage import repository as repo
from qa_system.storage.engine import create_store_engine
from qa_system.storage.opening import default_db_url
from qa_system.storage.segments import IVF, IVF_MIN_VECTORS, segment_file_name
from qa_system.types import Chunk, Document, document_id_for

MODEL = "kill-loop-random-vectors"
CHUNK_CHARS = 40
WORDS = ("billing", "invoice", "refund", "plan", "upgrade", "sync", "error", "device", "battery",
         "screen", "password", "account", "export", "backup", "restore", "team", "quota", "proxy")
JOURNAL = "kill-loop-journal.jsonl"
CHILD_LOG = "kill-loop-children.log"

WRITES = ("ingest", "replace", "mixed")
COMPACTIONS = ("compact", "compact_force")
#: What each aimed kill waits for; None: a kill at a random moment.
AIMS: tuple[str | None, ...] = ("write", "compaction", "delete", None)
OPEN_TIMEOUT_S = 120.0
AIM_DEADLINE_S = 20.0
RANDOM_KILL_S = (0.0, 4.0)
SPOT_CHECKS = 5


# ----------------------------------------------------------------------------- documents
# A document is (source, version, chunk count): its text, id and vectors follow from those, so
# the journal needs only them and the parent can rebuild any document for the final ingest.


def chunk_texts(source: str, version: int, n: int) -> list[str]:
    rng = random.Random(f"{source}/{version}")
    texts = []
    for i in range(n):
        words = " ".join(rng.choice(WORDS) for _ in range(6))
        texts.append(f"{source} v{version} c{i}: {words}"[:CHUNK_CHARS - 1].ljust(CHUNK_CHARS - 1) + " ")
    return texts


def vectors_for(source: str, version: int, n: int, dimension: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(f"{source}/{version}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal((n, dimension), dtype=np.float32)


@functools.cache
def document_id(source: str, version: int, n: int) -> str:
    return document_id_for(source, "".join(chunk_texts(source, version, n)))


def make_write(source: str, version: int, n: int, dimension: int) -> DocumentWrite:
    texts = chunk_texts(source, version, n)
    document = Document(source=source, text="".join(texts), title=f"{source} version {version}",
                        metadata={"version": version, "group": int(source[4:]) % 7})
    chunks = [Chunk(document.id, i, i * CHUNK_CHARS, (i + 1) * CHUNK_CHARS, text, len(text.split()))
              for i, text in enumerate(texts)]
    return DocumentWrite(document, chunks, vectors_for(source, version, n, dimension))


# ------------------------------------------------------------------------------- journal

State = dict[str, tuple[int, int]]  # source -> (version, chunk count) of the stored documents


class Journal:
    """Append-only JSON lines, each fsynced before the call it announces (or after the one it
    confirms) goes on. A line cut short by a kill is ignored when read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def append(self, **record: Any) -> None:
        record.setdefault("t", time.time())
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        """Every complete line."""
        if not self.path.exists():
            return []
        return list(_parse(self.path.read_bytes().split(b"\n")[:-1]))

    def new_records(self) -> list[dict[str, Any]]:
        """The complete lines appended since the last call (for following a child)."""
        if not self.path.exists():
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        return list(_parse(lines))


def _parse(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            yield json.loads(line)
        except ValueError:
            continue  # a line the kill cut short


def apply_op(state: State, intent: dict[str, Any]) -> None:
    for source in intent.get("delete", ()):
        state.pop(source, None)
    for source, version, n in intent.get("put", ()):
        state[source] = (version, n)


@dataclass
class History:
    """What the journal says: the committed state, the operation left open (if any), and what the
    next child needs to go on."""

    state: State = field(default_factory=dict)
    open_op: dict[str, Any] | None = None
    next_op: int = 0
    next_source: int = 0
    versions: dict[str, int] = field(default_factory=dict)  # highest version ever tried per source
    durations: dict[str, list[float]] = field(default_factory=dict)

    def usual_duration(self, kinds: tuple[str, ...], default: float = 0.2) -> float:
        seen = [d for kind in kinds for d in self.durations.get(kind, [])]
        return min(5.0, max(0.005, statistics.median(seen))) if seen else default


def replay(records: list[dict[str, Any]]) -> History:
    history = History()
    intents: dict[int, dict[str, Any]] = {}
    for record in records:
        event = record["event"]
        if event == "intent":
            op = record["op"]
            intents[op] = record
            history.open_op = record
            history.next_op = max(history.next_op, op + 1)
            for source, version, _ in record.get("put", ()):
                history.next_source = max(history.next_source, int(source[4:]) + 1)
                history.versions[source] = max(history.versions.get(source, 0), version)
        elif event in ("commit", "resolved"):
            intent = intents[record["op"]]
            if event == "commit" or record["committed"]:
                apply_op(history.state, intent)
            if event == "commit":
                history.durations.setdefault(intent["kind"], []).append(record["t"] - intent["t"])
            if history.open_op is intent:
                history.open_op = None
    return history


def expected_ids(state: State) -> set[str]:
    return {document_id(source, version, n) for source, (version, n) in state.items()}


def expected_chunks(state: State) -> int:
    return sum(n for _, n in state.values())


# --------------------------------------------------------------------------------- child


@dataclass(frozen=True)
class Sizes:
    """Store size bounds and batch sizes (``--scale`` multiplies them)."""

    low: int  # below this many chunks, mostly ingest
    high: int  # above it, mostly delete
    big_docs: tuple[int, int]
    big_chunks: tuple[int, int]

    @classmethod
    def scaled(cls, scale: float) -> Sizes:
        return cls(low=int(25_000 * scale), high=int(60_000 * scale),
                   big_docs=(max(2, int(100 * scale)), max(3, int(250 * scale))), big_chunks=(20, 60))


def choose_op(rng: random.Random, state: State, sizes: Sizes) -> str:
    chunks = expected_chunks(state)
    if chunks < sizes.low:
        weights = {"ingest_big": 5, "ingest": 1, "replace": 1, "delete": 1, "mixed": 1, "compact": 1,
                   "compact_force": 1}
    elif chunks > sizes.high:
        weights = {"ingest": 2, "replace": 2, "delete": 2, "delete_big": 4, "mixed": 1, "compact": 1,
                   "compact_force": 2}
    else:
        weights = {"ingest_big": 1.5, "ingest": 2, "replace": 2, "delete": 2, "delete_big": 1, "mixed": 1,
                   "compact": 2, "compact_force": 1.5}
    if not state:
        weights = {"ingest_big": 1, "ingest": 1}
    names = list(weights)
    return rng.choices(names, [weights[n] for n in names])[0]


class Planner:
    """Picks the documents of each operation, from the committed state."""

    def __init__(self, rng: random.Random, history: History, sizes: Sizes) -> None:
        self.rng, self.sizes = rng, sizes
        self.next_source = history.next_source
        self.versions = dict(history.versions)

    def new(self, docs: int, chunks: tuple[int, int]) -> list[list[Any]]:
        puts = []
        for _ in range(docs):
            source = f"doc-{self.next_source:07d}"
            self.next_source += 1
            self.versions[source] = 1
            puts.append([source, 1, self.rng.randint(*chunks)])
        return puts

    def replaced(self, sources: list[str]) -> list[list[Any]]:
        puts = []
        for source in sources:
            self.versions[source] = self.versions.get(source, 1) + 1
            puts.append([source, self.versions[source], self.rng.randint(1, 60)])
        return puts

    def plan(self, name: str, state: State) -> dict[str, Any]:
        rng = self.rng
        stored = sorted(state)
        if name == "ingest_big":
            docs = rng.randint(*self.sizes.big_docs)
            return {"kind": "ingest", "size": "big", "put": self.new(docs, self.sizes.big_chunks)}
        if name == "ingest":
            return {"kind": "ingest", "size": "small", "put": self.new(rng.randint(1, 20), (1, 40))}
        if name == "replace":
            return {"kind": "replace", "put": self.replaced(rng.sample(stored, min(len(stored), rng.randint(1, 50))))}
        if name in ("delete", "delete_big"):
            count = (rng.randint(1, 10) if name == "delete"
                     else max(1, int(len(stored) * rng.uniform(0.1, 0.3))))
            return {"kind": "delete", "delete": rng.sample(stored, min(len(stored), count))}
        if name == "mixed":
            chosen = rng.sample(stored, min(len(stored), rng.randint(2, 20)))
            half = len(chosen) // 2
            return {"kind": "mixed", "put": self.new(rng.randint(1, 20), (1, 40)) + self.replaced(chosen[:half]),
                    "delete": chosen[half:]}
        return {"kind": name}


def perform(store: Store, intent: dict[str, Any], writes: list[DocumentWrite], state: State) -> dict[str, Any]:
    """Run one operation; what committed (for the journal). A result that does not match the
    intent is an error: the child's picture of the store would be wrong."""
    kind = intent["kind"]
    doomed = [document_id(s, *state[s]) for s in intent.get("delete", ())]
    if kind in COMPACTIONS:
        result = store.compact(force=kind == "compact_force")
        return {"merges": len(result.merges), "written": result.vectors_written,
                "dropped": result.vectors_dropped, "segments": result.segments_after}
    if kind == "delete":
        deleted = store.delete(document_ids=doomed)
        if deleted != len(doomed):
            raise RuntimeError(f"deleted {deleted} documents, meant {len(doomed)}")
        return {"deleted": deleted}
    outcome = store.apply(writes, doomed)
    replaced = sum(1 for source, _, _ in intent["put"] if source in state)
    wanted = (len(intent["put"]) - replaced, replaced, len(doomed))
    if (outcome.added, outcome.updated, outcome.deleted) != wanted:
        raise RuntimeError(f"apply added/updated/deleted {outcome.added}/{outcome.updated}/{outcome.deleted}, "
                           f"meant {wanted}")
    return {"chunks_added": outcome.chunks_added, "chunks_removed": outcome.chunks_removed,
            "generation": outcome.generation}


def run_child(args: argparse.Namespace) -> None:
    journal = Journal(Path(args.journal))
    history = replay(journal.records())
    if history.open_op is not None:
        raise SystemExit(f"op {history.open_op['op']} is unresolved in {journal.path}")
    rng = random.Random(f"{args.seed}/{args.child}")
    auto_compact = rng.random() < 0.5
    journal.append(event="start", child=args.child, pid=os.getpid())
    store = Store.open(args.store, embedding_model=MODEL, dimension=args.dim, db_url=args.db_url,
                       auto_compact=auto_compact)
    journal.append(event="opened", child=args.child, auto_compact=auto_compact)
    state, op, sizes = dict(history.state), history.next_op, Sizes.scaled(args.scale)
    planner = Planner(rng, history, sizes)
    while True:  # until killed
        intent = planner.plan(choose_op(rng, state, sizes), state)
        writes = [make_write(s, v, n, args.dim) for s, v, n in intent.get("put", ())]
        if intent["kind"] in COMPACTIONS:
            stats = store.stats()
            intent.update(vectors=stats.vectors, segments=stats.segments)
        journal.append(event="intent", op=op, child=args.child, **intent)
        detail = perform(store, intent, writes, state)
        journal.append(event="commit", op=op, **detail)
        apply_op(state, intent)
        op += 1


# -------------------------------------------------------------------------------- parent


class Failure(Exception):
    """The store is not what it should be after a kill."""


@dataclass
class Kill:
    number: int
    aim: str | None
    after_s: float
    op: dict[str, Any] | None  # the interrupted intent (None: between operations)
    leftovers: dict[str, list[str]]
    committed: bool | None = None  # whether the interrupted operation took effect
    documents: int = 0
    chunks: int = 0
    segments: int = 0
    ivf_segments: int = 0
    generation: int = 0
    check_s: float = 0.0

    @property
    def label(self) -> str:
        if self.op is None:
            return "between operations"
        if self.op["kind"] == "ingest":
            return f"ingest ({self.op['size']})"
        return self.op["kind"]

    @property
    def merging(self) -> bool:
        """A merge was under way: a compaction call, or a merge build file left behind."""
        return bool(self.op and self.op["kind"] in COMPACTIONS) or bool(self.leftovers["build"])

    def categories(self) -> list[str]:
        found = []
        if self.op and self.op["kind"] in WRITES:
            found.append("write")
        if self.op and self.op["kind"] == "delete":
            found.append("delete")
        if self.merging:
            found.append("compaction")
        return found

    def describe(self) -> str:
        op = self.op
        if op is None:
            what = "between operations"
        elif op["kind"] in COMPACTIONS:
            ivf = " (IVF)" if op["kind"] == "compact_force" and op.get("vectors", 0) >= IVF_MIN_VECTORS else ""
            what = f"{op['kind']} of {op['segments']} segments, {op['vectors']} vectors{ivf}"
        else:
            puts, chunks = len(op.get("put", ())), sum(p[2] for p in op.get("put", ()))
            parts = [f"{puts} documents ({chunks} chunks) written"] if puts else []
            parts += [f"{len(op['delete'])} deleted"] if op.get("delete") else []
            what = f"{self.label}: {', '.join(parts)}"
        if op is not None:
            what = f"op {op['op']} {what}"
        if self.leftovers["build"] and not (op and op["kind"] in COMPACTIONS):
            what += " + a background merge"
        left = ", ".join(f"{len(v)} {k}" for k, v in self.leftovers.items() if v) or "nothing"
        outcome = {True: "committed", False: "rolled back", None: "no document change"}[self.committed]
        return (f"kill {self.number} ({self.aim or 'random'}, {self.after_s:.2f} s): {what}; left {left}; "
                f"{outcome}; check ok: {self.documents} documents, {self.chunks} chunks, {self.segments} "
                f"segments ({self.ivf_segments} IVF), generation {self.generation} [{self.check_s:.2f} s]")


class Parent:
    def __init__(self, args: argparse.Namespace, store_dir: Path) -> None:
        self.args = args
        self.store_dir = store_dir
        self.journal = Journal(store_dir / JOURNAL)
        self.rng = random.Random(args.seed)
        self.db_url = args.db_url or default_db_url(store_dir)
        self.kills: list[Kill] = []
        self.opened: set[int] = set()  # children that have opened the store
        self.open_op: dict[str, Any] | None = None  # the operation the child has under way

    def log(self, message: str) -> None:
        print(message, file=sys.stderr if self.args.json else sys.stdout, flush=True)

    def open_store(self) -> Store:
        return Store.open(self.store_dir, embedding_model=MODEL, dimension=self.args.dim,
                          db_url=self.args.db_url, auto_compact=False)

    # ---------------------------------------------------------------- one kill

    def spawn(self, number: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", "--store", str(self.store_dir),
                   "--journal", str(self.journal.path), "--seed", str(self.args.seed), "--child-number",
                   str(number), "--dim", str(self.args.dim), "--scale", str(self.args.scale)]
        if self.args.db_url:
            command += ["--db-url", self.args.db_url]
        log = open(self.store_dir / CHILD_LOG, "ab")  # noqa: SIM115 - the child keeps it
        log.write(f"--- child {number}\n".encode())
        log.flush()
        try:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        finally:
            log.close()

    def child_died(self, child: subprocess.Popen[bytes]) -> Failure:
        tail = (self.store_dir / CHILD_LOG).read_text(errors="replace")[-4000:]
        return Failure(f"the child exited by itself (status {child.returncode}) before it was killed:\n{tail}")

    def follow(self) -> None:
        """Read the child's new journal lines: which children opened, which operation is open."""
        for record in self.journal.new_records():
            if record["event"] == "opened":
                self.opened.add(record["child"])
            elif record["event"] == "intent":
                self.open_op = record
            elif record["event"] == "commit" and self.open_op is not None and record["op"] == self.open_op["op"]:
                self.open_op = None

    def wait_opened(self, child: subprocess.Popen[bytes], number: int) -> None:
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while time.monotonic() < deadline:
            self.follow()
            if number in self.opened:
                return
            if child.poll() is not None:
                raise self.child_died(child)
            time.sleep(0.005)
        raise Failure(f"child {number} did not open the store within {OPEN_TIMEOUT_S:.0f} s")

    def kill_child(self, child: subprocess.Popen[bytes], aim: str | None, history: History) -> None:
        """SIGKILL at a random moment, or aimed at an operation of kind ``aim`` (see the module
        docstring); in the worst case at the aim's deadline, wherever the child is."""
        if aim is None:
            self._sleep_watching(child, self.rng.uniform(*RANDOM_KILL_S))
            os.kill(child.pid, signal.SIGKILL)
            return
        kinds = {"write": WRITES, "delete": ("delete",), "compaction": COMPACTIONS}[aim]
        usual = history.usual_duration(kinds)

        def aimed() -> bool:
            self.follow()
            return ((self.open_op is not None and self.open_op["kind"] in kinds)
                    or (aim == "compaction" and bool(self._build_files())))

        deadline = time.monotonic() + AIM_DEADLINE_S
        while time.monotonic() < deadline:
            if aimed():
                self._sleep_watching(child, self.rng.uniform(0.0, usual * 1.5))
                if aimed():  # still under way: now
                    os.kill(child.pid, signal.SIGKILL)
                    return
            if child.poll() is not None:
                raise self.child_died(child)
            time.sleep(0.002)
        os.kill(child.pid, signal.SIGKILL)

    def _sleep_watching(self, child: subprocess.Popen[bytes], seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if child.poll() is not None:
                raise self.child_died(child)
            time.sleep(min(left, 0.01))

    def _build_files(self) -> list[str]:
        folder = segment_set.index_directory(self.store_dir)
        return sorted(p.name for p in folder.iterdir() if p.name.startswith(segment_set.BUILD_PREFIX))

    def leftovers(self) -> dict[str, list[str]]:
        """The files in ``index/`` that SQL does not name, before anything opens the store."""
        engine = create_store_engine(self.db_url)
        try:
            with Session(engine) as session:
                live = {segment_file_name(info.id) for info in repo.segment_infos(session)}
        finally:
            engine.dispose()
        names = sorted(p.name for p in segment_set.index_directory(self.store_dir).iterdir())
        found: dict[str, list[str]] = {"stray segments": [], "temp files": [], "build": [], "other": []}
        for name in names:
            if name in live:
                continue
            if name.startswith(segment_set.BUILD_PREFIX):
                found["build"].append(name)
            elif name.startswith(".") and name.endswith(".tmp"):
                found["temp files"].append(name)
            elif name.startswith("seg-"):
                found["stray segments"].append(name)
            else:
                found["other"].append(name)
        return found

    def verify(self, kill: Kill) -> None:
        """Open, check, and settle the interrupted operation (see the module docstring)."""
        history = replay(self.journal.records())
        started = time.monotonic()
        try:
            store = self.open_store()
        except QASystemError as e:
            raise Failure(f"opening the store after the kill failed: {e}") from e
        try:
            report = store.check()
            if not report.ok:
                raise Failure(f"check() is not ok after the kill:\n{report.summary()}")
            stray = self.leftovers()
            if any(stray.values()):
                raise Failure(f"files left in index/ after opening the store: {stray}")
            stored = {d.id for d in store.list_documents(limit=10**9)}
            before = dict(history.state)
            after = dict(before)
            if history.open_op is not None:
                apply_op(after, history.open_op)
            if stored == expected_ids(before):  # None: the operation changes no document
                kill.committed, final = (None if expected_ids(after) == stored else False), before
            elif stored == expected_ids(after):
                kill.committed, final = True, after
            else:
                raise Failure(self._difference(stored, before, after, history.open_op))
            if history.open_op is not None:
                self.journal.append(event="resolved", op=history.open_op["op"], committed=bool(kill.committed))
            stats = store.stats()
            if stats.chunks != expected_chunks(final):
                raise Failure(f"{stats.chunks} chunks stored, the journal says {expected_chunks(final)}")
            self.spot_check(store, final)
            kill.documents, kill.chunks, kill.segments = stats.documents, stats.chunks, stats.segments
            kill.generation = stats.generation
            kill.ivf_segments = sum(1 for s in store._snapshot().segments if s.info.kind == IVF)  # noqa: SLF001
        finally:
            store.close()
        kill.check_s = time.monotonic() - started

    @staticmethod
    def _difference(stored: set[str], before: State, after: State, op: dict[str, Any] | None) -> str:
        wanted, with_op = expected_ids(before), expected_ids(after)
        text = (f"the stored documents are not the journal's committed state: {len(stored - wanted)} "
                f"unexpected, {len(wanted - stored)} missing")
        if op is None:
            return text + " (no operation was under way)"
        return (f"{text}; nor that state plus the interrupted {op['kind']} (op {op['op']}): "
                f"{len(stored - with_op)} unexpected, {len(with_op - stored)} missing")

    def spot_check(self, store: Store, state: State) -> None:
        """A few documents: a search restricted to one finds the chunk whose vector is asked for."""
        for source in self.rng.sample(sorted(state), min(SPOT_CHECKS, len(state))):
            version, n = state[source]
            i = self.rng.randrange(n)
            query = vectors_for(source, version, n, self.args.dim)[i:i + 1]
            wanted = document_id(source, version, n)
            hits = store.search(query, 1, filters={"document_id": wanted})[0]
            if not hits or hits[0].document_id != wanted or hits[0].start != i * CHUNK_CHARS or hits[0].score < 0.999:
                found = hits[0] if hits else None
                raise Failure(f"{source} chunk {i}: its own vector found {found}")

    # --------------------------------------------------------------- the loop

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        with self.open_store() as store:
            if store.stats().documents:
                raise Failure(f"the store at {self.store_dir} is not empty: the loop needs a new one")
        for number in range(1, self.args.kills + 1):
            aim = AIMS[(number - 1) % len(AIMS)]
            history = replay(self.journal.records())
            self.follow()  # from here on, the new child's lines
            self.open_op = None
            child = self.spawn(number)
            spawned = time.monotonic()
            try:
                self.wait_opened(child, number)
                self.kill_child(child, aim, history)
            finally:
                if child.poll() is None:
                    child.kill()
                child.wait()
            after_s = time.monotonic() - spawned
            left = self.leftovers()
            open_op = replay(self.journal.records()).open_op
            kill = Kill(number, aim, after_s, open_op, left)
            self.kills.append(kill)
            self.verify(kill)
            self.log(kill.describe())
        return self.finish(started)

    def finish(self, started: float) -> dict[str, Any]:
        """Apply every document the journal says exists; nothing may be missing."""
        state = replay(self.journal.records()).state
        sources = sorted(state)
        added = updated = unchanged = 0
        with self.open_store() as store:
            for at in range(0, len(sources), 200):
                writes = [make_write(s, *state[s], self.args.dim) for s in sources[at:at + 200]]
                result = store.apply(writes)
                added, updated, unchanged = added + result.added, updated + result.updated, unchanged + result.unchanged
            report = store.check()
            stored = {d.id for d in store.list_documents(limit=10**9)}
            stats = store.stats()
            problems = []
            if not report.ok:
                problems.append(f"check() after the final ingest:\n{report.summary()}")
            if added or updated:
                problems.append(f"the final ingest added {added} and updated {updated} documents: they were lost")
            if stored != expected_ids(state) or stats.documents != len(state):
                problems.append(f"{stats.documents} documents stored, {len(state)} expected "
                                f"({len(stored - expected_ids(state))} unexpected)")
            if stats.chunks != expected_chunks(state):
                problems.append(f"{stats.chunks} chunks stored, {expected_chunks(state)} expected")
            merged = store.compact(force=True)
            after_merge = store.check()
            if not after_merge.ok:
                problems.append(f"check() after a final forced merge:\n{after_merge.summary()}")
            final_stats = store.stats()
        if problems:
            raise Failure("\n".join(problems))
        interrupted = Counter(k.label for k in self.kills)
        background = sum(1 for k in self.kills if k.leftovers["build"] and not (k.op and k.op["kind"] in COMPACTIONS))
        categories = Counter(c for k in self.kills for c in k.categories())
        return {
            "ok": True, "kills": len(self.kills), "interrupted": dict(interrupted),
            "background_merges_interrupted": background,
            "categories": {c: categories.get(c, 0) for c in ("write", "delete", "compaction")},
            "committed": sum(1 for k in self.kills if k.committed is True),
            "rolled_back": sum(1 for k in self.kills if k.committed is False),
            "forced_ivf_merges_interrupted": sum(
                1 for k in self.kills if k.op and k.op["kind"] == "compact_force"
                and k.op.get("vectors", 0) >= IVF_MIN_VECTORS),
            "max_ivf_segments": max((k.ivf_segments for k in self.kills), default=0),
            "checks_ok": len(self.kills) + 2,
            "final_ingest": {"added": added, "updated": updated, "unchanged": unchanged},
            "documents": stats.documents, "chunks": stats.chunks,
            "final_merge": merged.summary(), "segments_after_merge": final_stats.segments,
            "elapsed_s": round(time.monotonic() - started, 1),
            "store": str(self.store_dir), "db_url": final_stats.db_url,
            "kill_log": [k.describe() for k in self.kills],
        }


def table(result: dict[str, Any]) -> str:
    rows = [("kills", str(result["kills"]))]
    rows += [(f"  interrupted: {kind}", str(n)) for kind, n in sorted(result["interrupted"].items())]
    rows += [("  + background merge under way", str(result["background_merges_interrupted"])),
             ("kills in a write / delete / merge", " / ".join(str(result["categories"][c])
                                                          for c in ("write", "delete", "compaction"))),
             ("interrupted ops committed / rolled back", f"{result['committed']} / {result['rolled_back']}"),
             ("forced IVF merges interrupted", str(result["forced_ivf_merges_interrupted"])),
             ("most IVF segments after a kill", str(result["max_ivf_segments"])),
             ("checks ok", f"{result['checks_ok']} of {result['kills'] + 2}"),
             ("final ingest added / updated / unchanged",
              "{added} / {updated} / {unchanged}".format(**result["final_ingest"])),
             ("documents at the end", str(result["documents"])),
             ("chunks at the end", str(result["chunks"])),
             ("elapsed", f"{result['elapsed_s']:.1f} s")]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=30, help="SIGKILLs to send (default 30)")
    parser.add_argument("--store", type=Path, help="store folder, new or empty (default: a temporary "
                        "folder, removed after a clean run)")
    parser.add_argument("--db-url", help="SQL database (empty; default SQLite in the store folder)")
    parser.add_argument("--seed", type=int, default=27)
    parser.add_argument("--dim", type=int, default=16, help="vector dimension (default 16)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies batch sizes and store size bounds (default 1: 25k-60k chunks)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (progress on stderr)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--journal", help=argparse.SUPPRESS)
    parser.add_argument("--child-number", dest="child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.kills < 1 or args.dim < 1 or args.scale <= 0:
        parser.error("--kills, --dim and --scale must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    temporary = args.store is None
    store_dir = Path(tempfile.mkdtemp(prefix="qa-kill-loop-")) / "store" if temporary else args.store
    if store_dir.exists() and any(store_dir.iterdir()):
        print(f"kill_loop: {store_dir} is not empty: give a new or empty folder", file=sys.stderr)
        return 2
    store_dir.mkdir(parents=True, exist_ok=True)
    parent = Parent(args, store_dir)
    try:
        result = parent.run()
    except (Failure, QASystemError) as e:
        result = {"ok": False, "problem": str(e), "kills": len(parent.kills), "store": str(store_dir),
                  "journal": str(parent.journal.path), "kill_log": [k.describe() for k in parent.kills[:-1]]}
        if parent.kills:
            last = parent.kills[-1]
            result["failed_kill"] = {"number": last.number, "interrupted": last.op, "leftovers": last.leftovers}
        print(json.dumps(result, indent=2) if args.json else
              f"INCONSISTENT after kill {len(parent.kills)}: {e}\n"
              f"interrupted: {result.get('failed_kill')}\nstore kept at {store_dir}, journal {parent.journal.path}")
        return 1
    print(json.dumps(result, indent=2) if args.json else table(result))
    if temporary:
        shutil.rmtree(store_dir.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
