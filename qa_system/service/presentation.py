"""What the search page shows, computed from an `AskResult` (pure functions; no HTML here).

Highlighting splits the text at the answer's character offsets into (before, answer, after);
the template escapes each part and wraps the middle one in ``<mark>``, so no text is ever
inserted into the page as markup.

Confidence in words comes from the reader's own decision rule (`ReaderResult`): an answer's
margin is its score minus the no-answer score, and the reader answers when the best margin
exceeds its no-answer threshold. Here, for each answer:

* margin >= threshold + ``SURE_MARGIN`` (2 logits: about 7 to 1 odds more than the threshold):
  "likely right";
* threshold < margin < threshold + 2: "maybe right";
* margin <= threshold: "probably wrong" (the reader would not give it as its answer).

Answers after the first are the reader's other candidates: they are shown as "maybe right" at
best, since the reader itself ranks the first above them.

When the answer carries a fitted probability of being right (``Answer.confidence``, see
``qa_system.confidence``), that decides instead: at least ``LIKELY`` (and the first answer):
"likely right"; at least the system's answer threshold: "maybe right"; below it: "probably
wrong". The words then carry the percentage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from ..types import Answer, AskResult, MetadataValue, Passage

SURE_MARGIN = 2.0
#: A fitted probability from which the best answer reads "likely right".
LIKELY = 0.75
#: Characters of the passage shown on each side of an answer (cut at a space).
CONTEXT_RADIUS = 240
#: Passages listed when there is no answer.
NO_ANSWER_PASSAGES = 5
#: A metadata key with more distinct values than this is not offered as a filter.
MAX_CHOICES = 50
_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


@dataclass(frozen=True)
class Highlight:
    before: str
    match: str
    after: str


@dataclass(frozen=True)
class Confidence:
    words: str
    level: str  # "high" | "medium" | "low" | "unknown": the CSS class


@dataclass(frozen=True)
class PassageView:
    """A passage as shown: its text (``start`` is its offset in the document), the answer
    highlighted in it when there is one; ``clipped_start``/``clipped_end``: text of the passage
    left out before / after (see ``around``)."""

    document_id: str
    title: str
    source: str
    start: int
    text: str
    highlight: Highlight | None = None
    clipped_start: bool = False
    clipped_end: bool = False


@dataclass(frozen=True)
class AnswerView:
    answer: Answer
    passage: PassageView
    confidence: Confidence
    link: str


@dataclass(frozen=True)
class FilterField:
    key: str
    choices: tuple[tuple[str, str], ...]  # (token, label)
    selected: str = ""


def split_at(text: str, start: int, end: int) -> Highlight | None:
    """``text`` cut at ``[start, end)``; None when that is not a non-empty span of ``text``."""
    if not 0 <= start < end <= len(text):
        return None
    return Highlight(text[:start], text[start:end], text[end:])


def around(view: PassageView, radius: int = CONTEXT_RADIUS) -> PassageView:
    """``view`` cut to about ``radius`` characters each side of its answer, at spaces, so the answer
    shows without scrolling; ``start`` moves with the cut, so offsets stay right."""
    h = view.highlight
    if h is None:
        return view
    before, after = h.before, h.after
    if len(before) > radius:
        cut = before.find(" ", len(before) - radius)
        before = before[cut + 1:] if cut >= 0 else before[-radius:]
    if len(after) > radius:
        cut = after.rfind(" ", 0, radius)
        after = after[:cut] if cut > 0 else after[:radius]
    dropped = len(h.before) - len(before)
    return PassageView(view.document_id, view.title, view.source, view.start + dropped, before + h.match + after,
                       Highlight(before, h.match, after), dropped > 0, len(after) < len(h.after))


def probability_words(probability: float, threshold: float, *, first: bool = True) -> Confidence:
    """A fitted probability of being right in words (module docstring)."""
    if not (math.isfinite(probability) and math.isfinite(threshold)):
        return Confidence("confidence unknown", "unknown")
    percent = f"{100 * probability:.0f}%"
    if probability >= max(LIKELY, threshold) and first:
        return Confidence(f"likely right ({percent})", "high")
    if probability >= threshold:
        return Confidence(f"maybe right ({percent})", "medium")
    return Confidence(f"probably wrong ({percent})", "low")


def confidence(score: float, no_answer_score: float, threshold: float | None, *, first: bool = True) -> Confidence:
    """An answer's confidence in words from the reader's margin (the rule is in the module
    docstring); ``first``: the reader's best answer."""
    if threshold is None or not all(math.isfinite(x) for x in (score, no_answer_score, threshold)):
        return Confidence("confidence unknown", "unknown")
    margin = score - no_answer_score
    if margin >= threshold + SURE_MARGIN and first:
        return Confidence("likely right", "high")
    if margin > threshold:
        return Confidence("maybe right", "medium")
    return Confidence("probably wrong", "low")


