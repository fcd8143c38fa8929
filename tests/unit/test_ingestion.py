"""The ingestion pipeline and QASystem wiring with fakes (a hash embedder, a char chunker, a
fake reader) over the real SQLite store and FAISS index."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from qa_system import QASystem, QuestionError, load_settings
from qa_system.errors import ConfigError
from qa_system.ingestion import Ingestor
from qa_system.types import Answer, Chunk, Document, Passage, ReaderResult
from tests.store_suite import FakeEmbedder


def char_chunker(document_id: str, text: str, size: int = 40) -> list[Chunk]:
    return [Chunk(document_id, i, s, min(s + size, len(text)), text[s : s + size], 8)
            for i, s in enumerate(range(0, len(text), size))]


class FakeReader:
    """Answers with the first word of the best passage."""

    def read_batch(self, questions: Sequence[str], passages: Sequence[Sequence[Passage]], *,
                   top_n: int | None = None) -> list[ReaderResult]:
        results = []
        for plist in passages:
            answers = []
            for p in plist[: top_n or 1]:
                word = p.text.split()[0]
                s = p.text.index(word)
                answers.append(Answer(word, p.score, p.document_id, p.source, p.title, p.start + s,
                                      p.start + s + len(word), p.text, p.chunk_id, p.score))
            results.append(ReaderResult(tuple(answers), -1.0, 0.0))
        return results


@pytest.fixture()
def qa(tmp_path: Path) -> Any:
    settings = load_settings(store_dir=tmp_path / "store")
    system = QASystem(settings, embedder=FakeEmbedder(), reader=FakeReader(), chunker=char_chunker).load()
    yield system
    system.close()


def ingestor(qa: QASystem) -> Ingestor:
    return Ingestor(qa.store, qa.embedder, char_chunker, qa.settings)


def write_corpus(root: Path) -> Path:
    root.mkdir()
    (root / "a.txt").write_text("Alpha text about refunds. " * 5)
    (root / "b.md").write_text("# Bee\n\nBee text about sync and offline mode.\n")
    (root / "records.jsonl").write_text(
        "\n".join(f'{{"id": "r{i}", "text": "record number {i} body", "area": "a{i % 2}"}}' for i in range(6)))
    (root / "bad.json").write_text("{not json")
    (root / "skip.bin").write_bytes(b"\x00")
    return root


def test_ingest_counts_reports_failures_and_groups_a_file_in_one_write(
    qa: QASystem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = write_corpus(tmp_path / "c")
    writes: list[int] = []
    real_apply = qa.store.apply
    monkeypatch.setattr(qa.store, "apply",
                        lambda upserts, *a, **k: (writes.append(len(upserts)), real_apply(upserts, *a, **k))[1])
    report = ingestor(qa).ingest_paths([corpus])
    assert (report.added, report.updated, report.unchanged, report.files, report.files_read) == (8, 0, 0, 5, 3)
    assert [Path(f.source).name for f in report.failed] == ["bad.json"]
    assert report.unsupported_files == 1
    assert sum(writes) == 8 and qa.check().ok
    again = ingestor(qa).ingest_paths([corpus])
    assert (again.added, again.unchanged, again.chunks_added) == (0, 8, 0)


def test_a_changed_file_is_an_update(qa: QASystem, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c")
    ingestor(qa).ingest_paths([corpus])
    (corpus / "a.txt").write_text("Completely new alpha content.")
    report = ingestor(qa).ingest_paths([corpus])
    assert (report.added, report.updated, report.unchanged) == (0, 1, 7)
    assert report.chunks_removed == 4 and report.chunks_added == 1


def test_ingest_documents_and_ask_through_the_api(qa: QASystem) -> None:
    docs = [Document(source=f"api:{i}", text=f"Document {i} says the price is {i} euros.",
                     metadata={"item_id": f"B{i % 3}"}) for i in range(9)]
    qa.ingest_documents(docs)
    result = qa.ask("What is the price?", top_k_retriever=3, top_k_reader=2, filters={"item_id": "B1"})
    assert len(result.passages) == 3
    assert {p.metadata["item_id"] for p in result.passages} == {"B1"}
    assert len(result.answers) == 2
    for a in result.answers:
        assert qa.get_document(a.document_id).text[a.start : a.end] == a.text
    assert set(result.timings) == {"retrieve_s", "read_s", "total_s"}


def test_empty_documents_and_bad_questions_are_refused(qa: QASystem) -> None:
    from qa_system import InputError

    with pytest.raises(InputError, match="no text"):
        qa.ingest_documents([Document(source="api:empty", text="   ")])
    with pytest.raises(QuestionError, match="empty"):
        qa.ask("")
    with pytest.raises(QuestionError, match="limit"):
        qa.ask("x" * (qa.settings.max_question_chars + 1))
    with pytest.raises(QuestionError, match="positive"):
        qa.ask("fine?", top_k_reader=0)


def test_deleting_a_record_file_removes_all_its_records(qa: QASystem, tmp_path: Path) -> None:
    from qa_system import DocumentNotFoundError
    from qa_system.ingest import source_path

    corpus = write_corpus(tmp_path / "c")
    ingestor(qa).ingest_paths([corpus])
    assert qa.delete(sources=[source_path(corpus / "records.jsonl")]) == 6
    assert qa.stats().documents == 2 and qa.check().ok
    with pytest.raises(DocumentNotFoundError):
        qa.delete(sources=[source_path(corpus / "a.txt"), "/no/such/file"])
    assert qa.stats().documents == 2


def test_optional_int_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_SYSTEM_TORCH_THREADS", "1")
    monkeypatch.setenv("QA_SYSTEM_DB_URL", "sqlite:///x.db")
    settings = load_settings()
    assert settings.torch_threads == 1 and settings.db_url == "sqlite:///x.db"


@pytest.mark.parametrize("setting, accepted",
                         [("reader_precision", ("int8",)), ("embedding_precision", ("bf16", "int8"))])
def test_reader_and_embedding_precision_are_read_from_the_environment_and_checked(
    monkeypatch: pytest.MonkeyPatch, setting: str, accepted: tuple[str, ...]
) -> None:
    env = f"QA_SYSTEM_{setting.upper()}"
    assert getattr(load_settings(), setting) == "auto"
    for value in accepted:
        monkeypatch.setenv(env, value)
        assert getattr(load_settings(), setting) == value
    monkeypatch.setenv(env, "fp16")
    with pytest.raises(ConfigError, match=f"{setting} must be one of auto, fp32, bf16, int8, got 'fp16'"):
        load_settings()
