"""iter_file_documents: record files read incrementally, with progress and skip reports."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from qa_system.errors import DocumentParseError
from qa_system.ingest import FileDocuments, iter_file_documents, load_file_result, source_path
from tests.loader_support import LIMIT, write


def stream(path: Path, **kwargs: object) -> FileDocuments:
    limit = kwargs.pop("max_file_bytes", LIMIT)
    return iter_file_documents(path, max_file_bytes=limit, **kwargs)  # type: ignore[arg-type]


def jsonl(records: list[object]) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def test_jsonl_documents_come_one_at_a_time_with_progress_and_reports(tmp_path: Path) -> None:
    lines = [{"text": f"record {i} " + "x" * 100} for i in range(2000)]
    lines[1500] = '{"text": oops}'
    path = write(tmp_path / "big.jsonl", jsonl(lines))
    docs = stream(path)
    assert (docs.total_bytes, docs.bytes_read, docs.skipped) == (path.stat().st_size, 0, ())
    iterator = iter(docs)
    first = next(iterator)
    assert first.source == f"{source_path(path)}#line-1"
    assert 0 < docs.bytes_read < docs.total_bytes / 100  # one line parsed, not the file
    rest = list(iterator)
    assert len(rest) == 1998
    assert docs.bytes_read == docs.total_bytes
    assert docs.skipped == ("line 1501: not valid JSON (Expecting value, column 10)",)
    assert docs.warnings == ()


def test_jsonl_stream_memory_stays_far_below_the_file_size(tmp_path: Path) -> None:
    line = json.dumps({"text": "word " * 400}) + "\n"  # about 2 KB
    path = write(tmp_path / "large.jsonl", line * 4000)  # about 8 MB
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for _ in stream(path, max_file_bytes=size))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 4000
    assert peak < size / 2, f"peak {peak} bytes for a {size}-byte file"


def test_csv_stream_reads_rows_incrementally(tmp_path: Path) -> None:
    rows = "".join(f'r{i},"Body {i},\r\nsecond line",{i}\r\n' for i in range(3000))
    path = write(tmp_path / "rows.csv", "id,body,n\r\n" + rows + "r5,duplicate,9\r\n")
    docs = stream(path, csv_text_column="body")
    iterator = iter(docs)
    first = next(iterator)
    assert (first.source.rsplit("#", 1)[1], first.text, first.metadata["n"]) == ("r0", "Body 0,\nsecond line", "0")
    assert 0 < docs.bytes_read < docs.total_bytes / 4
    rest = list(iterator)
    assert len(rest) == 2999
    assert docs.bytes_read == docs.total_bytes
    assert docs.skipped == ("row 3001 (line 6002): duplicate record id 'r5', first seen at row 6 (line 12)",)


def test_csv_header_problem_fails_before_any_document(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", "title,body\nA,B\n")
    with pytest.raises(DocumentParseError, match=r"no column 'text' \(columns: title, body\)"):
        next(iter(stream(path)))


def test_jsonl_line_numbers_follow_the_normalised_newlines(tmp_path: Path) -> None:
    path = write(tmp_path / "crlf.jsonl", b'{"text": "a"}\r\n{bad\r{"text": "c"}\r\n\r\n{"text": "e"}')
    result = load_file_result(path, max_file_bytes=LIMIT)
    assert [d.source.rsplit("#", 1)[1] for d in result.documents] == ["line-1", "line-3", "line-5"]
    assert result.skipped == ("line 2: not valid JSON (Expecting property name enclosed in double quotes, column 2)",)


def test_a_bad_byte_late_in_the_file_fails_it_before_the_first_document(tmp_path: Path) -> None:
    good = jsonl([{"text": f"r{i}"} for i in range(5000)]).encode()
    path = write(tmp_path / "late.jsonl", good + b'{"text": "\xff"}\n')
    docs = stream(path)
    with pytest.raises(DocumentParseError) as info:
        next(iter(docs))
    assert info.value.reason.startswith("binary or not UTF-8 (invalid byte 0xff at offset ")


def test_a_file_changed_while_being_read_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "grow.jsonl", jsonl([{"text": "first"}, {"text": "second"}]))
    iterator = iter(stream(path))
    assert next(iterator).text == "first"
    with path.open("ab") as f:
        f.write(b'{"text": "\xff"}\n')
    assert next(iterator).text == "second"
    with pytest.raises(DocumentParseError, match="file changed while being read"):
        next(iterator)


def test_problems_with_the_file_itself_are_raised_when_the_stream_is_made(tmp_path: Path) -> None:
    with pytest.raises(DocumentParseError, match="unsupported file type '.xml'"):
        stream(write(tmp_path / "a.xml", "<a/>"))
    with pytest.raises(DocumentParseError, match="cannot read file"):
        stream(tmp_path / "missing.jsonl")
    with pytest.raises(DocumentParseError, match="file is empty"):
        stream(write(tmp_path / "empty.csv", b""))
    with pytest.raises(DocumentParseError, match="file is .* limit is"):
        stream(write(tmp_path / "big.jsonl", jsonl([{"text": "x" * 100}])), max_file_bytes=50)


def test_whole_document_files_stream_their_one_document(tmp_path: Path) -> None:
    path = write(tmp_path / "a.md", "# Title\n\nBody.\n")
    docs = stream(path)
    assert [d.text for d in docs] == ["Title\n\nBody."]
    assert docs.bytes_read == docs.total_bytes


def test_a_stream_is_iterated_once(tmp_path: Path) -> None:
    docs = stream(write(tmp_path / "a.txt", "text"))
    assert len(list(docs)) == 1
    with pytest.raises(RuntimeError, match="only once"):
        iter(docs)
