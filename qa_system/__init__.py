"""qa_system: a retriever-reader question-answering system.

    from qa_system import QASystem
    qa = QASystem.open(".qa_store")
    qa.ingest(["docs/"])
    result = qa.ask("How much does the Pro plan cost?")
    print(result.answers[0].text, result.answers[0].source)
"""

from .config import Settings, load_settings
from .errors import (
    ConfigError,
    DocumentNotFoundError,
    DocumentParseError,
    IndexMismatchError,
    InputError,
    QASystemError,
    QuestionError,
    StoreError,
    StoreInconsistentError,
)
from .types import Answer, AskResult, Chunk, Document, Passage, ReaderResult

__version__ = "0.1.0"

# The system and ingestion pull in the SQL, FAISS and document-parsing stack; load them on first
# use, so that training and evaluation (qa_system.training, .reader) run without that stack,
# e.g. on a GPU machine that has only torch and transformers.
_LAZY = {"QASystem": ".system", "IngestFailure": ".ingestion", "IngestReport": ".ingestion"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Answer", "AskResult", "Chunk", "ConfigError", "Document", "DocumentNotFoundError",
    "DocumentParseError", "IndexMismatchError", "IngestFailure", "IngestReport", "InputError",
    "Passage", "QASystem", "QASystemError", "QuestionError", "ReaderResult", "Settings",
    "StoreError", "StoreInconsistentError", "load_settings",
]
