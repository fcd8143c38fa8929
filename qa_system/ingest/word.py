"""Text and title of a Word ``.docx`` document with python-docx."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from ..errors import DocumentParseError

_MAX_TITLE_CHARS = 200
_CELL_SEPARATOR = " | "


def docx_to_text(data: bytes, source: str) -> tuple[str, str | None]:
    """The body's paragraphs and tables in document order, and a title.

    Paragraphs (headings and list items included) are separated by a blank line; a table gives
    one line per row, its cells joined by ``" | "`` (a merged cell once). Headers, footers and
    comments are left out. The title is the core properties' title, else the first paragraph
    styled as a title or heading. A file python-docx cannot open is a DocumentParseError.
    """
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(_blocks(document))
        title = _clean(document.core_properties.title or "") or _first_heading(document)
    except Exception as e:  # zipfile, lxml and python-docx raise many types on damaged files
        raise DocumentParseError(source, f"not a readable Word document ({type(e).__name__}: {e})") from e
    return "\n\n".join(text for text, _ in blocks if text.strip()), title


def _blocks(container: Any) -> Iterator[tuple[str, str]]:
    """``(text, style name)`` of each paragraph, and of each table (one line per row)."""
    for item in container.iter_inner_content():
        if isinstance(item, Paragraph):
            yield item.text, _style_name(item)
        elif isinstance(item, Table):
            yield "\n".join(_table_rows(item)), ""


def _table_rows(table: Table) -> Iterator[str]:
    for row in table.rows:
        seen: set[int] = set()
        cells = []
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell is returned once per grid column it spans
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(" ".join(text.split()) for text, _ in _blocks(cell) if text.strip()))
        if any(cells):
            yield _CELL_SEPARATOR.join(cells)


def _style_name(paragraph: Paragraph) -> str:
    try:
        style = paragraph.style
    except (KeyError, ValueError):  # a style id the styles part does not define
        return ""
    return (style.name or "") if style is not None else ""


def _first_heading(document: Any) -> str | None:
    for paragraph in document.paragraphs:
        name = _style_name(paragraph)
        if name == "Title" or name.startswith("Heading"):
            title = _clean(paragraph.text)
            if title:
                return title
    return None


def _clean(text: str) -> str | None:
    return " ".join(text.split())[:_MAX_TITLE_CHARS] or None
