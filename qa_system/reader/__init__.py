"""The reader: extractive question answering over retrieved passages.

``ExtractiveReader`` is the component; ``decoding``, ``windows`` and ``answers`` hold its pure
stages; ``model_config`` reads and writes the model folder's ``qa_system_reader.json``.
Importing this package does not import torch or transformers.
"""

from .decoding import SpanCandidate, no_answer_score, top_spans
from .extractive import ExtractiveReader
from .model_config import (
    READER_CONFIG_FILENAME,
    ReaderModelConfig,
    ReaderParams,
    load_reader_config,
    save_reader_config,
)

__all__ = [
    "READER_CONFIG_FILENAME",
    "ExtractiveReader",
    "ReaderModelConfig",
    "ReaderParams",
    "SpanCandidate",
    "load_reader_config",
    "no_answer_score",
    "save_reader_config",
    "top_spans",
]
