"""`qa-system ask --questions FILE`: a file of questions answered in batches, as JSON lines.

Bad input is refused before any model loads (fast tests); the slow test answers a file with the
real store, embedder and reader and checks each line against `ask` of the same question alone."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from qa_system import cli
from qa_system.cli import main as cli_main
from tests.support import SAMPLE_CORPUS


def ask_file(path: Path | str, store: Path, *extra: str) -> int:
    return cli_main(["ask", "--questions", str(path), "--store", str(store), "--no-progress", *extra])


@pytest.mark.parametrize(("content", "message"), [
    (b"", "holds no question"),
    (b"\n   \n\t\n", "holds no question"),
    (b"What?\x00\x01\x02", "is a binary file"),
    (b"caf\xe9 prices?\n", "is not UTF-8 text (byte 3)"),
    (b"What is Plus?\n\n" + b"x" * 1001 + b"\n", "line 3: the question is 1001 characters long"),
])
def test_a_bad_questions_file_is_refused_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    questions = tmp_path / "questions.txt"
    questions.write_bytes(content)
    store = tmp_path / "store"
    assert ask_file(questions, store) == 1
    out, err = capsys.readouterr()
    assert message in err and str(questions) in err
    assert out == "" and not store.exists()  # refused before the store was even looked for


def test_a_missing_or_oversized_file_and_bad_arguments_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    assert ask_file(tmp_path / "nope.txt", store) == 1
    assert "cannot read the questions file" in capsys.readouterr().err
    assert ask_file(tmp_path, store) == 1  # a folder
    assert "cannot read the questions file" in capsys.readouterr().err
    monkeypatch.setattr(cli, "MAX_QUESTIONS_BYTES", 10)
    big = tmp_path / "big.txt"
    big.write_text("What is the Plus plan?\n", encoding="utf-8")
    assert ask_file(big, store) == 1
    assert "split it into several files" in capsys.readouterr().err
    monkeypatch.undo()
    assert cli_main(["ask", "--store", str(store)]) == 1
    assert "give one question, or --questions FILE" in capsys.readouterr().err
    assert cli_main(["ask", "What?", "--questions", str(big), "--store", str(store)]) == 1
    assert "not both" in capsys.readouterr().err
    assert ask_file(big, store, "--batch-size", "0") == 1
    assert "--batch-size must be positive" in capsys.readouterr().err
    assert ask_file(big, store, "--filter", "no-equals-sign") == 1
    assert "--filter expects KEY=VALUE" in capsys.readouterr().err
    assert ask_file(big, store) == 1  # a good file, but no store there
    assert f"no store at {store}" in capsys.readouterr().err
    assert not store.exists()


@pytest.mark.slow
def test_a_file_of_questions_gets_one_json_line_each_matching_ask_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, reader_model_dir: Path
) -> None:
    store = tmp_path / "store"
    assert cli_main(["ingest", str(SAMPLE_CORPUS), "--store", str(store), "--no-progress"]) == 0
    asked = ["How much does the Plus plan cost per month?", "How do I reset my password?", "What is SYNC-413?"]
    questions = tmp_path / "questions.txt"
    questions.write_text("\ufeff" + asked[0] + "\n\n  \n" + "\n".join(asked[1:]) + "\n", encoding="utf-8")
    capsys.readouterr()
    reader = ["--reader-model", str(reader_model_dir)]
    assert ask_file(questions, store, "--batch-size", "2", *reader) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["line"] for d in lines] == [1, 4, 5]
    assert [d["question"] for d in lines] == asked

    def top(d: dict[str, Any]) -> tuple[Any, ...]:
        a = d["answers"][0]
        return a["text"], a["document_id"], a["start"], a["end"], d["has_answer"]

    for d in lines:
        assert d["answers"] and d["models"]["reader"]["model"] == str(reader_model_dir)
        assert cli_main(["ask", d["question"], "--store", str(store), "--json", *reader]) == 0
        alone = json.loads(capsys.readouterr().out)
        assert top(d) == top(alone)  # batching changes nothing but speed
        assert d["answers"][0]["score"] == pytest.approx(alone["answers"][0]["score"], abs=0.05)

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO((asked[2] + "\n").encode())))
    assert ask_file("-", store, *reader) == 0
    (only,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert only["line"] == 1 and top(only) == top(lines[2])
