"""Turn one input file into documents.

Every failure is a :class:`DocumentParseError` naming the file and the reason. Policies:

* ``source`` of a whole-file document is the file's absolute, symlink-resolved POSIX path;
  records of JSON lines/JSON/CSV files get ``path#record-id`` (see :mod:`.records`).
* Text files (.txt .md .markdown .html .htm .jsonl .json .csv) must be UTF-8 (a BOM is
  allowed); NUL bytes or invalid UTF-8 fail the file as "binary or not UTF-8".
* After extraction, text is only normalised for newlines (``\\r\\n``/``\\r`` -> ``\\n``) and NUL
  characters are removed, so offsets into ``Document.text`` stay meaningful. Markdown is kept
  as written; HTML and PDF text is what the extractor produced.
* A record file with one bad record fails as a whole (message names the line/record/row); CSV
  rows with an empty text cell are skipped and listed in :attr:`LoadResult.skipped`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from ..errors import DocumentParseError
from ..types import Document, MetadataValue
from .files import SUPPORTED_EXTENSIONS
from .markup import html_to_text, markdown_title
from .pdf import pdf_to_text
from .records import LoadResult, csv_documents, json_documents, jsonl_documents
from .text import decode_utf8, normalize_text, read_bytes, require_text

logger = logging.getLogger(__name__)


def load_file(path: str | os.PathLike[str], *, max_file_bytes: int, csv_text_column: str = "text",
              csv_title_column: str | None = None) -> list[Document]:
    """The documents of one file; skipped CSV rows are logged (see :func:`load_file_result`)."""
    result = load_file_result(path, max_file_bytes=max_file_bytes,
                              csv_text_column=csv_text_column, csv_title_column=csv_title_column)
    for reason in result.skipped:
        logger.warning("%s: skipped %s", source_path(path), reason)
    return list(result.documents)


def load_file_result(path: str | os.PathLike[str], *, max_file_bytes: int,
                     csv_text_column: str = "text",
                     csv_title_column: str | None = None) -> LoadResult:
    """Like :func:`load_file`, also returning what was skipped."""
    file_path = Path(path).expanduser()
    source = source_path(file_path)
    suffix = file_path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        supported = " ".join(sorted(SUPPORTED_EXTENSIONS))
        raise DocumentParseError(
            source, f"unsupported file type {suffix or '(no extension)'!r} (supported: {supported})"
        )
    data = read_bytes(file_path, source, max_file_bytes)
    if suffix == ".pdf":
        return LoadResult((_pdf_document(data, source),))
    text = require_text(normalize_text(decode_utf8(data, source)), source)
    if suffix == ".csv":
        return csv_documents(text, source, text_column=csv_text_column,
                             title_column=csv_title_column)
    if suffix in _RECORD_PARSERS:
        return _RECORD_PARSERS[suffix](text, source)
    return LoadResult((_DOCUMENT_PARSERS[suffix](text, source),))


def source_path(path: str | os.PathLike[str]) -> str:
    """The stable source string of a file: absolute, symlinks resolved, POSIX separators."""
    return Path(path).expanduser().resolve().as_posix()


def _document(source: str, text: str, title: str | None,
              **extra: MetadataValue) -> Document:
    metadata: dict[str, MetadataValue] = {"source_path": source, **extra}
    return Document(source=source, text=text, title=title, metadata=MappingProxyType(metadata))


def _text_document(text: str, source: str) -> Document:
    return _document(source, text, None)


def _markdown_document(text: str, source: str) -> Document:
    return _document(source, text, markdown_title(text))


def _html_document(text: str, source: str) -> Document:
    extracted, title = html_to_text(text)
    return _document(source, require_text(normalize_text(extracted), source, "HTML"), title)


def _pdf_document(data: bytes, source: str) -> Document:
    pdf = pdf_to_text(data, source)
    return _document(source, pdf.text, pdf.title, page_count=pdf.page_count)


_DOCUMENT_PARSERS: dict[str, Callable[[str, str], Document]] = {
    ".txt": _text_document,
    ".md": _markdown_document,
    ".markdown": _markdown_document,
    ".html": _html_document,
    ".htm": _html_document,
}
_RECORD_PARSERS: dict[str, Callable[[str, str], LoadResult]] = {
    ".jsonl": jsonl_documents,
    ".json": json_documents,
}
