"""Text and title of a reStructuredText document with docutils, Sphinx markup included.

Real documentation is written for Sphinx, whose roles (``:func:`x```, ``:ref:`text <label>```)
and directives (``.. code-block::``, ``.. versionadded::``, ``.. toctree::``, ``.. autoclass::``)
plain docutils does not know. Their text is kept without Sphinx:

* a role docutils does not know becomes its plain text: ``text <target>`` gives ``text``,
  ``~a.b.c`` gives ``c``;
* ``code-block``/``sourcecode``/``code`` (any options) keep their content as a literal block;
  ``versionadded``/``versionchanged``/``deprecated``/``versionremoved`` become "Added in
  version X." (etc.) followed by their content; tables of contents, autodoc (``auto*``), index
  entries, includes and other directives that pull text from elsewhere give nothing; any other
  directive docutils does not know keeps its argument (a signature such as ``foo(bar)``) as a
  paragraph and its content parsed as reStructuredText;
* markup docutils cannot resolve (an undefined substitution or link target) stays as its text.

Directives are registered with docutils process-wide when a document first uses their name, as
Sphinx does; docutils' own directives keep working, except ``code``/``code-block``/
``sourcecode`` (replaced to accept Sphinx's options) and ``contents`` (a table of contents would
repeat every heading). Parsing never reads other files, never writes to stderr and never halts:
problems docutils reports are dropped, the text it could parse is kept.
"""

from __future__ import annotations

import re
import threading
from typing import Any, ClassVar

from docutils import nodes, utils
from docutils.core import publish_doctree, publish_from_doctree
from docutils.parsers.rst import Directive, Parser, directives, roles
from docutils.parsers.rst.languages import en
from docutils.parsers.rst.states import Inliner
from docutils.writers.html5_polyglot import Writer as Html5Writer

from ..errors import DocumentParseError
from .markup import html_to_text

_SIMPLENAME = Inliner.simplename
_DIRECTIVE_NAME = re.compile(
    rf"^[ \t]*\.\.[ \t]+(?:\|[^|\n]+\|[ \t]+)?({_SIMPLENAME})[ \t]*::", re.MULTILINE
)
_ROLE_TARGET = re.compile(r"^(.*?)\s*<([^<>]*)>$", re.DOTALL)

_SETTINGS: dict[str, Any] = {
    "_disable_config": True,  # no docutils.conf from the working folder or home
    "report_level": 5,  # report nothing ...
    "halt_level": 5,  # ... and never stop
    "warning_stream": False,
    "traceback": True,  # raise instead of printing and exiting
    "file_insertion_enabled": False,  # `include`, `raw :file:`, `csv-table :file:` read nothing
    "raw_enabled": False,
    "syntax_highlight": "none",
    "smart_quotes": False,
    "pep_references": False,
    "rfc_references": False,
    "embed_stylesheet": False,
    "stylesheet_path": "",
    "output_encoding": "unicode",
}

_DROPPED = frozenset({
    "toctree", "index", "highlight", "literalinclude", "tabularcolumns", "sectionauthor",
    "moduleauthor", "codeauthor", "currentmodule", "default-domain", "contents", "graphviz",
    "digraph", "graph", "inheritance-diagram", "plot", "cmake-module",
})
_LITERAL = frozenset({"code", "code-block", "sourcecode", "testcode", "testoutput", "doctest",
                      "testsetup", "testcleanup", "productionlist"})
_CONTENT_ONLY = frozenset({"only", "ifconfig", "tab", "tabs", "group-tab", "tab-set", "rst-class",
                           "cssclass", "hlist"})
_VERSION_LABELS = {
    "versionadded": "Added in version",
    "versionchanged": "Changed in version",
    "versionremoved": "Removed in version",
    "deprecated": "Deprecated since version",
}
_REPLACED = frozenset({"code", "code-block", "sourcecode", "contents"})
_registered: set[str] = set()
_register_lock = threading.Lock()


class _AnyOptions(dict):  # type: ignore[type-arg]
    """An option spec that accepts every option (Sphinx's options are not docutils')."""

    def __getitem__(self, key: str) -> Any:
        return directives.unchanged


