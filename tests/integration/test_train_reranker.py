"""`qa-system train-reranker` end to end on the shipped tiny SQuAD and SubjQA files, from the
shipped MiniLM: checkpoints and resuming, held-out re-ranking scores, the model folder, and a
store over data/sample_corpus answering with that model re-ranking its passages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa_system.cli import main as cli_main
from tests.support import DATA, SAMPLE_CORPUS, packaged_reader_present, sample_questions

pytestmark = pytest.mark.slow

TINY = str(DATA / "eval" / "tiny_squad_v2.json")
SUBJ = str(DATA / "eval" / "tiny_subjqa.csv")
HELD = "heldout:eval/tiny_squad_v2.json"


def train(out: Path, *extra: str) -> int:
    return cli_main(["train-reranker", "--train", TINY, SUBJ, "--heldout-percent", "30", "--output", str(out),
                     "--batch-size", "4", "--checkpoint-every", "1", "--threads", "1", "--eval-questions", "20",
                     "--max-tokens", "128", "--no-progress", *extra])


def history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reranker") / "run"
    assert train(out, "--max-steps", "2") == 0
    return out


def test_train_checkpoint_resume_and_model(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = trained
    assert [h["step"] for h in history(out) if "heldout" in h] == [0, 2]  # before and after
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 2 and HELD in results["heldout"]
    for side in ("dense", "reranked"):
        s = results["heldout"][HELD][side]
        assert 0 <= s["gold@1"] <= s["gold@5"] <= s["gold@10"] <= 1 and s["questions"] > 0
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert any(p["negative"] for p in pairs)  # hard negatives mined with the current retriever
    assert (out / "checkpoint" / "state.pt").is_file()
    saved = json.loads((out / "model" / "qa_system_reranker.json").read_text())
    assert saved["max_tokens"] == 128
    # the same command with more steps resumes at the checkpoint
    assert train(out, "--max-steps", "3") == 0
    assert "resuming at step 2" in capsys.readouterr().err
    assert json.loads((out / "results.json").read_text())["steps"] == 3
    assert [h["step"] for h in history(out) if "loss" in h] == [1, 2, 3]
    # other options are refused rather than mixed into the run
    assert train(out, "--max-steps", "3", "--max-tokens", "64") == 1
    assert "other options (max_tokens)" in capsys.readouterr().err


def test_the_model_moved_from_its_fresh_head(trained: Path) -> None:
    from qa_system.retrieval.rerank import CrossEncoder
    from qa_system.training.reranker_train import load_base

    model = CrossEncoder(trained / "model", precision="fp32").load()
    q, p = ["How long does the battery last?"] * 2, ["The battery lasts ten hours.", "The case is blue."]
    fresh, tokenizer = load_base("all-MiniLM-L6-v2", "cpu")
    import torch

    from qa_system.retrieval.rerank import score_pairs

    with torch.inference_mode():
        before = score_pairs(fresh.eval(), tokenizer, q, p, 128, "cpu").numpy()
    assert abs(model.score(q, p) - before).max() > 1e-4


@pytest.mark.skipif(not packaged_reader_present(), reason="needs the packaged reader")
def test_a_store_answers_with_the_reranker(trained: Path, tmp_path: Path) -> None:
    from qa_system.system import QASystem

    with QASystem.open(tmp_path / "store", reranker=str(trained / "model"), rerank_top_n=6) as qa:
        qa.ingest(SAMPLE_CORPUS)
        question = sample_questions()[0]["question"]
        six = qa.retrieve(question, top_k=6)
        result = qa.ask(question, top_k_retriever=4)
        models = qa.describe_models().as_dict()  # what ask --json and /readyz report
    assert models["reranker"]["model"] == str(trained / "model") and models["reranker"]["rerank_top_n"] == 6
    assert models["reranker"]["precision"] in {"fp32", "bf16"}
    assert result.answers and len(result.passages) == 4
    scores = [p.rerank_score for p in result.passages]
    assert all(s is not None for s in scores)
    assert scores == sorted(scores, reverse=True)  # the order follows the re-ranker
    # the retrieval scores keep their scale: the same values, handed out in the new order
    assert [p.score for p in result.passages] == sorted((p.score for p in result.passages), reverse=True)
    # the passages are the re-ranked best 4 of the retriever's top 6
    assert {p.chunk_id for p in result.passages} <= {p.chunk_id for p in six}


def test_eval_re_ranks_with_the_model(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    assert cli_main(["eval", "subjqa", "--csv", SUBJ, "--retrieval-only", "--limit", "4", "--no-progress",
                     "--reranker", str(trained / "model"), "--rerank-top-n", "3", "--out", str(out)]) == 0
    result = json.loads((out / "subjqa-tiny_subjqa-limit4-rerank3.json").read_text())
    assert any("re-ranked: the first 3 retrieved passages" in note for note in result["notes"])
