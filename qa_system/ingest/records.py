"""Documents from record files: JSON lines, JSON and CSV.

Policies (shared by the three formats):

* One bad record fails the whole file, with a message naming its line/record/row, so a file is
  never half ingested. Exception: CSV rows whose text cell is empty are skipped and reported.
* A record's source is ``f"{path}#{record_id}"``: its ``id`` as a string when it has one, else
  ``line-N`` (JSON lines, N = physical line), ``record-N`` (JSON, N = position in the list, a
  single object is ``record-1``) or ``row-N`` (CSV, N = data row, blank lines not counted).
  Two records with the same record id fail the file.
* ``id`` may be a non-empty string or a number (stored as ``str(value)``); ``null`` counts as
  absent. ``title`` may be a string or another scalar (stored as ``str(value)``).
* Every other field becomes metadata: str/int/bool/finite float as is, non-finite floats as
  strings, nested lists/objects as compact JSON strings, nulls dropped. ``source_path`` (the
  file) and ``record_id`` (only when the record had an id) are always set and win over record
  fields of the same name.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..errors import DocumentParseError
from ..types import Document, MetadataValue
from .text import normalize_text


@dataclass(frozen=True)
class LoadResult:
    """The documents of one file and the reasons for records that were skipped."""

    documents: tuple[Document, ...]
    skipped: tuple[str, ...] = ()


class _Collector:
    """Builds documents for one file and enforces unique record ids."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.documents: list[Document] = []
        self._where_by_id: dict[str, str] = {}

    def fail(self, reason: str) -> DocumentParseError:
        return DocumentParseError(self.path, reason)

    def add(self, where: str, default_id: str, text: Any, *, record_id: Any = None,
            title: Any = None, extra: Iterable[tuple[str, Any]] = ()) -> None:
        if not isinstance(text, str) or not text.strip():
            raise self.fail(f"{where}: record has no non-empty string 'text'")
        given_id = self._record_id(where, record_id)
        key = given_id if given_id is not None else default_id
        if key in self._where_by_id:
            raise self.fail(f"duplicate record id {key!r} ({self._where_by_id[key]} and {where})")
        self._where_by_id[key] = where
        metadata: dict[str, MetadataValue] = {}
        for name, value in extra:
            converted = _metadata_value(value)
            if converted is not None:
                metadata[name] = converted
        metadata["source_path"] = self.path
        if given_id is not None:
            metadata["record_id"] = given_id
        self.documents.append(Document(
            source=f"{self.path}#{key}",
            text=normalize_text(text),
            title=self._title(where, title),
            metadata=MappingProxyType(metadata),
        ))

    def _record_id(self, where: str, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            if not value.strip():
                raise self.fail(f"{where}: 'id' is empty")
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise self.fail(f"{where}: 'id' must be a string or a number, got {_json_type(value)}")

    def _title(self, where: str, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            raise self.fail(f"{where}: 'title' must be a string, got {_json_type(value)}")
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


def _add_json_record(collector: _Collector, where: str, default_id: str, record: Any) -> None:
    if not isinstance(record, dict):
        raise collector.fail(f"{where}: expected a JSON object, got {_json_type(record)}")
    extra = ((k, v) for k, v in record.items() if k not in {"text", "id", "title"})
    collector.add(where, default_id, record.get("text"), record_id=record.get("id"),
                  title=record.get("title"), extra=extra)


def jsonl_documents(text: str, path: str) -> LoadResult:
    """One record per non-blank line."""
    collector = _Collector(path)
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            reason = f"line {number}: invalid JSON ({e.msg} at column {e.colno})"
            raise collector.fail(reason) from e
        except RecursionError as e:
            raise collector.fail(f"line {number}: JSON nested too deeply") from e
        _add_json_record(collector, f"line {number}", f"line-{number}", record)
    if not collector.documents:
        raise collector.fail("no records found")
    return LoadResult(tuple(collector.documents))


def json_documents(text: str, path: str) -> LoadResult:
    """A list of records, ``{"documents": [...]}`` or a single record object."""
    collector = _Collector(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise collector.fail(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
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
        _add_json_record(collector, f"record {number}", f"record-{number}", record)
    if not collector.documents:
        raise collector.fail("no records found")
    return LoadResult(tuple(collector.documents))


def csv_documents(text: str, path: str, *, text_column: str = "text",
                  title_column: str | None = None, id_column: str | None = "id") -> LoadResult:
    """One document per data row. ``id_column`` is used when the header has it."""
    collector = _Collector(path)
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, len(text) + 1))  # a cell may be a whole long text
    try:
        rows = list(_csv_rows(collector, text))
    finally:
        csv.field_size_limit(old_limit)
    if not rows:
        raise collector.fail("CSV file has no header row")
    header = [name.strip() for name in rows[0][1]]
    _check_header(collector, header, text_column, title_column)
    if len(rows) == 1:
        raise collector.fail("CSV file has no data rows")
    skipped: list[str] = []
    for number, (line, row) in enumerate(rows[1:], start=1):
        if len(row) > len(header):
            raise collector.fail(f"row {number} (line {line}): {len(row)} fields, "
                                 f"the header has {len(header)}")
        cells = dict(zip(header, row + [""] * (len(header) - len(row)), strict=True))
        if not cells[text_column].strip():
            skipped.append(f"row {number} (line {line}): empty {text_column!r}")
            continue
        record_id = cells.get(id_column) if id_column else None
        used = {text_column, title_column, id_column}
        extra = ((k, v) for k, v in cells.items() if k and k not in used and v != "")
        collector.add(f"row {number}", f"row-{number}", cells[text_column],
                      record_id=record_id if record_id and record_id.strip() else None,
                      title=cells.get(title_column) if title_column else None, extra=extra)
    if not collector.documents:
        raise collector.fail(f"no rows with text in column {text_column!r}")
    return LoadResult(tuple(collector.documents), tuple(skipped))


def _csv_rows(collector: _Collector, text: str) -> Iterable[tuple[int, list[str]]]:
    """``(line number, cells)`` of every non-blank row."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                yield reader.line_num, row
    except csv.Error as e:
        raise collector.fail(f"line {reader.line_num}: malformed CSV ({e})") from e


def _check_header(collector: _Collector, header: list[str], text_column: str,
                  title_column: str | None) -> None:
    named = [name for name in header if name]
    duplicates = sorted({name for name in named if named.count(name) > 1})
    if duplicates:
        raise collector.fail(f"duplicate column names: {', '.join(duplicates)}")
    for column in (text_column, title_column):
        if column is not None and column not in header:
            raise collector.fail(f"no column {column!r} (columns: {', '.join(named) or 'none'})")

