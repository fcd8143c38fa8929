"""Ingestion on Ray (qa_system.ray_ingest): a local Ray with two worker processes ingests the
sample corpus into a store equal to a local ingest's -- the same documents, chunks and vectors --
re-running adds nothing, a changed file replaces its chunks, a broken file is reported by name;
a driver killed after its first commit leaves a consistent store that a re-run completes.
Real MiniLM embedder in the driver and in each Ray worker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa_system import QASystem, load_settings
from qa_system.errors import QASystemError
from tests.support import REPO, SAMPLE_CORPUS

pytestmark = pytest.mark.slow


def contents(system: QASystem) -> tuple[dict, dict, dict]:
    """{document id: (source, title, text)}, {(document id, idx): (start, end, text)} and
    {(document id, idx): vector} of a store."""
    store = system.store
    summaries = store.list_documents(limit=10_000)
    documents = store.get_documents([s.id for s in summaries])
    docs = {i: (d.source, d.title, d.text) for i, d in documents.items()}
    chunks: dict[tuple[str, int], tuple[int, int, str]] = {}
    by_id: dict[int, tuple[str, int]] = {}
    with store._reads() as session:  # noqa: SLF001 - read the rows as stored
        from sqlalchemy import select

        from qa_system.storage.models import ChunkRow

        for row in session.scalars(select(ChunkRow)):
            chunks[(row.document_id, row.idx)] = (row.start_char, row.end_char, row.text)
            by_id[row.id] = (row.document_id, row.idx)
    vectors = {}
    for segment in store._snapshot().segments:  # noqa: SLF001
        ids, matrix = segment.contents()
        for chunk_id, vector in zip(ids, matrix, strict=True):
            if int(chunk_id) in by_id:
                vectors[by_id[int(chunk_id)]] = vector
    return docs, chunks, vectors


def test_a_ray_ingest_equals_a_local_one_and_is_idempotent(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE_CORPUS, corpus)
    # fp32: bf16 vectors depend on how chunks are batched (to about 1e-3), fp32 ones to float noise
    local = QASystem(load_settings(store_dir=tmp_path / "local", embedding_precision="fp32"))
    on_ray = QASystem(load_settings(store_dir=tmp_path / "ray", embedding_precision="fp32"))
    with local, on_ray:
        expected = local.ingest([corpus])
        report = on_ray.ingest_on_ray([corpus], address="local", workers=2)
        assert report.failed == () and (report.added, report.files_read) == (expected.added, expected.files_read)
        assert report.chunks_added == expected.chunks_added > 0
        docs, chunks, vectors = contents(on_ray)
        want_docs, want_chunks, want_vectors = contents(local)
        assert docs == want_docs and chunks == want_chunks
        assert vectors.keys() == want_vectors.keys() == chunks.keys()
        for key, vector in vectors.items():
            np.testing.assert_allclose(vector, want_vectors[key], atol=1e-5)
        assert on_ray.check().ok

        again = on_ray.ingest_on_ray([corpus], address="local", workers=2)
        assert (again.added, again.updated, again.unchanged, again.chunks_added) == (0, 0, expected.added, 0)

        changed = sorted(corpus.rglob("*.md"))[0]
        changed.write_text(changed.read_text(encoding="utf-8") + "\n\nNew: the gateway restarts at 03:00.\n",
                           encoding="utf-8")
        (corpus / "broken.json").write_text("{not json", encoding="utf-8")
        third = on_ray.ingest_on_ray([corpus], address="local", workers=2)
        assert (third.added, third.updated, third.unchanged) == (0, 1, expected.added - 1)
        assert [f.source for f in third.failed] == [str(corpus / "broken.json")]
        assert on_ray.check().ok and on_ray.stats().documents == expected.added
        hits = on_ray.retrieve("When does the gateway restart?", top_k=1)
        assert "03:00" in hits[0].text


KILLED_AFTER_FIRST_COMMIT = """
import os, signal, sys
from qa_system import QASystem, load_settings, ray_ingest

write = ray_ingest._Driver._write
def write_then_die(self, *args):
    write(self, *args)
    os.kill(os.getpid(), signal.SIGKILL)  # the driver dies: no cleanup, no second commit
ray_ingest._Driver._write = write_then_die
# small commit batches (embed_batch_size x 16 chunks): the sample corpus takes several commits
settings = load_settings(store_dir=sys.argv[1], embedding_precision="fp32", embed_batch_size=1)
with QASystem(settings) as system:
    system.ingest_on_ray([sys.argv[2]], address="local", workers=2)
"""


def test_a_killed_ray_ingest_leaves_a_consistent_store_that_a_rerun_completes(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    done = subprocess.run([sys.executable, "-c", KILLED_AFTER_FIRST_COMMIT, str(tmp_path / "ray"),
                           str(SAMPLE_CORPUS)], capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == -9, done.stderr[-2000:]
    local = QASystem(load_settings(store_dir=tmp_path / "local", embedding_precision="fp32"))
    on_ray = QASystem(load_settings(store_dir=tmp_path / "ray", embedding_precision="fp32"))
    with local, on_ray:
        expected = local.ingest([SAMPLE_CORPUS])
        first = on_ray.stats().documents
        assert on_ray.check().ok and 0 < first < expected.added  # one commit landed, whole documents only
        rerun = on_ray.ingest_on_ray([SAMPLE_CORPUS], address="local", workers=2)
        assert rerun.failed == () and (rerun.added, rerun.unchanged) == (expected.added - first, first)
        docs, chunks, vectors = contents(on_ray)
        want_docs, want_chunks, want_vectors = contents(local)
        assert docs == want_docs and chunks == want_chunks and vectors.keys() == want_vectors.keys()
        for key, vector in vectors.items():
            np.testing.assert_allclose(vector, want_vectors[key], atol=1e-5)
        assert on_ray.check().ok


def test_without_ray_the_error_says_how_to_install_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from qa_system.ray_ingest import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the extra has
    with pytest.raises(QASystemError, match=r"pip install 'qa_system\[ray\]'"):
        import_ray()
