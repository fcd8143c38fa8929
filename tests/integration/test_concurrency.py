"""One `QASystem` hammered from several threads at once with the real MiniLM embedder: questions
(retrieval) in some threads while another ingests and deletes documents of varied lengths.

A Hugging Face fast tokenizer keeps its padding and truncation settings on the shared Rust
object, so two threads tokenizing with it at once can clash (``ValueError: expected sequence of
length 18 at dim 1 (got 13)``, or quietly wrong padding). The ingest's chunker and its embedding
run in the writer thread while questions are embedded in the others.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qa_system import QASystem, load_settings
from qa_system.types import Document

pytestmark = pytest.mark.slow

WORDS = ("billing", "invoice", "refund", "plan", "upgrade", "sync", "error", "device", "battery", "screen",
         "password", "account", "export", "import", "backup", "restore", "team", "member", "permission",
         "storage", "quota", "network", "proxy")
DEADLINE_S = 30.0


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))).capitalize() + "."


def document(rng: random.Random, n: int) -> Document:
    """Documents of varied lengths: from one sentence to several chunks."""
    text = " ".join(sentence(rng) for _ in range(rng.choice((1, 2, 5, 20, 60, 200))))
    return Document(source=f"doc-{n}.txt", text=text, title=f"Document {n}")


def question(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40))) + "?"


def test_questions_and_writes_from_several_threads_at_once(tmp_path: Path, real_embedder: Any) -> None:
    rng = random.Random(26)
    qa = QASystem(load_settings(store_dir=tmp_path / "store"), embedder=real_embedder).load()
    qa.ingest_documents([document(rng, n) for n in range(8)])
    # the vectors of fixed questions, embedded alone: concurrent embedding must give the same
    fixed = [question(rng) for _ in range(6)]
    expected = {q: real_embedder.encode([q])[0] for q in fixed}

    stop = threading.Event()
    errors: list[BaseException] = []
    asked = [0]
    writes = [0]

    def ask(seed: int) -> None:
        local = random.Random(seed)
        try:
            while not stop.is_set():
                batch = [question(local) for _ in range(local.randint(1, 5))]
                results = qa.retrieve_many(batch, top_k=3)
                assert len(results) == len(batch) and all(len(r) <= 3 for r in results)
                q = local.choice(fixed)
                np.testing.assert_allclose(qa.embedder.encode([q])[0], expected[q], atol=1e-4)
                asked[0] += len(batch)
        except BaseException as e:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(e)
            stop.set()

    def write() -> None:
        local = random.Random(7)
        n = 100
        try:
            while not stop.is_set():
                docs = [document(local, n + i) for i in range(local.randint(1, 6))]
                n += len(docs)
                qa.ingest_documents(docs)
                qa.delete(document_ids=[local.choice(docs).id])
                writes[0] += 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            stop.set()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)] + [threading.Thread(target=write)]
    for t in threads:
        t.start()
    stop.wait(DEADLINE_S)
    stop.set()
    for t in threads:
        t.join()
    qa.close()
    if errors:
        raise errors[0]
    assert asked[0] > 50 and writes[0] > 5, (asked[0], writes[0])
