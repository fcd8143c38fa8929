"""Hybrid (dense + full-text) search: the contract every store passes, on SQLite and PostgreSQL.

Mixed into the store test classes of ``tests/integration/test_store.py`` beside
``StoreContract``; the vectors come from the suite's fake hash embedder, so only the full-text
part can find a passage by its words.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from qa_system.errors import InputError
from qa_system.storage import Store
from tests.store_suite import EMBEDDER, StoreEnv, corpus, vector, write_for

CODE_TEXT = "Error ZQX-913 means the upload quota of the workspace is used up."
QUESTION = "What does the error ZQX-913 mean?"


def code_doc(**metadata: Any) -> Any:
    return write_for("codes", CODE_TEXT, metadata, size=200)  # one chunk


class LexicalSearchContract:
    """Subclasses provide the ``store`` and ``store_env`` fixtures of ``StoreContract``."""

    @pytest.fixture
    def coded(self, store: Store) -> Store:
        store.apply(corpus(60, colour="blue") + [code_doc(colour="red")])
        return store

    def test_hybrid_finds_a_passage_by_its_words_with_the_fused_score(self, coded: Store) -> None:
        query = vector(QUESTION)
        dense = coded.search(query, 5)[0]
        assert "ZQX-913" not in " ".join(p.text for p in dense)  # the fake vectors cannot find it
        weight = 0.4
        hits = coded.search(query, 5, query_texts=[QUESTION], lexical_weight=weight)[0]
        assert hits[0].text == CODE_TEXT
        # the best full-text rank counts 1: fused = (1 - w) x cosine + w
        cosine = float(EMBEDDER.encode([CODE_TEXT])[0] @ (query[0] / np.linalg.norm(query[0])))
        assert hits[0].score == pytest.approx((1 - weight) * cosine + weight, abs=1e-5)
        assert [p.score for p in hits] == sorted((p.score for p in hits), reverse=True)

    def test_weight_zero_or_no_words_is_the_vector_search(self, coded: Store) -> None:
        query = vector(QUESTION)
        dense = coded.search(query, 7)[0]
        for texts, weight in (([QUESTION], 0.0), (["what is the"], 0.5), (["?!"], 0.5)):
            hybrid = coded.search(query, 7, query_texts=texts, lexical_weight=weight)[0]
            assert [p.chunk_id for p in hybrid] == [p.chunk_id for p in dense]
            assert [p.score for p in hybrid] == pytest.approx([p.score for p in dense], abs=1e-6)

    def test_full_text_syntax_in_a_question_is_only_words(self, coded: Store) -> None:
        for question in ('ZQX-913" OR NEAR(quota', "ZQX:913 AND (quota) | !upload* & 'x'", "zqx^913 -"):
            hits = coded.search(vector(question), 3, query_texts=[question], lexical_weight=0.5)[0]
            assert hits[0].text == CODE_TEXT

    def test_filters_apply_to_the_full_text_side(self, coded: Store) -> None:
        hits = coded.search(vector(QUESTION), 5, query_texts=[QUESTION], lexical_weight=0.9,
                            filters={"colour": "blue"})[0]
        assert len(hits) == 5 and all(p.metadata["colour"] == "blue" for p in hits)
        red = coded.search(vector(QUESTION), 5, query_texts=[QUESTION], lexical_weight=0.9,
                           filters={"colour": ["red", "green"]})[0]
        assert [p.text for p in red] == [CODE_TEXT]

    def test_deleted_and_replaced_chunks_leave_the_full_text_index(self, coded: Store) -> None:
        query, texts = vector(QUESTION), [QUESTION]
        coded.delete(sources=["codes"])
        hits = coded.search(query, 5, query_texts=texts, lexical_weight=0.9)[0]
        assert all("ZQX" not in p.text for p in hits)
        replaced = "Error ZQX-914 is new; ZQX-913 was retired in May."
        coded.apply([write_for("codes", replaced, size=200)])
        hits = coded.search(query, 5, query_texts=texts, lexical_weight=0.9)[0]
        assert hits[0].text == replaced and all(p.text != CODE_TEXT for p in hits)
        assert coded.check().ok

    def test_one_row_per_question_and_bad_arguments(self, coded: Store) -> None:
        questions = [QUESTION, "topic 3 and more"]
        rows = coded.search(EMBEDDER.encode(questions), 4, query_texts=questions, lexical_weight=0.5)
        assert len(rows) == 2 and rows[0][0].text == CODE_TEXT and "topic 3" in rows[1][0].text
        with pytest.raises(InputError, match="query texts"):
            coded.search(EMBEDDER.encode(questions), 4, query_texts=[QUESTION], lexical_weight=0.5)
        for bad in (-0.1, 1.5, float("nan"), True):
            with pytest.raises(InputError, match="lexical_weight"):
                coded.search(vector(QUESTION), 4, query_texts=[QUESTION], lexical_weight=bad)

    def test_a_store_from_before_full_text_search_is_indexed_on_open(self, store_env: StoreEnv) -> None:
        with store_env.open() as store:
            store.apply(corpus(10) + [code_doc()])
        store_env.make_legacy("0001")  # the store as it was before migration 0002
        with store_env.open() as store:  # opening migrates to head and fills the index
            hits = store.search(vector(QUESTION), 3, query_texts=[QUESTION], lexical_weight=0.5)[0]
            assert hits[0].text == CODE_TEXT

    def test_a_damaged_sqlite_full_text_index_is_reported_and_repaired(self, coded: Store) -> None:
        if not coded.db_url.startswith("sqlite"):
            pytest.skip("PostgreSQL maintains its full-text index itself")
        with coded._writes() as session:  # noqa: SLF001 - damage it the way a crash could
            session.execute(text("INSERT INTO chunks_fts(chunks_fts) VALUES ('delete-all')"))
            session.commit()
        report = coded.check()
        assert not report.ok and any("full-text" in p for p in report.manifest_problems)
        assert coded.repair(EMBEDDER).ok
        hits = coded.search(vector(QUESTION), 3, query_texts=[QUESTION], lexical_weight=0.5)[0]
        assert hits[0].text == CODE_TEXT
