from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qa_system.errors import DocumentParseError, InputError
from qa_system.ingest import iter_input_files, load_file, load_file_result, scan_input_files
from tests.loader_support import LIMIT, load, make_pdf, parse_error, write

# --- plain text and Markdown -------------------------------------------------------------


def test_txt_is_loaded_as_is_with_newlines_normalised(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.txt", "Line one.\r\nLine two.\rLine three.\n")
    [doc] = load(path)
    assert doc.text == "Line one.\nLine two.\nLine three.\n"
    assert doc.source == path.resolve().as_posix()
    assert doc.title is None
    assert dict(doc.metadata) == {"source_path": doc.source}


def test_relative_path_gives_absolute_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "a.txt", "hello")
    monkeypatch.chdir(tmp_path)
    [doc] = load(Path("a.txt"))
    assert doc.source == (tmp_path / "a.txt").resolve().as_posix()


def test_utf8_bom_is_accepted_and_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.txt", b"\xef\xbb\xbfCaf\xc3\xa9")
    assert load(path)[0].text == "Café"


def test_markdown_is_converted_to_text_and_title_taken_from_first_h1(tmp_path: Path) -> None:
    content = (
        "Intro line\r\n\r\n```bash\r\n# not a title\r\n```\r\n\r\n"
        "# Real *Title* ##\r\n\r\nBody **bold**.\r\n# Second\r\n"
    )
    path = write(tmp_path / "doc.md", content)
    [doc] = load(path)
    assert doc.text == "Intro line\n\n# not a title\n\nReal Title\n\nBody bold.\n\nSecond"
    assert doc.title == "Real Title"


@pytest.mark.parametrize("name", ["plain.md", "plain.markdown"])
def test_markdown_without_h1_has_no_title(tmp_path: Path, name: str) -> None:
    [doc] = load(write(tmp_path / name, "## Only a subheading\n\ntext"))
    assert doc.title is None


# --- HTML --------------------------------------------------------------------------------

HTML = """<!DOCTYPE html>
<html><head><title>  The   Page </title><style>p { color: red }</style>
<script>var hidden = "script text";</script></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<h1>Main heading</h1>
<p>First   paragraph with <b>bold</b>
   text &amp; an entity.</p>
<div>Block one</div><div>Block two</div>
<ul><li>item a</li><li>item b</li></ul>
<!-- a comment -->
<pre>  keep
    indentation</pre>
</body></html>"""


@pytest.mark.parametrize("name", ["page.html", "page.htm"])
def test_html_text_extraction(tmp_path: Path, name: str) -> None:
    [doc] = load(write(tmp_path / name, HTML))
    assert doc.title == "The Page"
    assert doc.text == (
        "Main heading\n\nFirst paragraph with bold text & an entity.\n\nBlock one\nBlock two"
        "\n\nitem a\nitem b\n\n  keep\n    indentation"
    )
    for hidden in ("script text", "color", "Home", "About", "comment"):
        assert hidden not in doc.text


def test_html_title_falls_back_to_first_h1(tmp_path: Path) -> None:
    [doc] = load(write(tmp_path / "p.html", "<body><h1>Heading <i>one</i></h1><p>x</p></body>"))
    assert doc.title == "Heading one"


def test_html_without_visible_text_fails(tmp_path: Path) -> None:
    html = "<html><head><title>T</title></head><body> </body></html>"
    path = write(tmp_path / "empty.html", html)
    assert "no text found in HTML" in parse_error(path).reason


# --- PDF ---------------------------------------------------------------------------------


def test_pdf_pages_joined_with_blank_line_and_metadata_title(tmp_path: Path) -> None:
    pdf = make_pdf(["Page one text.", "Page two text."], title="PDF Title")
    path = write(tmp_path / "a.pdf", pdf)
    [doc] = load(path)
    assert doc.text == "Page one text.\n\nPage two text."
    assert doc.title == "PDF Title"
    assert doc.metadata["page_count"] == 2
    assert doc.metadata["source_path"] == doc.source


def test_pdf_title_falls_back_to_first_line(tmp_path: Path) -> None:
    [doc] = load(write(tmp_path / "b.pdf", make_pdf(["Opening line\nmore text"])))
    assert doc.title == "Opening line"


def test_encrypted_pdf_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.pdf", make_pdf(["secret"], password="pw"))
    assert "encrypted" in parse_error(path).reason


