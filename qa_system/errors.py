"""The package's own error types. Only the CLI and HTTP layers turn them into exit/status codes."""

from __future__ import annotations


class QASystemError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(QASystemError):
    """A setting is invalid or a model/path named in the settings cannot be used."""


class InputError(QASystemError):
    """User input (a file, a record, a question) is unusable; the message names the problem."""


class DocumentParseError(InputError):
    """One input file or record could not be turned into a document."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class QuestionError(InputError):
    """The question is empty, too long or otherwise unusable."""


class DocumentChangedError(InputError):
    """A request names text of a document that the stored document no longer has there."""


class StoreError(QASystemError):
    """The document store (SQL + vector index) cannot be opened or written."""


class StoreInconsistentError(StoreError):
    """SQL and the vector index disagree; `qa-system check --repair` fixes it."""


class IndexMismatchError(StoreError):
    """The vector index was built with another embedding model or dimension."""


class NotLoadedError(QASystemError):
    """A component was used before its `load()` step."""


class DocumentNotFoundError(StoreError):
    """No document has the given id or source."""
