"""Whole-document formats converted to text: Markdown, reStructuredText, Word, damaged PDFs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qa_system.ingest import SUPPORTED_EXTENSIONS, scan_input_files
from tests.loader_support import LIMIT, load, make_pdf, parse_error, write

# --- Markdown ----------------------------------------------------------------------------

MARKDOWN = """---
title: "Front matter title"
layout: page
---
Intro with `['GET']`, a [link text](https://example.com) and **bold** words.

<div class="termy">

```console
$ openssl rand -hex 32
09d25e094faa6ca2
```

</div>

# The *Real* Title

| Setting | Default |
|---------|---------|
| retries | 3       |

- item one
- item <b>two</b>

Text with <span class="x">inline html</span> and 1 < 2.

    indented code stays
"""


def test_markdown_is_converted_to_plain_text(tmp_path: Path) -> None:
    [doc] = load(write(tmp_path / "guide.md", MARKDOWN))
    assert doc.text == (
        "Intro with ['GET'], a link text and bold words.\n\n"
        "$ openssl rand -hex 32\n09d25e094faa6ca2\n\n"
        "The Real Title\n\n"
        "Setting Default\nretries 3\n\n"
        "item one\nitem two\n\n"
        "Text with inline html and 1 < 2.\n\n"
        "indented code stays"
    )
    assert doc.title == "The Real Title"
    assert dict(doc.metadata) == {"source_path": doc.source}


def test_myst_directives_and_roles_keep_their_text(tmp_path: Path) -> None:
    # Sphinx's Markdown (MyST), as in pip's docs: a tab's label, a nested fence, a role
    source = textwrap.dedent("""\
        # Caching

        ```{versionadded} 6.0
        ```

        The legacy file is {file}`$HOME/.pip/pip.conf`.

        ````{tab} Linux
        ```
        ~/.cache/pip
        ```
        ````

        ```{note}
        :class: tip
        A **note**.
        ```

        ```{code-block} python
        print("hi")
        ```

        ```{toctree}
        hidden-page
        ```
        """)
    (doc,) = load(write(tmp_path / "caching.md", source))
    assert doc.text == ("Caching\n\nAdded in version 6.0\n\nThe legacy file is $HOME/.pip/pip.conf.\n\n"
                        "Linux\n\n~/.cache/pip\n\nA note.\n\nprint(\"hi\")")


def test_markdown_title_falls_back_to_front_matter_title(tmp_path: Path) -> None:
    [doc] = load(write(tmp_path / "a.markdown", "---\ntitle: 'From YAML'\n---\n\n## Sub\n\nBody.\n"))
    assert (doc.title, doc.text) == ("From YAML", "Sub\n\nBody.")


def test_markdown_leading_rule_that_is_not_front_matter_is_kept(tmp_path: Path) -> None:
    [doc] = load(write(tmp_path / "rule.md", "---\nJust a paragraph between rules.\n---\n\nMore.\n"))
    assert "Just a paragraph between rules." in doc.text


def test_markdown_with_only_markup_fails(tmp_path: Path) -> None:
    reason = parse_error(write(tmp_path / "c.md", "<!-- only a comment -->\n")).reason
    assert reason == "no text found in Markdown"


# --- reStructuredText --------------------------------------------------------------------

SPHINX_RST = """\
.. _install:

Installing the Widget
=====================

.. toctree::
   :maxdepth: 2

   usage
   api

Call :func:`widget.install` or :py:meth:`~widget.Widget.start`; see :ref:`the guide <guide-label>`
and :doc:`/usage`. Unresolved |version| and `missing target`_ stay as text.

.. code-block:: python
   :caption: example.py
   :emphasize-lines: 1

   import widget
   widget.install(force=True)

.. note::

   The note's text is kept.

.. versionadded:: 2.1
   The ``force`` option.

.. autoclass:: widget.Widget
   :members:

.. py:function:: configure(path, *, strict=False)

   Reads the configuration at *path*.

.. include:: /etc/hostname

.. raw:: html

   <b>raw html is not indexed</b>

Section Two
-----------

Plain paragraph.
"""


def test_rst_sphinx_markup_keeps_its_text_without_stderr(tmp_path: Path) -> None:
    """In a fresh interpreter: docutils must print nothing, and unknown markup keeps its text."""
    path = write(tmp_path / "install.rst", SPHINX_RST)
    script = textwrap.dedent(f"""
        import json
        from qa_system.ingest import load_file_result
        result = load_file_result({str(path)!r}, max_file_bytes={LIMIT})
        [doc] = result.documents
        print(json.dumps([doc.title, doc.text, list(result.skipped), list(result.warnings)]))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stderr == ""
    title, text, skipped, warnings = json.loads(run.stdout)
    assert title == "Installing the Widget"
    assert (skipped, warnings) == ([], [])
    assert text == (
        "Installing the Widget\n\n"
        "Call widget.install or start; see the guide and /usage. Unresolved version and "
        "missing target stay as text.\n\n"
        "import widget\nwidget.install(force=True)\n\n"
        "Note\n\nThe note's text is kept.\n\n"
        "Added in version 2.1. The force option.\n\n"
        "configure(path, *, strict=False)\n\n"
        "Reads the configuration at path.\n\n"
        "Section Two\n\nPlain paragraph."
    )


def test_rst_title_is_the_first_section_title_without_a_document_title(tmp_path: Path) -> None:
    [doc] = load(write(tmp_path / "two.rst", "First\n=====\n\nAlpha text.\n\nSecond\n======\n\nBeta.\n"))
    assert doc.title == "First"
    assert doc.text == "First\n\nAlpha text.\n\nSecond\n\nBeta."


def test_rst_without_text_fails(tmp_path: Path) -> None:
    reason = parse_error(write(tmp_path / "toc.rst", ".. toctree::\n\n   a\n   b\n")).reason
    assert reason == "no text found in reStructuredText"


def test_rst_of_a_real_sphinx_manual_reads_well() -> None:
    """A CMake help page (Sphinx directives and roles), where the machine has one."""
    page = Path("/usr/share/cmake-3.25/Help/prop_tgt/IOS_INSTALL_COMBINED.rst")
    if not page.exists():
        pytest.skip("CMake's help pages are not installed")
    [doc] = load(page)
    assert doc.title == "IOS_INSTALL_COMBINED"
    assert "Added in version 3.5." in doc.text
    assert "selected by CMAKE_OSX_SYSROOT and removed" in doc.text
    assert ":variable:" not in doc.text and ".. note" not in doc.text


def test_rst_files_in_a_folder_are_found(tmp_path: Path) -> None:
    write(tmp_path / "docs" / "a.rst", "Title\n=====\n\nText.\n")
    write(tmp_path / "docs" / "b.docx", b"x")
    assert {".rst", ".docx"} <= SUPPORTED_EXTENSIONS
    scan = scan_input_files([tmp_path])
    assert [p.name for p in scan.files] == ["a.rst", "b.docx"]
    assert scan.skipped_unsupported == ()


# --- Word .docx --------------------------------------------------------------------------


def make_docx(path: Path, *, core_title: str | None = None) -> Path:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    if core_title:
        document.core_properties.title = core_title
    document.add_heading("Refund Policy", level=1)
    document.add_paragraph("Refunds are paid within 14 days.")
    document.add_paragraph("Ask support first.", style="List Bullet")
    table = document.add_table(rows=2, cols=3)
    for row, values in zip(table.rows, [("Plan", "Price", "Refund"), ("Pro", "$10", "yes")], strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    merged = document.add_table(rows=1, cols=2)
    merged.cell(0, 0).merge(merged.cell(0, 1)).text = "Merged cell"
    document.add_heading("Contact", level=2)
    document.add_paragraph("")
    document.add_paragraph("Write to help@example.com.")
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


def test_docx_paragraphs_tables_and_headings_in_order(tmp_path: Path) -> None:
    [doc] = load(make_docx(tmp_path / "policy.docx"))
    assert doc.text == (
        "Refund Policy\n\nRefunds are paid within 14 days.\n\nAsk support first.\n\n"
        "Plan | Price | Refund\nPro | $10 | yes\n\nMerged cell\n\nContact\n\nWrite to help@example.com."
    )
    assert doc.title == "Refund Policy"
    assert dict(doc.metadata) == {"source_path": doc.source}


def test_docx_title_from_core_properties(tmp_path: Path) -> None:
    [doc] = load(make_docx(tmp_path / "p.docx", core_title="  Billing   handbook "))
    assert doc.title == "Billing handbook"


@pytest.mark.parametrize("content", [b"PK\x03\x04 not really a zip", b"plain text, no zip"])
def test_corrupt_docx_fails_naming_the_file(tmp_path: Path, content: bytes) -> None:
    reason = parse_error(write(tmp_path / "broken.docx", content)).reason
    assert reason.startswith("not a readable Word document (")


def test_truncated_docx_fails(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "t.docx")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert parse_error(path).reason.startswith("not a readable Word document (")


# --- damaged PDFs: pypdf's warnings belong to the file -----------------------------------


def test_pdf_with_a_damaged_header_is_read_and_the_warning_attached(tmp_path: Path) -> None:
    """In a fresh interpreter (pytest attaches its own handlers to every logger): nothing on stderr."""
    data = make_pdf(["Damaged but readable."])
    path = write(tmp_path / "damaged.pdf", b"XXXXXXXX" + data[8:])
    script = textwrap.dedent(f"""
        import json
        from qa_system.ingest import load_file_result
        result = load_file_result({str(path)!r}, max_file_bytes={LIMIT})
        [doc] = result.documents
        print(json.dumps([doc.text, list(result.skipped), list(result.warnings)]))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stderr == ""
    assert json.loads(run.stdout) == ["Damaged but readable.", [], ["pypdf: invalid pdf header: b'XXXXX'"]]


def test_truncated_pdf_failure_carries_pypdf_warnings(tmp_path: Path) -> None:
    data = make_pdf(["Cut short."])
    records = _RootRecords()
    with records:
        reason = parse_error(write(tmp_path / "cut.pdf", data[:-30])).reason
    assert reason.startswith("not a readable PDF (")
    assert reason.endswith("[pypdf: EOF marker not found]")
    assert records.messages == []


def test_pypdf_warnings_outside_a_parse_still_reach_the_root_logger() -> None:
    import qa_system.ingest.pdf  # noqa: F401  (installs the capture)

    records = _RootRecords()
    with records:
        logging.getLogger("pypdf._reader").warning("outside any parse")
    assert records.messages == ["outside any parse"]


class _RootRecords(logging.Handler):
    """A handler on the root logger, for the duration of a ``with`` block."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> None:
        logging.getLogger().addHandler(self)

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)