def test_pdf_with_empty_user_password_is_read(tmp_path: Path) -> None:
    [doc] = load(write(tmp_path / "open.pdf", make_pdf(["readable"], password="")))
    assert doc.text == "readable"


@pytest.mark.parametrize("content", [b"%PDF-1.4\nthis is not a pdf", b"plain bytes"])
def test_corrupt_pdf_fails(tmp_path: Path, content: bytes) -> None:
    assert "not a readable PDF" in parse_error(write(tmp_path / "bad.pdf", content)).reason


def test_truncated_pdf_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "cut.pdf", make_pdf(["some text"])[:300])
    assert "not a readable PDF" in parse_error(path).reason


def test_pdf_without_text_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "blank.pdf", make_pdf(["", ""]))
    assert "no extractable text" in parse_error(path).reason


# --- errors common to all files ----------------------------------------------------------


@pytest.mark.parametrize("name", ["e.txt", "e.md", "e.html", "e.pdf", "e.jsonl", "e.json", "e.csv"])
def test_empty_file_fails(tmp_path: Path, name: str) -> None:
    assert parse_error(write(tmp_path / name, b"")).reason == "file is empty"


def test_whitespace_only_text_fails(tmp_path: Path) -> None:
    assert "no text found" in parse_error(write(tmp_path / "w.txt", " \n\t\n")).reason


@pytest.mark.parametrize("name", ["bin.txt", "bin.md", "bin.json", "bin.csv", "bin.html"])
def test_nul_bytes_fail_as_binary(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, b"text\x00\x01\x02more")
    assert parse_error(path).reason == "binary or not UTF-8 (contains NUL bytes)"


def test_non_utf8_text_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.txt", "café".encode("latin-1"))
    assert parse_error(path).reason == "binary or not UTF-8 (invalid byte 0xe9 at offset 3)"


def test_file_over_the_size_limit_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "big.txt", b"a" * (2 * 1024 * 1024 + 10))
    error = parse_error(path, max_file_bytes=1024 * 1024)
    assert error.reason == "file is 2.0 MB, limit is 1.0 MB"


def test_unreadable_file_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "locked.txt", "secret")

    def deny(self: Path, *args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", deny)
    assert parse_error(path).reason == "cannot read file: permission denied"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_fails_for_real(tmp_path: Path) -> None:
    path = write(tmp_path / "locked.txt", "secret")
    path.chmod(0)
    try:
        assert parse_error(path).reason == "cannot read file: permission denied"
    finally:
        path.chmod(0o600)


def test_unsupported_file_named_explicitly_fails(tmp_path: Path) -> None:
    error = parse_error(write(tmp_path / "report.odt", b"PK\x03\x04"))
    assert error.reason.startswith("unsupported file type '.odt'")


def test_missing_file_fails(tmp_path: Path) -> None:
    assert "cannot read file" in parse_error(tmp_path / "gone.txt").reason


# --- JSON lines --------------------------------------------------------------------------


def test_jsonl_records_sources_and_metadata(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a1", "text": "First text.", "title": "One", "lang": "en", "year": 2020,
                    "score": 0.5, "draft": False, "tags": ["x", "y"], "extra": None}),
        "",
        json.dumps({"text": "Second\r\ntext.", "id": 7}),
        "   ",
        json.dumps({"text": "Third text."}),
    ]
    path = write(tmp_path / "data.jsonl", "\n".join(lines) + "\n")
    docs = load(path)
    base = path.resolve().as_posix()
    assert [d.source for d in docs] == [f"{base}#a1", f"{base}#7", f"{base}#line-5"]
    assert [d.text for d in docs] == ["First text.", "Second\ntext.", "Third text."]
    assert [d.title for d in docs] == ["One", None, None]
    assert dict(docs[0].metadata) == {
        "lang": "en", "year": 2020, "score": 0.5, "draft": False, "tags": '["x","y"]',
        "source_path": base, "record_id": "a1",
    }
    assert dict(docs[1].metadata) == {"source_path": base, "record_id": "7"}
    assert dict(docs[2].metadata) == {"source_path": base}


