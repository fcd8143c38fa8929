"""The reader's companion file ``qa_system_reader.json``, kept in the model folder.

Training writes it next to the weights; the reader reads it at ``load()``. It holds the
no-answer threshold fitted on development data, optionally a second one for answers from
passages read in more than one window (``long_passage_no_answer_threshold``; absent: the first
serves both), optionally the window settings the model was trained with, and optionally the
answer-confidence model fitted for it (key ``confidence``, ``qa_system.confidence``). Unknown keys
are ignored so older readers can open newer files, and kept when the file is rewritten.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..confidence import ConfidenceModel
from ..config import Settings, check_retrieval_weight
from ..errors import ConfigError

READER_CONFIG_FILENAME = "qa_system_reader.json"


@dataclass(frozen=True)
class ReaderModelConfig:
    """Defaults fitted at training time; ``None`` means "use the reader's settings"."""

    no_answer_threshold: float = 0.0
    max_seq_length: int | None = None
    doc_stride: int | None = None
    max_answer_tokens: int | None = None
    long_passage_no_answer_threshold: float | None = None

    def __post_init__(self) -> None:
        for name in ("no_answer_threshold", "long_passage_no_answer_threshold"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"{name} must be finite, got {value}")
        for name in ("max_seq_length", "doc_stride", "max_answer_tokens"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")


def reader_config_path(model_dir: str | Path) -> Path:
    return Path(model_dir) / READER_CONFIG_FILENAME


def _from_mapping(raw: Mapping[str, Any], where: str) -> ReaderModelConfig:
    def number(key: str, default: float | None = 0.0) -> float | None:
        value = raw.get(key, default)
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {key!r} must be a number, got {value!r}")
        return float(value)

    def optional_int(key: str) -> int | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key!r} must be an integer, got {value!r}")
        return value

    threshold = number("no_answer_threshold")
    long_threshold = number("long_passage_no_answer_threshold", None)
    seq, stride, answer = (
        optional_int(k) for k in ("max_seq_length", "doc_stride", "max_answer_tokens")
    )
    try:
        return ReaderModelConfig(threshold, seq, stride, answer, long_threshold)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e


def load_reader_config(model_dir: str | Path) -> ReaderModelConfig:
    """Read ``qa_system_reader.json`` from a model folder.

    A missing file, or a model name that is not a local folder, gives the defaults
    (threshold 0.0, no window overrides). A file that exists but is unreadable raises ConfigError.
    """
    path = reader_config_path(model_dir)
    if not path.is_file():
        return ReaderModelConfig()
    return _from_mapping(_read_object(path), str(path))


def _read_object(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read reader config {path}: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    return raw


def load_confidence_model(model_dir: str | Path) -> ConfidenceModel | None:
    """The answer-confidence model in the folder's ``qa_system_reader.json``, or None (no file,
    no ``confidence`` key, or a model name that is not a local folder)."""
    path = reader_config_path(model_dir)
    if not path.is_file():
        return None
    raw = _read_object(path).get("confidence")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: 'confidence' must be a JSON object")
    return ConfidenceModel.from_dict(raw, f"{path}: confidence")


def save_confidence_model(model_dir: str | Path, model: ConfidenceModel) -> Path:
    """Store ``model`` under ``confidence`` in the folder's ``qa_system_reader.json`` (atomically,
    the file's other keys kept)."""
    return _write(Path(model_dir), {"confidence": model.to_dict()}, replace=())


def save_reader_config(model_dir: str | Path, config: ReaderModelConfig) -> Path:
    """Write ``qa_system_reader.json`` into ``model_dir`` atomically; returns the file's path.
    Keys the config does not hold (the confidence model, newer keys) are kept."""
    values = asdict(config)
    return _write(Path(model_dir), {k: v for k, v in values.items() if v is not None}, replace=tuple(values))


