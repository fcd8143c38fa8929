"""The synthetic corpus of benchmarks/scale.py: what the benchmark's figures rely on (chunk
offsets, exact passage counts, determinism, exact neighbours and recall)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks._scale_data import (
    BLOCK_DOCUMENTS,
    CHUNKS_PER_DOCUMENT,
    DIMENSION,
    FUNCTION_WORDS,
    MADE_UP_WORDS,
    TENANTS,
    WORDS_PER_CHUNK,
    Corpus,
    Neighbours,
    document_of_source,
    exact_neighbours,
    recall_at,
)

PASSAGES = 2 * BLOCK_DOCUMENTS * CHUNKS_PER_DOCUMENT + 2  # two full blocks and a last document of 2 chunks


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(PASSAGES, seed=7)


def test_counts_and_blocks_add_up_to_the_passages_asked_for(corpus: Corpus) -> None:
    assert corpus.documents == 2 * BLOCK_DOCUMENTS + 1 and corpus.blocks == 3
    assert corpus.chunk_count(corpus.documents - 1) == 2
    assert sum(corpus.chunk_count(i) for i in range(corpus.documents)) == PASSAGES
    spans = [corpus.block_passages(b) for b in range(corpus.blocks)]
    assert spans[0].start == 0 and spans[-1].stop == PASSAGES
    assert all(a.stop == b.start for a, b in zip(spans, spans[1:], strict=False))
    vectors, clusters = corpus.block_vectors(2)
    assert vectors.shape == (2, DIMENSION) and vectors.dtype == np.float32 and clusters.shape == (2,)
    with pytest.raises(IndexError):
        corpus.chunk_count(corpus.documents)


def test_chunks_are_slices_of_the_document_text(corpus: Corpus) -> None:
    for i in (0, 1, 999, 1000, corpus.documents - 1):
        doc = corpus.document(i)
        assert document_of_source(doc.source) == i
        for start, chunk in zip(doc.starts, doc.chunk_texts, strict=True):
            assert doc.text[start:start + len(chunk)] == chunk
            assert WORDS_PER_CHUNK[0] <= len(chunk.split(" ")) <= WORDS_PER_CHUNK[1]
        assert doc.tenant.startswith("t") and 0 <= int(doc.tenant[1:]) < TENANTS
        assert doc.half in ("h0", "h1")


def test_generation_is_deterministic_and_independent_of_order(corpus: Corpus) -> None:
    later = corpus.document(1500)
    fresh = Corpus(PASSAGES, seed=7)
    assert fresh.document(1500) == later
    assert np.array_equal(fresh.block_vectors(1)[0], corpus.block_vectors(1)[0])
    assert Corpus(PASSAGES, seed=8).document(1500).text != later.text
    # an extra document (writes) keeps the first chunks of the same stream
    extra = corpus.document(corpus.documents + 5, chunks=1)
    assert extra.chunk_texts == Corpus(PASSAGES, seed=7).document(corpus.documents + 5, chunks=3).chunk_texts[:1]


def test_vocabulary_is_zipf_with_function_words_first(corpus: Corpus) -> None:
    words = corpus.vocabulary
    assert words[:len(FUNCTION_WORDS)] == FUNCTION_WORDS
    assert len(words) == len(FUNCTION_WORDS) + MADE_UP_WORDS == len(set(words))
    assert all(w.isalpha() and w.islower() for w in words)
    counts: dict[str, int] = {}
    for i in range(200):
        for w in corpus.document(i).text.split(" "):
            counts[w] = counts.get(w, 0) + 1
    assert counts["the"] > counts.get(words[50], 0) > counts.get(words[5000], 0)


def test_queries_come_from_their_passages(corpus: Corpus) -> None:
    queries = corpus.queries(30)
    assert len(set(queries.passages.tolist())) == 30
    assert np.allclose(np.linalg.norm(queries.vectors, axis=1), 1.0, atol=1e-5)
    for p, text, tenant in zip(queries.passages.tolist(), queries.texts, queries.tenants, strict=True):
        doc = corpus.document(p // CHUNKS_PER_DOCUMENT)
        assert text in doc.chunk_texts[p % CHUNKS_PER_DOCUMENT] and 5 <= len(text.split(" ")) <= 8
        assert tenant == doc.tenant


def test_exact_neighbours_match_brute_force(corpus: Corpus) -> None:
    queries = corpus.queries(20)
    truth = exact_neighbours(corpus, queries, 12)
    vectors = np.concatenate([corpus.block_vectors(b)[0] for b in range(corpus.blocks)])
    tenants = np.concatenate([corpus.passage_metadata(b)[0] for b in range(corpus.blocks)])
    sims = queries.vectors @ vectors.T
    assert np.array_equal(truth.neighbours["all"].ids[:, 0], queries.passages)  # a query's passage is first
    for row in range(20):
        assert truth.neighbours["all"].ids[row].tolist() == np.argsort(-sims[row])[:12].tolist()
        allowed = np.flatnonzero(tenants == int(queries.tenants[row][1:]))
        expected = allowed[np.argsort(-sims[row, allowed])][:12]
        got = truth.neighbours["tenant"].ids[row]
        assert got[got >= 0].tolist() == expected.tolist()
    assert 0.0 <= truth.foreign_top10 <= 1.0 and truth.own_centre > 0.99


def test_recall_counts_hits_and_ties_at_the_kth() -> None:
    exact = Neighbours(ids=np.array([[5, 6, 7, 8], [1, 2, -1, -1]]),
                       scores=np.array([[0.9, 0.8, 0.7, 0.7], [0.5, 0.4, np.nan, np.nan]], dtype=np.float32))
    assert recall_at([[5, 6], [1, 2]], exact, 2) == 1.0
    assert recall_at([[5, 9], [2, 3]], exact, 2) == 0.5
    assert recall_at([[5, 6, 8], [1]], exact, 3) == pytest.approx((1.0 + 0.5) / 2)  # 8 ties with 7
