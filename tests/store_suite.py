"""The Store contract, as a reusable test suite.

Every database the store supports runs the same tests: subclass :class:`StoreContract` and
provide a ``store_env`` fixture returning a :class:`StoreEnv` on an empty database and an empty
directory (see ``tests/integration/test_store.py``: SQLite always, PostgreSQL when
``QA_SYSTEM_TEST_POSTGRES_URL`` is set).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, inspect
from sqlalchemy import text as sql
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from qa_system.errors import (
    DocumentChangedError,
    DocumentNotFoundError,
    IndexMismatchError,
    InputError,
    StoreError,
    StoreInconsistentError,
)
from qa_system.storage import DocumentWrite, MetadataUpdate, Store, migrate, reindex, segment_set
from qa_system.storage import repository as repo
from qa_system.storage.engine import create_store_engine
from qa_system.storage.feedback import FeedbackInput
from qa_system.types import Chunk, Document, MetadataValue
from tests.support import REPO

MODEL = "fake-hash-embedder"
DIM = 16
TABLES = {"documents", "document_metadata", "chunks", "store_state", "feedback"}


class FakeEmbedder:
    """Deterministic: each text maps to a random unit vector seeded by its SHA-256."""

    def __init__(self, model_name: str = MODEL, dimension: int = DIM) -> None:
        self._name, self._dimension = model_name, dimension
        self.encoded = 0

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return 510

    @property
    def tokenizer(self) -> Any:
        return None

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.encoded += len(texts)
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
            vector = np.random.default_rng(seed).standard_normal(self._dimension)
            rows.append(vector / np.linalg.norm(vector))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self._dimension)


EMBEDDER = FakeEmbedder()
#: Another model, of another dimension: what a reindex moves a store to.
OTHER_MODEL, OTHER_DIM = "fake-other-embedder", 24
OTHER = FakeEmbedder(OTHER_MODEL, OTHER_DIM)


class FailingEmbedder(FakeEmbedder):
    """The other model, raising on its encode call number ``after_calls + 1`` (a reindex killed
    after ``after_calls`` batches)."""

    def __init__(self, after_calls: int) -> None:
        super().__init__(OTHER_MODEL, OTHER_DIM)
        self._calls_left = after_calls

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if self._calls_left == 0:
            raise RuntimeError("the embedder broke")
        self._calls_left -= 1
        return super().encode(texts, batch_size=batch_size, progress=progress)


def write_for(source: str, text: str, metadata: Mapping[str, MetadataValue] | None = None, *,
              size: int = 24) -> DocumentWrite:
    """A document cut into ``size``-character chunks, embedded with the fake embedder."""
    document = Document(source=source, text=text, title=source.upper(), metadata=dict(metadata or {}))
    chunks = [Chunk(document.id, i, start, min(start + size, len(text)), text[start:start + size], 5)
              for i, start in enumerate(range(0, len(text), size))]
    return DocumentWrite(document, chunks, EMBEDDER.encode([c.text for c in chunks]))


#: A reindex in a process killed (SIGKILL: no clean-up at all) on its third batch, or in the swap's
#: transaction once its new segment files are in place, before the commit.
KILLED_REINDEX = """
import os, signal, sys
from pathlib import Path
from qa_system.storage import reindex
from tests.store_suite import OTHER_DIM, OTHER_MODEL, FakeEmbedder, StoreEnv

directory, db_url, when = sys.argv[1], sys.argv[2] or None, sys.argv[3]

class Killed(FakeEmbedder):
    def encode(self, texts, **options):
        if when == "embedding" and self.encoded == 10:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().encode(texts, **options)

if when == "swap" and "vector_backend=pgvector" in (db_url or ""):
    from qa_system.storage import pgvector
    insert = pgvector.insert_vectors
    def insert_then_die(*args):  # inside the swap's transaction, before its commit
        insert(*args)
        os.kill(os.getpid(), signal.SIGKILL)
    pgvector.insert_vectors = insert_then_die
elif when == "swap":
    place = reindex.Reindexer._place
    def place_then_die(self, *args):
        place(self, *args)
        os.kill(os.getpid(), signal.SIGKILL)
    reindex.Reindexer._place = place_then_die