def test_jsonl_invalid_line_is_skipped_and_reported_by_number(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", '{"text": "one"}\n\n{"text": "broken"\n{"text": "four"}\n')
    result = load_file_result(path, max_file_bytes=LIMIT)
    assert [d.text for d in result.documents] == ["one", "four"]
    assert [d.source.rsplit("#", 1)[1] for d in result.documents] == ["line-1", "line-4"]
    assert result.skipped == ("line 3: not valid JSON (Expecting ',' delimiter, column 18)",)


def test_jsonl_unterminated_string_message_has_no_doubled_word(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", '{"text": "ok"}\n{"text": "unterminated}\n')
    result = load_file_result(path, max_file_bytes=LIMIT)
    assert result.skipped == ("line 2: not valid JSON (Unterminated string, column 10)",)


@pytest.mark.parametrize(("record", "reason"), [
    ({"title": "no text"}, "line 2: record has no non-empty string 'text'"),
    ({"text": ""}, "line 2: record has no non-empty string 'text'"),
    ({"text": "   "}, "line 2: record has no non-empty string 'text'"),
    ({"text": 42}, "line 2: record has no non-empty string 'text'"),
    (["text"], "line 2: expected a JSON object, got an array"),
    ({"text": "x", "id": {"a": 1}}, "line 2: 'id' must be a string or a number, got an object"),
    ({"text": "x", "id": ""}, "line 2: 'id' is empty"),
    ({"text": "x", "title": ["a"]}, "line 2: 'title' must be a string, got an array"),
])
def test_jsonl_bad_record_is_skipped(tmp_path: Path, record: object, reason: str) -> None:
    path = write(tmp_path / "r.jsonl", json.dumps({"text": "fine"}) + "\n" + json.dumps(record))
    result = load_file_result(path, max_file_bytes=LIMIT)
    assert [d.text for d in result.documents] == ["fine"]
    assert result.skipped == (reason,)


def test_jsonl_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    lines = [{"id": "x", "text": "a"}, {"id": "y", "text": "b"}, {"id": "x", "text": "c"}]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in lines))
    result = load_file_result(path, max_file_bytes=LIMIT)
    assert [d.text for d in result.documents] == ["a", "b"]
    assert result.skipped == ("line 3: duplicate record id 'x', first seen at line 1",)


def test_jsonl_explicit_id_clashing_with_a_line_id_is_skipped(tmp_path: Path) -> None:
    lines = [{"id": "line-2", "text": "a"}, {"text": "b"}]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in lines))
    result = load_file_result(path, max_file_bytes=LIMIT)
    assert [d.text for d in result.documents] == ["a"]
    assert result.skipped == ("line 2: duplicate record id 'line-2', first seen at line 1",)


def test_jsonl_with_every_line_bad_fails_naming_the_first_problems(tmp_path: Path) -> None:
    lines = ["{bad", '{"title": "no text"}', "[1]", '"str"', "{also bad"]
    path = write(tmp_path / "all-bad.jsonl", "\n".join(lines) + "\n")
    assert parse_error(path).reason == (
        "no usable records: line 1: not valid JSON (Expecting property name enclosed in double quotes, "
        "column 2); line 2: record has no non-empty string 'text'; line 3: expected a JSON object, "
        "got an array (and 2 more)"
    )


def test_jsonl_with_only_blank_lines_fails(tmp_path: Path) -> None:
    assert "no text found" in parse_error(write(tmp_path / "b.jsonl", "\n\n  \n")).reason


# --- JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [
    [{"id": "a", "text": "Alpha"}, {"text": "Beta", "title": "B"}],
    {"documents": [{"id": "a", "text": "Alpha"}, {"text": "Beta", "title": "B"}]},
])
def test_json_list_or_documents_object(tmp_path: Path, payload: object) -> None:
    path = write(tmp_path / "c.json", json.dumps(payload, indent=2))
    docs = load(path)
    base = path.resolve().as_posix()
    assert [(d.source, d.text, d.title) for d in docs] == [
        (f"{base}#a", "Alpha", None), (f"{base}#record-2", "Beta", "B"),
    ]


def test_json_single_record_object(tmp_path: Path) -> None:
    path = write(tmp_path / "one.json", json.dumps({"text": "Only", "meta": {"k": 1}}))
    [doc] = load(path)
    assert doc.source.endswith("one.json#record-1")
    assert doc.metadata["meta"] == '{"k":1}'


def test_json_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.json", '[\n  {"text": "a"},\n  {"text": }\n]')
    assert parse_error(path).reason == "not valid JSON (Expecting value, line 3, column 12)"


