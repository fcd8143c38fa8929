"""Text and titles from Markdown and HTML."""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Iterator
from typing import Any

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PreformattedString, Tag
from markdown_it import MarkdownIt

# CommonMark with GitHub-style tables and strikethrough; raw HTML passes through to html_to_text
_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
# MyST (Sphinx's Markdown): ```{name} argument fences are directives whose content is Markdown,
# and {name}`text` before a code span is a role
_MYST_DIRECTIVE = re.compile(r"\{([\w:.-]+)\}[ \t]*(.*)")
_MYST_ROLE = re.compile(r"\{[\w:.-]+\}$")
_MYST_OPTION = re.compile(r"[ \t]*:[\w-]+:.*(?:\n|$)")
_MYST_CODE = frozenset({"code", "code-block", "code-cell", "sourcecode"})
_MYST_DROPPED = frozenset({"toctree", "contents", "include", "literalinclude"})
_MYST_VERSION = {"versionadded": "Added in version", "versionchanged": "Changed in version",
                 "deprecated": "Deprecated since version"}
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_YAML_KEY = re.compile(r"[ \t]*[\w.-]+[ \t]*:(?:[ \t]|$)")
_FRONT_MATTER_TITLE = re.compile(r"^title[ \t]*:[ \t]*(.+?)[ \t]*$", re.MULTILINE)

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


def markdown_to_text(text: str) -> tuple[str, str | None]:
    """Plain text of a Markdown document and its title.

    The document is rendered as CommonMark (plus tables) and its HTML read by
    :func:`html_to_text`: markup characters go, code blocks keep their content (without the
    fence lines), links keep their text, headings, paragraphs and list items start new lines,
    and HTML written inside the Markdown is reduced to its text. A leading front matter block
    (``---`` ... ``---``) is not part of the text. The title is the first level-1 heading, else
    the front matter's ``title:``.
    """
    front_matter = _FRONT_MATTER.match(text)
    if front_matter and not _looks_like_yaml(front_matter.group(1) or ""):
        front_matter = None  # a thematic break, not front matter
    body = text[front_matter.end():] if front_matter else text
    extracted, title = html_to_text(_MARKDOWN.render(body))
    if title is None and front_matter:
        title = _front_matter_title(front_matter.group(1) or "")
    return extracted, title


def _render_fence(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    """A fence as CommonMark renders it, unless it is a MyST directive (```` ```{note} ````,
    ```` ```{tab} Linux ````, ```` ```{versionadded} 6.0 ````): then its argument is a line of text
    and its content Markdown, rendered in turn (code directives stay code; a table of contents
    or an include goes)."""
    token = tokens[idx]
    directive = _MYST_DIRECTIVE.fullmatch(token.info.strip())
    if directive is None or directive.group(1) in _MYST_CODE:
        return str(_DEFAULT_FENCE(tokens, idx, options, env))
    name, argument = directive.groups()
    if name in _MYST_DROPPED:
        return ""
    if name in _MYST_VERSION:
        argument = f"{_MYST_VERSION[name]} {argument}".strip()
    content = token.content
    while (option := _MYST_OPTION.match(content)) is not None and option.group():
        content = content[option.end():]
    head = f"<p>{html.escape(argument)}</p>" if argument else ""
    return f"<div>{head}{_MARKDOWN.render(content)}</div>"


def _render_text(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    """Text as CommonMark renders it, less a MyST role name right before a code span
    (``{file}`~/.npmrc``` reads ``~/.npmrc``)."""
    content = tokens[idx].content
    if idx + 1 < len(tokens) and tokens[idx + 1].type == "code_inline":
        content = _MYST_ROLE.sub("", content)
    return html.escape(content, quote=False)


_DEFAULT_FENCE = _MARKDOWN.renderer.rules["fence"]
_MARKDOWN.add_render_rule("fence", _render_fence)
_MARKDOWN.add_render_rule("text", _render_text)


def _looks_like_yaml(block: str) -> bool:
    """Whether the first non-blank, non-comment line of a ``---`` block is a ``key:`` line."""
    for line in block.split("\n"):
        if line.strip() and not line.lstrip().startswith("#"):
            return _YAML_KEY.match(line) is not None
    return True


def _front_matter_title(yaml_text: str) -> str | None:
    match = _FRONT_MATTER_TITLE.search(yaml_text)
    if not match:
        return None
    value = match.group(1)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return " ".join(value.split()) or None


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
                if pending.startswith("\n") and out[-1].endswith("\n"):
                    pending = pending[1:]  # verbatim text ending in a newline counts as one
                out.append(pending)
            out.append(value)
            pending = trailing
    return "".join(out).rstrip("\n")  # a final <pre> may end with a newline


def _stronger(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


def _separator(name: str) -> str:
    if name in _PARAGRAPH_TAGS:
        return "\n\n"
    if name in _LINE_TAGS:
        return "\n"
    return " " if name in _CELL_TAGS else ""
