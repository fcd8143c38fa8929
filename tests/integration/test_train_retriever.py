"""`qa-system train-retriever` end to end on the shipped tiny SQuAD and SubjQA files, from the
shipped MiniLM: checkpoints and resuming, held-out scores, the time budget, learning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa_system.cli import main as cli_main
from tests.support import DATA

pytestmark = pytest.mark.slow

TINY = str(DATA / "eval" / "tiny_squad_v2.json")
SUBJ = str(DATA / "eval" / "tiny_subjqa.csv")


def train(out: Path, *extra: str) -> int:
    return cli_main(["train-retriever", "--train", TINY, SUBJ, "--heldout-percent", "30", "--output", str(out),
                     "--batch-size", "4", "--checkpoint-every", "1", "--threads", "1", "--eval-questions", "50",
                     "--no-progress", *extra])


def history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


def test_train_checkpoint_resume_and_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qa_system.embedding import SentenceTransformerEmbedder

    out = tmp_path / "run"
    assert train(out, "--max-steps", "2", "--eval-every", "1") == 0
    first = capsys.readouterr()
    assert [h["step"] for h in history(out) if "heldout" in h] == [0, 1, 2]  # before, during, after
    assert "held out, before training: heldout:eval/tiny_squad_v2.json: R@1" in first.err
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 2 and set(results["heldout"]) == {"heldout:eval/tiny_squad_v2.json"}
    scores = results["heldout"]["heldout:eval/tiny_squad_v2.json"]
    assert 0 < scores["recall@1"] <= scores["recall@5"] <= 1 and scores["questions"] > 0
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert any(p["negative"] for p in pairs)
    for p in pairs:  # a mined negative never holds one of its question's answers
        assert p["negative"] is None or not any(a.lower() in p["negative"].lower() for a in p["answers"])
    assert (out / "checkpoint" / "state.pt").is_file()
    # the same command with more steps resumes at the checkpoint
    assert train(out, "--max-steps", "4") == 0
    assert "resuming at step 2" in capsys.readouterr().err
    assert json.loads((out / "results.json").read_text())["steps"] == 4
    assert [h["step"] for h in history(out) if "loss" in h] == [1, 2, 3, 4]
    # other options are refused rather than mixed into the run
    assert train(out, "--max-steps", "4", "--lr", "1e-3") == 1
    assert "other options (lr)" in capsys.readouterr().err
    # the model folder is a sentence-transformers model the product loads, and it moved
    trained = SentenceTransformerEmbedder(str(out / "model"), precision="fp32").load()
    base = SentenceTransformerEmbedder(precision="fp32").load()
    text = ["How long does the battery last?"]
    assert trained.dimension == base.dimension
    assert not np.allclose(trained.encode(text), base.encode(text), atol=1e-4)


def test_training_lowers_the_loss(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train(out, "--epochs", "4", "--lr", "2e-4", "--no-hard-negatives") == 0
    losses = [h["loss"] for h in history(out) if "loss" in h]
    per_epoch = len(losses) // 4
    assert per_epoch >= 2
    assert np.mean(losses[-per_epoch:]) < 0.7 * np.mean(losses[:per_epoch])


def test_time_budget_ends_the_run_early(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train(out, "--max-steps", "200", "--time-budget", "0.1", "--eval-every", "0") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["planned_steps"] == 200
    assert 5 < results["steps"] < 200  # the pace after the warm-up steps moved the end
    assert [h["step"] for h in history(out) if "loss" in h] == list(range(1, results["steps"] + 1))


def test_fp16_export_loads(tmp_path: Path) -> None:
    from qa_system.embedding import SentenceTransformerEmbedder

    export = tmp_path / "fp16"
    assert train(tmp_path / "run", "--max-steps", "1", "--export-fp16", str(export)) == 0
    size = sum(f.stat().st_size for f in export.rglob("*.safetensors"))
    assert 0 < size < 50 * 2**20  # half of MiniLM's 90 MB
    trained = SentenceTransformerEmbedder(str(tmp_path / "run" / "model"), precision="fp32").load()
    half = SentenceTransformerEmbedder(str(export), precision="fp32").load()
    text = ["Does the pen write well?"]
    assert float((trained.encode(text) @ half.encode(text).T)[0, 0]) > 0.999
