"""The re-ranker: its settings, the ordering it gives (pure, and with a real tiny cross-encoder),
the training candidates and scores, and a clear error on a folder that holds no cross-encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa_system.config import Settings, load_settings
from qa_system.errors import ConfigError, InputError
from qa_system.retrieval.rerank import (
    RERANKER_FILE,
    CrossEncoder,
    RerankingRetriever,
    rerank_order,
    rerank_passages,
)
from qa_system.training.reranker_train import candidates_of, gold_scores
from qa_system.training.retriever_data import Pair
from qa_system.types import Passage


def passage(i: int, score: float, text: str | None = None) -> Passage:
    return Passage(chunk_id=i, document_id=f"d{i}", source=f"s{i}", title=None, text=text or f"passage {i}",
                   start=0, end=9, score=score, dense_score=score / 2)


# -- settings -----------------------------------------------------------------------------------

def test_reranking_is_off_by_default_with_top_n_10() -> None:
    s = Settings()
    assert s.reranker is None and s.rerank_top_n == 10


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_SYSTEM_RERANKER", "/models/reranker")
    monkeypatch.setenv("QA_SYSTEM_RERANK_TOP_N", "20")
    s = load_settings()
    assert s.reranker == "/models/reranker" and s.rerank_top_n == 20


@pytest.mark.parametrize("raw", ["0", "-3"])
def test_top_n_must_be_positive(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("QA_SYSTEM_RERANK_TOP_N", raw)
    with pytest.raises(ConfigError, match="rerank_top_n must be positive"):
        load_settings()


def test_top_n_must_be_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_SYSTEM_RERANK_TOP_N", "ten")
    with pytest.raises(ConfigError, match="QA_SYSTEM_RERANK_TOP_N"):
        load_settings()


def test_a_blank_reranker_is_refused() -> None:
    with pytest.raises(ConfigError, match="reranker must be a model folder"):
        Settings().with_overrides(reranker="  ")


# -- the ordering (pure) ------------------------------------------------------------------------

def test_order_follows_the_rerank_score_ties_keep_the_retrievers_order() -> None:
    assert rerank_order([0.1, 2.0, 0.1, -1.0], [0.9, 0.8, 0.7, 0.6]) == [1, 0, 2, 3]


def test_retrieval_weight_fuses_the_scores() -> None:
    rerank, retrieval = [1.0, 1.2], [0.9, 0.1]
    assert rerank_order(rerank, retrieval) == [1, 0]
    assert rerank_order(rerank, retrieval, retrieval_weight=1.0) == [0, 1]  # 1.9 against 1.3


def test_rerank_passages_hands_the_scores_out_again_and_keeps_the_tail() -> None:
    ps = [passage(0, 0.9), passage(1, 0.8), passage(2, 0.5), passage(3, 0.4)]
    out = rerank_passages(ps, [0.0, 3.0, 1.0], k=4)  # the first three re-ranked
    assert [p.chunk_id for p in out] == [1, 2, 0, 3]
    assert [p.score for p in out] == [0.9, 0.8, 0.5, 0.4]  # the scale of the retrieval scores stays
    assert [p.rerank_score for p in out] == [3.0, 1.0, 0.0, None]
    assert [p.dense_score for p in out] == [0.4, 0.25, 0.45, 0.2]  # each passage's own cosine
    assert [p.chunk_id for p in rerank_passages(ps, [0.0, 3.0, 1.0], k=2)] == [1, 2]


# -- a real tiny cross-encoder ------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised two-layer BERT with one logit and the shipped MiniLM's tokenizer:
    a real model whose scores are whatever its weights say."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from qa_system.embedding import resolve_embedding_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-reranker")
    tokenizer = AutoTokenizer.from_pretrained(resolve_embedding_model("all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / RERANKER_FILE).write_text(json.dumps({"max_tokens": 64}))
    return folder


class FixedRetriever:
    """The retriever underneath: the same passages, best first, for every question."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages, self.asked = passages, []

    def retrieve(self, query_vectors, k, *, query_texts=None, filters=None):  # noqa: ANN001, ANN201
        self.asked.append(k)
        return [list(self.passages[:k]) for _ in query_texts]


