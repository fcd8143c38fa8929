"""End to end on the real SQLite store, real FAISS, the real MiniLM embedder and a real QA model."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from qa_system import QASystem, QuestionError, load_settings
from qa_system.cli import main as cli_main
from qa_system.errors import InputError
from qa_system.ingest import source_path
from tests.support import SAMPLE_CORPUS, packaged_reader_present, sample_questions

pytestmark = pytest.mark.slow


def open_system(store: Path, embedder: Any, reader: Any, **overrides: Any) -> QASystem:
    settings = load_settings(store_dir=store, **overrides)
    return QASystem(settings, embedder=embedder, reader=reader).load()


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory: pytest.TempPathFactory, real_embedder: Any, real_reader: Any) -> Any:
    store = tmp_path_factory.mktemp("store")
    qa = open_system(store, real_embedder, real_reader)
    report = qa.ingest([SAMPLE_CORPUS])
    yield qa, report, store
    qa.close()


def all_passages(qa: QASystem) -> list[Any]:
    n = qa.stats().chunks
    return qa.retrieve("notes", top_k=n)


def test_every_file_type_is_ingested(corpus_store: Any) -> None:
    qa, report, _ = corpus_store
    assert report.failed == ()
    assert report.added == 37 and report.files == 27
    suffixes = {Path(p.source.split("#")[0]).suffix for p in all_passages(qa)}
    assert suffixes == {".md", ".html", ".pdf", ".jsonl", ".csv"}
    assert qa.check().ok


def test_chunk_offsets_round_trip_and_respect_the_token_cap(corpus_store: Any, real_embedder: Any) -> None:
    qa, _, _ = corpus_store
    passages = all_passages(qa)
    assert len(passages) == qa.stats().chunks
    docs = qa.store.get_documents(sorted({p.document_id for p in passages}))
    tokenizer = real_embedder.tokenizer
    for p in passages:
        assert docs[p.document_id].text[p.start : p.end] == p.text
        assert len(tokenizer(p.text, add_special_tokens=False)["input_ids"]) <= real_embedder.max_tokens


def test_reingest_is_a_no_op(corpus_store: Any) -> None:
    qa, _, _ = corpus_store
    before = qa.stats()
    again = qa.ingest([SAMPLE_CORPUS])
    assert (again.added, again.updated, again.unchanged) == (0, 0, 37)
    after = qa.stats()
    assert (after.documents, after.chunks, after.generation) == (before.documents, before.chunks, before.generation)


def test_answers_point_at_their_text_in_the_source_document(corpus_store: Any) -> None:
    qa, _, _ = corpus_store
    for item in sample_questions()[:8]:
        result = qa.ask(item["question"], top_k_reader=3)
        assert result.answers
        for answer in result.answers:
            doc = qa.get_document(answer.document_id)
            assert doc.text[answer.start : answer.end] == answer.text
            assert answer.text in answer.context


@pytest.mark.skipif(not packaged_reader_present(), reason="needs the trained default reader")
def test_the_default_reader_finds_the_sample_answers(corpus_store: Any) -> None:
    qa, _, _ = corpus_store
    questions = sample_questions()
    hits = 0
    for item in questions:
        answers = qa.ask(item["question"], top_k_reader=3).answers
        hits += any(item["answer"].lower() in a.text.lower() or a.text.lower() in item["answer"].lower()
                    for a in answers if a.text.strip())
    assert hits / len(questions) >= 0.6, f"{hits}/{len(questions)} sample questions answered"


def test_two_threads_asking_at_once_get_the_sequential_answers(corpus_store: Any) -> None:
    qa, _, _ = corpus_store
    questions = [q["question"] for q in sample_questions()[:6]]
    expected = {q: [(a.text, a.document_id, a.start) for a in qa.ask(q).answers] for q in questions}
    got: dict[tuple[int, str], list[tuple[str, str, int]]] = {}
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for q in (questions if worker == 0 else list(reversed(questions))):
                got[(worker, q)] = [(a.text, a.document_id, a.start) for a in qa.ask(q).answers]
        except BaseException as e:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (_, q), answers in got.items():
        assert answers == expected[q]


def test_filters_return_a_full_k_of_matching_passages(corpus_store: Any) -> None:
    qa, _, _ = corpus_store
    path = source_path(SAMPLE_CORPUS / "release-notes" / "release_notes.jsonl")
    passages = qa.retrieve("what changed in sync?", top_k=5, filters={"source_path": path})
    assert len(passages) == 5
    assert all(p.source.startswith(path + "#") for p in passages)
    none = qa.retrieve("sync", top_k=5, filters={"source_path": "/no/such/file"})
    assert none == []


def test_hybrid_retrieval_finds_an_error_code_the_embedder_misses(corpus_store: Any) -> None:
    qa, _, _ = corpus_store
    for question in ("SYNC-413", "What is SYNC-413?"):
        hybrid = qa.retrieve(question, top_k=5)  # the default lexical weight
        assert "SYNC-413" in hybrid[0].text and hybrid[0].source.endswith("#rn-5.0.3")
        dense = qa.retrieve(question, top_k=5, lexical_weight=0)
        assert "SYNC-413" not in dense[0].text  # MiniLM alone ranks other sync passages first
        assert [p.score for p in hybrid] == sorted((p.score for p in hybrid), reverse=True)
    with pytest.raises(InputError, match="lexical_weight"):
        qa.retrieve("SYNC-413", lexical_weight=1.5)


def test_a_reranking_retriever_plugs_in_without_changing_the_store(
    corpus_store: Any, real_embedder: Any, real_reader: Any,
) -> None:
    from qa_system.retrieval import Retriever, StoreRetriever

    _, _, store = corpus_store

    class ShortestFirst:
        """Re-ranks what the store retriever finds: shortest passage first (to be visible)."""

        def __init__(self, inner: StoreRetriever) -> None:
            self.inner = inner

        def retrieve(self, query_vectors: Any, k: int, **kwargs: Any) -> list[list[Any]]:
            found = self.inner.retrieve(query_vectors, 3 * k, **kwargs)
            return [sorted(row, key=lambda p: (len(p.text), p.chunk_id))[:k] for row in found]

    settings = load_settings(store_dir=store)
    qa = QASystem(settings, embedder=real_embedder, reader=real_reader,
                  retriever=lambda st, w: ShortestFirst(StoreRetriever(st, lexical_weight=w))).load()
    try:
        assert isinstance(qa.retriever(), Retriever) and isinstance(qa.retriever(), ShortestFirst)
        plain = StoreRetriever(qa.store, lexical_weight=settings.lexical_weight)
        vectors = real_embedder.encode(["how do I sync my notes?"])
        pool = plain.retrieve(vectors, 15, query_texts=["how do I sync my notes?"])[0]
        reranked = qa.retrieve("how do I sync my notes?", top_k=5)
        assert [p.chunk_id for p in reranked] == [
            p.chunk_id for p in sorted(pool, key=lambda p: (len(p.text), p.chunk_id))[:5]]
    finally:
        qa.close()


def test_empty_and_overlong_questions_are_refused(corpus_store: Any) -> None:
    qa, _, _ = corpus_store
    with pytest.raises(QuestionError, match="empty"):
        qa.ask("   ")
    with pytest.raises(QuestionError, match="limit"):
        qa.ask("why " * 1000)


def test_changed_file_replaces_chunks_and_delete_removes_from_both_stores(
    tmp_path: Path, real_embedder: Any, real_reader: Any
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE_CORPUS / "billing", corpus)
    qa = open_system(tmp_path / "store", real_embedder, real_reader)
    first = qa.ingest([corpus])
    target = corpus / "plans-and-pricing.md"
    target.write_text(target.read_text() + "\n\nThe Zephyr plan costs 99 credits per fortnight.\n")
    second = qa.ingest([corpus])
    assert (second.added, second.updated, second.unchanged) == (0, 1, first.added - 1)
    top = qa.retrieve("How much does the Zephyr plan cost?", top_k=1)[0]
    assert "Zephyr" in top.text
    docs = {p.document_id for p in qa.retrieve("plan", top_k=qa.stats().chunks)}
    assert len(docs) == first.added  # the old version of the file is gone
    assert qa.check().ok

    before = qa.stats()
    n_doc_chunks = qa.get_document(top.document_id).chunk_count
    assert qa.delete(sources=[source_path(target)]) == 1
    after = qa.stats()
    assert (after.documents, after.chunks, after.vectors) == (
        before.documents - 1, before.chunks - n_doc_chunks, before.vectors - n_doc_chunks)
    assert all(p.document_id != top.document_id for p in qa.retrieve("Zephyr plan", top_k=10))
    assert qa.check().ok
    qa.close()


def test_a_failure_mid_ingest_leaves_the_store_consistent(
    tmp_path: Path, real_embedder: Any, real_reader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    qa = open_system(tmp_path / "store", real_embedder, real_reader)
    qa.ingest([SAMPLE_CORPUS / "billing"])
    before = qa.stats()
    answers_before = [p.chunk_id for p in qa.retrieve("refund", top_k=5)]

    calls = {"n": 0}
    real_apply = qa.store.apply

    def failing_apply(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        raise OSError("disk full (injected)")

    monkeypatch.setattr(qa.store, "apply", failing_apply)
    with pytest.raises(OSError, match="injected"):
        qa.ingest([SAMPLE_CORPUS / "help-centre"])
    monkeypatch.setattr(qa.store, "apply", real_apply)
    assert calls["n"] == 1
    after = qa.stats()
    assert (after.documents, after.chunks, after.generation) == (before.documents, before.chunks, before.generation)
    assert qa.check().ok
    assert [p.chunk_id for p in qa.retrieve("refund", top_k=5)] == answers_before
    qa.close()


def test_bad_files_are_reported_by_name_and_the_rest_is_ingested(
    tmp_path: Path, real_embedder: Any, real_reader: Any
) -> None:
    corpus = tmp_path / "mixed"
    corpus.mkdir()
    shutil.copy(SAMPLE_CORPUS / "sync" / "offline-mode.md", corpus / "good.md")
    (corpus / "empty.txt").write_text("")
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02 not text \xff\xfe")
    (corpus / "broken.jsonl").write_text('{"text": oops}\n{"no": "text"}\n')
    (corpus / "partly.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
    (corpus / "notes.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (corpus / "image.png").write_bytes(b"\x89PNG")
    qa = open_system(tmp_path / "store", real_embedder, real_reader)
    report = qa.ingest([corpus])
    failed = {Path(f.source).name: f.reason for f in report.failed}
    assert set(failed) == {"empty.txt", "binary.txt", "broken.jsonl", "notes.pdf"}
    assert failed["broken.jsonl"].startswith("no usable records: line 1: not valid JSON")
    assert "EOF marker not found" in failed["notes.pdf"]
    assert report.notes == (f"{corpus.resolve() / 'partly.jsonl'}: skipped line 2: not valid JSON (Expecting value, "
                            "column 10)",)
    assert report.added == 2 and report.unsupported_files == 1
    assert qa.stats().documents == 2 and qa.check().ok
    qa.close()


def test_cli_check_repair_fixes_a_corrupted_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reader_model_dir: Path
) -> None:
    store = tmp_path / "store"
    assert cli_main(["ingest", str(SAMPLE_CORPUS / "billing"), "--store", str(store), "--no-progress"]) == 0
    index_files = list((store).rglob("*.faiss"))
    assert len(index_files) == 1
    index_files[0].unlink()  # lose every vector
    assert cli_main(["ask", "How much is Plus?", "--store", str(store)]) == 1
    assert "check --repair" in capsys.readouterr().err
    assert cli_main(["check", "--store", str(store)]) == 1
    assert cli_main(["check", "--store", str(store), "--repair"]) == 0
    assert cli_main(["check", "--store", str(store)]) == 0
    capsys.readouterr()
    assert cli_main(["ask", "How much does the Plus plan cost per month?", "--store", str(store), "--json",
                     "--reader-model", str(reader_model_dir)]) == 0
    import json

    payload = json.loads(capsys.readouterr().out)
    assert payload["answers"]
    assert {"text", "score", "source", "document_id", "start", "end"} <= set(payload["answers"][0])
    for margin, answered in (("1000", False), ("-1000", True)):  # the threshold setting decides has_answer
        assert cli_main(["ask", "How much does the Plus plan cost per month?", "--store", str(store), "--json",
                         "--reader-model", str(reader_model_dir), "--no-answer-threshold", margin]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["has_answer"] is answered and result["answers"]
        reader = result["models"]["reader"]  # the threshold that decided, and how the reader computed
        assert reader["no_answer_threshold"] == float(margin) and reader["model"] == str(reader_model_dir)
        assert reader["precision"] in {"fp32", "bf16"} and result["models"]["embedder"]["precision"] in {"fp32", "bf16"}
        embedder_keys = {"model", "precision", "runtime", "lexical_weight"}  # no reader keys
        assert set(result["models"]["embedder"]) == embedder_keys
        assert "weights" in reader["runtime"] and "weights" in result["models"]["embedder"]["runtime"]
        assert "lexical_weight" not in reader
    # answer ranking: with no weight the answers are in reader-score order; a bad weight is refused
    assert cli_main(["ask", "How much does the Plus plan cost per month?", "--store", str(store), "--json",
                     "--reader-model", str(reader_model_dir), "--retrieval-weight", "0"]) == 0
    scores = [a["score"] for a in json.loads(capsys.readouterr().out)["answers"]]
    assert scores == sorted(scores, reverse=True)
    # with a weight, the order is reader score + weight x passage score, and both are reported
    assert cli_main(["ask", "How much does the Plus plan cost per month?", "--store", str(store), "--json",
                     "--reader-model", str(reader_model_dir), "--retrieval-weight", "10", "--top-k-reader", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["models"]["reader"]["retrieval_weight"] == 10.0
    ranks = [a["score"] + 10 * a["passage_score"] for a in result["answers"]]
    assert len(ranks) > 1 and ranks == sorted(ranks, reverse=True)
    assert cli_main(["ask", "How much does the Plus plan cost per month?", "--store", str(store),
                     "--reader-model", str(reader_model_dir), "--retrieval-weight", "10"]) == 0
    text = capsys.readouterr().out
    assert "reader score + 10 x retrieval score" in text and "retrieval 0." in text
    assert cli_main(["ask", "How much is Plus?", "--store", str(store), "--retrieval-weight", "-1"]) == 1
    assert "retrieval_weight" in capsys.readouterr().err


def test_cli_refuses_an_empty_question(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["ask", "  ", "--store", str(tmp_path / "s")]) == 1
    assert "empty" in capsys.readouterr().err


def test_cli_refuses_a_lexical_weight_outside_0_to_1(corpus_store: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, store = corpus_store
    assert cli_main(["ask", "What is SYNC-413?", "--store", str(store), "--lexical-weight", "2"]) == 1
    assert "lexical_weight must be a number from 0 to 1" in capsys.readouterr().err


def test_cli_reads_only_an_existing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "typo"
    for command in (["ask", "What does Plus cost?"], ["stats"], ["check"], ["delete", "--id", "x"]):
        assert cli_main([*command, "--store", str(missing)]) == 1
        assert f"no store at {missing}" in capsys.readouterr().err
    assert not missing.exists()  # nothing was created


def test_embedding_precision_bf16_keeps_unit_vectors_close_to_fp32_and_auto_follows_the_hardware(monkeypatch) -> None:  # noqa: ANN001
    import numpy as np

    from qa_system import hardware
    from qa_system.embedding import SentenceTransformerEmbedder
    from qa_system.errors import ConfigError

    texts = [p.read_text(encoding="utf-8")[:1500] for p in sorted(SAMPLE_CORPUS.rglob("*.md"))[:6]]
    texts.append("How do I reset my password?")
    fp32 = SentenceTransformerEmbedder(precision="fp32").load()
    bf16 = SentenceTransformerEmbedder(precision="bf16").load()
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    a, b = fp32.encode(texts), bf16.encode(texts)
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)  # re-normalised in fp32
    assert np.min(np.sum(a * b, axis=1)) > 0.995
    assert not np.array_equal(a, b)  # bf16 really ran
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda native=native: native)
        assert SentenceTransformerEmbedder(precision="auto").precision == expected
    with pytest.raises(ConfigError, match="embedding precision must be one of auto, fp32, bf16, int8, got 'fp16'"):
        SentenceTransformerEmbedder(precision="fp16")


def test_embedding_precision_int8_quantises_the_linear_layers_and_stays_close_to_fp32() -> None:
    import numpy as np
    import torch

    from qa_system.embedding import SentenceTransformerEmbedder
    from qa_system.errors import ConfigError

    texts = [p.read_text(encoding="utf-8")[:1500] for p in sorted(SAMPLE_CORPUS.rglob("*.md"))[:6]]
    texts.append("How do I reset my password?")
    fp32 = SentenceTransformerEmbedder(precision="fp32").load()
    int8 = SentenceTransformerEmbedder(precision="int8").load()
    assert int8.precision == "int8"
    modules = list(int8._loaded.modules())
    assert not any(type(m) is torch.nn.Linear for m in modules)  # every Linear layer was swapped
    assert any("quantized" in type(m).__module__ for m in modules)
    assert any(type(m) is torch.nn.Linear for m in fp32._loaded.modules())  # the fp32 one was left alone
    a, b = fp32.encode(texts), int8.encode(texts)
    assert b.dtype == np.float32 and a.shape == b.shape
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert 0.9 < np.min(np.sum(a * b, axis=1)) < 0.9999  # close, and int8 really ran
    assert int8.dimension == fp32.dimension and int8.max_tokens == fp32.max_tokens
    with pytest.raises(ConfigError, match="int8 embedding precision works on the CPU only"):
        SentenceTransformerEmbedder(precision="int8", device="cuda")
