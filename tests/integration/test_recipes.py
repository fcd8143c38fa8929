"""The default reader's data recipes on the real public datasets (``../shared/datasets``):
held-out splits are never trained on, and phase 2 is built from what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_system.qa_datasets import load_squad_json, load_subjqa_csv
from qa_system.training.recipe import (
    LONG_CONTEXT_CHARS,
    REVIEW_SOURCE,
    SUBJQA_TRAIN_DOMAINS,
    load_recipe_data,
    squad_v2_split,
)

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (DATASETS / "squad").is_dir(), reason="../shared/datasets is not beside the project"),
]


def _pairs(examples) -> set[tuple[str, str]]:
    return {(e.question.strip().lower(), e.context) for e in examples}


@pytest.fixture(scope="module")
def recipes():
    return {name: load_recipe_data(name, DATASETS)
            for name in ("default", "default-heldout", "reviews", "reviews-heldout", "reviews-products",
                          "reviews-long")}


def test_both_recipes_hold_out_the_same_dev_and_test_splits(recipes) -> None:
    default = recipes["default"]
    for data in recipes.values():
        assert [e.id for e in data.squad_test] == [e.id for e in default.squad_test]
        assert len(data.subjqa_test) == 358
    for data in recipes.values():
        trained = _pairs(e for e, _ in data.train)
        assert not trained & _pairs(data.squad_test + data.subjqa_test + data.threshold_dev)
        assert all(squad_v2_split(e.group) == "test" for e in data.squad_test)
        test_articles = {e.group for e in data.squad_test}
        assert not any(e.group in test_articles for e, _ in data.train)


def test_the_threshold_dev_set_splits_into_its_squad_and_review_parts(recipes) -> None:
    from qa_system.training.recipe import REVIEWS_DEV_PART, SQUAD_DEV_PART

    squad_ids = {e.id for f in ("squad/dev-v1.1.json", "squad/dev-v2.0.json") for e in load_squad_json(DATASETS / f)}
    subjqa_ids = {e.id for f in (DATASETS / "subjqa").glob("*/*.csv") for e in load_subjqa_csv(f)}
    for name, data in recipes.items():
        parts = data.dev_parts
        assert set(parts) == {SQUAD_DEV_PART, REVIEWS_DEV_PART}, name
        assert parts[SQUAD_DEV_PART] | parts[REVIEWS_DEV_PART] == {e.id for e in data.threshold_dev}
        assert not parts[SQUAD_DEV_PART] & parts[REVIEWS_DEV_PART]
        assert parts[SQUAD_DEV_PART] <= squad_ids and parts[REVIEWS_DEV_PART] <= subjqa_ids
    heldout = recipes["reviews-heldout"].dev_parts
    assert (len(heldout[SQUAD_DEV_PART]), len(heldout[REVIEWS_DEV_PART])) == (1428, 1549)  # the model card's dev set


def test_reviews_recipe_is_subjqa_reviews_and_a_fifth_replayed(recipes) -> None:
    default, reviews = recipes["default"], recipes["reviews"]
    trained = _pairs(e for e, _ in reviews.train)
    subjqa = [e for d in SUBJQA_TRAIN_DOMAINS for e in load_subjqa_csv(DATASETS / "subjqa" / d / "train.csv")]
    assert _pairs(subjqa) <= trained
    assert _pairs(load_squad_json(DATASETS / REVIEW_SOURCE)) <= trained
    subjqa_ids = {e.id for e in subjqa}
    assert sum(1 for e, _ in reviews.train if e.id in subjqa_ids) == 3 * len(subjqa)  # repeated 3 times
    replayed = _pairs(e for e, _ in reviews.train) - _pairs(subjqa) - _pairs(load_squad_json(DATASETS / REVIEW_SOURCE))
    others = _pairs(e for e, _ in default.train) - _pairs(subjqa) - _pairs(load_squad_json(DATASETS / REVIEW_SOURCE))
    assert replayed <= others
    assert 0.15 < len(replayed) / len(others) < 0.25


@pytest.mark.parametrize("base", ["default", "reviews"])
def test_heldout_recipes_keep_a_fifth_of_subjqa_products_for_the_threshold(recipes, base: str) -> None:
    reviews, heldout = recipes[base], recipes[f"{base}-heldout"]
    subjqa = [e for d in SUBJQA_TRAIN_DOMAINS for e in load_subjqa_csv(DATASETS / "subjqa" / d / "train.csv")]
    trained_products = {e.group for e, _ in heldout.train}
    dev_ids = {e.id for e in heldout.threshold_dev}
    held = [e for e in subjqa if e.group not in trained_products]
    products = {e.group for e in subjqa}
    assert 0.15 < len({e.group for e in held}) / len(products) < 0.25
    assert held and all(e.id in dev_ids for e in held)  # every held-out pair fits the threshold
    assert not _pairs(held) & _pairs(e for e, _ in heldout.train)
    assert len(heldout.threshold_dev) > len(reviews.threshold_dev) + 0.8 * len(held)
    assert {e.id for e in heldout.threshold_dev} >= {e.id for e in reviews.threshold_dev if e.id not in {
        x.id for x in held}}
    assert sorted(e.id for e, _ in heldout.train if e.group in trained_products) == sorted(
        e.id for e, _ in reviews.train if e.group in trained_products)  # nothing else changes
    # a held-out pair that the domain's dev.csv annotates again is one question with both files' spans
    assert len(dev_ids) == len(heldout.threshold_dev)
    dev_split = {e.id: e for d in SUBJQA_TRAIN_DOMAINS for e in load_subjqa_csv(DATASETS / "subjqa" / d / "dev.csv")}
    by_id = {e.id: e for e in heldout.threshold_dev}
    both = [e for e in held if e.id in dev_split]
    assert both, "no held-out train pair is annotated again in a dev split"
    for e in both:
        assert set(by_id[e.id].answers) == set(e.answers) | set(dev_split[e.id].answers)


def test_products_recipe_trains_on_half_the_held_out_products_and_replays_phase_2(recipes) -> None:
    phase2, phase3, reviews = recipes["reviews-heldout"], recipes["reviews-products"], recipes["reviews"]
    phase2_ids = {e.id for e, _ in phase2.train}
    held_out = {e.id for e in phase2.threshold_dev} - {e.id for e in reviews.threshold_dev}
    new = [e for e, _ in phase3.train if e.id not in phase2_ids]
    new_ids = {e.id for e in new}
    assert new_ids < held_out and 0.3 < len(new_ids) / len(held_out) < 0.7  # about half, nothing else new
    assert len(new) == 3 * len(new_ids)  # repeated 3 times, as in phase 2
    assert len(phase3.train) - len(new) == 2000  # the replay
    dev_ids = {e.id for e in phase3.threshold_dev}
    assert held_out - new_ids <= dev_ids and not new_ids & dev_ids  # the other half fits the threshold
    assert dev_ids <= {e.id for e in phase2.threshold_dev}
    new_products = {e.group for e in new}
    assert not any(e.group in new_products for e in phase3.threshold_dev if e.id in held_out)


def test_long_recipe_trains_long_reviews_and_squad_paragraphs_joined_with_their_neighbours(recipes) -> None:
    phase2, long = recipes["reviews-heldout"], recipes["reviews-long"]
    # nothing new is held out: phase 2's threshold dev and tests, and none of them trained on
    assert [e.id for e in long.threshold_dev] == [e.id for e in phase2.threshold_dev]
    phase2_products = {e.group for e, _ in phase2.train}
    subjqa_ids = {e.id for d in SUBJQA_TRAIN_DOMAINS for e in load_subjqa_csv(DATASETS / "subjqa" / d / "train.csv")}
    phase2_pairs = _pairs(e for e, _ in phase2.train)
    reviews = [e for e, _ in long.train if e.id in subjqa_ids]
    assert all(e.group in phase2_products for e in reviews)
    long_reviews = [e for e in reviews if len(e.context) > LONG_CONTEXT_CHARS]
    assert len(long_reviews) > len(reviews) / 2  # the short ones come from the replay only
    squad = {e.id: e for e in load_squad_json(DATASETS / "squad/dev-v1.1.json")
             + load_squad_json(DATASETS / "squad/dev-v2.0.json")}
    joined = [e for e, _ in long.train if e.id in squad and e.context != squad[e.id].context]
    assert len(joined) > 1000
    for e in joined:
        own = squad[e.id]
        assert own.context in e.context and len(e.context) > len(own.context)
        assert e.context.split("\n\n")[0] in {x.context for x in squad.values() if x.group == e.group}
        assert [e.context[a.start:a.start + len(a.text)] for a in e.answers] == [a.text for a in own.answers]
        assert squad_v2_split(e.group) == "train"
    replay = [e for e, _ in long.train if e.id not in subjqa_ids and e.id not in {x.id for x in joined}]
    assert _pairs(replay) <= phase2_pairs
