"""Split document text into passages with a hard cap in model tokens.

Pure functions: the only collaborator is a Hugging Face *fast* tokenizer (anything callable as
``tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)`` returning
``input_ids`` and ``offset_mapping``). No model is loaded here.

How a text is split:

0. A long text is cut into sections of at most about ``_SECTION_CHARS`` characters, at a
   paragraph break (else a line break, a sentence end, a space) in the section's second half,
   and each section is chunked on its own; memory stays bounded however long the document, and
   chunks come out as they are made. A chunk boundary (without overlap) falls at each cut.
1. A section is tokenised once (in pieces cut at whitespace) to get each token's character
   offsets.
2. Chunk boundaries are character positions at token starts, ranked: *sentence* (after ``.``,
   ``!`` or ``?`` plus whitespace unless it follows an initial, a common abbreviation or a list
   number; after ``。！？``; at a blank line, list item or Markdown heading) > *line* (any other
   newline) > *word* (a gap before the token) > *token* (a clean token start, e.g. inside a long
   URL or a CJK run).
3. A chunk is extended as far as ``max_tokens`` allows and ends at the furthest sentence (else
   line) boundary that keeps it at least half full, else at the furthest word, else token
   boundary.
4. The next chunk starts about ``overlap_tokens`` before the previous end, at the earliest
   sentence (else line) boundary that keeps at least half of that overlap (whole sentences),
   else at the earliest word/token boundary within it.
5. Every chunk is re-tokenised on its own; if it exceeds ``max_tokens`` (tokenisation can differ
   at a cut inside a word) its end moves back until it fits. The cap is therefore exact.

Chunks are stripped of surrounding whitespace and satisfy ``text[chunk.start:chunk.end] ==
chunk.text``. Consecutive chunks touch or overlap, so every non-whitespace character of the
text belongs to at least one chunk.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from .errors import ConfigError
from .types import Chunk

#: ``(document_id, text) -> chunks`` in order; :func:`make_chunker`'s yields them as it makes them.
Chunker = Callable[[str, str], Iterable[Chunk]]

_SENTENCE_END = re.compile(r"[.!?][\"'\)\]\u2019\u201d»]*\s+|[。！？]+\s*")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_BLOCK_START = re.compile(r"\n[ \t]*(?=(?:[-*+•>]|\d{1,3}[.)]|#{1,6})[ \t])")  # list item, heading
_LINE_BREAK = re.compile(r"\n\s*")
# a period after a lone letter (an initial) or one of these abbreviations ends no sentence
_ABBREVIATION = re.compile(
    r"(?:^|\s)(?:[A-Za-z]|e\.g|i\.e|[Mm]rs?|[Mm]s|[Dd]r|[Pp]rof|[Ss]t|vs|cf|[Ff]ig|[Ee]q)$",
    re.MULTILINE,
)
_LIST_NUMBER = re.compile(r"[ \t]*\d{1,3}")  # "12." at the start of a line
_PIECE_CHARS = 50_000  # long texts are tokenised in pieces of about this many characters
_SECTION_CHARS = 200_000  # ... and chunked in sections of at most this many (about 25 MB of work memory)

_SENTENCE, _LINE, _WORD, _TOKEN = 4, 3, 2, 1  # boundary ranks, best first


@dataclass(frozen=True)
class _Boundaries:
    """Token start offsets and the ranked positions where a chunk may start or end."""

    starts: list[int]  # character start of every token, non-decreasing
    ranked: dict[int, list[int]]  # rank -> sorted positions of at least that rank
    text_len: int

    def tokens_before(self, pos: int) -> int:
        return bisect_left(self.starts, pos)

    def latest(self, rank: int, lo: int, hi: int) -> int | None:
        """The largest position of at least ``rank`` with ``lo < pos <= hi``."""
        positions = self.ranked[rank]
        i = bisect_right(positions, hi) - 1
        return positions[i] if i >= 0 and positions[i] > lo else None

    def earliest(self, rank: int, lo: int, hi: int) -> int | None:
        """The smallest position of at least ``rank`` with ``lo <= pos < hi``."""
        positions = self.ranked[rank]
        i = bisect_left(positions, lo)
        return positions[i] if i < len(positions) and positions[i] < hi else None


def validate_chunk_sizes(max_tokens: int, overlap_tokens: int) -> None:
    """Raise ConfigError unless ``0 <= overlap_tokens < max_tokens``."""
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be positive, got {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ConfigError(
            f"overlap_tokens must be >= 0 and smaller than max_tokens ({max_tokens}), "
            f"got {overlap_tokens}"
        )


def chunk_text(
    document_id: str, text: str, tokenizer: Any, *, max_tokens: int, overlap_tokens: int
) -> list[Chunk]:
    """Split ``text`` into overlapping chunks of at most ``max_tokens`` tokens each."""
    return list(iter_chunks(document_id, text, tokenizer, max_tokens=max_tokens,
                            overlap_tokens=overlap_tokens))


def iter_chunks(
    document_id: str, text: str, tokenizer: Any, *, max_tokens: int, overlap_tokens: int
) -> Iterator[Chunk]:
    """The chunks of :func:`chunk_text`, made one section of the text at a time (bounded memory).

    A section's chunks are kept while a whole chunk's worth of tokens follows them inside the
    section; the next section starts where the first chunk not kept starts, so the chunks are
    those of one pass over the whole text (up to how a word cut at a section start tokenises).
    """
    validate_chunk_sizes(max_tokens, overlap_tokens)
    if not text.strip():
        return
    index, lo, covered = 0, 0, 0  # covered: where the previous chunk ended
    while lo < len(text):
        hi = _section_end(text, lo, _SECTION_CHARS)
        section = text[lo:hi]
        bounds = _boundaries(section, _token_offsets(tokenizer, section))
        next_lo, kept = hi, False
        for start, end, n_tokens in _spans(section, bounds, tokenizer, max_tokens, overlap_tokens,
                                           covered=covered - lo):
            near_cut = hi < len(text) and bounds.tokens_before(start) + max_tokens + 1 >= len(bounds.starts)
            if near_cut and kept:
                next_lo = lo + start  # its end may depend on text after the cut: the next section redoes it
                break
            kept, covered = True, lo + end
            raw = section[start:end]
            piece = raw.strip()
            if piece:
                left = lo + start + len(raw) - len(raw.lstrip())
                yield Chunk(document_id, index, left, left + len(piece), piece, n_tokens)
                index += 1
        lo = next_lo


def make_chunker(tokenizer: Any, max_tokens: int, overlap_tokens: int) -> Chunker:
    """A ``(document_id, text) -> chunks`` function with the sizes fixed (validated now); the
    chunks are yielded as they are made (:func:`iter_chunks`)."""
    validate_chunk_sizes(max_tokens, overlap_tokens)
    return partial(iter_chunks, tokenizer=tokenizer, max_tokens=max_tokens, overlap_tokens=overlap_tokens)


def _section_end(text: str, lo: int, size: int) -> int:
    """Where the section starting at ``lo`` ends: the text's end, or a cut at most ``size`` on,
    after a paragraph break (else a line break, a sentence end, a space) in its second half."""
    if len(text) - lo <= size:
        return len(text)
    limit, half = lo + size, lo + size // 2
    for separator in ("\n\n", "\n", ". ", " "):
        cut = text.rfind(separator, half, limit)
        if cut >= 0:
            return cut + len(separator)
    return limit


def count_tokens(tokenizer: Any, text: str) -> int:
    """Number of model tokens in ``text`` without special tokens."""
    encoded = tokenizer(text, add_special_tokens=False, return_attention_mask=False,
                        return_token_type_ids=False, verbose=False)
    return len(encoded["input_ids"])


def _token_offsets(tokenizer: Any, text: str) -> list[tuple[int, int]]:
    """Character offsets of every token of ``text``; long texts go in whitespace-cut pieces."""
    piece_starts = _piece_starts(text)
    ends = piece_starts[1:] + [len(text)]
    pieces = [text[a:b] for a, b in zip(piece_starts, ends, strict=True)]
    encoded = tokenizer(pieces, add_special_tokens=False, return_offsets_mapping=True,
                        return_attention_mask=False, return_token_type_ids=False, verbose=False)
    offsets: list[tuple[int, int]] = []
    for base, mapping in zip(piece_starts, encoded["offset_mapping"], strict=True):
        offsets.extend((base + a, base + b) for a, b in mapping if b > a)
    return offsets


def _piece_starts(text: str) -> list[int]:
    starts = [0]
    while len(text) - starts[-1] > _PIECE_CHARS:
        limit = starts[-1] + _PIECE_CHARS
        cut = max(text.rfind(" ", starts[-1] + 1, limit), text.rfind("\n", starts[-1] + 1, limit))
        starts.append(cut if cut > starts[-1] else limit)
    return starts


def _boundaries(text: str, offsets: Sequence[tuple[int, int]]) -> _Boundaries:
    starts = sorted(a for a, _ in offsets)  # sorted already for well-behaved tokenizers
    rank: dict[int, int] = {}
    for i in range(1, len(offsets)):
        (prev_start, prev_end), (start, _) = offsets[i - 1], offsets[i]
        if start > prev_end:
            rank[start] = _WORD
        elif start == prev_end and start > prev_start:
            rank[start] = _TOKEN
    for position, kind in _structure_breaks(text):
        i = bisect_left(starts, position)
        if 0 < i < len(starts) and starts[i] in rank:
            rank[starts[i]] = max(rank[starts[i]], kind)
    rank[len(text)] = _SENTENCE
    ordered = sorted(rank)
    ranked = {r: [p for p in ordered if rank[p] >= r] for r in (_SENTENCE, _LINE, _WORD, _TOKEN)}
    return _Boundaries(starts, ranked, len(text))


def _structure_breaks(text: str) -> Iterator[tuple[int, int]]:
    """``(position, rank)``: where a sentence, paragraph, list item or line begins."""
    for match in _LINE_BREAK.finditer(text):
        yield match.end(), _LINE
    for pattern in (_PARAGRAPH_BREAK, _BLOCK_START):
        for match in pattern.finditer(text):
            yield match.end(), _SENTENCE
    for match in _SENTENCE_END.finditer(text):
        end = match.start()
        line_start = text.rfind("\n", 0, end) + 1
        if text[end] in "。！？" or not (
            _ABBREVIATION.search(text, max(line_start, end - 8), end)
            or _LIST_NUMBER.fullmatch(text, line_start, end)
        ):
            yield match.end(), _SENTENCE


def _spans(text: str, bounds: _Boundaries, tokenizer: Any, max_tokens: int, overlap_tokens: int,
           *, covered: int = 0) -> Iterator[tuple[int, int, int]]:
    """``(start, end, n_tokens)`` of each chunk in order, before whitespace stripping; the first
    starts at 0, and ``covered`` (<= 0 at the text's start) is where the chunk before it ended."""
    start = 0
    covered = max(covered, 0)
    while covered < len(text):
        end = _choose_end(bounds, start, covered, max_tokens)
        start, end, n_tokens = _fit(text, bounds, tokenizer, start, covered, end, max_tokens)
        yield start, end, n_tokens
        covered = end
        start = _choose_overlap_start(bounds, start, end, overlap_tokens)


def _choose_end(bounds: _Boundaries, start: int, covered: int, max_tokens: int) -> int:
    """The preferred end of a chunk beginning at ``start`` that goes past ``covered``."""
    first = bounds.tokens_before(start)
    if first + max_tokens >= len(bounds.starts):
        return bounds.text_len
    limit = bounds.starts[first + max_tokens]  # start of the first token that does not fit
    half_full = bounds.starts[first + max(1, max_tokens // 2)]
    half_lo = max(covered, half_full - 1)
    for rank, lo in ((_SENTENCE, half_lo), (_LINE, half_lo), (_WORD, covered), (_TOKEN, covered)):
        end = bounds.latest(rank, lo, limit)
        if end is not None:
            return end
    return max(limit, covered + 1)


def _choose_overlap_start(bounds: _Boundaries, start: int, end: int, overlap_tokens: int) -> int:
    """Where the chunk after [start, end) begins: about ``overlap_tokens`` before ``end``."""
    last = bounds.tokens_before(end)
    if overlap_tokens == 0 or end >= bounds.text_len or last == 0:
        return end
    first = max(0, last - overlap_tokens)
    lo = max(start + 1, bounds.starts[first])
    half = bounds.starts[max(first, last - max(1, overlap_tokens // 2))]
    for rank in (_SENTENCE, _LINE):
        pos = bounds.earliest(rank, lo, half + 1)
        if pos is not None:
            return pos
    for rank in (_WORD, _TOKEN):
        pos = bounds.earliest(rank, lo, end)
        if pos is not None:
            return pos
    return end


def _fit(text: str, bounds: _Boundaries, tokenizer: Any, start: int, covered: int, end: int,
         max_tokens: int) -> tuple[int, int, int]:
    """Move ``end`` back (then drop the overlap) until the chunk re-tokenises within the cap."""
    while True:
        n_tokens = count_tokens(tokenizer, text[start:end].strip())
        excess = n_tokens - max_tokens
        if excess <= 0:
            return start, end, n_tokens
        cut = bounds.tokens_before(end) - excess
        target = bounds.starts[cut] if 0 <= cut < len(bounds.starts) else end - 1
        earlier = bounds.latest(_TOKEN, covered, min(target, end - 1))
        if earlier is not None:
            end = earlier
            continue
        found = _fit_characters(text, tokenizer, start, covered, end, max_tokens)
        if found is not None:
            return start, found, count_tokens(tokenizer, text[start:found].strip())
        if start == covered:
            raise ConfigError(
                f"max_tokens={max_tokens} is too small: the text near character {start} "
                "does not fit in one chunk"
            )
        start = covered  # give up the overlap for this chunk and try again


def _fit_characters(text: str, tokenizer: Any, start: int, covered: int, end: int,
                    max_tokens: int) -> int | None:
    """The largest end in (covered, end) keeping the chunk within the cap, by bisection."""
    lo, hi = covered + 1, end - 1
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        if count_tokens(tokenizer, text[start:mid].strip()) <= max_tokens:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best
