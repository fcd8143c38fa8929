"""The command line as a shell pipeline sees it: a real process, a real SQLite store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qa_system import load_settings
from qa_system.cli import EXIT_BROKEN_PIPE
from qa_system.cli import main as cli_main
from qa_system.storage import Store

MINILM_DIMENSION = 384  # the default embedder's


def empty_store(tmp_path: Path) -> Path:
    """A store with nothing in it (the read commands refuse a store that does not exist; ingesting
    an empty folder is an error that makes none)."""
    (tmp_path / "nothing").mkdir()
    store = tmp_path / "store"
    assert cli_main(["ingest", str(tmp_path / "nothing"), "--store", str(store), "--no-progress"]) == 1
    assert not store.exists()
    settings = load_settings(store_dir=store)
    Store.open(store, embedding_model=settings.embedding_model, dimension=MINILM_DIMENSION).close()
    return store


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    # `qa-system stats | head -1`: the pipe's read end is closed before the command writes a byte
    cmd = [sys.executable, "-m", "qa_system.cli", "stats", "--store", str(empty_store(tmp_path))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == EXIT_BROKEN_PIPE
    assert err == ""


def test_stats_still_prints_to_a_reader_that_stays(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "qa_system.cli", "stats", "--store", str(empty_store(tmp_path))]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert '"documents": 0' in done.stdout