store = StoreEnv(Path(directory), db_url).open(auto_compact=False)
store.reindex(Killed(OTHER_MODEL, OTHER_DIM), batch_size=5)
"""


def saved_reindex_vectors(store_env: StoreEnv) -> int:
    """The re-embedded vectors a pgvector reindex has saved so far (``reindex_vectors``)."""
    engine = store_env.engine()
    try:
        with engine.connect() as connection:
            return int(connection.scalar(sql("SELECT count(*) FROM reindex_vectors")))
    finally:
        engine.dispose()


def reembedded(write: DocumentWrite, embedder: FakeEmbedder) -> DocumentWrite:
    """``write`` with its chunks embedded by ``embedder``."""
    return DocumentWrite(write.document, write.chunks, embedder.encode([c.text for c in write.chunks]))


def corpus(n: int, prefix: str = "doc", **metadata: MetadataValue) -> list[DocumentWrite]:
    return [write_for(f"{prefix}-{i}", f"{prefix} number {i} says {i * 7919 % 1000} things about "
                      f"topic {i % 5} and more.", metadata) for i in range(n)]


def vector(text: str) -> np.ndarray:
    return EMBEDDER.encode([text])


def result_ids(results: list[list[Any]], tie: float = 1e-5) -> list[list[int]]:
    """Each row's chunk ids in rank order, passages whose scores tie (within ``tie``) by id.

    The suite's corpus repeats vectors (a document's chunks, equal texts), and which of two equal
    vectors comes first depends on the last bit of a float sum: FAISS's SIMD kernels differ between
    CPUs (AVX2 / AVX-512, Intel / AMD) and between a flat index and a segment search."""
    ids = []
    for row in results:
        groups: list[list[Any]] = []
        for p in sorted(row, key=lambda p: -p.score):
            if groups and groups[-1][-1].score - p.score < tie:
                groups[-1].append(p)
            else:
                groups.append([p])
        ids.append([chunk_id for group in groups for chunk_id in sorted(p.chunk_id for p in group)])
    return ids


@dataclass(frozen=True)
class StoreEnv:
    directory: Path
    db_url: str | None

    def open(self, **kwargs: Any) -> Store:
        options = {"embedding_model": MODEL, "dimension": DIM, "db_url": self.db_url, **kwargs}
        return Store.open(self.directory, **options)

    @property
    def pgvector(self) -> bool:
        """Whether the store keeps its vectors in PostgreSQL (the URL option ``vector_backend``)."""
        return "vector_backend=pgvector" in (self.db_url or "")

    def engine(self) -> Engine:
        from qa_system.storage.pgvector import split_backend_option

        url = split_backend_option(self.db_url)[0] or f"sqlite:///{self.directory / 'qa.sqlite3'}"
        self.directory.mkdir(parents=True, exist_ok=True)
        return create_store_engine(url)

    def segment_files(self) -> list[Path]:
        """The segment files in the index folder, by segment id."""
        return [segment_set.segment_path(self.directory, i)
                for i in sorted(segment_set.segment_files_on_disk(self.directory))]

    def only_segment(self) -> Path:
        found = self.segment_files()
        assert len(found) == 1, found
        return found[0]

    def make_legacy(self, revision: str) -> None:
        """Turn the store into one of the format before segments (an IndexIDMap2 over
        IndexFlatIP in ``index/vectors-<generation>.faiss``, as every store had until migration
        0003), its schema downgraded to ``revision``."""
        import faiss

        with self.open(auto_compact=False) as store:
            generation = store.generation
            snapshot = store._snapshot()  # noqa: SLF001
            parts = [segment.contents() for segment in snapshot.segments]
        ids, vectors = np.concatenate([p[0] for p in parts]), np.vstack([p[1] for p in parts])
        live = ~np.isin(ids, snapshot.tombstones)  # that format had no tombstones
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
        index.add_with_ids(vectors[live], ids[live])
        for path in self.segment_files():
            path.unlink()
        faiss.write_index(index, str(segment_set.index_directory(self.directory) / f"vectors-{generation:08d}.faiss"))
        engine = self.engine()
        try:
            migrate.downgrade(engine, revision)
        finally:
            engine.dispose()

    def rewrite_segment(self, path: Path, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace a segment file and its SQL record together: the store's own bookkeeping
        agrees with the file, only the ids are wrong (what a bug could leave behind)."""
        from qa_system.storage.models import SegmentRow

        order = np.argsort(ids)
        size, digest = segment_set.write_segment_file(path, ids[order], vectors[order], "flat")
        engine = self.engine()
        try:
            with Session(engine) as session:
                row = session.get(SegmentRow, int(path.stem.split("-")[1]))
                assert row is not None
                row.bytes, row.sha256, row.vectors = size, digest, len(ids)
                row.min_id, row.max_id = int(ids.min()), int(ids.max())
                session.commit()
        finally:
            engine.dispose()


