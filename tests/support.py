"""Paths and data shared by the tests (importable as ``tests.support``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SAMPLE_CORPUS = DATA / "sample_corpus"
PACKAGED_READER = REPO / "qa_system" / "models" / "reader"


def packaged_reader_present() -> bool:
    return (PACKAGED_READER / "config.json").exists()


def sample_questions() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / "sample_questions.jsonl").read_text().splitlines() if line.strip()]