def _write(directory: Path, updates: Mapping[str, Any], replace: tuple[str, ...]) -> Path:
    """Rewrite the folder's file with ``updates``; keys in ``replace`` not in ``updates`` go."""
    if not directory.is_dir():
        raise ConfigError(f"cannot write reader config: {directory} is not a folder")
    path = reader_config_path(directory)
    payload = {k: v for k, v in _read_object(path).items() if k not in replace} if path.is_file() else {}
    payload.update(updates)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".qa_system_reader.", suffix=".json", dir=directory)
    except OSError as e:
        raise ConfigError(f"cannot write reader config {path}: {e}") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write reader config {path}: {e}") from e
    return path


MIN_SEQ_LENGTH = 32


@dataclass(frozen=True)
class ReaderParams:
    """The reader's effective settings once its model folder has been read."""

    max_seq_length: int
    doc_stride: int
    max_answer_tokens: int
    top_n: int
    batch_size: int
    no_answer_threshold: float
    retrieval_weight: float = 0.0
    long_passage_no_answer_threshold: float | None = None  # None: no_answer_threshold serves both
    first_passages: int = 0  # > 0: read that many passages first, the rest only if not settled
    settled_lead: float = 2.0


def resolve_params(
    settings: Settings,
    file_config: ReaderModelConfig,
    *,
    model_max_length: int | None = None,
    max_seq_length: int | None = None,
    doc_stride: int | None = None,
    max_answer_tokens: int | None = None,
    top_n: int | None = None,
    batch_size: int | None = None,
    no_answer_threshold: float | None = None,
    retrieval_weight: float | None = None,
) -> ReaderParams:
    """Resolve each window setting: an explicit argument, else a ``settings`` value the user
    changed from its default, else the model folder's ``qa_system_reader.json``, else the
    settings default. ``max_seq_length`` is capped at the tokenizer's ``model_max_length``.
    A no-answer threshold given as an argument or setting serves every passage; only the
    folder's own fit can have a second one for passages read in several windows.
    """
    defaults = Settings()

    def pick(explicit: int | None, from_file: int | None, name: str) -> int:
        configured = getattr(settings, name)
        if explicit is not None:
            return explicit
        if configured != getattr(defaults, name) or from_file is None:
            return int(configured)
        return from_file

    seq = pick(max_seq_length, file_config.max_seq_length, "reader_max_seq_length")
    if model_max_length is not None and 0 < model_max_length < seq:
        seq = model_max_length
    stride = pick(doc_stride, file_config.doc_stride, "reader_doc_stride")
    params = ReaderParams(
        max_seq_length=seq,
        doc_stride=stride,
        max_answer_tokens=pick(
            max_answer_tokens, file_config.max_answer_tokens, "max_answer_tokens"
        ),
        top_n=top_n if top_n is not None else settings.top_k_reader,
        batch_size=batch_size if batch_size is not None else settings.reader_batch_size,
        no_answer_threshold=next(
            float(t) for t in (no_answer_threshold, settings.no_answer_threshold,
                               file_config.no_answer_threshold) if t is not None
        ),
        long_passage_no_answer_threshold=(
            file_config.long_passage_no_answer_threshold
            if no_answer_threshold is None and settings.no_answer_threshold is None else None
        ),
        retrieval_weight=check_retrieval_weight(
            retrieval_weight if retrieval_weight is not None else settings.retrieval_weight
        ),
        first_passages=settings.reader_first_passages,
        settled_lead=float(settings.reader_settled_lead),
    )
    if params.max_seq_length < MIN_SEQ_LENGTH:
        raise ConfigError(f"max_seq_length must be at least {MIN_SEQ_LENGTH}, got {seq}")
    if not 0 < params.doc_stride < params.max_seq_length:
        raise ConfigError(f"doc_stride must be in 1..{seq - 1}, got {stride}")
    for name in ("max_answer_tokens", "top_n", "batch_size"):
        if getattr(params, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(params, name)}")
    if not math.isfinite(params.no_answer_threshold):
        raise ConfigError("no_answer_threshold must be finite")
    return params
