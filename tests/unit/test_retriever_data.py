"""The data of train-retriever: pairs, held-out splits, hard negatives and held-out ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa_system.errors import InputError
from qa_system.training.retriever_data import (
    HeldOutSet,
    Pair,
    group_bucket,
    heldout_ranks,
    holds_answer,
    load_retriever_data,
    mine_hard_negatives,
    read_pairs,
    sample_pairs,
    write_pairs,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "eval"
SQUAD = DATA / "tiny_squad_v2.json"
SUBJQA = DATA / "tiny_subjqa.csv"

WORDS = ["battery", "screen", "price", "paris", "river", "king", "sound", "camera"]


def bag_of_words(texts, kind):  # noqa: ANN001, ANN201 - the Encode signature
    """A transparent encoder for checking the selection logic: word counts over WORDS."""
    rows = np.array([[t.lower().count(w) for w in WORDS] for t in texts], dtype=np.float32) + 1e-3
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_dev_groups_leave_training_and_hash_holds_out_whole_groups() -> None:
    by_file, heldout = load_retriever_data([SQUAD, SUBJQA], [SUBJQA], heldout_percent=30)
    dev = next(h for h in heldout if h.name.startswith("dev:"))
    assert dev.scope == "group" and dev.pairs
    train = [p for pairs in by_file.values() for p in pairs]
    assert not {p.group for p in train} & {p.group for p in dev.pairs}  # SubjQA dev products never trained on
    held_squad = next(h for h in heldout if h.name == "heldout:eval/tiny_squad_v2.json")
    assert held_squad.scope == "all"
    assert all(group_bucket(p.group) < 30 for p in held_squad.pairs)
    assert all(group_bucket(p.group) >= 30 for p in train)


def test_squad_unanswerable_questions_are_left_out_but_subjqa_ones_stay() -> None:
    by_file, _ = load_retriever_data([SQUAD, SUBJQA], [], heldout_percent=0)
    assert all(p.answers for p in by_file[str(SQUAD)])
    assert any(not p.answers for p in by_file[str(SUBJQA)])
    with pytest.raises(InputError):
        load_retriever_data([SUBJQA], [SUBJQA], heldout_percent=0)  # nothing left to train on


def test_sample_caps_each_file_and_each_group() -> None:
    pairs = [Pair(f"q{i}", f"p{i % 7}", f"g{i % 5}", ("x",)) for i in range(100)]
    other = [Pair(f"o{i}", f"r{i}", f"h{i}", ("y",)) for i in range(10)]
    chosen = sample_pairs({"a": pairs, "b": other}, max_pairs=12, per_group=3, seed=1)
    assert sum(1 for p in chosen if p.group.startswith("g")) == 12
    assert sum(1 for p in chosen if p.group.startswith("h")) == 10
    counts = {g: sum(1 for p in chosen if p.group == g) for g in {p.group for p in chosen}}
    assert max(counts.values()) <= 3
    assert chosen == sample_pairs({"a": pairs, "b": other}, max_pairs=12, per_group=3, seed=1)


def test_hard_negative_is_the_closest_same_group_passage_without_the_answer() -> None:
    pos = "The battery lasts two days."
    near = "The battery is bad and the battery gets hot."  # closest, and holds no answer
    answer_copy = "Two days is what the battery lasts, two days."  # holds the answer: never a negative
    far = "The screen is sharp."
    other_group = "The battery battery battery of another product."
    pairs = [Pair("How long does the battery last?", pos, "g1", ("two days",))]
    corpus = pairs + [Pair("q", t, "g1", ("z",)) for t in (near, answer_copy, far)] + [Pair("q", other_group, "g2", ())]
    mined = mine_hard_negatives(pairs, corpus, bag_of_words)
    assert mined[0].negative == near
    assert not holds_answer(mined[0].negative, ("two days",))
    alone = mine_hard_negatives([Pair("q", "only", "g3", ("a",))], [Pair("q", "only", "g3", ("a",))], bag_of_words)
    assert alone[0].negative is None


def test_heldout_ranks_search_open_or_within_the_group() -> None:
    pairs = (Pair("battery?", "battery battery", "g1", ()), Pair("battery life?", "battery screen", "g2", ()))
    # open: the second question's own passage loses to the first one's
    assert heldout_ranks(HeldOutSet("x", "all", pairs), bag_of_words, max_questions=None) == [1, 2]
    # within its group it is the only candidate
    assert heldout_ranks(HeldOutSet("x", "group", pairs), bag_of_words, max_questions=None) == [1, 1]


def test_pairs_round_trip(tmp_path: Path) -> None:
    pairs = [Pair("q", "p", "g", ("a", "b"), "n"), Pair("q2", "p2", "g", (), None)]
    write_pairs(pairs, tmp_path / "pairs.jsonl")
    assert read_pairs(tmp_path / "pairs.jsonl") == pairs
