"""The data of `qa-system train-retriever`: (question, passage) pairs, their held-out dev sets, and
hard negatives mined with the retriever being trained.

* Pairs come from SQuAD-format JSON and SubjQA CSV files (`qa_system.qa_datasets`): the question,
  its context as the positive passage, the context's group (article title or product ``item_id``)
  and the gold answer texts. Unanswerable questions are left out (no passage answers them).
* Held out for choices (never the test sets): ``heldout_percent`` of the articles/products of the
  training files, chosen by a hash of the group (stable across runs), plus whole ``--dev`` files,
  whose groups are then also taken out of training (SubjQA's dev splits repeat most train pairs
  of their products, so without that they would measure memory).
* A hard negative of a pair is the passage of the same group that the current retriever ranks
  highest for the question among those that hold none of its answers.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..qa_datasets import QAExample, load_examples

HELDOUT_SCOPES = ("all", "group")  # open search over every passage of the set / within the question's group


@dataclass(frozen=True)
class Pair:
    question: str
    passage: str
    group: str
    answers: tuple[str, ...]
    negative: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @staticmethod
    def from_json(line: str) -> Pair:
        d = json.loads(line)
        return Pair(d["question"], d["passage"], d["group"], tuple(d["answers"]), d.get("negative"))


@dataclass(frozen=True)
class HeldOutSet:
    """Questions scored by the rank of their own passage, searched among ``passages`` (scope
    ``all``) or among the passages of their own group (``group``)."""

    name: str
    scope: str
    pairs: tuple[Pair, ...]


def group_bucket(group: str) -> int:
    return int(hashlib.sha256(group.encode("utf-8")).hexdigest(), 16) % 100


def holds_answer(passage: str, answers: Iterable[str]) -> bool:
    low = passage.lower()
    return any(a and a.lower() in low for a in answers)


def to_pairs(examples: Iterable[QAExample], *, unanswerable: bool = False) -> list[Pair]:
    """One pair per question and passage (duplicates merged); a question its passage does not
    answer only with ``unanswerable`` (SubjQA: the review the question was asked about is still
    its gold review; SQuAD 2.0's are adversarial, so left out)."""
    seen: set[tuple[str, str]] = set()
    pairs = []
    for e in examples:
        if (e.is_impossible and not unanswerable) or not e.context.strip() or (e.question, e.context) in seen:
            continue
        seen.add((e.question, e.context))
        pairs.append(Pair(e.question, e.context, e.group, tuple(dict.fromkeys(a.text for a in e.answers))))
    return pairs


def _name(path: str | Path) -> str:
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


def _load(path: str | Path) -> list[Pair]:
    return to_pairs(load_examples(path), unanswerable=scope_of(path) == "group")


def scope_of(path: str | Path) -> str:
    """SQuAD-format files are searched open (all passages); SubjQA within the product."""
    return "group" if Path(path).suffix.lower() == ".csv" else "all"


def load_retriever_data(train_files: Sequence[str | Path], dev_files: Sequence[str | Path], *,
                        heldout_percent: float) -> tuple[dict[str, list[Pair]], list[HeldOutSet]]:
    """Training pairs and held-out sets: per training file, the groups whose hash bucket is below
    ``heldout_percent`` (a set named ``heldout:<file name>`` if any); every dev file whole, its
    groups removed from the training pairs of every file."""
    if not train_files:
        raise InputError("give at least one --train file")
    if not 0 <= heldout_percent < 100:
        raise InputError(f"--heldout-percent must be in [0, 100), got {heldout_percent}")
    heldout: list[HeldOutSet] = []
    dev_groups: set[str] = set()
    for path in dev_files:
        pairs = _load(path)
        if not pairs:
            raise InputError(f"{path}: no question to evaluate on")
        heldout.append(HeldOutSet(f"dev:{_name(path)}", scope_of(path), tuple(pairs)))
        dev_groups.update(p.group for p in pairs)
    train: dict[str, list[Pair]] = {}
    for path in train_files:
        pairs = [p for p in _load(path) if p.group not in dev_groups]
        held = [p for p in pairs if group_bucket(p.group) < heldout_percent]
        held_groups = {p.group for p in held}
        train.setdefault(str(path), []).extend(p for p in pairs if p.group not in held_groups)
        if held:
            heldout.append(HeldOutSet(f"heldout:{_name(path)}", scope_of(path), tuple(held)))
    if not any(train.values()):
        raise InputError("no training pair left after holding out the dev groups")
    return train, heldout


def sample_pairs(by_file: dict[str, list[Pair]], *, max_pairs: int | None, per_group: int | None,
                 seed: int) -> list[Pair]:
    """Of each file: at most ``per_group`` pairs of each group, then at most ``max_pairs`` pairs
    (groups drawn at random, so that mining encodes as few groups' passages as it can); all files'
    pairs together, shuffled."""
    chosen: list[Pair] = []
    for n, pairs in enumerate(by_file.values()):
        chosen.extend(_sample_file(pairs, max_pairs=max_pairs, per_group=per_group, seed=seed + n))
    random.Random(seed).shuffle(chosen)
    return chosen


def _sample_file(pairs: Sequence[Pair], *, max_pairs: int | None, per_group: int | None, seed: int) -> list[Pair]:
    rng = random.Random(seed)
    by_group: dict[str, list[Pair]] = {}
    for p in pairs:
        by_group.setdefault(p.group, []).append(p)
    groups = list(by_group)
    rng.shuffle(groups)
    chosen: list[Pair] = []
    for g in groups:
        members = by_group[g]
        if per_group is not None and len(members) > per_group:
            members = rng.sample(members, per_group)
        chosen.extend(members)
        if max_pairs is not None and len(chosen) >= max_pairs:
            break
    return chosen[:max_pairs] if max_pairs is not None else chosen


Encode = Callable[[Sequence[str], str], np.ndarray]  # (texts, "query" | "passage") -> unit vectors


def mine_hard_negatives(pairs: Sequence[Pair], all_pairs: Sequence[Pair], encode: Encode,
                        progress: Callable[[int], None] | None = None) -> list[Pair]:
    """Each pair with its hard negative: among the distinct passages of its group (in
    ``all_pairs``), the one the encoder ranks highest for the question that holds none of its
    answers; pairs whose group has no such passage keep ``negative=None``."""
    wanted = {p.group for p in pairs}
    passages: dict[str, list[str]] = {}
    for p in all_pairs:
        if p.group in wanted:
            group = passages.setdefault(p.group, [])
            if p.passage not in group:
                group.append(p.passage)
    by_group: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        by_group.setdefault(p.group, []).append(i)
    out = list(pairs)
    for group, positions in by_group.items():
        texts = passages[group]
        if len(texts) > 1:  # (a pair without answers: any other passage of its group)
            pv = encode(texts, "passage")
            qv = encode([pairs[i].question for i in positions], "query")
            order = np.argsort(-(qv @ pv.T), axis=1)
            for row, i in enumerate(positions):
                p = pairs[i]
                for j in order[row]:
                    if texts[j] != p.passage and not holds_answer(texts[j], p.answers):
                        out[i] = Pair(p.question, p.passage, p.group, p.answers, texts[j])
                        break
        if progress is not None:
            progress(len(positions))
    return out


def _heldout_scores(held: HeldOutSet, encode: Encode, *, max_questions: int | None,
                    seed: int) -> tuple[list[str], list[Pair], np.ndarray]:
    """The set's distinct passages, the questions scored (at most ``max_questions``: a seeded
    sample; every passage stays) and their cosines, -inf outside a question's scope."""
    texts = list(dict.fromkeys(p.passage for p in held.pairs))
    pairs = list(held.pairs)
    if max_questions is not None and len(pairs) > max_questions:
        pairs = random.Random(seed).sample(pairs, max_questions)
    pv = encode(texts, "passage")
    qv = encode([p.question for p in pairs], "query")
    scores = qv @ pv.T
    if held.scope == "group":
        group_of = {}
        for p in held.pairs:
            group_of.setdefault(p.passage, p.group)
        groups = np.array([group_of[t] for t in texts], dtype=object)
        for row, p in enumerate(pairs):
            scores[row, groups != p.group] = -np.inf
    return texts, pairs, scores


def heldout_ranks(held: HeldOutSet, encode: Encode, *, max_questions: int | None, seed: int = 0) -> list[int | None]:
    """1-based rank of each question's own passage (its set's passages deduplicated), searched in
    the set's scope; at most ``max_questions`` questions (a seeded sample; every passage stays)."""
    texts, pairs, scores = _heldout_scores(held, encode, max_questions=max_questions, seed=seed)
    index = {t: i for i, t in enumerate(texts)}
    ranks: list[int | None] = []
    for row, p in enumerate(pairs):
        gold = scores[row, index[p.passage]]
        ranks.append(int((scores[row] > gold).sum()) + 1)
    return ranks


def heldout_candidates(held: HeldOutSet, encode: Encode, *, depth: int, max_questions: int | None,
                       seed: int = 0) -> list[tuple[Pair, list[str]]]:
    """Each question (sampled as by `heldout_ranks`) with the top ``depth`` passages of its scope
    by the encoder, best first: what a re-ranker re-scores."""
    texts, pairs, scores = _heldout_scores(held, encode, max_questions=max_questions, seed=seed)
    out = []
    for row, p in enumerate(pairs):
        order = np.argsort(-scores[row], kind="stable")[:depth]
        out.append((p, [texts[j] for j in order if np.isfinite(scores[row, j])]))
    return out


def write_pairs(pairs: Iterable[Pair], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for p in pairs:
            f.write(p.to_json() + "\n")
    tmp.replace(path)


def read_pairs(path: Path) -> list[Pair]:
    with path.open(encoding="utf-8") as f:
        return [Pair.from_json(line) for line in f if line.strip()]
