"""Documents from record files: JSON lines, JSON and CSV, produced one record at a time.

Policies (shared by the three formats):

* A bad record is skipped and reported, the others are kept: :attr:`RecordCollector.skipped`
  lists each one by place and reason (``line 7: not valid JSON (Expecting ',' delimiter,
  column 25)``, ``record 3: ...``, ``row 2 (line 3): ...``), in file order. CSV rows whose text
  cell is empty are skipped and reported the same way. A file where no record is usable fails
  as a whole (:class:`DocumentParseError` naming the first problems); so does a file whose
  structure is broken (a JSON file that is not valid JSON, a CSV header without the text
  column).
* A record's source is ``f"{path}#{record_id}"``: its ``id`` as a string when it has one, else
  ``line-N`` (JSON lines, N = physical line), ``record-N`` (JSON, N = position in the list, a
  single object is ``record-1``) or ``row-N`` (CSV, N = data row, blank lines not counted).
  When two records have the same record id the first is kept and the later one skipped.
* ``id`` may be a non-empty string or a number (stored as ``str(value)``); ``null`` counts as
  absent. ``title`` may be a string or another scalar (stored as ``str(value)``).
* Every other field becomes metadata: str/int/bool/finite float as is, non-finite floats as
  strings, nested lists/objects as compact JSON strings, nulls dropped. ``source_path`` (the
  file) and ``record_id`` (only when the record had an id) are always set and win over record
  fields of the same name.

The parsers are generators over already-read lines or rows, so a caller can read a large file
incrementally (see :func:`qa_system.ingest.loaders.iter_file_documents`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..errors import DocumentParseError
from ..types import Document, MetadataValue
from .text import normalize_text

_PROBLEMS_IN_ERROR = 3


@dataclass(frozen=True)
class LoadResult:
    """The documents of one file, what was skipped in it, and what its parser warned about.

    ``skipped`` and ``warnings`` are reasons without the file name (``"line 7: not valid JSON
    (...)"``, ``"pypdf: EOF marker not found"``): whoever reports them names the file.
    """

    documents: tuple[Document, ...]
    skipped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


class _BadRecord(Exception):
    """A record that is skipped; the message is the reason."""


class RecordCollector:
    """Builds the documents of one record file: unique record ids, skipped records reported."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.skipped: list[str] = []
        self.n_documents = 0
        self._where_by_id: dict[str, str] = {}

    def fail(self, reason: str) -> DocumentParseError:
        return DocumentParseError(self.path, reason)

    def skip(self, where: str, reason: str) -> None:
        self.skipped.append(f"{where}: {reason}")

    def document(self, where: str, default_id: str, text: Any, *, record_id: Any = None,
                 title: Any = None, extra: Iterable[tuple[str, Any]] = ()) -> Document | None:
        """The record's document, or None after reporting why it is skipped."""
        try:
            doc = self._build(where, default_id, text, record_id, title, extra)
        except _BadRecord as e:
            self.skip(where, str(e))
            return None
        self.n_documents += 1
        return doc

    def finish(self) -> None:
        """Fail the file when none of its records was usable."""
        if self.n_documents:
            return
        if not self.skipped:
            raise self.fail("no records found")
        shown = "; ".join(self.skipped[:_PROBLEMS_IN_ERROR])
        more = len(self.skipped) - _PROBLEMS_IN_ERROR
        raise self.fail(f"no usable records: {shown}" + (f" (and {more} more)" if more > 0 else ""))

    def _build(self, where: str, default_id: str, text: Any, record_id: Any, title: Any,
               extra: Iterable[tuple[str, Any]]) -> Document:
        if not isinstance(text, str) or not text.strip():
            raise _BadRecord("record has no non-empty string 'text'")
        given_id = _record_id(record_id)
        title_text = _title(title)
        key = given_id if given_id is not None else default_id
        if key in self._where_by_id:
            raise _BadRecord(f"duplicate record id {key!r}, first seen at {self._where_by_id[key]}")
        self._where_by_id[key] = where
        metadata: dict[str, MetadataValue] = {}
        for name, value in extra:
            converted = _metadata_value(value)
            if converted is not None:
                metadata[name] = converted
        metadata["source_path"] = self.path
        if given_id is not None:
            metadata["record_id"] = given_id
        return Document(source=f"{self.path}#{key}", text=normalize_text(text), title=title_text,
                        metadata=MappingProxyType(metadata))


def _record_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            raise _BadRecord("'id' is empty")
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise _BadRecord(f"'id' must be a string or a number, got {_json_type(value)}")


def _title(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise _BadRecord(f"'title' must be a string, got {_json_type(value)}")
    title = str(value).strip()
    return title or None


def _metadata_value(value: Any) -> MetadataValue | None:
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def json_error(e: json.JSONDecodeError) -> str:
    """``json``'s message without its dangling ``"starting at"`` (the position follows it)."""
    return e.msg.removesuffix(" starting at").removesuffix(" at")


def _json_record(collector: RecordCollector, where: str, default_id: str, record: Any) -> Document | None:
    if not isinstance(record, dict):
        collector.skip(where, f"expected a JSON object, got {_json_type(record)}")
        return None
    extra = ((k, v) for k, v in record.items() if k not in {"text", "id", "title"})
    return collector.document(where, default_id, record.get("text"), record_id=record.get("id"),
                              title=record.get("title"), extra=extra)


def iter_jsonl(lines: Iterable[tuple[int, str]], collector: RecordCollector) -> Iterator[Document]:
    """One record per non-blank line; ``lines`` are ``(line number, text)``."""
    for number, line in lines:
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            collector.skip(where, f"not valid JSON ({json_error(e)}, column {e.colno})")
            continue
        except RecursionError:
            collector.skip(where, "JSON nested too deeply")
            continue
        doc = _json_record(collector, where, f"line-{number}", record)
        if doc is not None:
            yield doc
    collector.finish()


def iter_json(text: str, collector: RecordCollector) -> Iterator[Document]:
    """A list of records, ``{"documents": [...]}`` or a single record object (parsed at once)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise collector.fail(f"not valid JSON ({json_error(e)}, line {e.lineno}, column {e.colno})") from e
    except RecursionError as e:
        raise collector.fail("JSON nested too deeply") from e
    if isinstance(data, dict) and "text" not in data and isinstance(data.get("documents"), list):
        data = data["documents"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise collector.fail(
            "expected a list of records, a record object with 'text', or "
            f"{{\"documents\": [...]}}; got {_json_type(data)}"
        )
    for number, record in enumerate(data, start=1):
        doc = _json_record(collector, f"record {number}", f"record-{number}", record)
        if doc is not None:
            yield doc
    collector.finish()


def iter_csv(rows: Iterable[tuple[int, list[str] | csv.Error]], collector: RecordCollector, *,
             text_column: str = "text", title_column: str | None = None,
             id_column: str | None = "id") -> Iterator[Document]:
    """One document per data row of ``rows`` (``(line number, cells or the row's csv.Error)``,
    blank rows left out). ``id_column`` is used when the header has it."""
    numbered = iter(rows)
    first = next(numbered, None)
    if first is None:
        raise collector.fail("CSV file has no header row")
    line, cells = first
    if isinstance(cells, csv.Error):
        raise collector.fail(f"line {line}: malformed CSV header ({cells})")
    header = [name.strip() for name in cells]
    _check_header(collector, header, text_column, title_column)
    used = {text_column, title_column, id_column}
    n_rows = 0
    for n_rows, (line, row) in enumerate(numbered, start=1):
        where = f"row {n_rows} (line {line})"
        if isinstance(row, csv.Error):
            collector.skip(where, f"malformed CSV ({row})")
            continue
        if len(row) > len(header):
            collector.skip(where, f"{len(row)} fields, the header has {len(header)}")
            continue
        cells_by_name = dict(zip(header, row + [""] * (len(header) - len(row)), strict=True))
        if not cells_by_name[text_column].strip():
            collector.skip(where, f"empty {text_column!r}")
            continue
        record_id = cells_by_name.get(id_column) if id_column else None
        extra = ((k, v) for k, v in cells_by_name.items() if k and k not in used and v != "")
        doc = collector.document(where, f"row-{n_rows}", cells_by_name[text_column],
                                 record_id=record_id if record_id and record_id.strip() else None,
                                 title=cells_by_name.get(title_column) if title_column else None,
                                 extra=extra)
        if doc is not None:
            yield doc
    if n_rows == 0:
        raise collector.fail("CSV file has no data rows")
    collector.finish()


def _check_header(collector: RecordCollector, header: list[str], text_column: str,
                  title_column: str | None) -> None:
    named = [name for name in header if name]
    duplicates = sorted({name for name in named if named.count(name) > 1})
    if duplicates:
        raise collector.fail(f"duplicate column names: {', '.join(duplicates)}")
    for column in (text_column, title_column):
        if column is not None and column not in header:
            raise collector.fail(f"no column {column!r} (columns: {', '.join(named) or 'none'})")
