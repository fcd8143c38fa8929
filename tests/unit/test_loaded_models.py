"""The JSON shape of the loaded models (``ask --json`` and the service's ``/readyz``): each model
under its role with that role's fields only."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from qa_system.cli import _answer_json
from qa_system.types import (
    EMBEDDER_FIELDS,
    READER_FIELDS,
    RERANKER_FIELDS,
    Answer,
    AskResult,
    LoadedModel,
    LoadedModels,
)

RUNTIME = "torch 2.13.0+cpu: bfloat16 weights, sdpa attention"
EMBEDDER = LoadedModel("all-MiniLM-L6-v2", "bf16", RUNTIME, lexical_weight=0.3)
READER = LoadedModel("qa_system/models/reader", "bf16", RUNTIME, no_answer_threshold=2.629,
                     long_passage_no_answer_threshold=6.995, max_seq_length=384, doc_stride=128,
                     retrieval_weight=10.0)


def test_each_role_carries_only_its_own_fields() -> None:
    shaped = LoadedModels(embedder=EMBEDDER, reader=READER).as_dict()
    assert shaped == {
        "embedder": {"model": "all-MiniLM-L6-v2", "precision": "bf16", "runtime": RUNTIME, "lexical_weight": 0.3},
        "reader": {"model": "qa_system/models/reader", "precision": "bf16", "runtime": RUNTIME,
                   "no_answer_threshold": 2.629,
                   "long_passage_no_answer_threshold": 6.995, "max_seq_length": 384, "doc_stride": 128,
                   "retrieval_weight": 10.0},
    }


def test_a_reader_field_left_unset_stays_as_null_and_a_model_not_loaded_is_left_out() -> None:
    custom = LoadedModel("my-reader", None)  # a custom reader that says nothing of its window
    shaped = LoadedModels(reader=custom).as_dict()
    assert list(shaped) == ["reader"]
    assert shaped["reader"] == {name: None for name in READER_FIELDS} | {"model": "my-reader"}
    assert LoadedModels().as_dict() == {}


def test_the_roles_fields_cover_every_field_of_a_loaded_model() -> None:
    assert set(EMBEDDER_FIELDS) | set(READER_FIELDS) | set(RERANKER_FIELDS) == {f.name for f in fields(LoadedModel)}
    assert set(EMBEDDER_FIELDS) & set(READER_FIELDS) == {"model", "precision", "runtime"}
    assert set(EMBEDDER_FIELDS) & set(RERANKER_FIELDS) == {"model", "precision", "runtime"}


def test_a_reranker_reports_what_it_rescores_and_nothing_of_the_reader() -> None:
    reranker = LoadedModel("runs/reranker/model", "fp32", "torch 2.13.0+cpu: torch.float32 weights",
                           rerank_top_n=10, retrieval_weight=10.0)
    shaped = LoadedModels(embedder=EMBEDDER, reader=READER, reranker=reranker).as_dict()
    assert list(shaped) == ["embedder", "reader", "reranker"]
    assert shaped["reranker"] == {"model": "runs/reranker/model", "precision": "fp32",
                                  "runtime": "torch 2.13.0+cpu: torch.float32 weights", "rerank_top_n": 10,
                                  "retrieval_weight": 10.0}
    assert "rerank_top_n" not in shaped["reader"]


def test_ask_json_models_entry_has_no_reader_keys_on_the_embedder() -> None:
    answer = Answer("8 dollars", 11.2, "doc-1", "plans.md", "Plans", 20, 29, "The Plus plan costs 8 dollars",
                    passage_score=0.8)
    result = AskResult("How much is Plus?", (answer,), (), no_answer_score=-3.0, has_answer=True)
    payload = json.loads(json.dumps(_answer_json(result, LoadedModels(embedder=EMBEDDER, reader=READER))))
    assert set(payload["models"]["embedder"]) == {"model", "precision", "runtime", "lexical_weight"}
    assert "lexical_weight" not in payload["models"]["reader"]
    assert payload["models"]["reader"]["no_answer_threshold"] == pytest.approx(2.629)
