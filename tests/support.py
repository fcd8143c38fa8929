"""Paths and data shared by the tests (importable as ``tests.support``)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SAMPLE_CORPUS = DATA / "sample_corpus"
PACKAGED_READER = REPO / "qa_system" / "models" / "reader"
#: A PostgreSQL URL for the tests that also run on PostgreSQL (CI sets it; they skip without it).
POSTGRES_URL_VARIABLE = "QA_SYSTEM_TEST_POSTGRES_URL"


def packaged_reader_present() -> bool:
    return (PACKAGED_READER / "config.json").exists()


def sample_questions() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / "sample_questions.jsonl").read_text().splitlines() if line.strip()]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reset_database(url: str) -> None:
    """Migrate the database down to nothing: the PostgreSQL tests share one database."""
    from qa_system.storage import migrate
    from qa_system.storage.engine import create_store_engine

    engine = create_store_engine(url)
    try:
        migrate.downgrade(engine, "base")
    finally:
        engine.dispose()


def first_two_windows_per_pair(overflow_to_sample: list[int]) -> list[int]:
    """Indices of the windows that tokenizers 0.23.1 and 0.23.2 keep: the first two of each pair."""
    seen: dict[int, int] = {}
    keep = []
    for i, sample in enumerate(overflow_to_sample):
        seen[sample] = seen.get(sample, 0) + 1
        if seen[sample] <= 2:
            keep.append(i)
    return keep