@pytest.mark.parametrize("payload", ['"just a string"', "42", '{"documents": "nope"}'])
def test_json_wrong_shape_fails(tmp_path: Path, payload: str) -> None:
    reason = parse_error(write(tmp_path / "shape.json", payload)).reason
    assert "record" in reason


def test_json_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    records = [{"id": 1, "text": "a"}, {"id": "1", "text": "b"}]
    path = write(tmp_path / "d.json", json.dumps(records))
    result = load_file_result(path, max_file_bytes=LIMIT)
    assert [d.text for d in result.documents] == ["a"]
    assert result.skipped == ("record 2: duplicate record id '1', first seen at record 1",)


def test_json_bad_records_are_skipped_and_reported(tmp_path: Path) -> None:
    records = [{"text": "a"}, "not an object", {"text": ""}, {"text": "d", "id": [1]}, {"text": "e"}]
    path = write(tmp_path / "r.json", json.dumps({"documents": records}))
    result = load_file_result(path, max_file_bytes=LIMIT)
    assert [d.source.rsplit("#", 1)[1] for d in result.documents] == ["record-1", "record-5"]
    assert result.skipped == (
        "record 2: expected a JSON object, got a string",
        "record 3: record has no non-empty string 'text'",
        "record 4: 'id' must be a string or a number, got an array",
    )


def test_json_with_every_record_bad_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "r.json", json.dumps([1, 2]))
    assert parse_error(path).reason == (
        "no usable records: record 1: expected a JSON object, got a number; "
        "record 2: expected a JSON object, got a number"
    )


def test_json_empty_list_fails(tmp_path: Path) -> None:
    assert parse_error(write(tmp_path / "e.json", "[]")).reason == "no records found"


# --- CSV ---------------------------------------------------------------------------------


def test_csv_rows_become_documents(tmp_path: Path) -> None:
    content = (
        "id,headline,body,author,year\r\n"
        'n1,First,"Body one,\r\nwith a newline",Ann,2001\r\n'
        ",Second,Body two,,2002\r\n"
        "\r\n"
        "n3,Third,   ,Bob,2003\r\n"
        "n4,,Body four,Cy,\r\n"
    )
    path = write(tmp_path / "news.csv", content)
    result = load_file_result(path, max_file_bytes=LIMIT, csv_text_column="body",
                              csv_title_column="headline")
    base = path.resolve().as_posix()
    docs = result.documents
    assert [d.source for d in docs] == [f"{base}#n1", f"{base}#row-2", f"{base}#n4"]
    assert [d.text for d in docs] == ["Body one,\nwith a newline", "Body two", "Body four"]
    assert [d.title for d in docs] == ["First", "Second", None]
    assert dict(docs[0].metadata) == {"author": "Ann", "year": "2001", "source_path": base,
                                      "record_id": "n1"}
    assert dict(docs[1].metadata) == {"year": "2002", "source_path": base}
    assert result.skipped == ("row 3 (line 6): empty 'body'",)
    assert load(path, csv_text_column="body", csv_title_column="headline") == list(docs)


def test_csv_default_text_column(tmp_path: Path) -> None:
    [doc] = load(write(tmp_path / "t.csv", "text,lang\nHello there,en\n"))
    assert (doc.text, doc.title, doc.metadata["lang"]) == ("Hello there", None, "en")
    assert doc.source.endswith("t.csv#row-1")


def test_csv_missing_text_column_lists_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "title,body\nA,B\n")
    assert parse_error(path).reason == "no column 'text' (columns: title, body)"


def test_csv_missing_title_column_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "text\nA\n")
    assert parse_error(path, csv_title_column="name").reason == "no column 'name' (columns: text)"


def test_csv_with_every_row_empty_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", "text,x\n,1\n  ,2\n")
    assert parse_error(path).reason == (
        "no usable records: row 1 (line 2): empty 'text'; row 2 (line 3): empty 'text'"
    )


def test_csv_header_only_fails(tmp_path: Path) -> None:
    assert parse_error(write(tmp_path / "h.csv", "text,x\n")).reason == "CSV file has no data rows"


def test_csv_row_with_too_many_fields_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", "text,x\na,1\nb,2,3\nc,4\n")
    result = load_file_result(path, max_file_bytes=LIMIT)
    assert [d.text for d in result.documents] == ["a", "c"]
    assert result.skipped == ("row 2 (line 3): 3 fields, the header has 2",)


