"""Model folders are written whole, and never over a folder nobody asked to replace."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_system.errors import ConfigError
from qa_system.training.features import TrainWindow
from qa_system.training.folders import atomic_save_dir, check_model_output, check_run_output


def model_folder(path: Path, weights: str) -> Path:
    path.mkdir()
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_text(weights)
    return path


def test_a_new_or_empty_folder_is_accepted(tmp_path: Path) -> None:
    assert check_model_output(tmp_path / "new", overwrite=False) == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    assert check_model_output(tmp_path / "empty", overwrite=False) == tmp_path / "empty"


def test_an_existing_model_is_replaced_only_when_asked(tmp_path: Path) -> None:
    old = model_folder(tmp_path / "m", "old")
    with pytest.raises(ConfigError, match="already holds a model: pass --overwrite-export to replace it"):
        check_model_output(old, overwrite=False, flag="--overwrite-export")
    assert check_model_output(old, overwrite=True) == old


def test_overwrite_never_takes_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    home = tmp_path / "models"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="not a model folder"):
            check_model_output(home, overwrite=overwrite)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        check_model_output(tmp_path / "file", overwrite=True)
    assert (home / "notes.txt").read_text() == "mine"


def test_a_failed_write_leaves_the_old_model_whole(tmp_path: Path) -> None:
    target = model_folder(tmp_path / "m", "old")

    def broken(tmp: Path) -> None:
        (tmp / "config.json").write_text("{}")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_save_dir(broken, target)
    assert (target / "model.safetensors").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # the half-written copy is gone

    atomic_save_dir(lambda tmp: (tmp / "model.safetensors").write_text("new"), target)
    assert [p.name for p in target.iterdir()] == ["model.safetensors"]
    assert (target / "model.safetensors").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no .tmp or .old left behind


def test_a_run_folder_is_new_empty_or_an_earlier_run(tmp_path: Path) -> None:
    assert check_run_output(tmp_path / "new") == tmp_path / "new"
    run = tmp_path / "run"
    run.mkdir()
    assert check_run_output(run) == run
    (run / "train_config.json").write_text("{}")
    (run / "history.jsonl").write_text("")
    assert check_run_output(run) == run  # resumable
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "report.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a train-reader run folder"):
        check_run_output(tmp_path / "docs")


def test_the_python_api_refuses_a_folder_of_other_things_as_a_run_folder(tmp_path: Path) -> None:
    from qa_system.training.run import TrainingData, run_training
    from qa_system.training.trainer import TrainConfig, train_reader

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.txt").write_text("mine")
    config = TrainConfig(output_dir=str(docs), base_model="not-loaded")
    with pytest.raises(ConfigError, match="not a train-reader run folder"):
        run_training(config, TrainingData([], []))  # before the tokenizer is even loaded
    window = TrainWindow((101, 102), (0, 0), start=0, end=0, group=0, context_first=1, context_last=1)
    with pytest.raises(ConfigError, match="not a train-reader run folder"):
        train_reader(config, [window], tokenizer=None)
    assert [p.name for p in docs.iterdir()] == ["report.txt"]
