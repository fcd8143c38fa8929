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


# ------------------------------------------------------------------ titles and metadata (issue 26.1)

def test_a_record_whose_title_or_metadata_changed_is_updated_without_embedding_again(
    qa: QASystem, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "c")
    ingestor(qa).ingest_paths([corpus])
    records = corpus / "records.jsonl"
    lines = records.read_text().splitlines()
    lines[2] = '{"id": "r2", "text": "record number 2 body", "area": "a0", "title": "Record two"}'
    lines[3] = '{"id": "r3", "text": "record number 3 body", "area": "moved"}'
    records.write_text("\n".join(lines))
    embedded = qa.embedder.encoded
    report = ingestor(qa).ingest_paths([corpus])
    assert (report.added, report.updated, report.unchanged, report.chunks_added) == (0, 2, 6, 0)
    assert qa.embedder.encoded == embedded
    by_record = {p.metadata.get("record_id"): p for p in qa.retrieve("record number body", top_k=10)}
    assert by_record["r2"].title == "Record two" and by_record["r3"].metadata["area"] == "moved"
    again = ingestor(qa).ingest_paths([corpus])
    assert (again.updated, again.unchanged, again.commits) == (0, 8, 0)


# ------------------------------------------------------------------ counts that add up (issue 26.12)

def test_the_summary_counts_add_up(qa: QASystem, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c")  # 3 good files (8 documents), bad.json, skip.bin
    (corpus / "broken-link.md").symlink_to(corpus / "gone.md")
    (corpus / "notes.odt").write_text("Title\n=====\n")
    (corpus / "empty.jsonl").write_text('{"text": "   "}\n')  # a record without text: the file fails
    ingestor(qa).ingest_paths([corpus / "a.txt"])
    (corpus / "b.md").write_text("# Bee\n\nChanged text.\n")
    report = ingestor(qa).ingest_paths([corpus])
    assert (report.files, report.files_read, report.files_failed, report.unsupported_files) == (8, 3, 3, 2)
    assert report.files == report.files_read + report.files_failed + report.unsupported_files
    assert (report.added, report.updated, report.unchanged, report.documents_failed) == (7, 0, 1, 0)
    assert report.documents == report.added + report.updated + report.unchanged + report.documents_failed == 8
    assert report.unsupported_by_extension() == {".bin": 1, ".odt": 1}
    assert sorted(Path(f.source).name for f in report.failed) == ["bad.json", "broken-link.md", "empty.jsonl"]
    first, second = report.summary().splitlines()
    assert first == "8 files: 3 read, 3 failed, 2 skipped as unsupported (1 .bin, 1 .odt)"
    assert second.startswith("8 documents: 7 added, 0 updated, 1 unchanged, 0 failed;")
    as_json = report.to_dict()
    assert as_json["unchanged"] == 1 and "skipped" not in as_json
    assert sorted(Path(p).name for p in as_json["unsupported"]) == ["notes.odt", "skip.bin"]
    with pytest.warns(DeprecationWarning):
        assert report.skipped == report.unchanged


def test_nothing_readable_is_named(qa: QASystem, tmp_path: Path) -> None:
    folder = tmp_path / "rst"
    folder.mkdir()
    for name in ("a.odt", "b.odt", "logo.png"):
        (folder / name).write_text("x")
    report = ingestor(qa).ingest_paths([folder])
    assert report.problem() == "none of the 3 files found is of a supported type (2 .odt, 1 .png)"
    (folder / "bad.json").write_text("{")
    assert ingestor(qa).ingest_paths([folder]).problem() == (
        "of the 4 files found, 1 failed and 3 are of unsupported types (2 .odt, 1 .png)")
    assert ingestor(qa).ingest_paths([write_corpus(tmp_path / "c")]).problem() is None


def test_cli_refuses_paths_with_nothing_readable_before_making_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from qa_system.cli import main

    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("intro.odt", "api.odt", "logo.png"):
        (folder / name).write_text("x")
    store = tmp_path / "store"
    assert main(["ingest", str(folder), "--store", str(store), "--verbose"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "3 files: 0 read, 0 failed, 3 skipped as unsupported (2 .odt, 1 .png)"
    assert f"skipped (unsupported type): {(folder / 'api.odt').as_posix()}" in err.splitlines()
    assert ("error: nothing was ingested: none of the 3 files found is of a supported type (2 .odt, 1 .png); "
            "supported types: ") in err
    assert not store.exists()
    assert main(["ingest", str(folder / "intro.odt"), "--store", str(store), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["unsupported"] == [(folder / "intro.odt").as_posix()] and report["files"] == 1
    assert report["unsupported_by_extension"] == {".odt": 1} and report["problem"]
    assert not store.exists()


def test_parser_warnings_and_skipped_records_become_notes_naming_their_file(qa: QASystem, tmp_path: Path) -> None:
    from tests.loader_support import make_pdf

    folder = tmp_path / "docs"
    folder.mkdir()
    data = make_pdf(["Damaged but readable."])
    (folder / "damaged.pdf").write_bytes(b"XXXXXXXX" + data[8:])  # pypdf warns about the header
    (folder / "records.jsonl").write_text('{"text": "A good record."}\n{"text": \n')
    report = ingestor(qa).ingest_paths([folder])
    assert (report.added, len(report.failed)) == (2, 0)
    pdf, jsonl = (folder / "damaged.pdf").resolve(), (folder / "records.jsonl").resolve()
    assert f"{pdf}: warning: pypdf: invalid pdf header: b'XXXXX'" in report.notes
    assert any(n.startswith(f"{jsonl}: skipped line 2: not valid JSON") for n in report.notes)
