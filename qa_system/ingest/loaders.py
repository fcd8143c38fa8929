"""Turn one input file into documents, all at once or streamed record by record.

Every failure of a whole file is a :class:`DocumentParseError` naming the file and the reason.
Policies:

* ``source`` of a whole-file document is the file's absolute, symlink-resolved POSIX path;
  records of JSON lines/JSON/CSV files get ``path#record-id`` (see :mod:`.records`). Every
  document's metadata has ``source_path`` (the file).
* Text files (.txt .md .markdown .rst .html .htm .jsonl .json .csv) must be UTF-8 (a BOM is
  allowed); NUL bytes or invalid UTF-8 fail the file as "binary or not UTF-8", before any of its
  records is used. PDF and Word (.docx) files are binary formats read by their parsers.
* ``Document.text`` is the text the user reads: Markdown, reStructuredText, HTML, PDF and Word
  files are converted to plain text (markup removed, code blocks' content kept), so offsets into
  ``Document.text`` (chunks, answers) point into that stored text. Newlines are normalised
  (``\\r\\n``/``\\r`` -> ``\\n``) and NUL characters removed; plain text is otherwise kept as written.
  Titles: Markdown's first level-1 heading (else front matter ``title:``), reStructuredText's
  document title, HTML's ``<title>`` (else first ``<h1>``), PDF's and Word's metadata title
  (else first line / first heading).
* Record files keep their valid records: a bad record (invalid JSON line, record without text,
  duplicate id: the later one) is skipped and listed in :attr:`LoadResult.skipped` by line,
  record or row; a file with no usable record fails (see :mod:`.records`).
* Parser warnings about a file that was still read (pypdf's ``EOF marker not found``) are
  listed in :attr:`LoadResult.warnings` instead of being logged.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from ..errors import DocumentParseError
from ..types import Document, MetadataValue
from .files import SUPPORTED_EXTENSIONS
from .markup import html_to_text, markdown_to_text
from .pdf import pdf_to_text
from .records import LoadResult, RecordCollector, iter_csv, iter_json, iter_jsonl
from .text import (
    check_utf8_file,
    decode_utf8,
    file_size,
    normalize_text,
    open_binary,
    read_bytes,
    read_error,
    require_text,
)

logger = logging.getLogger(__name__)

_STREAMED = frozenset({".jsonl", ".csv"})


class FileDocuments:
    """The documents of one input file, produced lazily; made by :func:`iter_file_documents`.

    Contract:

    * Iterate it once. JSON lines and CSV files are read incrementally (one line or row at a
      time, after a first pass that checks the encoding), so memory stays small however large
      the file; other formats are read and parsed whole when the first document is asked for.
    * A :class:`DocumentParseError` raised while iterating fails the file as a whole. For every
      cause in the file's content (encoding, a CSV header without the text column, JSON that
      does not parse, no usable record) it is raised before the first document is yielded. Only
      a file that becomes unreadable, grows past the size limit or changes encoding while being
      read can raise after documents were yielded; the caller should then drop them.
    * ``skipped`` (records skipped, with their line/record/row and reason) and ``warnings``
      (parser warnings) grow as documents are yielded and are complete when iteration ends; they
      do not name the file (see :class:`LoadResult`).
    * ``total_bytes`` is the file's size when the object was made; ``bytes_read`` the bytes
      parsed so far (0 before the first document, ``total_bytes`` or close to it at the end),
      for a progress bar.
    """

    def __init__(self, path: Path, source: str, *, max_file_bytes: int, csv_text_column: str,
                 csv_title_column: str | None) -> None:
        self.path = path
        self.source = source
        self.total_bytes = file_size(path, source, max_file_bytes)
        self.bytes_read = 0
        self._max_file_bytes = max_file_bytes
        self._csv_columns = (csv_text_column, csv_title_column)
        self._suffix = path.suffix.lower()
        self._collector = RecordCollector(source)
        self._warnings: tuple[str, ...] = ()
        self._started = False

    @property
    def skipped(self) -> tuple[str, ...]:
        return tuple(self._collector.skipped)

    @property
    def warnings(self) -> tuple[str, ...]:
        return self._warnings

    def __iter__(self) -> Iterator[Document]:
        if self._started:
            raise RuntimeError(f"{self.source}: the documents of a file can be iterated only once")
        self._started = True
        if self._suffix in _STREAMED:
            return self._streamed()
        return self._whole()

    def _whole(self) -> Iterator[Document]:
        data = read_bytes(self.path, self.source, self._max_file_bytes)
        self.bytes_read = len(data)
        if self._suffix == ".json":
            text = require_text(normalize_text(decode_utf8(data, self.source)), self.source)
            yield from iter_json(text, self._collector)
            return
        document, self._warnings = _whole_document(self._suffix, data, self.source)
        yield document

    def _streamed(self) -> Iterator[Document]:
        check_utf8_file(self.path, self.source, self._max_file_bytes)
        with open_binary(self.path, self.source) as f:
            if self._suffix == ".jsonl":
                yield from iter_jsonl(self._lines(f), self._collector)
            else:
                text_column, title_column = self._csv_columns
                yield from iter_csv(self._csv_rows(f), self._collector, text_column=text_column,
                                    title_column=title_column)

    def _lines(self, f: BinaryIO) -> Iterator[tuple[int, str]]:
        """``(line number, text)``, numbered as in the newline-normalised text."""
        number = 0
        for raw in self._read(f):
            self.bytes_read += len(raw)
            text = self._decode(raw, first=number == 0)
            pieces = normalize_text(text).split("\n")
            if pieces[-1] == "":
                pieces.pop()
            for piece in pieces:
                number += 1
                yield number, piece

    def _csv_rows(self, f: BinaryIO) -> Iterator[tuple[int, list[str] | csv.Error]]:
        """``(first line number, cells or the row's csv.Error)`` of every non-blank row."""
        text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        while True:
            before = reader.line_num
            old_limit = csv.field_size_limit(self._max_file_bytes + 1)  # a cell may be a whole text
            try:
                row: list[str] | csv.Error | None = next(reader, None)
            except csv.Error as e:
                row = e
            except UnicodeDecodeError as e:
                raise self._changed() from e
            except OSError as e:
                raise read_error(self.source, e) from e
            finally:
                csv.field_size_limit(old_limit)
            self.bytes_read = min(f.tell(), self.total_bytes)
            self._check_growth(f.tell())
            if row is None or (isinstance(row, csv.Error) and reader.line_num == before):
                return
            if isinstance(row, csv.Error):
                yield before + 1, row
            elif any(cell.strip() for cell in row):
                yield before + 1, [normalize_text(cell) for cell in row]

    def _read(self, f: BinaryIO) -> Iterator[bytes]:
        while True:
            try:
                raw = f.readline()
            except OSError as e:
                raise read_error(self.source, e) from e
            if not raw:
                return
            self._check_growth(self.bytes_read + len(raw))
            yield raw

    def _decode(self, raw: bytes, *, first: bool) -> str:
        try:
            return raw.decode("utf-8-sig" if first else "utf-8")
        except UnicodeDecodeError as e:
            raise self._changed() from e

    def _check_growth(self, position: int) -> None:
        if position > self._max_file_bytes:
            raise DocumentParseError(self.source, "file grew past the size limit while being read")

    def _changed(self) -> DocumentParseError:
        return DocumentParseError(self.source, "file changed while being read (no longer UTF-8)")


def iter_file_documents(path: str | os.PathLike[str], *, max_file_bytes: int, csv_text_column: str = "text",
                        csv_title_column: str | None = None) -> FileDocuments:
    """The documents of one file as a :class:`FileDocuments` stream (see its contract).

    Raises DocumentParseError at once for an unsupported type and for a file that is missing,
    unreadable, a folder, empty or over ``max_file_bytes``.
    """
    file_path = Path(path).expanduser()
    source = source_path(file_path)
    suffix = file_path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        supported = " ".join(sorted(SUPPORTED_EXTENSIONS))
        raise DocumentParseError(
            source, f"unsupported file type {suffix or '(no extension)'!r} (supported: {supported})"
        )
    return FileDocuments(file_path, source, max_file_bytes=max_file_bytes, csv_text_column=csv_text_column,
                         csv_title_column=csv_title_column)


def load_file(path: str | os.PathLike[str], *, max_file_bytes: int, csv_text_column: str = "text",
              csv_title_column: str | None = None) -> list[Document]:
    """The documents of one file; skipped records and warnings are logged (see :func:`load_file_result`)."""
    result = load_file_result(path, max_file_bytes=max_file_bytes,
                              csv_text_column=csv_text_column, csv_title_column=csv_title_column)
    for reason in result.skipped:
        logger.warning("%s: skipped %s", source_path(path), reason)
    for warning in result.warnings:
        logger.warning("%s: %s", source_path(path), warning)
    return list(result.documents)


def load_file_result(path: str | os.PathLike[str], *, max_file_bytes: int,
                     csv_text_column: str = "text",
                     csv_title_column: str | None = None) -> LoadResult:
    """Like :func:`load_file`, also returning what was skipped and the parser's warnings."""
    stream = iter_file_documents(path, max_file_bytes=max_file_bytes, csv_text_column=csv_text_column,
                                 csv_title_column=csv_title_column)
    documents = tuple(stream)
    return LoadResult(documents, stream.skipped, stream.warnings)


def source_path(path: str | os.PathLike[str]) -> str:
    """The stable source string of a file: absolute, symlinks resolved, POSIX separators."""
    return Path(path).expanduser().resolve().as_posix()


def _document(source: str, text: str, title: str | None, **extra: MetadataValue) -> Document:
    metadata: dict[str, MetadataValue] = {"source_path": source, **extra}
    return Document(source=source, text=text, title=title, metadata=MappingProxyType(metadata))


def _whole_document(suffix: str, data: bytes, source: str) -> tuple[Document, tuple[str, ...]]:
    """The one document of a file that is not a record file, and its parser's warnings."""
    if suffix == ".pdf":
        pdf = pdf_to_text(data, source)
        return _document(source, pdf.text, pdf.title, page_count=pdf.page_count), pdf.warnings
    if suffix == ".docx":
        from .word import docx_to_text  # python-docx is imported only when a Word file is read

        text, title = docx_to_text(data, source)
        return _document(source, require_text(normalize_text(text), source, "Word document"), title), ()
    text = require_text(normalize_text(decode_utf8(data, source)), source)
    if suffix == ".txt":
        return _document(source, text, None), ()
    what, convert = _CONVERTERS[suffix]
    extracted, title = convert(text, source)
    return _document(source, require_text(normalize_text(extracted), source, what), title), ()


def _rst_to_text(text: str, source: str) -> tuple[str, str | None]:
    from .restructured import rst_to_text  # docutils is imported only when an .rst file is read

    return rst_to_text(text, source)


_CONVERTERS: dict[str, tuple[str, Callable[[str, str], tuple[str, str | None]]]] = {
    ".md": ("Markdown", lambda text, _source: markdown_to_text(text)),
    ".markdown": ("Markdown", lambda text, _source: markdown_to_text(text)),
    ".rst": ("reStructuredText", _rst_to_text),
    ".html": ("HTML", lambda text, _source: html_to_text(text)),
    ".htm": ("HTML", lambda text, _source: html_to_text(text)),
}
