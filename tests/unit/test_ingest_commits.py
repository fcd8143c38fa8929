"""How ingest commits and shows progress: mini-batches, commits by time and size, a killed
ingest (SIGKILL) that re-running completes. Real SQLite store and FAISS index, fake embedder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from qa_system import QASystem
from qa_system.errors import ConfigError
from qa_system.ingestion import SLOW_COMMIT_FACTOR, CommitClock, Ingestor
from tests.support import REPO
from tests.unit import test_ingestion
from tests.unit.test_ingestion import char_chunker

qa = test_ingestion.qa  # the fixture: a QASystem over a real store, with a fake embedder and reader


class SteppingClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_commit_clock_is_due_by_time_or_size_and_waits_longer_after_slow_commits() -> None:
    clock = SteppingClock()
    commits = CommitClock(5.0, 100, clock)
    assert not commits.due(documents=3, chunks=10)
    clock.now = 5.0
    assert commits.due(documents=3, chunks=10) and not commits.due(documents=0, chunks=0)
    started = clock.now
    clock.now = 8.0  # a commit that took 3 s: the next waits 4 x 3 s
    commits.committed(started)
    clock.now = 8.0 + 5.0
    assert not commits.due(documents=1, chunks=1)
    clock.now = 8.0 + SLOW_COMMIT_FACTOR * 3.0
    assert commits.due(documents=1, chunks=1)
    assert commits.due(documents=1, chunks=100)  # size, whatever the time
    only_at_the_end = CommitClock(None, None, clock)
    clock.now = 1e9
    assert not only_at_the_end.due(documents=10**6, chunks=10**9)


def test_commit_interval_setting_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from qa_system import load_settings

    assert load_settings().commit_interval_s == 5.0
    monkeypatch.setenv("QA_SYSTEM_COMMIT_INTERVAL_S", "0.5")
    assert load_settings().commit_interval_s == 0.5
    monkeypatch.setenv("QA_SYSTEM_COMMIT_INTERVAL_S", "-1")
    with pytest.raises(ConfigError, match="commit_interval_s"):
        load_settings()


def test_ingest_commits_every_interval_between_embedding_batches(qa: QASystem, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SteppingClock()
    embedder = qa.embedder
    real_encode = embedder.encode

    def slow_encode(texts: Any, **kwargs: Any) -> Any:
        clock.now += 1.0  # each mini-batch "takes" one second
        return real_encode(texts, **kwargs)

    monkeypatch.setattr(embedder, "encode", slow_encode)
    writes: list[int] = []
    real_apply = qa.store.apply
    monkeypatch.setattr(qa.store, "apply",
                        lambda upserts, *a, **k: (writes.append(len(upserts)), real_apply(upserts, *a, **k))[1])
    records = tmp_path / "records.jsonl"
    records.write_text("\n".join(f'{{"id": "r{i}", "text": "short record {i}"}}' for i in range(12)))
    settings = replace(qa.settings, embed_batch_size=2, commit_interval_s=2.5)
    report = Ingestor(qa.store, embedder, char_chunker, settings, clock=clock).ingest_paths([records])
    # 6 mini-batches of 2 one-chunk records, 1 s each: commits after the 3rd and the 6th, of the
    # records finished by then (the one whose chunk filled a batch finishes just after it), and the rest
    assert writes == [5, 6, 1] and report.commits == 3 and report.added == 12
    assert qa.check().ok


def test_a_file_may_span_commits_but_each_document_is_written_whole(qa: QASystem, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[list[int]] = []
    real_apply = qa.store.apply
    monkeypatch.setattr(qa.store, "apply", lambda upserts, *a, **k: (
        writes.append([len(w.chunks) for w in upserts]), real_apply(upserts, *a, **k))[1])
    records = tmp_path / "records.jsonl"
    records.write_text("\n".join(f'{{"id": "r{i}", "text": "{"word " * 80}{i}"}}' for i in range(10)))
    settings = replace(qa.settings, embed_batch_size=2, commit_interval_s=3600.0)  # 32 chunks per commit
    report = Ingestor(qa.store, qa.embedder, char_chunker, settings).ingest_paths([records])
    assert report.added == 10 and report.commits == len(writes) >= 3
    assert all(n == 11 for batch in writes for n in batch)  # every document with all its 11 chunks
    assert qa.stats().chunks == 110 and qa.check().ok


class RecordingBar:
    """Stands in for tqdm to record what the bar was told."""

    bars: list[RecordingBar] = []

    def __init__(self, *args: Any, total: float | None = None, **kwargs: Any) -> None:
        self.total = total
        self.updates: list[float] = []
        self.postfixes: list[str] = []
        RecordingBar.bars.append(self)

    def update(self, n: float) -> None:
        self.updates.append(n)
        self.postfixes.append("")

    def set_postfix_str(self, text: str) -> None:
        self.postfixes.append(text)

    def close(self) -> None:
        pass


def test_progress_counts_input_bytes_as_chunks_are_embedded(qa: QASystem, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import qa_system.ingestion as ingestion

    monkeypatch.setattr(ingestion, "tqdm", RecordingBar)
    RecordingBar.bars.clear()
    big = tmp_path / "big.txt"
    big.write_text("A sentence of the one long file. " * 600)  # 19,800 bytes, 495 chunks
    small = tmp_path / "small.md"
    small.write_text("# Small\n\nA short note.\n")
    settings = replace(qa.settings, embed_batch_size=16)
    report = Ingestor(qa.store, qa.embedder, char_chunker, settings).ingest_paths([big, small], progress=True)
    (bar,) = RecordingBar.bars
    assert bar.total == big.stat().st_size + small.stat().st_size
    assert sum(bar.updates) == bar.total
    assert len(bar.updates) >= 495 // 16  # the one long file moves the bar as it is embedded
    writing = [i for i, text in enumerate(bar.postfixes) if text.endswith(", writing 1 documents")]
    assert len(writing) == report.commits == 2  # the long file's document (over 256 chunks), then the rest
    assert sum(bar.updates[:writing[0]]) >= big.stat().st_size - 1  # shown once its chunks were embedded
    assert bar.postfixes[-1].startswith(f"{report.chunks_added} chunks (")
    assert bar.postfixes[-1].endswith("2 documents written")


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from qa_system import QASystem, load_settings
    from tests.store_suite import FakeEmbedder
    from tests.unit.test_ingestion import FakeReader, char_chunker

    class StallingEmbedder(FakeEmbedder):
        calls = 0

        def encode(self, texts, **kwargs):
            self.calls += 1
            if self.calls > 5:  # the 6th mini-batch never ends: the parent kills us here
                Path(sys.argv[3]).write_text("stalled")
                time.sleep(600)
            return super().encode(texts, **kwargs)

    settings = load_settings(store_dir=sys.argv[1], commit_interval_s=0, embed_batch_size=4)
    with QASystem(settings, embedder=StallingEmbedder(), reader=FakeReader(), chunker=char_chunker).load() as qa:
        qa.ingest([sys.argv[2]])
""")


def test_a_killed_ingest_keeps_what_it_committed_and_rerunning_completes_it(tmp_path: Path) -> None:
    from qa_system import load_settings
    from tests.store_suite import FakeEmbedder
    from tests.unit.test_ingestion import FakeReader

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(40):
        (corpus / f"note-{i:02d}.txt").write_text(f"Note {i} is short.")
    store, stalled = tmp_path / "store", tmp_path / "stalled"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(store), str(corpus), str(stalled)],
                             env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not stalled.exists():
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
            assert time.monotonic() < deadline, "the child never reached its 6th mini-batch"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    settings = load_settings(store_dir=store)
    with QASystem(settings, embedder=FakeEmbedder(), reader=FakeReader(), chunker=char_chunker).load() as qa:
        assert qa.check().ok
        committed = qa.stats().documents
        assert 3 <= committed <= 20  # the first commit: the notes finished by the first mini-batch of 4
        report = qa.ingest([corpus])
        assert (report.added, report.unchanged, report.updated) == (40 - committed, committed, 0)
        assert qa.stats().documents == qa.stats().chunks == 40 and qa.check().ok
