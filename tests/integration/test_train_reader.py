"""`qa-system train-reader` / `eval-reader` end to end on the shipped tiny SQuAD v2 file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa_system.cli import main as cli_main
from qa_system.hardware import allocator_hint
from tests.support import DATA

pytestmark = pytest.mark.slow

TINY = str(DATA / "eval" / "tiny_squad_v2.json")
SUBJ = str(DATA / "eval" / "tiny_subjqa.csv")


def train(out: Path, steps: int) -> int:
    return cli_main(["train-reader", "--train", TINY, SUBJ, "--eval", TINY, "--output", str(out),
                     "--max-length", "96", "--stride", "32", "--batch-size", "4", "--max-steps", str(steps),
                     "--checkpoint-every", "1", "--threads", "1"])


def test_train_resume_and_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import AutoModelForQuestionAnswering

    out = tmp_path / "run"
    assert train(out, 2) == 0
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2]
    with (out / "history.jsonl").open("a") as h:  # an interrupted run logged a step after its checkpoint
        h.write(json.dumps({"step": 3, "loss": 9.9, "windows_per_s": 1.0}) + "\n")
        h.write('{"step": 4, "lo')  # and was killed while writing the next
    assert train(out, 3) == 0  # resumes after step 2, and step 3 is logged once, by the run that did it
    printed = capsys.readouterr()
    assert "resuming from step 2" in printed.out
    # on the CPU under glibc's malloc, the run says how to train faster
    assert (allocator_hint("training") is not None) == ("reader training ran 1.42x faster" in printed.err)
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3] and history[-1]["loss"] != 9.9

    model_dir = out / "model"
    AutoModelForQuestionAnswering.from_pretrained(model_dir)  # a standard Hugging Face folder
    reader_config = json.loads((model_dir / "qa_system_reader.json").read_text())
    assert "no_answer_threshold" in reader_config
    fit = json.loads((model_dir / "threshold_fit.json").read_text())
    assert fit["dev_examples"] == 22

    scores = tmp_path / "scores.json"
    assert cli_main(["eval-reader", str(model_dir), TINY, SUBJ, "--json", str(scores)]) == 0
    results = json.loads(scores.read_text())["results"]
    tiny = results[TINY]
    assert tiny["total"] == 22 and tiny["no_answer_total"] == 4
    assert 0.0 <= tiny["exact_match"] <= tiny["f1"] <= 1.0

    # Re-fit on other dev data: the threshold file is rewritten from the new fit.
    assert cli_main(["fit-threshold", str(model_dir), SUBJ]) == 0
    assert "no-answer threshold" in capsys.readouterr().out
    refit = json.loads((model_dir / "threshold_fit.json").read_text())
    assert refit["dev_examples"] != 22
    assert json.loads((model_dir / "qa_system_reader.json").read_text())["no_answer_threshold"] == round(
        refit["threshold"], 4)
    assert refit["dev_parts"] == {}  # one file: no parts to tell apart
    # too few contexts read in several windows for a threshold of their own: one serves all
    assert refit["long_passage_threshold"] is None and refit["dev_long_context_examples"] < 100
    assert "long_passage_no_answer_threshold" not in json.loads((model_dir / "qa_system_reader.json").read_text())
    # Two files: each is scored apart at the one fitted threshold, and the parts add up to the whole.
    assert cli_main(["fit-threshold", str(model_dir), TINY, SUBJ]) == 0
    printed = capsys.readouterr().out
    assert "dev part" in printed and "HasAns F1 answering all" in printed
    both = json.loads((model_dir / "threshold_fit.json").read_text())
    parts = both["dev_parts"]
    assert set(parts) == {TINY, SUBJ} and parts[TINY]["questions"] == 22 and parts[TINY]["has_answer"] == 18
    assert sum(p["questions"] for p in parts.values()) == both["dev_examples"]
    assert abs(sum(p["f1"] * p["questions"] for p in parts.values()) / both["dev_examples"]
               - both["dev_f1_at_threshold"]) < 1e-9
    # --print-only fits on other data and leaves both files as they are.
    files = {name: (model_dir / name).read_bytes() for name in ("qa_system_reader.json", "threshold_fit.json")}
    assert cli_main(["fit-threshold", str(model_dir), TINY, "--print-only"]) == 0
    assert "not written (--print-only)" in capsys.readouterr().out
    assert all((model_dir / name).read_bytes() == data for name, data in files.items())
    assert cli_main(["fit-threshold", str(tmp_path / "nowhere"), SUBJ]) == 1
    assert "not a local model folder" in capsys.readouterr().err
    # one id for two different questions: named (with its file), nothing scored or written
    clash = tmp_path / "clash.json"
    qas = [{"id": "q1", "question": q, "answers": [{"text": a, "answer_start": 0}]} for q, a in
           (("What is first?", "Sky"), ("What is it?", "Sky is"))]
    clash.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": "Sky is blue.", "qas": qas}]}]}))
    assert cli_main(["eval-reader", str(model_dir), str(clash), "--json", str(tmp_path / "clash-scores.json")]) == 1
    assert f"{clash}: question id 'q1' is used twice" in capsys.readouterr().err
    assert not (tmp_path / "clash-scores.json").exists()
    assert cli_main(["fit-threshold", str(model_dir), str(clash)]) == 1
    assert "question id 'q1' is used twice" in capsys.readouterr().err
    assert all((model_dir / name).read_bytes() == data for name, data in files.items())

    # the latest checkpoint as a model folder; an existing one is replaced only when asked
    from qa_system.errors import ConfigError
    from qa_system.training.trainer import export_checkpoint

    snapshot = export_checkpoint(out, tmp_path / "snapshot")
    AutoModelForQuestionAnswering.from_pretrained(snapshot)
    with pytest.raises(ConfigError, match="already holds a model"):
        export_checkpoint(out, snapshot)
    assert export_checkpoint(out, snapshot, overwrite=True) == snapshot
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a model folder"):
        export_checkpoint(out, tmp_path / "docs", overwrite=True)
    assert [p.name for p in (tmp_path / "docs").iterdir()] == ["a.txt"]


def test_train_reader_needs_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["train-reader", "--output", str(tmp_path / "x")]) == 1
    assert "--train" in capsys.readouterr().err


def test_time_budget_shortens_the_run_and_its_schedule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qa_system.training.schedule import WARMUP_STEPS

    out = tmp_path / "run"
    args = ["train-reader", "--train", TINY, SUBJ, "--eval", TINY, "--output", str(out),
            "--max-length", "96", "--stride", "32", "--batch-size", "2", "--epochs", "4",
            "--checkpoint-every", "1000", "--threads", "1", "--device", "cpu"]
    assert cli_main([*args, "--time-budget", "0.00001"]) == 0
    # The budget is spent before the first step: the first look, after one timed step, ends the run.
    assert f"{WARMUP_STEPS + 1} steps instead of" in capsys.readouterr().out
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == list(range(1, WARMUP_STEPS + 2))
    assert json.loads((out / "train_config.json").read_text())["steps"] == WARMUP_STEPS + 1
    assert (out / "model" / "qa_system_reader.json").is_file() and (out / "model" / "eval_results.json").is_file()
    # --skip-tests: the threshold is fitted, no test set is scored
    skipped = tmp_path / "skipped"
    assert cli_main([*args[:7], str(skipped), *args[8:], "--max-steps", "1", "--skip-tests"]) == 0
    assert "no-answer threshold" in capsys.readouterr().out
    assert (skipped / "model" / "qa_system_reader.json").is_file()
    assert not (skipped / "model" / "eval_results.json").exists()
    # Run again (with or without a budget): the schedule was decayed to 0 at that step, so the run
    # stays ended instead of resuming the original 4-epoch schedule with its learning rate back up.
    for again in ([], ["--time-budget", "10"]):
        assert cli_main([*args, *again]) == 0
        assert f"already at the end of its schedule ({WARMUP_STEPS + 1} steps)" in capsys.readouterr().out
        assert len((out / "history.jsonl").read_text().splitlines()) == WARMUP_STEPS + 1


def test_shared_norm_run_records_its_weight_and_resumes_only_with_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["train-reader", "--train", SUBJ, "--eval", TINY, "--output", str(out), "--max-length", "64",
            "--stride", "16", "--batch-size", "8", "--checkpoint-every", "1", "--threads", "1"]
    assert cli_main([*args, "--max-steps", "2", "--shared-norm", "1.0"]) == 0
    assert json.loads((out / "train_config.json").read_text())["shared_norm"] == 1.0
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2] and all(h["loss"] > 0 for h in history)
    # the checkpoint belongs to a shared-norm run: resuming without it is refused, not mixed
    assert cli_main([*args, "--max-steps", "3"]) == 1
    assert "another configuration" in capsys.readouterr().err
    assert cli_main([*args, "--max-steps", "3", "--shared-norm", "1.0"]) == 0
    assert "resuming from step 2" in capsys.readouterr().out
    assert cli_main([*args, "--shared-norm", "-1"]) == 1
    assert "--shared-norm must be a finite weight >= 0" in capsys.readouterr().err


def test_train_reader_refuses_a_missing_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert cli_main(["train-reader", "--train", TINY, "--output", str(tmp_path / "x"), "--device", "cuda",
                     "--max-steps", "1"]) == 1
    assert "no CUDA GPU" in capsys.readouterr().err
    assert cli_main(["train-reader", "--train", TINY, "--output", str(tmp_path / "y"), "--time-budget", "0"]) == 1
    assert "--time-budget must be positive" in capsys.readouterr().err


def test_average_readers_writes_the_mean_of_each_weight(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch
    from transformers import AutoModelForQuestionAnswering

    runs = []
    for seed in ("1", "2"):  # two readers of one base, trained apart
        out = tmp_path / f"run{seed}"
        assert cli_main(["train-reader", "--train", TINY, "--eval", TINY, "--output", str(out), "--max-length", "96",
                         "--stride", "32", "--batch-size", "4", "--max-steps", "2", "--threads", "1", "--lr", "1e-3",
                         "--seed", seed]) == 0
        runs.append(out / "model")
    avg = tmp_path / "avg"
    assert cli_main(["average-readers", *map(str, runs), "--output", str(avg), "--weights", "0.25", "0.75"]) == 0
    assert "fit-threshold" in capsys.readouterr().out
    a, b, m = (AutoModelForQuestionAnswering.from_pretrained(d, dtype=torch.float32).state_dict() for d in (*runs, avg))
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert "qa_outputs.weight" in differing  # the two runs really differ
    for k in differing:
        assert torch.allclose(m[k], 0.25 * a[k] + 0.75 * b[k], atol=2e-3, rtol=1e-2), k
    assert not (avg / "qa_system_reader.json").exists()  # its threshold is fitted afterwards
    assert cli_main(["fit-threshold", str(avg), TINY]) == 0

    # an existing model is replaced only with --overwrite, even when it is one of the inputs
    before = (runs[0] / "model.safetensors").read_bytes()
    assert cli_main(["average-readers", *map(str, runs), "--output", str(runs[0])]) == 1
    assert "pass --overwrite" in capsys.readouterr().err
    assert (runs[0] / "model.safetensors").read_bytes() == before
    assert cli_main(["average-readers", *map(str, runs), "--output", str(runs[0]), "--overwrite"]) == 0
    m = AutoModelForQuestionAnswering.from_pretrained(runs[0], dtype=torch.float32).state_dict()
    assert torch.allclose(m["qa_outputs.weight"], 0.5 * a["qa_outputs.weight"] + 0.5 * b["qa_outputs.weight"],
                          atol=2e-3, rtol=1e-2)
    assert sorted(p.name for p in runs[0].parent.iterdir() if p.name.startswith("model")) == ["model"]

    assert cli_main(["average-readers", str(runs[0]), str(tmp_path / "nowhere"), "--output", str(tmp_path / "x")]) == 1
    assert "not a local model folder" in capsys.readouterr().err
    from qa_system.embedding import resolve_embedding_model

    encoder = resolve_embedding_model("all-MiniLM-L6-v2")  # a plain encoder: no trained span head
    assert cli_main(["average-readers", str(runs[0]), str(encoder), "--output", str(tmp_path / "x")]) == 1
    assert "not a question-answering model" in capsys.readouterr().err
    assert cli_main(["average-readers", *map(str, runs), "--output", str(tmp_path / "x"),
                     "--weights", "0.5", "0.6"]) == 1
    assert "summing to 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_export_never_replaces_a_folder_unasked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch
    from safetensors.torch import load_file

    def run(out: Path, export: Path, *extra: str) -> int:
        return cli_main(["train-reader", "--train", TINY, "--eval", TINY, "--output", str(out), "--max-length", "96",
                         "--stride", "32", "--batch-size", "4", "--max-steps", "1", "--threads", "1",
                         "--export-fp16", str(export), *extra])

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    # refused before any training: no run folder is made
    for extra in ((), ("--overwrite-export",)):
        assert run(tmp_path / "run", mine, *extra) == 1
        assert "not a model folder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and (mine / "notes.txt").read_text() == "keep me"
    assert run(mine, tmp_path / "fp16") == 1  # nor is a folder of other things a run folder
    assert "not a train-reader run folder" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]

    export = tmp_path / "fp16"
    assert run(tmp_path / "run", export) == 0
    assert {t.dtype for t in load_file(export / "model.safetensors").values()} == {torch.float16}
    assert (export / "qa_system_reader.json").is_file()
    assert run(tmp_path / "run2", export) == 1
    assert "pass --overwrite-export" in capsys.readouterr().err and not (tmp_path / "run2").exists()
    first = load_file(export / "model.safetensors")["qa_outputs.weight"]
    assert run(tmp_path / "run2", export, "--overwrite-export", "--seed", "7") == 0
    second = load_file(tmp_path / "run2" / "model" / "model.safetensors")["qa_outputs.weight"]
    replaced = load_file(export / "model.safetensors")["qa_outputs.weight"]
    assert torch.equal(replaced, second.half()) and not torch.equal(replaced, first)
    assert (export / "qa_system_reader.json").is_file()


def test_distillation_caches_the_teachers_scores_and_trains_from_the_cache_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qa_system.config import Settings
    from qa_system.errors import ConfigError
    from qa_system.training.distill import TeacherCache

    teacher = Settings().resolved_reader_model  # the shipped reader teaches a fresh head on the encoder

    def run(out: Path, *extra: str) -> list[dict]:
        assert cli_main(["train-reader", "--train", TINY, "--eval", TINY, "--output", str(out), "--max-length", "96",
                         "--stride", "32", "--batch-size", "4", "--max-steps", "2", "--threads", "1",
                         "--skip-tests", *extra]) == 0
        return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]

    plain = run(tmp_path / "plain")
    distilled = run(tmp_path / "distilled", "--teacher", teacher, "--distill-weight", "0.9")
    printed = capsys.readouterr().out
    cache = tmp_path / "distilled" / "teacher-cache"
    assert len(TeacherCache(cache)) > 0 and "windows computed" in printed
    assert distilled[0]["loss"] != plain[0]["loss"]  # the teacher's targets are in the loss
    # another run, from the cache alone: nothing computed, and the same loss as with the teacher
    again = run(tmp_path / "from-cache", "--teacher-cache", str(cache), "--distill-weight", "0.9")
    assert "teacher scores: 0 windows computed" in capsys.readouterr().out
    assert again[0]["loss"] == pytest.approx(distilled[0]["loss"], rel=1e-3)
    assert json.loads((tmp_path / "from-cache" / "train_config.json").read_text())["distill_weight"] == 0.9
    with pytest.raises(ConfigError, match="holds the scores of teacher"):
        TeacherCache(cache, "another-teacher")
