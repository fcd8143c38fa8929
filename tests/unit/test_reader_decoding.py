"""Pure stages of the reader: span decoding, answer assembly, the reader config file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa_system.config import Settings
from qa_system.errors import ConfigError
from qa_system.reader.answers import (
    PassageSpan,
    assemble_answers,
    context_snippet,
    decode_question,
)
from qa_system.reader.decoding import no_answer_score, top_spans
from qa_system.reader.model_config import (
    READER_CONFIG_FILENAME,
    ReaderModelConfig,
    load_reader_config,
    resolve_params,
    save_reader_config,
)
from qa_system.reader.windows import Window
from qa_system.types import Passage

# A window "[CLS] q q [SEP] c0 c1 c2 c3 c4 [SEP]" over the context "alpha beta gamma delta eps".
CONTEXT = "alpha beta gamma delta eps"
OFFSETS = np.array(
    [(0, 0), (0, 3), (4, 6), (0, 0), (0, 5), (6, 10), (11, 16), (17, 22), (23, 26), (0, 0)]
)
MASK = np.array([False, False, False, False, True, True, True, True, True, False])


def logits(**peaks: float) -> np.ndarray:
    """A length-10 logit vector, 0 everywhere except ``t<index>=value``."""
    out = np.zeros(10)
    for key, value in peaks.items():
        out[int(key[1:])] = value
    return out


# -- top_spans -------------------------------------------------------------------------------


def test_best_span_maps_to_context_characters() -> None:
    spans = top_spans(logits(t5=5.0), logits(t6=4.0), OFFSETS, MASK, max_answer_tokens=5, top_k=1)
    assert len(spans) == 1
    best = spans[0]
    assert (best.start_token, best.end_token) == (5, 6)
    assert CONTEXT[best.start_char : best.end_char] == "beta gamma"
    assert best.score == pytest.approx(9.0)


def test_question_and_special_tokens_are_never_answers() -> None:
    start = logits(t0=50.0, t1=40.0, t3=30.0, t6=1.0)
    end = logits(t0=50.0, t2=40.0, t9=30.0, t6=1.0)
    spans = top_spans(start, end, OFFSETS, MASK, max_answer_tokens=30, top_k=100)
    assert spans and all(MASK[s.start_token] and MASK[s.end_token] for s in spans)
    assert (spans[0].start_token, spans[0].end_token) == (6, 6)


def test_end_before_start_is_invalid() -> None:
    spans = top_spans(
        logits(t7=10.0), logits(t5=10.0), OFFSETS, MASK, max_answer_tokens=30, top_k=100
    )
    assert all(s.end_token >= s.start_token for s in spans)
    assert (spans[0].start_token, spans[0].end_token) != (7, 5)


def test_max_answer_tokens_limits_span_length() -> None:
    start, end = logits(t4=10.0), logits(t8=10.0)
    long_ok = top_spans(start, end, OFFSETS, MASK, max_answer_tokens=5, top_k=1)[0]
    assert (long_ok.start_token, long_ok.end_token) == (4, 8)
    short = top_spans(start, end, OFFSETS, MASK, max_answer_tokens=4, top_k=100)
    assert all(s.end_token - s.start_token + 1 <= 4 for s in short)
    assert all((s.start_token, s.end_token) != (4, 8) for s in short)


def test_results_are_sorted_and_capped_at_top_k() -> None:
    rng = np.random.default_rng(0)
    spans = top_spans(
        rng.normal(size=10), rng.normal(size=10), OFFSETS, MASK, max_answer_tokens=3, top_k=5
    )
    assert len(spans) == 5
    scores = [s.score for s in spans]
    assert scores == sorted(scores, reverse=True)


def test_top_k_larger_than_valid_spans_returns_all_valid() -> None:
    # 5 context tokens, up to 2 tokens long: 5 + 4 = 9 valid spans
    spans = top_spans(np.zeros(10), np.zeros(10), OFFSETS, MASK, max_answer_tokens=2, top_k=100)
    assert len(spans) == 9
    # ties keep the earliest spans first
    assert [(s.start_token, s.end_token) for s in spans[:3]] == [(4, 4), (4, 5), (5, 5)]


def brute_force(start, end, offsets, mask, max_len):  # type: ignore[no-untyped-def]
    best = []
    for i in range(len(start)):
        for j in range(i, min(len(start), i + max_len)):
            if mask[i] and mask[j] and offsets[j][1] > offsets[i][0]:
                best.append((start[i] + end[j], i, j))
    return sorted(best, key=lambda t: (-t[0], t[1], t[2]))


@pytest.mark.parametrize("seed", range(8))
def test_matches_brute_force_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    mask = rng.random(n) < 0.7
    starts = np.sort(rng.integers(0, 200, size=n))
    offsets = np.stack([starts, starts + rng.integers(1, 5, size=n)], axis=1)
    start, end = rng.normal(size=n), rng.normal(size=n)
    max_len = int(rng.integers(1, 8))
    expected = brute_force(start, end, offsets, mask, max_len)[:7]
    got = top_spans(start, end, offsets, mask, max_answer_tokens=max_len, top_k=7)
    assert [(s.start_token, s.end_token) for s in got] == [(i, j) for _, i, j in expected]
    assert [s.score for s in got] == pytest.approx([score for score, _, _ in expected])


def greedy_disjoint(ranked, k):  # type: ignore[no-untyped-def]
    chosen: list[tuple[int, int]] = []
    for _, i, j in ranked:
        if len(chosen) < k and all(j < a or i > b for a, b in chosen):
            chosen.append((i, j))
    return chosen


@pytest.mark.parametrize("seed", range(8))
def test_disjoint_mode_matches_greedy_enumeration(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(5, 60))
    mask = rng.random(n) < 0.8
    starts = np.arange(n) * 3
    offsets = np.stack([starts, starts + 2], axis=1)
    start, end = rng.normal(size=n), rng.normal(size=n)
    max_len = int(rng.integers(1, 8))
    got = top_spans(
        start, end, offsets, mask, max_answer_tokens=max_len, top_k=6, overlapping=False
    )
    expected = greedy_disjoint(brute_force(start, end, offsets, mask, max_len), 6)
    assert [(s.start_token, s.end_token) for s in got] == expected


def test_disjoint_mode_lets_other_answers_through() -> None:
    start, end = logits(t5=9.0, t8=1.0), logits(t5=9.0, t8=1.0)
    plain = top_spans(start, end, OFFSETS, MASK, max_answer_tokens=5, top_k=2)
    assert all(s.start_token <= 5 <= s.end_token for s in plain)  # variants of the same span
    disjoint = top_spans(start, end, OFFSETS, MASK, max_answer_tokens=5, top_k=2, overlapping=False)
    assert [(s.start_token, s.end_token) for s in disjoint] == [(5, 5), (8, 8)]


def test_zero_width_tokens_and_empty_context() -> None:
    offsets = OFFSETS.copy()
    offsets[5] = (5, 5)  # a token that covers no character, e.g. a bare sentencepiece marker
    spans = top_spans(logits(t5=9.0), logits(t5=9.0), offsets, MASK, max_answer_tokens=1, top_k=100)
    assert all(s.start_token != 5 for s in spans)
    none = top_spans(
        np.zeros(10), np.zeros(10), OFFSETS, np.zeros(10, bool), max_answer_tokens=3, top_k=3
    )
    assert none == []


def test_bad_shapes_and_parameters() -> None:
    with pytest.raises(ValueError):
        top_spans(np.zeros(9), np.zeros(10), OFFSETS, MASK, max_answer_tokens=3, top_k=3)
    with pytest.raises(ValueError):
        top_spans(np.zeros(10), np.zeros(10), OFFSETS, MASK, max_answer_tokens=0, top_k=3)


def test_no_answer_score_reads_cls() -> None:
    assert no_answer_score(logits(t0=1.5), logits(t0=2.0)) == pytest.approx(3.5)
    assert no_answer_score(logits(t9=1.0), logits(t9=1.0), cls_index=9) == pytest.approx(2.0)


# -- answers ----------------------------------------------------------------------------------

DOC = "Intro text here. The tower was built in Paris in 1889 by Gustave Eiffel. More words follow."


def passage(
    start: int, end: int, *, doc: str = "d1", chunk: int = 0, score: float = 0.5
) -> Passage:
    return Passage(chunk, doc, f"{doc}.txt", "Title", DOC[start:end], start, end, score)


def test_answer_offsets_point_into_the_document() -> None:
    p = passage(17, 72)  # starts mid-document
    s = p.text.index("Paris")
    answers = assemble_answers([p], [PassageSpan(0, s, s + 5, 3.0)], top_n=3)
    (a,) = answers
    assert a.text == "Paris" == DOC[a.start : a.end]
    assert (a.document_id, a.source, a.title, a.chunk_id, a.passage_score) == (
        "d1",
        "d1.txt",
        "Title",
        0,
        0.5,
    )
    assert "Paris" in a.context


def test_overlapping_chunks_yield_one_answer() -> None:
    first, second = passage(0, 60, chunk=0), passage(17, 90, chunk=1)
    spans = [
        PassageSpan(0, first.text.index("Paris"), first.text.index("Paris") + 5, 2.0),
        PassageSpan(1, second.text.index("Paris"), second.text.index("Paris") + 5, 3.0),
        # a longer variant overlapping the same place
        PassageSpan(1, second.text.index("in Paris"), second.text.index("Paris") + 5, 1.0),
        PassageSpan(0, first.text.index("1889"), first.text.index("1889") + 4, 0.5),
    ]
    answers = assemble_answers([first, second], spans, top_n=5)
    assert [(a.text, a.chunk_id, a.score) for a in answers] == [("Paris", 1, 3.0), ("1889", 0, 0.5)]


def test_same_text_in_other_documents_is_kept_but_not_twice_in_one() -> None:
    text = "Paris is big. paris, again."
    p1 = Passage(0, "d1", "a", None, text, 0, len(text), 1.0)
    p2 = Passage(5, "d2", "b", None, text, 0, len(text), 1.0)
    spans = [
        PassageSpan(0, 0, 5, 3.0),
        PassageSpan(0, 14, 20, 2.0),  # "paris," normalises like "Paris"
        PassageSpan(1, 0, 5, 1.0),
    ]
    answers = assemble_answers([p1, p2], spans, top_n=5)
    assert [(a.document_id, a.text) for a in answers] == [("d1", "Paris"), ("d2", "Paris")]


def test_top_n_and_ranking() -> None:
    p = passage(0, len(DOC))
    spans = [PassageSpan(0, i * 5, i * 5 + 4, float(i)) for i in range(6)]
    answers = assemble_answers([p], spans, top_n=2)
    assert [a.score for a in answers] == [5.0, 4.0]


def test_context_snippet_cuts_on_word_boundaries() -> None:
    text = " ".join(f"w{i:03d}" for i in range(100))  # 5 characters per word and space
    start = text.index("w050")
    snippet = context_snippet(text, start, start + 4, radius=12)
    assert snippet == "w048 w049 w050 w051 w052"
    assert context_snippet("short answer", 6, 12) == "short answer"
    assert context_snippet("x" * 300, 100, 110, radius=20) == "x" * 10


def window(p: int, cls_start: float, best_token: int, best_start: float) -> tuple[Window, tuple]:
    """A window of passage ``p`` whose best span is the single token ``best_token``."""
    w = Window(0, p, np.arange(10), None, OFFSETS, MASK, 0)
    start, end = np.zeros(10), np.zeros(10)
    start[0] = cls_start
    start[best_token] = best_start
    end[best_token] = 1.0
    return w, (start, end)


def test_decode_question_no_answer_is_min_over_windows() -> None:
    p = Passage(0, "d1", "a", None, CONTEXT, 0, len(CONTEXT), 1.0)
    q = Passage(1, "d2", "b", None, CONTEXT, 0, len(CONTEXT), 1.0)
    w1, l1 = window(0, 4.0, 6, 5.0)
    w2, l2 = window(1, 1.0, 5, 7.0)
    result = decode_question(
        [p, q], [w1, w2], [l1, l2], top_n=2, max_answer_tokens=3, no_answer_threshold=0.5
    )
    assert result.no_answer_score == pytest.approx(1.0)
    assert result.no_answer_threshold == 0.5
    assert [(a.document_id, a.text) for a in result.answers] == [("d2", "beta"), ("d1", "gamma")]
    assert result.has_answer


def test_retrieval_weight_reranks_answers_across_passages_but_not_their_scores() -> None:
    far = Passage(0, "d1", "a", None, CONTEXT, 0, len(CONTEXT), 0.2)  # retrieval score 0.2
    near = Passage(1, "d2", "b", None, CONTEXT, 0, len(CONTEXT), 0.8)
    w1, l1 = window(0, 0.0, 6, 5.0)  # reader score 6 in the far passage
    w2, l2 = window(1, 0.0, 5, 4.0)  # 5 in the near one

    def read(weight: float, threshold: float = 0.0):
        return decode_question([far, near], [w1, w2], [l1, l2], top_n=2, max_answer_tokens=3,
                               no_answer_threshold=threshold, retrieval_weight=weight)

    assert [a.document_id for a in read(0.0).answers] == ["d1", "d2"]
    # 5 + 10 x 0.8 = 13 beats 6 + 10 x 0.2 = 8; 1.0 is the tipping point (5.8 against 6.2)
    assert [a.document_id for a in read(10.0).answers] == ["d2", "d1"]
    assert [a.document_id for a in read(2.0).answers] == ["d2", "d1"]
    assert [a.document_id for a in read(1.0).answers] == ["d1", "d2"]
    reranked = read(10.0)
    assert [a.score for a in reranked.answers] == [pytest.approx(5.0), pytest.approx(6.0)]
    # the no-answer decision looks at the top answer's reader score, not its rank score
    assert read(10.0, threshold=5.5).has_answer is False
    assert read(0.0, threshold=5.5).has_answer is True


def test_retrieval_weight_must_be_finite_and_not_negative() -> None:
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="retrieval_weight"):
            Settings().with_overrides(retrieval_weight=bad)
        with pytest.raises(ConfigError, match="retrieval_weight"):
            resolve_params(Settings(), ReaderModelConfig(), retrieval_weight=bad)
    assert resolve_params(Settings(), ReaderModelConfig()).retrieval_weight == Settings().retrieval_weight
    assert resolve_params(Settings(retrieval_weight=3.0), ReaderModelConfig()).retrieval_weight == 3.0
    assert resolve_params(Settings(), ReaderModelConfig(), retrieval_weight=0.0).retrieval_weight == 0.0


def test_long_passage_threshold_applies_when_the_best_answer_came_from_a_passage_of_several_windows() -> None:
    long_doc = Passage(0, "d1", "a", None, CONTEXT, 0, len(CONTEXT), 1.0)
    short_doc = Passage(1, "d2", "b", None, CONTEXT, 0, len(CONTEXT), 1.0)
    w1, l1 = window(0, 0.0, 6, 5.0)  # passage 0, read in two windows: reader score 6 in the first
    w2, l2 = window(0, 0.0, 5, 1.0)
    w3, l3 = window(1, 0.0, 5, 4.0)  # passage 1, one window: reader score 5

    def read(windows, logits, long_threshold):
        return decode_question([long_doc, short_doc], windows, logits, top_n=2, max_answer_tokens=3,
                               no_answer_threshold=3.0, long_passage_threshold=long_threshold)

    best_long = read([w1, w2, w3], [l1, l2, l3], 7.0)
    assert best_long.answers[0].document_id == "d1" and best_long.long_passage
    assert best_long.no_answer_threshold == 7.0 and not best_long.has_answer  # margin 6 <= 7
    assert read([w1, w2, w3], [l1, l2, l3], None).no_answer_threshold == 3.0  # no second threshold: one serves
    assert read([w1, w2, w3], [l1, l2, l3], None).has_answer
    # the same logits, but passage 0 read in one window: the ordinary threshold decides
    one_window = read([w1, w3], [l1, l3], 7.0)
    assert not one_window.long_passage and one_window.no_answer_threshold == 3.0 and one_window.has_answer
    # the best answer from the one-window passage: the ordinary threshold, whatever the other passage
    w1_weak, l1_weak = window(0, 0.0, 6, 2.0)
    short_best = read([w1_weak, w2, w3], [l1_weak, l2, l3], 7.0)
    assert short_best.answers[0].document_id == "d2" and not short_best.long_passage
    assert short_best.no_answer_threshold == 3.0


def test_decode_question_without_windows() -> None:
    result = decode_question([], [], [], top_n=3, max_answer_tokens=3, no_answer_threshold=0.0)
    assert result.answers == () and result.no_answer_score == 0.0 and not result.has_answer


# -- qa_system_reader.json and settings resolution ---------------------------------------------


def test_reader_config_round_trip(tmp_path: Path) -> None:
    assert load_reader_config(tmp_path) == ReaderModelConfig()
    config = ReaderModelConfig(no_answer_threshold=-1.25, max_seq_length=256, doc_stride=64)
    path = save_reader_config(tmp_path, config)
    assert path.name == READER_CONFIG_FILENAME
    assert json.loads(path.read_text()) == {
        "no_answer_threshold": -1.25,
        "max_seq_length": 256,
        "doc_stride": 64,
    }
    assert load_reader_config(tmp_path) == config
    two = ReaderModelConfig(no_answer_threshold=2.5, long_passage_no_answer_threshold=7.0)
    save_reader_config(tmp_path, two)
    assert json.loads(path.read_text())["long_passage_no_answer_threshold"] == 7.0
    assert load_reader_config(tmp_path) == two
    assert load_reader_config("some-org/hub-model") == ReaderModelConfig()


def test_reader_config_errors(tmp_path: Path) -> None:
    path = tmp_path / READER_CONFIG_FILENAME
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_reader_config(tmp_path)
    path.write_text(json.dumps({"no_answer_threshold": "high"}))
    with pytest.raises(ConfigError, match="must be a number"):
        load_reader_config(tmp_path)
    path.write_text(json.dumps({"max_seq_length": 0, "future_key": 1}))
    with pytest.raises(ConfigError, match="max_seq_length"):
        load_reader_config(tmp_path)
    path.write_text(json.dumps({"no_answer_threshold": 1, "future_key": 1}))
    assert load_reader_config(tmp_path).no_answer_threshold == 1.0
    assert load_reader_config(tmp_path).long_passage_no_answer_threshold is None
    path.write_text(json.dumps({"no_answer_threshold": 1, "long_passage_no_answer_threshold": "big"}))
    with pytest.raises(ConfigError, match="long_passage_no_answer_threshold.*must be a number"):
        load_reader_config(tmp_path)
    with pytest.raises(ConfigError, match="long_passage_no_answer_threshold must be finite"):
        ReaderModelConfig(long_passage_no_answer_threshold=float("nan"))
    with pytest.raises(ConfigError):
        save_reader_config(tmp_path / "missing", ReaderModelConfig())


def test_resolve_params_precedence() -> None:
    fitted = ReaderModelConfig(
        no_answer_threshold=2.0, max_seq_length=256, doc_stride=64, max_answer_tokens=20
    )
    defaults = resolve_params(Settings(), ReaderModelConfig())
    assert (defaults.max_seq_length, defaults.doc_stride, defaults.max_answer_tokens) == (
        384,
        128,
        30,
    )
    assert defaults.no_answer_threshold == 0.0 and defaults.top_n == 3 and defaults.batch_size == 16
    from_file = resolve_params(Settings(), fitted)
    assert (from_file.max_seq_length, from_file.doc_stride, from_file.max_answer_tokens) == (
        256,
        64,
        20,
    )
    assert from_file.no_answer_threshold == 2.0
    user = resolve_params(Settings(max_answer_tokens=50), fitted)
    assert user.max_answer_tokens == 50  # a changed setting beats the file
    explicit = resolve_params(
        Settings(), fitted, max_seq_length=128, no_answer_threshold=0.0, top_n=1
    )
    assert (
        explicit.max_seq_length == 128
        and explicit.no_answer_threshold == 0.0
        and explicit.top_n == 1
    )
    # the folder's second threshold holds only while no threshold is given: a given one serves every passage
    two = ReaderModelConfig(no_answer_threshold=2.0, long_passage_no_answer_threshold=7.0)
    assert resolve_params(Settings(), two).long_passage_no_answer_threshold == 7.0
    one = ReaderModelConfig(no_answer_threshold=2.0)
    assert resolve_params(Settings(), one).long_passage_no_answer_threshold is None
    for given in (resolve_params(Settings(), two, no_answer_threshold=1.0),
                  resolve_params(Settings(no_answer_threshold=1.0), two)):
        assert (given.no_answer_threshold, given.long_passage_no_answer_threshold) == (1.0, None)


def test_resolve_params_caps_and_validates() -> None:
    assert (
        resolve_params(Settings(), ReaderModelConfig(), model_max_length=256).max_seq_length == 256
    )
    with pytest.raises(ConfigError, match="doc_stride"):
        resolve_params(Settings(), ReaderModelConfig(), max_seq_length=64, doc_stride=64)
    with pytest.raises(ConfigError, match="max_seq_length"):
        resolve_params(Settings(), ReaderModelConfig(), max_seq_length=16, doc_stride=4)
    with pytest.raises(ConfigError, match="top_n"):
        resolve_params(Settings(), ReaderModelConfig(), top_n=0)