class _SphinxDirective(Directive):
    """Keeps the text of a directive docutils does not know (behaviour chosen by its name)."""

    required_arguments = 0
    optional_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec: ClassVar[dict[str, Any]] = _AnyOptions(name=directives.unchanged)

    def run(self) -> list[nodes.Node]:
        kind = _base_name(self.name)
        if kind in _DROPPED or kind.startswith("auto"):
            return []
        if kind in _LITERAL:
            code = "\n".join(self.content)
            return [nodes.literal_block(code, code)] if code.strip() else []
        out: list[nodes.Node] = []
        argument = " ".join(self.arguments[0].split()) if self.arguments else ""
        if kind in _VERSION_LABELS:
            version, _, rest = argument.partition(" ")
            line = nodes.paragraph("", f"{_VERSION_LABELS[kind]} {version}.")
            if rest:
                inline, _messages = self.state.inline_text(rest, self.lineno)
                line += [nodes.Text(" "), *inline]
            out.append(line)
        elif argument and kind not in _CONTENT_ONLY:
            out.append(nodes.paragraph(text=argument))
        if self.content:
            body = nodes.container()
            self.state.nested_parse(self.content, self.content_offset, body)
            out.append(body)
        return out


def _sphinx_inliner() -> Inliner:
    """An inliner that keeps the text of roles docutils does not know.

    (Not a subclass: ``Inliner.init_customizations`` builds its patterns from the class's own
    attributes, which a subclass does not repeat.)
    """
    inliner = Inliner()
    known = inliner.interpreted

    def interpreted(rawsource: str, text: str, role: str, lineno: int) -> Any:
        if role and roles.role(role, inliner.language, lineno, inliner.reporter)[0] is None:
            return [nodes.Text(_role_text(utils.unescape(text)))], []
        return known(rawsource, text, role, lineno)

    inliner.interpreted = interpreted  # type: ignore[method-assign]
    return inliner


def rst_to_text(text: str, source: str) -> tuple[str, str | None]:
    """Plain text of a reStructuredText document and its title (the document title, else the
    first section title). DocumentParseError if docutils fails on it."""
    _register_directives(text)
    try:
        doctree = publish_doctree(text, parser=Parser(inliner=_sphinx_inliner()),
                                  settings_overrides=_SETTINGS)
        _unresolved_as_text(doctree)
        html = publish_from_doctree(doctree, writer=Html5Writer(), settings_overrides=_SETTINGS)
    except Exception as e:  # docutils raises many types on input it cannot handle
        raise DocumentParseError(source, f"not readable reStructuredText ({type(e).__name__}: {e})") from e
    extracted, _ = html_to_text(html)
    return extracted, _title(doctree)


def _base_name(name: str) -> str:
    """``py:function`` -> ``function``."""
    return name.lower().rsplit(":", 1)[-1]


def _register_directives(text: str) -> None:
    names = {m.group(1).lower() for m in _DIRECTIVE_NAME.finditer(text)} - _registered
    new = {n for n in names if n in _REPLACED or n not in en.directives}
    if not new:
        return
    with _register_lock:
        for name in sorted(new):
            directives.register_directive(name, _SphinxDirective)
            _registered.add(name)


def _role_text(text: str) -> str:
    """``text <target>`` -> ``text``; ``~a.b.c`` -> ``c``; a leading ``!`` dropped."""
    match = _ROLE_TARGET.match(text)
    if match and match.group(1).strip():
        return match.group(1).strip()
    target = (match.group(2) if match else text).strip()
    if target.startswith("!"):
        target = target[1:]
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return target


def _unresolved_as_text(doctree: nodes.document) -> None:
    """Markup docutils could not resolve (kept as ``problematic`` nodes) becomes plain text."""
    for node in list(doctree.findall(nodes.problematic)):
        raw = node.astext()
        inner = re.sub(r"^[`|]+|[`|]*_{0,2}$", "", raw) or raw
        parent = node.parent
        parent[parent.index(node)] = nodes.Text(inner)  # replace_self() refuses: Text has no ids


def _title(doctree: nodes.document) -> str | None:
    title = doctree.next_node(lambda n: isinstance(n, nodes.title)
                              and isinstance(n.parent, (nodes.document, nodes.section)))
    if title is None:
        return None
    return " ".join(title.astext().split()) or None
