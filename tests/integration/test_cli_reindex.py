"""`qa-system reindex` from the command line: its errors without loading a model, and (slow) a
real re-embedding with the MiniLM embedder, from a store of another model and from its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa_system import QASystem
from qa_system.cli import main
from qa_system.config import DEFAULT_EMBEDDING_MODEL
from qa_system.storage import Store
from tests.integration.test_cli_store_opening import MINILM_DIMENSION, error_line, fill_store


def test_reindex_needs_an_existing_store_and_a_positive_batch(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    absent = tmp_path / "absent"
    assert main(["reindex", "--model", "any-model", "--store", str(absent)]) == 1
    assert error_line(capsys.readouterr().err).startswith(f"error: no store at {absent}")
    assert not absent.exists()
    store = tmp_path / "store"
    fill_store(store, model="model-x", dimension=8)
    assert main(["reindex", "--model", "any-model", "--store", str(store), "--batch-size", "0"]) == 1
    assert error_line(capsys.readouterr().err) == "error: --batch-size must be positive, got 0"
    with pytest.raises(SystemExit):  # --model is required: a usage error
        main(["reindex", "--store", str(store)])


@pytest.mark.slow
def test_reindex_with_the_real_embedder_switches_the_model_then_rebuilds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    fill_store(store, model="model-x", dimension=8)  # three notes, embedded by a fake 8-dimensional model
    args = ["--store", str(store)]
    assert main(["stats", *args]) == 1  # opened with the default model: refused, naming the way out
    assert f"qa-system reindex --model {DEFAULT_EMBEDDING_MODEL}" in capsys.readouterr().err

    assert main(["reindex", "--model", DEFAULT_EMBEDDING_MODEL, "--batch-size", "2", *args]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == out.strip().splitlines()[0]  # one summary line
    assert out.startswith(f"re-embedded 3 chunks with '{DEFAULT_EMBEDDING_MODEL}' (dimension {MINILM_DIMENSION}; "
                          "was 'model-x', dimension 8): 3 embedded now; 1 segments")
    assert "reindex: 100%" in err and "3/3" in err  # the progress bar

    assert main(["stats", *args]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["embedding_model"], stats["dimension"], stats["vectors"]) == (
        DEFAULT_EMBEDDING_MODEL, MINILM_DIMENSION, 3)
    assert main(["check", *args]) == 0
    assert capsys.readouterr().out == "consistent: 3 chunks, 3 vectors\n"
    with QASystem.open(store) as qa:  # the default model now opens it, and finds by meaning
        assert qa.retrieve("What is note 2 about?", top_k=1)[0].source == "/docs/note-2.txt"

    # the store's own model again: every vector rebuilt
    assert main(["reindex", "--model", DEFAULT_EMBEDDING_MODEL, "--no-progress", "--json", *args]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert (result["previous_model"], result["model"], result["embedded"], result["chunks"]) == (
        DEFAULT_EMBEDDING_MODEL, DEFAULT_EMBEDDING_MODEL, 3, 3)
    assert err == ""
    with pytest.raises(Exception, match="qa-system reindex --model model-x"):
        Store.open(store, embedding_model="model-x", dimension=8)
    with QASystem.open(store) as qa:
        assert qa.check().ok
        assert qa.retrieve("What is note 1 about?", top_k=1)[0].source == "/docs/note-1.txt"