def test_reranking_retriever_orders_by_the_cross_encoder(tiny_cross_encoder: Path) -> None:
    scorer = CrossEncoder(tiny_cross_encoder, precision="fp32", batch_size=3).load()
    assert scorer.max_tokens == 64
    texts = ["the battery lasts ten hours", "the screen is bright", "shipping took a week",
             "it weighs two pounds", "the case is blue", "sound is clear"]
    inner = FixedRetriever([passage(i, 1.0 - i / 10, t) for i, t in enumerate(texts)])
    questions = ["how long does the battery last?", "what colour is the case?"]
    hits = RerankingRetriever(inner, scorer, top_n=5).retrieve(np.zeros((2, 4)), 3, query_texts=questions)
    assert inner.asked == [5]  # max(k, top_n) candidates
    for question, got in zip(questions, hits, strict=True):
        expected = scorer.score([question] * 5, texts[:5])
        assert len(got) == 3
        assert [p.text for p in got] == [texts[i] for i in np.argsort(-expected, kind="stable")[:3]]
        assert [p.rerank_score for p in got] == pytest.approx(sorted(expected, reverse=True)[:3], abs=1e-5)
        assert [p.score for p in got] == [1.0, 0.9, 0.8]
    # k above top_n: the first top_n re-ranked, the rest after them in the retriever's order
    wide = RerankingRetriever(inner, scorer, top_n=2).retrieve(np.zeros((1, 4)), 4, query_texts=questions[:1])[0]
    assert {p.text for p in wide[:2]} == set(texts[:2]) and [p.text for p in wide[2:]] == texts[2:4]
    assert wide[3].rerank_score is None


def test_reranking_needs_the_questions_text(tiny_cross_encoder: Path) -> None:
    scorer = CrossEncoder(tiny_cross_encoder).load()
    with pytest.raises(InputError, match="query_texts"):
        RerankingRetriever(FixedRetriever([passage(0, 1.0)]), scorer, top_n=2).retrieve(np.zeros((1, 4)), 1)


def test_scoring_before_loading_is_refused(tiny_cross_encoder: Path) -> None:
    with pytest.raises(ConfigError, match="not loaded"):
        CrossEncoder(tiny_cross_encoder).score(["q"], ["p"])


# -- bad folders ---------------------------------------------------------------------------------

def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such folder"):
        CrossEncoder(tmp_path / "nowhere").load()


def test_a_folder_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ConfigError, match="not a model folder"):
        CrossEncoder(tmp_path).load()


def test_a_model_with_more_than_one_output_is_refused(tmp_path: Path, tiny_cross_encoder: Path) -> None:
    from transformers import AutoConfig, BertForSequenceClassification

    config = AutoConfig.from_pretrained(tiny_cross_encoder)
    config.num_labels = 2
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / f).write_bytes((tiny_cross_encoder / f).read_bytes())
    with pytest.raises(ConfigError, match="one output"):
        CrossEncoder(tmp_path).load()


def test_the_system_refuses_a_bad_reranker_when_it_loads(tmp_path: Path) -> None:
    from qa_system.system import QASystem

    settings = load_settings(store_dir=tmp_path / "store", reranker=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="not a model folder"):
        QASystem(settings).load()


# -- training ------------------------------------------------------------------------------------

def test_candidates_own_passage_first_then_hard_negative_then_others() -> None:
    batch = [Pair("q0", "A", "g", ("a",), "N0"), Pair("q1", "A", "g", ("a",), None),
             Pair("q2", "B", "g", ("b",), "N2")]
    assert candidates_of(batch, 1, True) == [["A", "N0", "B"], ["A", "B"], ["B", "N2", "A"]]
    assert candidates_of(batch, 2, False) == [["A", "B"], ["A", "B"], ["B", "A"]]  # same text once


def test_gold_scores() -> None:
    s = gold_scores([1, 2, 6, None])
    assert (s["gold@1"], s["gold@5"], s["gold@10"], s["questions"]) == (0.25, 0.5, 0.75, 4)
    assert s["mrr@10"] == pytest.approx((1 + 0.5 + 1 / 6) / 4, abs=1e-4)
