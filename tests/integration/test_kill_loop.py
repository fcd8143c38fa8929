"""``scripts/kill_loop.py`` (issue 27): a store SIGKILLed in writes, deletes and merges stays
consistent and loses nothing; on SQLite, and on PostgreSQL when QA_SYSTEM_TEST_POSTGRES_URL is
set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import POSTGRES_URL_VARIABLE, reset_database

pytestmark = pytest.mark.slow  # about 30 s a database: eight child processes, each killed

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kill_loop.py"
KILLS = 8


def run_kill_loop(store: Path, *extra: str) -> dict[str, Any]:
    command = [sys.executable, str(SCRIPT), "--kills", str(KILLS), "--store", str(store), "--seed", "8",
               "--json", *extra]
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, f"kill loop failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


def assert_crash_safe(result: dict[str, Any]) -> None:
    assert result["ok"] is True
    assert result["kills"] == KILLS
    assert result["checks_ok"] == KILLS + 2  # after each kill, after the final ingest, after a merge
    # the kills were aimed: at least one landed inside each kind of operation
    for category in ("write", "delete", "compaction"):
        assert result["categories"][category] >= 1, (category, result["kill_log"])
    # nothing was lost: re-applying every document the journal says exists added none
    assert result["final_ingest"]["added"] == result["final_ingest"]["updated"] == 0
    assert result["final_ingest"]["unchanged"] == result["documents"] > 0
    assert result["chunks"] > 0


def test_kill_loop_on_sqlite(tmp_path: Path) -> None:
    assert_crash_safe(run_kill_loop(tmp_path / "store"))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not url:
        pytest.skip(f"set {POSTGRES_URL_VARIABLE} to run the kill loop on PostgreSQL")
    reset_database(url)
    yield url
    reset_database(url)


def test_kill_loop_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    result = run_kill_loop(tmp_path / "store", "--db-url", postgres_url)
    assert_crash_safe(result)
    assert result["db_url"].startswith("postgresql")