class StoreContract:
    """Subclasses provide a ``store_env`` fixture (an empty database and directory)."""

    @pytest.fixture
    def store(self, store_env: StoreEnv) -> Any:
        store = store_env.open()
        yield store
        store.close()

    @pytest.fixture
    def filled(self, store: Store) -> Store:
        store.apply(corpus(6))
        return store

    # -------------------------------------------------------------------- migrations

    def test_migrations_upgrade_downgrade_and_match_the_models(self, store_env: StoreEnv) -> None:
        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext

        from qa_system.storage.models import Base, include_name

        engine = store_env.engine()
        try:
            migrate.upgrade(engine)
            assert set(inspect(engine).get_table_names()) >= TABLES
            assert migrate.current_revision(engine) == migrate.head_revision()
            with engine.connect() as connection:
                context = MigrationContext.configure(
                    connection, opts={"compare_type": True, "include_name": include_name})
                assert compare_metadata(context, Base.metadata) == []
            migrate.downgrade(engine, "base")
            assert not TABLES & set(inspect(engine).get_table_names())
            assert migrate.current_revision(engine) is None
            migrate.upgrade(engine)
            assert set(inspect(engine).get_table_names()) >= TABLES
        finally:
            engine.dispose()

    def test_model_or_dimension_mismatch_raises(self, store_env: StoreEnv) -> None:
        store_env.open().close()
        with pytest.raises(IndexMismatchError, match=MODEL):
            store_env.open(embedding_model="another-model")
        with pytest.raises(IndexMismatchError, match="dimension"):
            store_env.open(dimension=DIM * 2)
        store_env.open().close()

    # ------------------------------------------------------------------------ writes

    def test_apply_adds_then_no_op_then_replaces(self, store: Store) -> None:
        first = store.apply(corpus(3))
        assert (first.added, first.updated, first.unchanged, first.generation) == (3, 0, 0, 1)
        assert first.chunks_added == store.stats().chunks == store.stats().vectors > 3
        again = store.apply(corpus(3))
        assert (again.added, again.unchanged, again.generation) == (0, 3, 1)

        old = store.get_document(corpus(3)[1].document.id)
        new_write = write_for("doc-1", "a completely new text for document one", {"colour": "blue"})
        replaced = store.apply([new_write])
        assert (replaced.updated, replaced.added, replaced.chunks_removed) == (1, 0, old.chunk_count)
        assert replaced.chunks_added == len(new_write.chunks) and replaced.generation == 2
        with pytest.raises(DocumentNotFoundError):
            store.get_document(old.id)
        new = store.get_document(new_write.document.id)
        assert new.created_at == old.created_at and new.updated_at >= old.updated_at
        assert dict(new.metadata) == {"colour": "blue"} and new.chunk_count == len(new_write.chunks)
        assert store.source_states(["doc-1", "nope"]) == {
            "doc-1": (new.id, new_write.document.content_hash)}
        stats = store.stats()
        assert stats.chunks == stats.vectors and store.check().ok

    def test_a_title_or_metadata_change_rewrites_only_those_rows(self, store: Store) -> None:
        first = store.apply(corpus(2, colour="red"))
        original = corpus(2, colour="red")[1]
        before = store.get_document(original.document.id)
        doc = replace(original.document, title="A new title", metadata={"colour": "blue", "n": 1})
        result = store.apply([MetadataUpdate(doc)])
        assert (result.added, result.updated, result.unchanged, result.chunks_added) == (0, 1, 0, 0)
        assert result.generation == first.generation  # the vectors did not change
        after = store.get_document(doc.id)
        assert (after.title, dict(after.metadata)) == ("A new title", {"colour": "blue", "n": 1})
        assert after.chunk_count == before.chunk_count and after.created_at == before.created_at
        hits = store.search(vector(doc.text[:24]), 1, filters={"colour": "blue"})[0]
        assert [(p.document_id, p.title) for p in hits] == [(doc.id, "A new title")]
        # the same labels again (as a full write too), and a type change only (1 -> True) is a change
        assert store.unchanged_documents([doc, original.document, corpus(3)[2].document]) == {doc.id}
        same = store.apply([DocumentWrite(doc, original.chunks, original.vectors), MetadataUpdate(doc)])
        assert (same.updated, same.unchanged) == (0, 2)
        typed = store.apply([MetadataUpdate(replace(doc, metadata={"colour": "blue", "n": True}))])
        assert typed.updated == 1 and store.get_document(doc.id).metadata["n"] is True
        # a MetadataUpdate for a document no longer stored writes nothing and names it
        store.delete(document_ids=[doc.id])
        gone = store.apply([MetadataUpdate(doc)])
        assert (gone.updated, gone.added, gone.missing) == (0, 0, (doc.source,))
        assert store.stats().documents == 1 and store.check().ok

    def test_search_returns_passages_that_point_into_the_document(self, filled: Store) -> None:
        target = corpus(6)[4]
        results = filled.search(np.vstack([target.vectors[1], target.vectors[0]]), 3)
        best = results[0][0]
        assert (best.document_id, best.source, best.title) == (target.document.id, "doc-4", "DOC-4")
        assert best.score == pytest.approx(1.0, abs=1e-5)
        assert target.document.text[best.start:best.end] == best.text == target.chunks[1].text
        assert results[1][0].text == target.chunks[0].text
        assert all(len(row) == 3 for row in results)
        assert all(row[i].score >= row[i + 1].score for row in results for i in range(2))
        with pytest.raises(InputError):
            filled.search(np.zeros((1, DIM + 1), dtype=np.float32), 3)
        with pytest.raises(InputError):
            filled.search(vector("x"), 0)

    def test_invalid_writes_change_nothing(self, filled: Store) -> None:
        before = filled.stats()
        good = write_for("new", "some new text")
        bad_vectors = DocumentWrite(good.document, good.chunks, good.vectors[:, :3])
        wrong_text = DocumentWrite(good.document, [Chunk(good.document.id, 0, 0, 4, "xxxx", 1)],
                                   good.vectors[:1])
        for upserts, deletes in [
            ([good, bad_vectors], []),
            ([good, wrong_text], []),
            ([good, write_for("new", "another version of new")], []),
            ([good], ["0" * 32]),
        ]:
            with pytest.raises((InputError, DocumentNotFoundError)):
                filled.apply(upserts, deletes)
        after = filled.stats()
        assert (after.documents, after.chunks, after.generation) == (
            before.documents, before.chunks, before.generation)

    def test_delete_by_id_and_by_source_removes_rows_and_vectors(self, filled: Store) -> None:
        writes = corpus(6)
        gone = [writes[0].document.id, writes[1].document.id]
        vectors_before = filled.stats().vectors
        assert filled.delete(document_ids=[gone[0]], sources=["doc-1"]) == 2
        assert filled.get_documents(gone) == {}
        stats = filled.stats()
        removed = len(writes[0].chunks) + len(writes[1].chunks)
        assert stats.vectors == stats.chunks == vectors_before - removed
        hits = filled.search(np.vstack([writes[0].vectors, writes[1].vectors]), 50)
        assert not {p.document_id for row in hits for p in row} & set(gone)
        assert filled.check().ok

        with pytest.raises(DocumentNotFoundError, match="doc-404") as error:
            filled.delete(document_ids=[writes[2].document.id], sources=["doc-404"])
        assert writes[2].document.id not in str(error.value)
        assert filled.get_document(writes[2].document.id).source == "doc-2"  # nothing deleted
        assert filled.delete() == 0

    def test_chunk_ids_are_never_reused(self, store: Store) -> None:
        store.apply(corpus(2))
        high = max(p.chunk_id for p in store.search(vector("doc"), 50)[0])
        store.delete(sources=["doc-0", "doc-1"])
        store.apply([write_for("other", "fresh text")])
        assert min(p.chunk_id for p in store.search(vector("doc"), 50)[0]) > high

    def test_documents_listing_and_lookup(self, filled: Store) -> None:
        writes = corpus(6)
        page = filled.list_documents(limit=4)
        assert [d.source for d in page] == [f"doc-{i}" for i in range(4)]
        assert [d.source for d in filled.list_documents(limit=4, offset=4)] == ["doc-4", "doc-5"]
        assert page[0].chunk_count == len(writes[0].chunks)
        assert page[0].n_chars == len(writes[0].document.text)
        found = filled.get_documents([writes[2].document.id, "missing"])
        assert list(found) == [writes[2].document.id]
        assert found[writes[2].document.id].text == writes[2].document.text
        with pytest.raises(DocumentNotFoundError):
            filled.get_document("missing")

    # ----------------------------------------------------------------------- filters

    def test_filters_return_full_k_among_many_non_matching(self, store: Store) -> None:
        red = corpus(4, prefix="red", colour="red", year=2020, draft=False)
        store.apply(corpus(120, colour="blue", year=2021, draft=True) + red)
        red_chunks = {c.text for w in red for c in w.chunks}
        assert len(red_chunks) >= 8
        query = corpus(120)[7].vectors[:1]  # its nearest neighbours are all blue
        hits = store.search(query, 8, filters={"colour": "red"})[0]
        assert len(hits) == 8 and all(p.metadata["colour"] == "red" for p in hits)
        everything = np.vstack([w.vectors for w in red])
        texts = [c.text for w in red for c in w.chunks]
        expected = [texts[i] for i in np.argsort(-(everything @ query[0]), kind="stable")[:8]]
        assert [p.text for p in hits] == expected

        matching: list[dict[str, Any]] = [
            {"year": 2020}, {"year": 2020.0}, {"draft": False}, {"colour": ["green", "red"]},
            {"source": [w.document.source for w in red]}, {"colour": "red", "year": [2020, 1999]},
        ]
        for filters in matching:
            found = store.search(query, 8, filters=filters)[0]
            assert {p.source for p in found} <= {w.document.source for w in red} and len(found) == 8
        one = store.search(query, 3, filters={"document_id": red[2].document.id})[0]
        assert {p.document_id for p in one} == {red[2].document.id}
        nothing_matching: list[dict[str, Any]] = [
            {"colour": "purple"}, {"colour": []}, {"unknown": 1}, {"year": "2020"},
            {"colour": "red", "year": 2021},
        ]
        for nothing in nothing_matching:
            assert store.search(query, 5, filters=nothing) == [[]]

    @pytest.mark.parametrize("plan", ["pre-filter", "post-filter", "post-filter, then ids"])
    def test_every_filter_plan_returns_the_exact_filtered_top_k(
        self, store: Store, plan: str, monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from qa_system.retrieval import filtered as search

        if plan != "pre-filter":  # as if these filters matched thousands of documents
            monkeypatch.setattr(search, "PROBE_DOCUMENTS", 1)
        if plan == "post-filter, then ids":
            monkeypatch.setattr(search, "PREFILTER_DEPTH", 1)
        writes = [write_for(f"d{i}", f"document {i} of a mixed collection, part {i % 7}",
                            {"colour": "red" if i % 2 else "blue", "rare": i % 25 == 0}) for i in range(100)]
        for start in range(0, 100, 25):  # four segments
            store.apply(writes[start:start + 25])
        store.delete(document_ids=[writes[1].document.id, writes[50].document.id])  # tombstones
        kept = [w for i, w in enumerate(writes) if i not in (1, 50)]
        queries = np.vstack([writes[3].vectors[0], writes[8].vectors[1]])
        for filters, chosen in (({"colour": "red"}, [w for w in kept if w.document.metadata["colour"] == "red"]),
                                ({"rare": True}, [w for w in kept if w.document.metadata["rare"]])):
            vectors = np.vstack([w.vectors for w in chosen])
            texts = [c.text for w in chosen for c in w.chunks]
            for query, found in zip(queries, store.search(queries, 6, filters=filters), strict=True):
                order = np.argsort(-(vectors @ query), kind="stable")[:6]
                assert [p.text for p in found] == [texts[i] for i in order], (plan, filters)

    def test_metadata_values_round_trip_and_long_values_filter(self, store: Store) -> None:
        long_value = "x" * 5000
        metadata: dict[str, MetadataValue] = {
            "n": 3, "f": 0.5, "flag": True, "s": "str", "long": long_value}
        write = write_for("meta", "metadata text", metadata)
        store.apply([write])
        assert dict(store.get_document(write.document.id).metadata) == metadata
        assert len(store.search(vector("q"), 2, filters={"long": long_value})[0]) == 1
        assert store.search(vector("q"), 2, filters={"long": long_value[:-1]}) == [[]]

    # ---------------------------------------------------------------------- failures

    def _assert_unchanged(self, store: Store, store_env: StoreEnv, before: Any, queries: np.ndarray,
                          results: list[list[Any]], segment_names: set[str]) -> None:
        after = store.stats()
        assert (after.documents, after.chunks, after.vectors, after.generation) == (
            before.documents, before.chunks, before.vectors, before.generation)
        assert store.check().ok
        assert result_ids(store.search(queries, 5)) == result_ids(results)
        # a file written before a failure is gone at once; after a commit that raised (it may have
        # landed) it stays until the next sweep under the write lock, e.g. the next open
        reopened = store_env.open()
        assert {p.name for p in store_env.segment_files()} == segment_names
        assert reopened.check().ok and reopened.stats().chunks == before.chunks
        reopened.close()

    def test_failed_index_write_leaves_the_previous_generation(
        self, filled: Store, store_env: StoreEnv, monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        before, queries = filled.stats(), np.vstack([w.vectors[0] for w in corpus(6)])
        results = filled.search(queries, 5)
        names = {p.name for p in store_env.segment_files()}

        def broken(path: Path, data: Any) -> None:
            Path(path).write_bytes(b"half a file")  # a partial write, then the failure
            raise OSError("no space left on device")

        monkeypatch.setattr("qa_system.storage.segment_set.atomic_write_bytes", broken)
        with pytest.raises(StoreError, match="no space left"):
            filled.apply([write_for("new", "new document text")], [corpus(6)[0].document.id])
        monkeypatch.undo()
        self._assert_unchanged(filled, store_env, before, queries, results, names)

    def test_failed_commit_leaves_the_previous_generation(
        self, filled: Store, store_env: StoreEnv, monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        before, queries = filled.stats(), np.vstack([w.vectors[0] for w in corpus(6)])
        results = filled.search(queries, 5)
        names = {p.name for p in store_env.segment_files()}

        def broken_commit(self: Session) -> None:
            raise OperationalError("COMMIT", {}, Exception("connection lost"))

        monkeypatch.setattr(Session, "commit", broken_commit)
        with pytest.raises(StoreError, match="connection lost"):
            filled.apply([write_for("new", "new document text")], [corpus(6)[0].document.id])
        monkeypatch.undo()
        self._assert_unchanged(filled, store_env, before, queries, results, names)
        assert filled.apply([write_for("new", "new document text")]).added == 1

    def test_a_failed_write_is_not_taken_for_another_writers_commit(
        self, filled: Store, store_env: StoreEnv, monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # The segment file of this write cannot be written; once its transaction is rolled back,
        # another process commits the generation number this write was going to have. The write
        # must still fail (it once returned added=1 and the document was lost).
        from qa_system.storage import store as store_module

        other = store_env.open(auto_compact=False)
        real_write, real_rollback = segment_set.atomic_write_bytes, store_module._rollback_quietly
        attempts: list[Path] = []

        def first_write_fails(path: Path, data: Any) -> None:
            attempts.append(path)
            if len(attempts) == 1:
                raise OSError("no space left on device")
            real_write(path, data)

        def rollback_then_another_write(session: Session) -> None:
            real_rollback(session)
            if len(attempts) == 1:
                other.apply([write_for("other", "written by another process meanwhile")])

        monkeypatch.setattr("qa_system.storage.segment_set.atomic_write_bytes", first_write_fails)
        monkeypatch.setattr(store_module, "_rollback_quietly", rollback_then_another_write)
        generation = filled.generation
        try:
            with pytest.raises(StoreError, match="no space left"):
                filled.apply([write_for("new", "new document text")])
        finally:
            monkeypatch.undo()
            other.close()
        sources = {d.source for d in filled.list_documents()}
        assert "new" not in sources and "other" in sources
        report = filled.check()
        assert report.ok, report.summary()
        assert filled.apply([write_for("new", "new document text")]).generation == generation + 2

    def test_a_failed_merge_does_not_remove_another_writers_segment(
        self, filled: Store, store_env: StoreEnv, monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # The merged file is in place when the swap fails, before its commit; once the swap is
        # rolled back, another process's write is given the same segment id (SQLite reuses a
        # rolled-back one). Cleaning up after the merge must leave that writer's file alone.
        from qa_system.storage import compaction

        filled.apply([write_for("second", "a second segment to merge with")])
        other = store_env.open(auto_compact=False)
        real_rollback = Session.rollback
        failures: list[Path] = []

        def sync_fails(directory: Path) -> None:
            failures.append(directory)
            raise OSError("disk I/O error")

        def rollback_then_another_write(session: Session) -> None:
            real_rollback(session)
            if len(failures) == 1:
                failures.append(Path("written"))
                other.apply([write_for("other", "written by another process meanwhile")])

        monkeypatch.setattr(compaction, "fsync_directory", sync_fails)
        monkeypatch.setattr(Session, "rollback", rollback_then_another_write)
        try:
            with pytest.raises(OSError, match="disk I/O error"):
                filled.compact(force=True)
        finally:
            monkeypatch.undo()
            other.close()
        assert len(failures) == 2  # the other write did run in between
        report = filled.check()
        assert report.ok, report.summary()
        assert "other" in {d.source for d in filled.list_documents()}

    def test_a_store_from_before_segments_is_converted_on_open(self, store_env: StoreEnv) -> None:
        with store_env.open() as store:
            store.apply(corpus(8))
            store.delete(document_ids=[corpus(8)[0].document.id])
            queries = np.vstack([w.vectors[1] for w in corpus(8)])
            results, stats = store.search(queries, 5), store.stats()
        store_env.make_legacy("0002")
        with store_env.open() as store:
            assert store.check().ok and store.stats().vectors == stats.vectors
            assert result_ids(store.search(queries, 5)) == result_ids(results)
            assert store.apply([write_for("after", "written after the conversion")]).added == 1
        names = sorted(p.name for p in segment_set.index_directory(store_env.directory).iterdir())
        assert len(names) == 2 and all(n.startswith("seg-") for n in names), names

    def test_a_commit_that_raised_but_landed_is_recognised_by_its_segment(
        self, filled: Store, store_env: StoreEnv, monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        real_commit = Session.commit

        def commit_then_lose_the_connection(self: Session) -> None:
            real_commit(self)
            raise OperationalError("COMMIT", {}, Exception("connection lost after the commit"))

        monkeypatch.setattr(Session, "commit", commit_then_lose_the_connection)
        result = filled.apply([write_for("landed", "this write landed before the error")])
        monkeypatch.undo()
        assert result.added == 1 and filled.check().ok
        found = filled.search(write_for("landed", "this write landed before the error").vectors[:1], 1)[0]
        assert found[0].source == "landed"
        with store_env.open() as reopened:
            assert reopened.check().ok and reopened.stats().documents == 7

    def test_reopen_after_a_crash_removes_stray_files(self, filled: Store, store_env: StoreEnv) -> None:
        queries = np.vstack([w.vectors[0] for w in corpus(6)])
        results = filled.search(queries, 5)
        generation, live = filled.stats().generation, store_env.only_segment()
        filled.close()
        index_dir = live.parent
        # A crash after writing the next segment's file but before the commit, one during an
        # atomic write, one in the middle of a merge (its builder gone), and an index file of
        # the format before segments left behind:
        stray = segment_set.segment_path(store_env.directory, 10**6)
        shutil.copy(live, stray)
        (index_dir / ".seg-00000099.faiss.abc.tmp").write_bytes(b"partial")
        (index_dir / f"{segment_set.BUILD_PREFIX}dead.faiss").write_bytes(b"half a merge")
        (index_dir / "vectors-00000003.faiss").write_bytes(b"old format")

        reopened = store_env.open()
        assert reopened.stats().generation == generation and reopened.check().ok
        assert result_ids(reopened.search(queries, 5)) == result_ids(results)
        assert sorted(p.name for p in index_dir.iterdir()) == [live.name]
        reopened.close()

    # -------------------------------------------------------------- corruption/repair

    def _corrupt_and_repair(self, store: Store, store_env: StoreEnv, corrupt: Any, expect: str, *,
                            fails_open: bool = True) -> None:
        queries = np.vstack([w.vectors[1] for w in corpus(6)])
        results = store.search(queries, 5)
        corrupt(store_env.only_segment())
        report = store.check()
        assert not report.ok and expect in repr(report)
        store.close()
        if fails_open:
            with pytest.raises(StoreInconsistentError, match="check --repair"):
                store_env.open()
        damaged = store_env.open(verify=False)
        embedder = FakeEmbedder()
        repaired = damaged.repair(embedder)
        assert repaired.ok, repaired.summary()
        assert embedder.encoded <= damaged.stats().chunks
        assert result_ids(damaged.search(queries, 5)) == result_ids(results)
        damaged.close()
        reopened = store_env.open()
        assert reopened.check().ok and result_ids(reopened.search(queries, 5)) == result_ids(results)
        reopened.close()

    def test_missing_vectors_are_detected_and_repaired(self, filled: Store, store_env: StoreEnv) -> None:
        def drop_vectors(path: Path) -> None:
            ids, vectors = filled._snapshot().segments[0].contents()  # noqa: SLF001
            store_env.rewrite_segment(path, ids[3:], vectors[3:])

        self._corrupt_and_repair(filled, store_env, drop_vectors, "missing_vectors=(")

    def test_orphan_vectors_are_detected_and_repaired(self, filled: Store, store_env: StoreEnv) -> None:
        def add_orphans(path: Path) -> None:
            ids, vectors = filled._snapshot().segments[0].contents()  # noqa: SLF001
            extra = np.asarray([10**9, 10**9 + 1], dtype=np.int64)
            orphans = EMBEDDER.encode(["o1", "o2"])
            store_env.rewrite_segment(path, np.concatenate([ids, extra]), np.vstack([vectors, orphans]))

        self._corrupt_and_repair(filled, store_env, add_orphans, "orphan_vectors=(1000000000, 1000000001)")

    def test_deleted_index_file_is_detected_and_rebuilt(self, filled: Store, store_env: StoreEnv) -> None:
        self._corrupt_and_repair(filled, store_env, lambda path: path.unlink(), "cannot read")

    def test_truncated_index_file_is_detected_on_open_and_rebuilt(self, filled: Store, store_env: StoreEnv) -> None:
        def truncate(path: Path) -> None:
            path.write_bytes(path.read_bytes()[:-40])

        self._corrupt_and_repair(filled, store_env, truncate, "bytes, the store recorded")

    def test_tampered_index_file_is_detected_by_check_and_rebuilt(self, filled: Store, store_env: StoreEnv) -> None:
        def flip(path: Path) -> None:  # same size: only the digest, which check() reads, tells
            data = bytearray(path.read_bytes())
            data[-5] ^= 0xFF
            path.write_bytes(bytes(data))

        self._corrupt_and_repair(filled, store_env, flip, "sha256", fails_open=False)

    def test_unloadable_index_blocks_writes_until_repaired(self, filled: Store, store_env: StoreEnv) -> None:
        store_env.only_segment().unlink()
        filled.close()
        damaged = store_env.open(verify=False)
        with pytest.raises(StoreInconsistentError, match="check --repair"):
            damaged.apply([write_for("new", "text")])
        with pytest.raises(IndexMismatchError):
            damaged.repair(FakeEmbedder(model_name="other"))
        assert damaged.repair(FakeEmbedder()).ok
        assert damaged.apply([write_for("new", "text")]).added == 1
        damaged.close()

    # ------------------------------------------------------- concurrency and processes

    def test_concurrent_searches_see_complete_generations(self, store: Store) -> None:
        store.apply(corpus(8, prefix="g0", gen=0))
        errors: list[BaseException] = []
        seen: set[int] = set()
        done = threading.Event()

        def reader(seed: int) -> None:
            rng = np.random.default_rng(seed)
            try:
                while not done.is_set():
                    queries = rng.standard_normal((2, DIM)).astype(np.float32)
                    for row in store.search(queries, 5):
                        generations = {p.metadata["gen"] for p in row}
                        if len(row) != 5 or len(generations) != 1:
                            raise AssertionError(f"incomplete generation: {row}")
                        seen.update(int(g) for g in generations)
            except BaseException as e:  # reported below
                errors.append(e)

        readers = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
        for thread in readers:
            thread.start()
        try:
            for generation in range(1, 9):
                previous = [w.document.id for w in corpus(8, prefix=f"g{generation - 1}")]
                store.apply(corpus(8, prefix=f"g{generation}", gen=generation), previous)
        finally:
            done.set()
            for thread in readers:
                thread.join()
        assert not errors, errors[0]
        assert len(seen) > 1 and store.check().ok

    def test_refresh_picks_up_another_instances_write(self, filled: Store, store_env: StoreEnv) -> None:
        other = store_env.open()
        try:
            new = write_for("elsewhere", "written by another process")
            other.apply([new])
            assert filled.generation == other.generation - 1
            assert filled.refresh() is True and filled.refresh() is False
            assert filled.search(new.vectors[:1], 1)[0][0].source == "elsewhere"
            # A stale writer first catches up with the committed generation, then builds on it.
            other.apply([write_for("second", "another write by the other instance")])
            filled.apply([write_for("third", "and one by the first instance")])
            other.refresh()
            for instance in (filled, other):
                stats = instance.stats()
                assert stats.documents == 9 and stats.vectors == stats.chunks and instance.check().ok
        finally:
            other.close()

    def test_closed_store_refuses_work(self, store_env: StoreEnv) -> None:
        with store_env.open() as store:
            assert store.stats().documents == 0
        with pytest.raises(StoreError, match="closed"):
            store.search(vector("q"), 1)
        with pytest.raises(StoreError, match="no store"):
            Store.open(store_env.directory / "absent", embedding_model=MODEL, dimension=DIM,
                       db_url=store_env.db_url, create=False)

    # ------------------------------------------------------------------- re-embedding

    def _chunk_ids(self, store: Store) -> list[int]:
        with store._reads() as session:  # noqa: SLF001
            return repo.all_chunk_ids(session).tolist()

    def _assert_reindexed(self, store: Store, embedder: FakeEmbedder, gone: Sequence[DocumentWrite] = (),
                          kept: Sequence[DocumentWrite] = ()) -> None:
        """The store uses ``embedder``'s model: a search with its vector of a chunk text finds
        that chunk first, for ``kept`` documents; ``gone`` ones are not found."""
        stats = store.stats()
        assert (stats.embedding_model, stats.dimension) == (embedder.model_name, embedder.dimension)
        assert stats.vectors == stats.chunks and store.check().ok, store.check().summary()
        for write in kept:
            for chunk in write.chunks:
                best = store.search(embedder.encode([chunk.text]), 1)[0][0]
                assert best.text == chunk.text and best.score == pytest.approx(1.0, abs=1e-5)
        sources = {w.document.source for w in gone}
        texts = np.vstack([embedder.encode([c.text for c in w.chunks]) for w in gone]) if gone else None
        if texts is not None:
            assert not {p.source for row in store.search(texts, 50) for p in row} & sources
        assert not (segment_set.index_directory(store.directory) / reindex.WORK_DIR).exists()

    def test_reindex_changes_the_model_and_dimension(self, store: Store, store_env: StoreEnv) -> None:
        writes = corpus(12)
        for start in range(0, 12, 4):  # three segments, and tombstones
            store.apply(writes[start:start + 4])
        store.delete(document_ids=[writes[5].document.id])
        old_files = {p.name for p in store_env.segment_files()}
        generation, chunks = store.generation, store.stats().chunks
        events: list[reindex.ReindexProgress] = []
        result = store.reindex(OTHER, batch_size=7, progress=events.append)
        assert (result.model, result.dimension, result.previous_model, result.previous_dimension) == (
            OTHER_MODEL, OTHER_DIM, MODEL, DIM)
        assert (result.chunks, result.embedded, result.resumed, result.dropped) == (chunks, chunks, 0, 0)
        assert result.generation == store.generation == generation + 1 and "re-embedded" in result.summary()
        assert [e.done for e in events if e.stage == "embedding"] == sorted(
            {min(n, chunks) for n in range(0, chunks + 7, 7)})
        assert events[-1] == reindex.ReindexProgress("swapping", chunks, chunks)
        stats = store.stats()
        assert (stats.tombstones, stats.segments) == (0, result.segments) and result.segments >= 1
        assert not old_files & {p.name for p in store_env.segment_files()}
        kept = [w for i, w in enumerate(writes) if i != 5]
        self._assert_reindexed(store, OTHER, gone=[writes[5]], kept=kept)
        after = reembedded(write_for("after", "written with the new model"), OTHER)
        assert store.apply([after]).added == 1
        kept.append(after)
        store.close()
        with pytest.raises(IndexMismatchError, match=f"qa-system reindex --model {MODEL}"):
            store_env.open()
        reopened = store_env.open(embedding_model=OTHER_MODEL, dimension=OTHER_DIM)
        self._assert_reindexed(reopened, OTHER, kept=kept)
        reopened.close()

    def test_reindex_of_an_empty_store_and_to_the_same_model(self, store: Store, store_env: StoreEnv) -> None:
        assert store.reindex(OTHER).chunks == 0
        assert (store.embedding_model, store.dimension, store.stats().segments) == (OTHER_MODEL, OTHER_DIM, 0)
        writes = [reembedded(w, OTHER) for w in corpus(3)]
        store.apply(writes)
        again = FakeEmbedder(OTHER_MODEL, OTHER_DIM)
        result = store.reindex(again)  # the same model: every chunk embedded again, nothing else changes
        assert again.encoded == result.embedded == result.chunks == store.stats().chunks
        self._assert_reindexed(store, OTHER, kept=writes)

    def test_an_interrupted_reindex_leaves_the_old_store_and_resumes(
        self, store: Store, store_env: StoreEnv,
    ) -> None:
        writes = corpus(10)
        store.apply(writes)
        queries = np.vstack([w.vectors[0] for w in writes])
        results, before = store.search(queries, 5), store.stats()
        first_ten = self._chunk_ids(store)[:10]
        with pytest.raises(RuntimeError, match="the embedder broke"):
            store.reindex(FailingEmbedder(after_calls=2), batch_size=5)
        # the old store, untouched and usable with the old model, in this process and others
        assert (store.embedding_model, store.dimension) == (MODEL, DIM) and store.check().ok
        assert result_ids(store.search(queries, 5)) == result_ids(results)
        assert store.stats() == before
        with store_env.open() as other:
            assert other.check().ok and result_ids(other.search(queries, 5)) == result_ids(results)
        if store_env.pgvector:  # two batches saved in the database
            assert saved_reindex_vectors(store_env) == 10
        else:  # two parts saved in the work folder
            work = segment_set.index_directory(store_env.directory) / reindex.WORK_DIR
            assert len(list(work.glob(f"{reindex.PART_PREFIX}*"))) == 2
        # writes and deletes meanwhile: a document re-embedded before the interruption, one not
        deleted = [writes[0], writes[-1]]
        added = corpus(3, prefix="added")
        store.apply(added, [w.document.id for w in deleted])
        assert store.generation == before.generation + 1 and store.check().ok

        now = self._chunk_ids(store)
        still_there = len(set(first_ten) & set(now))
        assert still_there < 10  # some of the re-embedded chunks were deleted
        resumed = FakeEmbedder(OTHER_MODEL, OTHER_DIM)
        result = store.reindex(resumed, batch_size=5)
        assert resumed.encoded == result.embedded == len(now) - still_there  # only the remaining chunks
        assert (result.resumed, result.dropped, result.chunks) == (10, 10 - still_there, len(now))
        kept = [w for w in writes if w not in deleted] + added
        self._assert_reindexed(store, OTHER, gone=deleted, kept=kept)

    @pytest.mark.parametrize("when", ["embedding", "swap"])
    def test_a_killed_reindex_leaves_the_old_store_and_resumes(self, filled: Store, store_env: StoreEnv,
                                                               when: str) -> None:
        queries = np.vstack([w.vectors[0] for w in corpus(6)])
        results, before = filled.search(queries, 5), filled.stats()
        names = {p.name for p in store_env.segment_files()}
        done = subprocess.run([sys.executable, "-c", KILLED_REINDEX, str(store_env.directory),
                               store_env.db_url or "", when], capture_output=True, text=True, timeout=120,
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == -9, done.stderr
        if when == "swap" and not store_env.pgvector:  # its new segment file is in place, but not committed
            assert len(store_env.segment_files()) == len(names) + 1
        filled.close()
        with store_env.open() as reopened:  # the old model; the left-over file is swept
            assert reopened.stats() == before and reopened.check().ok
            assert result_ids(reopened.search(queries, 5)) == result_ids(results)
            assert {p.name for p in store_env.segment_files()} == names
            resumed = FakeEmbedder(OTHER_MODEL, OTHER_DIM)
            result = reopened.reindex(resumed, batch_size=5)
            saved = before.chunks if when == "swap" else 10  # two batches saved before the kill
            assert (result.resumed, result.embedded, resumed.encoded) == (saved, before.chunks - saved,
                                                                         before.chunks - saved)
            self._assert_reindexed(reopened, OTHER, kept=corpus(6))

    def test_a_reindex_with_another_model_starts_over(self, filled: Store) -> None:
        with pytest.raises(RuntimeError):
            filled.reindex(FailingEmbedder(after_calls=1), batch_size=4)
        third = FakeEmbedder("third-model", 8)
        result = filled.reindex(third, batch_size=4)
        assert result.discarded == OTHER_MODEL and result.resumed == 0
        assert third.encoded == result.embedded == filled.stats().chunks
        self._assert_reindexed(filled, third, kept=corpus(6))

    @pytest.mark.parametrize("many_before_the_swap", [False, True], ids=["under-the-lock", "another-round"])
    def test_writes_during_the_build_and_before_the_swap_are_honoured(
        self, filled: Store, monkeypatch: pytest.MonkeyPatch, many_before_the_swap: bool,
    ) -> None:
        writes = corpus(6)
        during_build = corpus(1, prefix="build")  # added after the scan, at most a batch
        many = corpus(5, prefix="many")  # more chunks than a batch, added just before the swap
        original_swap = reindex.Reindexer._swap
        swaps: list[bool] = []
        built: list[bool] = []

        def swap_after_writes(self: Any, parts: Any, *, last_round: bool) -> Any:
            if not swaps:  # deleted after the build: a tombstone in a new segment
                filled.delete(document_ids=[writes[0].document.id])
                if many_before_the_swap:
                    filled.apply(many)
            swaps.append(last_round)
            return original_swap(self, parts, last_round=last_round)

        def on_event(event: reindex.ReindexProgress) -> None:
            if event.stage == "building" and not built:
                built.append(True)  # before the build: the deleted chunks are left out of it
                filled.apply(during_build, [writes[1].document.id])

        monkeypatch.setattr(reindex.Reindexer, "_swap", swap_after_writes)
        embedder = FakeEmbedder(OTHER_MODEL, OTHER_DIM)
        result = filled.reindex(embedder, batch_size=8, progress=on_event)
        assert len(swaps) == (2 if many_before_the_swap else 1)
        assert result.dropped == len(writes[0].chunks) + len(writes[1].chunks)
        assert result.chunks == filled.stats().chunks
        assert embedder.encoded == result.embedded == result.chunks + result.dropped  # each chunk once
        assert filled.stats().tombstones == len(writes[0].chunks)
        kept = writes[2:] + during_build + (many if many_before_the_swap else [])
        self._assert_reindexed(filled, OTHER, gone=writes[:2], kept=kept)

    def test_a_failed_swap_leaves_the_old_store_and_a_rerun_finishes(
        self, filled: Store, store_env: StoreEnv, monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        queries = np.vstack([w.vectors[0] for w in corpus(6)])
        results, before = filled.search(queries, 5), filled.stats()
        names = {p.name for p in store_env.segment_files()}

        def broken_commit(self: Session) -> None:
            raise OperationalError("COMMIT", {}, Exception("connection lost"))

        monkeypatch.setattr(Session, "commit", broken_commit)
        with pytest.raises(StoreError, match="connection lost"):
            filled.reindex(FakeEmbedder(OTHER_MODEL, OTHER_DIM), batch_size=4)
        monkeypatch.undo()
        self._assert_unchanged(filled, store_env, before, queries, results, names)
        assert filled.embedding_model == MODEL
        again = FakeEmbedder(OTHER_MODEL, OTHER_DIM)
        result = filled.reindex(again, batch_size=4)
        assert again.encoded == result.embedded == 0 and result.resumed == before.chunks
        self._assert_reindexed(filled, OTHER, kept=corpus(6))

    def test_one_reindex_at_a_time_and_stale_instances_are_refused(
        self, filled: Store, store_env: StoreEnv,
    ) -> None:
        work = segment_set.index_directory(store_env.directory) / reindex.WORK_DIR
        with reindex.WorkFolder(work), pytest.raises(StoreError, match="another reindex"):
            filled.reindex(FakeEmbedder(OTHER_MODEL, OTHER_DIM))
        stale = store_env.open()  # opened with the old model by another process, say
        try:
            filled.reindex(FakeEmbedder(OTHER_MODEL, OTHER_DIM))
            with pytest.raises(IndexMismatchError, match=f"now uses '{OTHER_MODEL}'"):
                stale.apply([write_for("stale", "a write with the old model's vectors")])
            with pytest.raises(IndexMismatchError, match="re-embedded"):
                stale.refresh()
        finally:
            stale.close()
        self._assert_reindexed(filled, OTHER, kept=corpus(6))

    # ---------------------------------------------------------------------- feedback

    def test_feedback_is_checked_stored_and_marked_stale_when_its_document_changes(self, store: Store) -> None:
        text = "Plus costs 8 dollars per month. Pro costs 15 dollars per month."
        store.apply([write_for("plans", text)])
        doc_id = store.find_documents({"source": "plans"})[0]
        span = (text.index("8 dollars"), text.index("8 dollars") + len("8 dollars"))
        right = store.add_feedback(FeedbackInput("How much is Plus?", doc_id, "right", *span, text="8 dollars"))
        here = store.add_feedback(FeedbackInput("How much is Pro?", doc_id, "here", 42, 52,
                                                passage_start=32, passage_end=len(text)))
        assert (right.text, right.stale, here.passage_text, here.text) == (
            "8 dollars", False, text[32:], "15 dollars")
        # the passage, when not given, is the stored chunks (24 characters here) the span lies in
        assert (right.passage_start, right.passage_end) == (0, 24)
        listed = store.list_feedback()
        assert [f.id for f in listed] == [here.id, right.id] and not any(f.stale for f in listed)
        assert store.list_feedback(limit=1, offset=1)[0].question == "How much is Plus?"

        store.apply([write_for("plans", text.replace("8 dollars", "9 dollars"))])  # the document changes
        new_id = store.find_documents({"source": "plans"})[0]
        after = store.list_feedback()
        assert all(f.stale and f.current_document_id == new_id for f in after)
        assert after[1].text == "8 dollars" and after[1].document_id == doc_id  # kept as it was
        store.delete(sources=["plans"])
        assert all(f.stale and f.current_document_id is None for f in store.list_feedback())

    @pytest.mark.parametrize("item, error, words", [
        (dict(start=5, end=5), InputError, "not a non-empty span"),
        (dict(start=0, end=999), InputError, "not a non-empty span"),
        (dict(start=0, end=4, text="Nope"), DocumentChangedError, "changed since"),
        (dict(start=0, end=4, passage_start=2, passage_end=10), InputError, "hold the span"),
        (dict(start=0, end=4, passage_start=0), InputError, "both passage_start and passage_end"),
        (dict(start=0, end=4, kind="maybe"), InputError, "kind must be one of"),
        (dict(start=0, end=4, document_id="0" * 32), DocumentNotFoundError, "no such document"),
    ])
    def test_bad_feedback_is_refused_with_the_reason(self, store: Store, item: dict[str, Any],
                                                     error: type[Exception], words: str) -> None:
        store.apply([write_for("plans", "Plus costs 8 dollars per month.")])
        values = {"question": "q", "document_id": store.find_documents({"source": "plans"})[0], "kind": "right",
                  **item}
        with pytest.raises(error, match=words):
            store.add_feedback(FeedbackInput(**values))
        assert store.list_feedback() == []

    def test_metadata_choices_are_the_distinct_values_within_a_filter(self, store: Store) -> None:
        store.apply(corpus(3, "a", team="acme", year=2024) + corpus(2, "b", team="globex", year=2023)
                    + [write_for("long", "a long value", {"note": "x" * 100})])
        assert store.metadata_choices() == [("team", "acme"), ("team", "globex"), ("year", 2023), ("year", 2024)]
        assert store.metadata_choices({"team": "acme"}) == [("team", "acme"), ("year", 2024)]
        assert store.metadata_choices({"team": []}) == []
