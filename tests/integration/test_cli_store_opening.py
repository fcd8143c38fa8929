"""Opening a store from the command line: paths that cannot be a store, and commands that need
no model (stats, check, delete) opening a real store without loading one. No model loads here:
the store is filled with a fake embedder's vectors under the default model's name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa_system.cli import main
from qa_system.config import DEFAULT_EMBEDDING_MODEL
from qa_system.storage import DocumentWrite, Store
from qa_system.types import Chunk, Document
from tests.store_suite import FakeEmbedder
from tests.support import REPO

MINILM_DIMENSION = 384


def fill_store(directory: Path, model: str = DEFAULT_EMBEDDING_MODEL, dimension: int = MINILM_DIMENSION) -> None:
    embedder = FakeEmbedder(model, dimension)
    writes = []
    for n in range(3):
        document = Document(source=f"/docs/note-{n}.txt", text=f"Note {n} is about topic {n}. " * 4)
        text = document.text
        chunks = [Chunk(document.id, 0, 0, len(text), text, 20)]
        writes.append(DocumentWrite(document, chunks, embedder.encode([text])))
    with Store.open(directory, embedding_model=model, dimension=dimension) as store:
        store.apply(writes)


def error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err  # one line, no traceback
    return lines[0]


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "input" / "a.txt"
    path.parent.mkdir()
    path.write_text("Plus costs 10 euros a month.")
    return path


COMMANDS = (["ingest", "INPUT", "--no-progress"], ["ask", "What does Plus cost?"], ["stats"], ["check"],
            ["delete", "--id", "x"], ["reindex", "--model", "any-model"])


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_store_path_that_is_a_file_is_one_error_line_and_creates_nothing(
        tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    folder = tmp_path / "here"
    folder.mkdir()
    not_a_folder = folder / "notes.txt"
    not_a_folder.write_text("just a file")
    args = [str(text_file) if a == "INPUT" else a for a in command]
    assert main([*args, "--store", str(not_a_folder)]) == 1
    line = error_line(capsys.readouterr().err)
    assert line == f"error: {not_a_folder} is a file, not a store folder: give a folder (new or existing)"
    assert [p.name for p in folder.iterdir()] == ["notes.txt"] and not_a_folder.read_text() == "just a file"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_store_path_under_a_file_is_one_error_line_and_creates_nothing(
        tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    folder = tmp_path / "here"
    folder.mkdir()
    (folder / "notes.txt").write_text("just a file")
    store = folder / "notes.txt" / "store"
    args = [str(text_file) if a == "INPUT" else a for a in command]
    assert main([*args, "--store", str(store)]) == 1
    line = error_line(capsys.readouterr().err)
    assert line == f"error: {store} cannot be a store folder: {folder / 'notes.txt'} is a file, not a folder"
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_a_store_under_an_unwritable_folder_is_one_error_line(
        tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["ingest", str(text_file), "--store", str(locked / "a" / "store"), "--no-progress"]) == 1
        line = error_line(capsys.readouterr().err)
        assert line == f"error: {locked / 'a' / 'store'} cannot be a store folder: {locked} is not writable"
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def run_in_fresh_python(script: str, *args: str) -> dict[str, object]:
    """Run ``script`` in a new interpreter (this one has the models imported already); its last
    stdout line is JSON."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


CLI_SCRIPT = """
import json, sys
from qa_system.cli import main
codes = [main(args) for args in json.loads(sys.argv[1])]
models = [m for m in ("sentence_transformers", "transformers", "torch") if m in sys.modules]
print(json.dumps({"codes": codes, "modules": models}))
"""


def test_stats_check_and_delete_load_no_model(tmp_path: Path) -> None:
    store = tmp_path / "store"
    fill_store(store)
    store_args = ["--store", str(store)]
    commands = [["stats", *store_args], ["check", *store_args], ["check", "--repair", *store_args],
                ["delete", "--source", "/docs/note-1.txt", *store_args], ["stats", *store_args]]
    result = run_in_fresh_python(CLI_SCRIPT, json.dumps(commands))
    assert result == {"codes": [0, 0, 0, 0, 0], "modules": []}
    with Store.open(store, embedding_model=DEFAULT_EMBEDDING_MODEL, dimension=MINILM_DIMENSION) as opened:
        assert opened.stats().documents == 2 and opened.check().ok


API_SCRIPT = """
import json, sys
from qa_system import QASystem
with QASystem.open(sys.argv[1]) as qa:
    stats, report = qa.stats(), qa.repair()
    deleted = qa.delete(sources=["/docs/note-0.txt"])
    models = qa.describe_models()
loaded = [m for m in ("sentence_transformers", "transformers", "torch") if m in sys.modules]
print(json.dumps({"documents": stats.documents, "ok": report.ok, "deleted": deleted,
                  "embedder": models.embedder, "modules": loaded}))
"""


def test_the_python_api_opens_a_store_without_loading_a_model(tmp_path: Path) -> None:
    store = tmp_path / "store"
    fill_store(store)
    result = run_in_fresh_python(API_SCRIPT, str(store))
    assert result == {"documents": 3, "ok": True, "deleted": 1, "embedder": None, "modules": []}


def test_a_store_of_another_embedding_model_is_refused(
        tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    fill_store(store, model="model-x", dimension=8)
    for command in (["ingest", str(text_file), "--no-progress"], ["ask", "What does Plus cost?"], ["stats"]):
        assert main([*command, "--store", str(store)]) == 1
        assert error_line(capsys.readouterr().err) == (
            f"error: the store at {store} was built with 'model-x' (dimension 8); asked for "
            f"'{DEFAULT_EMBEDDING_MODEL}'. Use the same embedding model, ingest into a new store, or re-embed this "
            f"one with `qa-system reindex --model {DEFAULT_EMBEDDING_MODEL}`.")
