"""Writing model folders: never half-written, and never over a folder the user did not ask to replace."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError


def check_model_output(out: str | Path, overwrite: bool, flag: str = "--overwrite") -> Path:
    """``out`` as a folder a model may be written to, or ConfigError before any work is done.

    A missing or empty folder is fine. An existing one is replaced only with ``overwrite``, and
    only when it holds a model (``config.json``): a mistyped ``--output ~/models`` must not
    delete a folder of other things."""
    folder = Path(out)
    if not folder.exists():
        return folder
    if not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a folder")
    if not any(folder.iterdir()):
        return folder
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder} is not empty and is not a model folder (no config.json): "
                          "choose a new or empty folder")
    if not overwrite:
        raise ConfigError(f"{folder} already holds a model: pass {flag} to replace it")
    return folder


#: Where a run keeps its teacher's scores unless told otherwise (training.distill).
TEACHER_CACHE = "teacher-cache"


def check_run_output(out: str | Path) -> Path:
    """``out`` as a ``train-reader`` run folder: new, empty, or an earlier run's (to resume it).
    A folder of other things is refused, since a run writes ``model/``, ``checkpoint/`` and
    ``history.jsonl`` into it (its own ``teacher-cache/`` of distillation targets may come first)."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a folder")
    others = [p for p in folder.iterdir() if p.name != TEACHER_CACHE] if folder.is_dir() else []
    if others and not (folder / "train_config.json").is_file():
        raise ConfigError(f"{folder} is not empty and is not a train-reader run folder (no train_config.json): "
                          "choose a new or empty --output")
    return folder


def atomic_save_dir(write: Callable[[Path], None], target: Path) -> None:
    """Have ``write`` fill a temporary sibling of ``target``, then swap it in: the old folder is
    moved aside first and removed only once the new one is in place, so a failure at any point
    leaves either the old folder or the new one, never a half-written or missing model."""
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.with_name(target.name + ".old")
    if target.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)
