"""Text of a PDF file with pypdf, with pypdf's warnings about the file kept for its report.

pypdf reports damage it worked around (``EOF marker not found``, ``invalid pdf header``) through
the ``pypdf`` logger. While :func:`pdf_to_text` parses a file, those records are collected for
that file (per thread/context, so parallel parses keep theirs apart) and do not reach other
handlers; pypdf records logged outside a parse are passed on to the root logger's handlers as
usual. Installing this needs ``propagate = False`` on the ``pypdf`` logger, set on import.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from pypdf import PdfReader
from pypdf.errors import DependencyError

from ..errors import DocumentParseError
from .text import normalize_text

_MAX_TITLE_CHARS = 200
_MAX_WARNINGS = 10
_captured: ContextVar[list[str] | None] = ContextVar("pypdf_warnings", default=None)


class _PypdfWarnings(logging.Handler):
    """Keeps pypdf's records for the parse running in this context; passes on the others."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        sink = _captured.get()
        if sink is None:
            logging.getLogger().handle(record)  # as if the record had propagated
        else:
            sink.append(record.getMessage())


def _install() -> None:
    pypdf_logger = logging.getLogger("pypdf")
    if not any(isinstance(h, _PypdfWarnings) for h in pypdf_logger.handlers):
        pypdf_logger.addHandler(_PypdfWarnings())
        pypdf_logger.propagate = False


_install()


@contextmanager
def _capturing() -> Iterator[list[str]]:
    sink: list[str] = []
    token = _captured.set(sink)
    try:
        yield sink
    finally:
        _captured.reset(token)


def _summarise(messages: list[str]) -> tuple[str, ...]:
    """Distinct messages in order, at most ``_MAX_WARNINGS``, each prefixed ``pypdf:``."""
    distinct = list(dict.fromkeys(" ".join(m.split()) for m in messages if m.strip()))
    kept = [f"pypdf: {m}" for m in distinct[:_MAX_WARNINGS]]
    if len(distinct) > _MAX_WARNINGS:
        kept.append(f"pypdf: {len(distinct) - _MAX_WARNINGS} more warnings")
    return tuple(kept)


@dataclass(frozen=True)
class PdfText:
    text: str
    title: str | None
    page_count: int
    warnings: tuple[str, ...] = ()


def pdf_to_text(data: bytes, source: str) -> PdfText:
    """Page texts joined with a blank line (pages without text left out) and a title.

    The title is the metadata title, else the first non-empty line. Encrypted PDFs are read
    only when the empty user password opens them. Any failure, including one page whose text
    cannot be extracted, fails the whole file. pypdf's warnings while reading the file are
    returned in ``warnings`` (and added to the reason when the file fails), never logged.
    """
    with _capturing() as messages:
        try:
            return _read(data, source, messages)
        except DocumentParseError as e:
            notes = _summarise(messages)
            if not notes:
                raise
            raise DocumentParseError(source, f"{e.reason} [{'; '.join(notes)}]") from e


def _read(data: bytes, source: str, messages: list[str]) -> PdfText:
    reader = _open(data, source)
    pages: list[str] = []
    for number, page in enumerate(reader.pages, start=1):
        try:
            extracted = page.extract_text() or ""
        except Exception as e:  # pypdf raises many exception types on damaged content
            raise DocumentParseError(
                source, f"page {number}: text extraction failed ({type(e).__name__}: {e})"
            ) from e
        page_text = normalize_text(extracted)
        if page_text.strip():
            pages.append(page_text)
    text = "\n\n".join(pages)
    if not text.strip():
        raise DocumentParseError(source, "PDF has no extractable text (scanned or image-only?)")
    title = _metadata_title(reader) or _first_line(text)
    return PdfText(text, title, len(reader.pages), _summarise(messages))


def _open(data: bytes, source: str) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentParseError(source, "PDF is encrypted and needs a password")
        len(reader.pages)  # forces the page tree to be parsed, where damage usually shows
        return reader
    except DocumentParseError:
        raise
    except DependencyError as e:
        raise DocumentParseError(
            source, f"PDF is encrypted; decrypting it needs an extra package ({e})"
        ) from e
    except Exception as e:  # pypdf raises many exception types on damaged files
        raise DocumentParseError(
            source, f"not a readable PDF ({type(e).__name__}: {e})"
        ) from e


def _metadata_title(reader: PdfReader) -> str | None:
    try:
        metadata = reader.metadata
        title = metadata.title if metadata is not None else None
    except Exception:  # damaged metadata only costs the title
        return None
    if isinstance(title, str) and title.strip():
        return " ".join(title.split())[:_MAX_TITLE_CHARS]
    return None


def _first_line(text: str) -> str | None:
    for line in text.split("\n"):
        if line.strip():
            return " ".join(line.split())[:_MAX_TITLE_CHARS]
    return None
