"""Hybrid retrieval's pure part: query words and score fusion."""

from __future__ import annotations

import pytest

from qa_system.config import load_settings
from qa_system.errors import ConfigError
from qa_system.retrieval.fusion import MAX_TERMS, fuse, query_terms


def test_query_terms_are_distinct_lower_case_words_without_stopwords() -> None:
    assert query_terms("What does error SYNC-413 mean?") == ["error", "sync", "413", "mean"]
    assert query_terms("How is the Plus plan's price; the PLUS plan?") == ["plus", "plan", "price"]
    assert query_terms("Ünïcode naïve café_au_lait") == ["ünïcode", "naïve", "café", "au", "lait"]
    assert query_terms("what is the") == [] and query_terms('"*" OR ( ) -:^ NEAR') == ["near"]


def test_query_terms_are_capped() -> None:
    words = " ".join(f"w{i}" for i in range(100))
    assert query_terms(words) == [f"w{i}" for i in range(MAX_TERMS)]
    assert query_terms(words, limit=3) == ["w0", "w1", "w2"]


def test_fuse_mixes_cosine_with_the_rank_relative_to_the_best() -> None:
    dense = {1: 0.9, 2: 0.5, 3: 0.4}
    lexical = {2: 8.0, 3: 2.0}
    fused = fuse(dense, lexical, 0.5, 3)
    assert fused == [(2, pytest.approx(0.75)), (1, pytest.approx(0.45)), (3, pytest.approx(0.325))]
    assert [i for i, _ in fuse(dense, lexical, 0.0, 3)] == [1, 2, 3]  # dense alone
    assert [s for _, s in fuse(dense, lexical, 1.0, 3)] == pytest.approx([1.0, 0.25, 0.0])


def test_fuse_without_any_rank_is_the_cosine_order_and_score() -> None:
    dense = {5: 0.2, 4: 0.7, 6: 0.7}
    assert fuse(dense, {}, 0.6, 2) == [(4, 0.7), (6, 0.7)]  # ties: smaller id first
    assert fuse(dense, {4: 0.0, 5: -1.0}, 0.6, 3) == [(4, 0.7), (6, 0.7), (5, 0.2)]


def test_fuse_ranks_only_ids_with_a_cosine_and_truncates() -> None:
    assert fuse({1: 0.1}, {1: 1.0, 2: 9.0}, 0.5, 5) == [(1, pytest.approx(0.05 + 0.5 / 9))]
    assert fuse({}, {1: 1.0}, 0.5, 5) == []
    assert len(fuse({i: i / 10 for i in range(10)}, {}, 0.3, 4)) == 4


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), float("inf"), True, "0.3", None])
def test_fuse_and_settings_refuse_a_weight_outside_0_to_1(bad: object) -> None:
    with pytest.raises(ConfigError, match="lexical_weight"):
        fuse({1: 0.5}, {1: 1.0}, bad, 1)  # type: ignore[arg-type]
    if bad is not None:
        with pytest.raises(ConfigError, match="lexical_weight"):
            load_settings(lexical_weight=bad)


def test_lexical_weight_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().lexical_weight == 0.3
    monkeypatch.setenv("QA_SYSTEM_LEXICAL_WEIGHT", "0")
    assert load_settings().lexical_weight == 0.0
    monkeypatch.setenv("QA_SYSTEM_LEXICAL_WEIGHT", "2")
    with pytest.raises(ConfigError, match="lexical_weight"):
        load_settings()
