"""Text and titles from Markdown and HTML."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PreformattedString, Tag

_ATX_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")

_DROPPED_TAGS = ("script", "style", "nav", "head", "noscript", "template", "svg", "iframe")
_PARAGRAPH_TAGS = frozenset({
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "table", "ul", "ol", "dl",
    "figure", "section", "article", "header", "footer", "main", "aside", "form", "address",
})
_LINE_TAGS = frozenset({
    "div", "li", "tr", "dt", "dd", "figcaption", "caption", "hr", "br", "details", "summary",
    "fieldset", "legend", "option", "body", "html",
})
_CELL_TAGS = frozenset({"td", "th"})
_RANK = {"": 0, " ": 1, "\n": 2, "\n\n": 3}


def markdown_title(text: str) -> str | None:
    """The text of the first level-1 ATX heading (``# Title``) outside code fences, if any."""
    fence: str | None = None
    for line in text.split("\n"):
        opener = _FENCE.match(line)
        if opener:
            marker = opener.group(1)
            if fence is None:
                fence = marker[0] * 3
            elif marker.startswith(fence):
                fence = None
            continue
        if fence is None:
            match = _ATX_H1.match(line)
            if match and match.group(1).strip():
                return match.group(1).strip()
    return None


def html_to_text(html: str) -> tuple[str, str | None]:
    """Visible text of an HTML page and its title (``<title>``, else the first ``<h1>``).

    Scripts, styles, navigation and ``<head>`` are dropped; block elements start new lines
    (paragraph-like ones a blank line); runs of spaces collapse to one space except inside
    ``<pre>``, whose text is kept as written.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "looks like a URL/filename", "XML parsed as HTML"
        soup = BeautifulSoup(html, "lxml")
    title = _title(soup)
    for tag in soup.find_all(_DROPPED_TAGS):
        tag.decompose()
    return _assemble(_pieces(soup)), title


def _title(soup: BeautifulSoup) -> str | None:
    for tag in (soup.find("title"), soup.find("h1")):
        if isinstance(tag, Tag):
            value = " ".join(tag.get_text(" ").split())
            if value:
                return value
    return None


class _Break(NavigableString):
    """A line or paragraph break inserted around block elements."""


def _pieces(soup: BeautifulSoup) -> Iterator[tuple[str, str]]:
    """``(kind, value)`` in document order: kind is "break", "pre" (verbatim) or "text"."""
    for tag in soup.find_all(True):
        separator = _separator(tag.name)
        if separator and tag.parent is not None:
            tag.insert_before(_Break(separator))
            tag.insert_after(_Break(separator))
    for node in soup.descendants:
        if isinstance(node, _Break):
            yield "break", str(node)
        elif isinstance(node, NavigableString) and not isinstance(node, PreformattedString):
            yield ("pre" if node.find_parent("pre") is not None else "text"), str(node)


def _assemble(pieces: Iterator[tuple[str, str]]) -> str:
    """Join pieces; adjacent breaks and spaces merge into the strongest one, none at the ends."""
    out: list[str] = []
    pending = ""
    for kind, value in pieces:
        if kind == "break":
            pending = _stronger(pending, value)
            continue
        trailing = ""
        if kind == "text":
            collapsed = re.sub(r"\s+", " ", value)
            if collapsed.startswith(" "):
                pending = _stronger(pending, " ")
            trailing = " " if collapsed.endswith(" ") else ""
            value = collapsed.strip()
        if value:
            if out and pending:
                out.append(pending)
            out.append(value)
            pending = trailing
    return "".join(out)


def _stronger(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


def _separator(name: str) -> str:
    if name in _PARAGRAPH_TAGS:
        return "\n\n"
    if name in _LINE_TAGS:
        return "\n"
    return " " if name in _CELL_TAGS else ""