def document_link(document_id: str, start: int | None = None, end: int | None = None,
                  question: str | None = None) -> str:
    """The page of a document, scrolled to ``[start, end)`` when given."""
    params: dict[str, str | int] = {}
    if start is not None and end is not None:
        params.update(start=start, end=end)
    if question:
        params["q"] = question
    query = f"?{urlencode(params)}" if params else ""
    return f"/documents/{document_id}{query}{'#answer' if 'start' in params else ''}"


def _label(title: str | None, source: str) -> str:
    return title or source


def passage_view(passage: Passage) -> PassageView:
    return PassageView(passage.document_id, _label(passage.title, passage.source), passage.source,
                       passage.start, passage.text)


def answer_views(result: AskResult) -> list[AnswerView]:
    """The answers best first, each inside its passage (the passage it came from; the answer
    alone when that passage is not among the result's)."""
    passages = {p.chunk_id: p for p in result.passages}
    views = []
    for rank, answer in enumerate(result.answers):
        passage = passages.get(answer.chunk_id) if answer.chunk_id is not None else None
        if passage is not None and passage.start <= answer.start and answer.end <= passage.end:
            shown = passage_view(passage)
            highlight = split_at(passage.text, answer.start - passage.start, answer.end - passage.start)
        else:
            shown = PassageView(answer.document_id, _label(answer.title, answer.source), answer.source,
                                answer.start, answer.text)
            highlight = split_at(answer.text, 0, len(answer.text))
        views.append(AnswerView(
            answer=answer,
            passage=around(PassageView(shown.document_id, shown.title, shown.source, shown.start, shown.text,
                                       highlight)),
            confidence=(probability_words(answer.confidence, result.confidence_threshold, first=rank == 0)
                        if answer.confidence is not None and result.confidence_threshold is not None
                        else confidence(answer.score, result.no_answer_score, result.no_answer_threshold,
                                        first=rank == 0)),
            link=document_link(answer.document_id, answer.start, answer.end, result.question),
        ))
    return views


def best_passages(result: AskResult, n: int = NO_ANSWER_PASSAGES) -> list[PassageView]:
    return [passage_view(p) for p in result.passages[:n]]


# ----------------------------------------------------------------------------- filters

def choice_token(value: MetadataValue) -> str:
    """A metadata value as a form value that keeps its type: ``int:2024``, ``str:billing``."""
    kind = "bool" if isinstance(value, bool) else type(value).__name__
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return f"{kind}:{text}"


def choice_value(token: str) -> MetadataValue:
    """The value of a ``choice_token``; ValueError naming the problem for anything else."""
    kind, sep, text = token.partition(":")
    if not sep or kind not in _TYPES:
        raise ValueError(f"{token[:80]!r} is not a filter value of this page")
    if kind == "bool":
        if text not in ("true", "false"):
            raise ValueError(f"{text[:80]!r} is not true or false")
        return text == "true"
    if kind == "float":
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("a filter value must be a finite number")
        return value
    return _TYPES[kind](text)  # type: ignore[no-any-return]


def filter_fields(pairs: Iterable[tuple[str, MetadataValue]], selected: dict[str, str],
                  max_choices: int = MAX_CHOICES) -> list[FilterField]:
    """One select per metadata key with at most ``max_choices`` values, sorted."""
    by_key: dict[str, list[MetadataValue]] = {}
    for key, value in pairs:
        by_key.setdefault(key, []).append(value)
    fields = []
    for key in sorted(by_key):
        values = by_key[key]
        if len(values) > max_choices:
            continue
        ordered = sorted(values, key=lambda v: (type(v).__name__, v))
        fields.append(FilterField(key, tuple((choice_token(v), _shown(v)) for v in ordered), selected.get(key, "")))
    return fields


def _shown(value: MetadataValue) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def parse_filters(params: Sequence[tuple[str, str]],
                  prefix: str = "f.") -> tuple[dict[str, MetadataValue], dict[str, str]]:
    """The filters of the page's query parameters (``f.<key>=<token>``; empty: any value), and
    the tokens as sent (to show them selected). ValueError names a bad one."""
    filters: dict[str, MetadataValue] = {}
    tokens: dict[str, str] = {}
    for name, token in params:
        if not name.startswith(prefix) or not token:
            continue
        key = name[len(prefix):]
        if not key:
            raise ValueError("a filter without a metadata key")
        try:
            filters[key] = choice_value(token)
        except ValueError as e:
            raise ValueError(f"filter {key[:80]!r}: {e}") from None
        tokens[key] = token
    return filters, tokens
