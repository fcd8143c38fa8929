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
from .ingestion import IngestFailure, IngestReport
from .system import QASystem
from .types import Answer, AskResult, Chunk, Document, Passage, ReaderResult

__version__ = "0.1.0"

__all__ = [
    "Answer", "AskResult", "Chunk", "ConfigError", "Document", "DocumentNotFoundError",
    "DocumentParseError", "IndexMismatchError", "IngestFailure", "IngestReport", "InputError",
    "Passage", "QASystem", "QASystemError", "QuestionError", "ReaderResult", "Settings",
    "StoreError", "StoreInconsistentError", "load_settings",
]