def test_csv_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "id,text\nk,a\nk,b\n")
    result = load_file_result(path, max_file_bytes=LIMIT)
    assert [d.text for d in result.documents] == ["a"]
    assert result.skipped == ("row 2 (line 3): duplicate record id 'k', first seen at row 1 (line 2)",)


def test_csv_duplicate_column_names_fail(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,a,a\nx,1,2\n")
    assert parse_error(path).reason == "duplicate column names: a"


def test_csv_long_cell_is_accepted(tmp_path: Path) -> None:
    long_text = "word " * 60_000  # over the csv module's default 128 KiB field limit
    [doc] = load(write(tmp_path / "long.csv", f'text\n"{long_text}"\n'))
    assert doc.text == long_text


# --- finding input files -----------------------------------------------------------------


def make_tree(root: Path) -> None:
    for name in ["b.txt", "a.md", "sub/c.html", "sub/deeper/d.pdf", "z.jsonl", "sub/e.csv",
                 "data.json", "page.htm", "notes.markdown"]:
        write(root / name, "x")
    for name in ["image.png", "sub/archive.zip", "README"]:
        write(root / name, "x")
    for name in [".hidden.txt", ".git/config.txt", "sub/.cache/f.txt"]:
        write(root / name, "x")


def test_scan_walks_folders_sorted_and_skips_hidden_and_unsupported(tmp_path: Path) -> None:
    make_tree(tmp_path)
    scan = scan_input_files([tmp_path])
    root = tmp_path.resolve()
    assert [p.relative_to(root).as_posix() for p in scan.files] == [
        "a.md", "b.txt", "data.json", "notes.markdown", "page.htm", "sub/c.html",
        "sub/deeper/d.pdf", "sub/e.csv", "z.jsonl",
    ]
    skipped = sorted(p.name for p in scan.skipped_unsupported)
    assert skipped == ["README", "archive.zip", "image.png"]
    assert scan.errors == ()
    assert list(scan) == list(scan.files) == list(iter_input_files([tmp_path]))
    assert all(p.is_absolute() for p in scan.files)


def test_scan_keeps_explicit_files_in_order_once(tmp_path: Path) -> None:
    make_tree(tmp_path)
    explicit = [tmp_path / "z.jsonl", tmp_path / ".hidden.txt", tmp_path / "image.png"]
    scan = scan_input_files([*explicit, tmp_path / "sub", tmp_path / "z.jsonl"])
    root = tmp_path.resolve()
    assert [p.relative_to(root).as_posix() for p in scan.files] == [
        "z.jsonl", ".hidden.txt", "image.png", "sub/c.html", "sub/deeper/d.pdf", "sub/e.csv",
    ]
    with pytest.raises(DocumentParseError, match="unsupported file type '.png'"):
        load_file(scan.files[2], max_file_bytes=LIMIT)


def test_scan_missing_path_raises_input_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(InputError, match="nope: no such file or folder"):
        scan_input_files([tmp_path, missing])


def test_scan_survives_symlink_loops_and_reports_broken_links(tmp_path: Path) -> None:
    write(tmp_path / "docs/a.txt", "x")
    try:
        (tmp_path / "docs/loop").symlink_to(tmp_path / "docs", target_is_directory=True)
        (tmp_path / "docs/alias.txt").symlink_to(tmp_path / "docs/a.txt")
        (tmp_path / "docs/broken.txt").symlink_to(tmp_path / "docs/missing.txt")
    except OSError:
        pytest.skip("symbolic links not supported here")
    scan = scan_input_files([tmp_path / "docs", tmp_path])
    assert scan.files == ((tmp_path / "docs/a.txt").resolve(),)
    assert [e.reason for e in scan.errors] == ["broken symbolic link"]


def test_scan_reports_unreadable_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "ok/a.txt", "x")
    write(tmp_path / "locked/b.txt", "x")
    real_scandir = os.scandir

    def scandir(path: object) -> object:
        if Path(str(path)).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    scan = scan_input_files([tmp_path])
    assert [p.name for p in scan.files] == ["a.txt"]
    [error] = scan.errors
    assert error.source.endswith("/locked")
    assert error.reason == "cannot read folder: Permission denied"
