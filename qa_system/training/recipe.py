"""The recipe of the default reader: which files of ``../shared/datasets`` it trains on and
which articles / products are held out for threshold fitting and for evaluation."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..qa_datasets import GoldAnswer, QAExample, dedupe_by_id, load_squad_json, load_subjqa_csv, merge_duplicates

SUBJQA_TRAIN_DOMAINS = ("electronics", "grocery", "restaurants", "tripadvisor")
SUBJQA_DEV_DOMAINS = ("electronics", "grocery", "restaurants", "tripadvisor", "books", "movies")
REVIEW_SOURCE = "squadshifts/amazon_reviews_v1.0.json"
SQUAD_SOURCES = (
    REVIEW_SOURCE,
    "squadshifts/new_wiki_v1.0.json",
    "squadshifts/reddit_v1.0.json",
    "policyqa/dev.json",
)


def _bucket(title: str) -> int:
    return int(hashlib.sha256(title.encode("utf-8")).hexdigest(), 16) % 100


def squad_v2_split(title: str) -> str:
    """SQuAD v2.0/v1.1 dev articles: ~20% held out for evaluation ("test"), ~10% for
    fitting the no-answer threshold ("dev"), the rest trains. Stable across runs."""
    b = _bucket(title)
    return "test" if b < 20 else "dev" if b < 30 else "train"


@dataclass(frozen=True)
class ReaderData:
    train: list[tuple[QAExample, int]]  # example, how many distinct gold spans to train on
    threshold_dev: list[QAExample]
    squad_test: list[QAExample]
    subjqa_test: list[QAExample]
    # the threshold dev set's parts by source (name -> question ids), scored apart by fit-threshold
    dev_parts: Mapping[str, frozenset[str]] = field(default_factory=dict)


SQUAD_DEV_PART = "SQuAD dev articles"
REVIEWS_DEV_PART = "SubjQA reviews"


RECIPES = ("default", "default-heldout", "reviews", "reviews-heldout", "reviews-products", "reviews-long",
           "squad-train")
#: Share of SQuAD v1.1 train questions that also get an unanswerable copy (``squad-train``): the question
#: on another paragraph of its article without its answer. Not yet chosen on dev (no run compared rates).
SYNTHETIC_NO_ANSWER_RATE = 0.25
LONG_CONTEXT_CHARS = 1400  # about 300 tokens: with the question, more than one 384-token window is near


def load_recipe_data(name: str, datasets_dir: str | Path) -> ReaderData:
    """``default``: phase 1, general extractive QA from the plain encoder. ``reviews``: phase 2,
    continued from a phase-1 model on SubjQA train and Amazon-review QA, with a replay of a
    fifth of phase 1's other data so that it does not forget. ``reviews-heldout``: the same, but
    a fifth of the SubjQA train products (by a hash of ``item_id``) is kept out of training and
    added to the threshold dev set — SubjQA's own dev splits of the training domains are almost
    entirely repeats of train pairs, so without this the threshold never sees review questions
    of those domains. ``default-heldout``: ``default`` with the same products kept out (a
    one-phase run, e.g. several epochs on a GPU, whose threshold dev has unseen review
    products). ``reviews-products``: a short phase 3 after ``reviews-heldout`` on half of the
    products it kept out, with a replay of its own data; the other half still fits the threshold. All hold
    out the same SQuAD and SubjQA test splits. ``reviews-long``: a short phase after
    ``reviews-heldout`` on contexts longer than one window (see ``load_long_context_data``)."""
    if name == "default":
        return load_default_reader_data(datasets_dir)
    if name == "default-heldout":
        return load_default_reader_data(datasets_dir, threshold_products=0.2)
    if name == "reviews":
        return load_review_reader_data(datasets_dir)
    if name == "reviews-heldout":
        return load_review_reader_data(datasets_dir, threshold_products=0.2)
    if name == "reviews-products":
        return load_heldout_products_data(datasets_dir)
    if name == "reviews-long":
        return load_long_context_data(datasets_dir)
    if name == "squad-train":
        return load_squad_train_data(datasets_dir)
    raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")


def load_default_reader_data(datasets_dir: str | Path, subjqa_repeat: int = 2,
                             threshold_products: float = 0.0) -> ReaderData:
    root = Path(datasets_dir)
    squad_train, squad_dev, squad_test = _squad_splits(root)
    subjqa, threshold_dev = _hold_out_products(_subjqa_train(root, subjqa_repeat), squad_dev, threshold_products)
    train: list[tuple[QAExample, int]] = [(e, 1) for e in squad_train]
    for rel in SQUAD_SOURCES:
        train.extend((e, 1) for e in load_squad_json(root / rel))
    train.extend(subjqa)
    return _held_out(root, train, threshold_dev, squad_test, squad_dev)


def load_squad_train_data(datasets_dir: str | Path, no_answer_rate: float = SYNTHETIC_NO_ANSWER_RATE,
                          seed: int = 13) -> ReaderData:
    """``default-heldout`` plus the official SQuAD v1.1 training set (87,599 questions, articles
    disjoint from the dev articles, checked) and unanswerable examples made from it: for a share
    ``no_answer_rate`` of its questions, the question on another paragraph of the same article
    that holds none of its gold answers (SQuAD v2.0 dev's real unanswerable questions of the
    training articles are already in ``default``)."""
    root = Path(datasets_dir)
    base = load_default_reader_data(root, threshold_products=0.2)
    squad_train = load_squad_json(root / "squad" / "train-v1.1.json")
    overlap = {e.group for e in squad_train} & {e.group for e in base.squad_test + base.threshold_dev}
    if overlap:
        raise ValueError(f"SQuAD train shares {len(overlap)} articles with the held-out dev articles")
    train = base.train + [(e, 1) for e in squad_train] + [
        (e, 1) for e in synthetic_no_answer(squad_train, no_answer_rate, random.Random(seed))]
    _check_disjoint({_pair(e) for e, _ in train}, base.squad_test + base.subjqa_test)
    return ReaderData(train, base.threshold_dev, base.squad_test, base.subjqa_test, base.dev_parts)


def synthetic_no_answer(examples: list[QAExample], rate: float, rng: random.Random) -> list[QAExample]:
    """For about ``rate`` of ``examples``, the question on another paragraph of its article that
    contains none of its gold answer texts (skipped when the article has no such paragraph)."""
    articles = _article_paragraphs(examples)
    out = []
    for e in examples:
        if not e.answers or rng.random() >= rate:
            continue
        others = [p for p in articles[e.group] if p != e.context and not any(a.text in p for a in e.answers)]
        if others:
            out.append(QAExample(f"{e.id}-noans", e.group, e.question, rng.choice(others), ()))
    return out


def load_review_reader_data(datasets_dir: str | Path, subjqa_repeat: int = 3, replay: float = 0.2,
                            seed: int = 13, threshold_products: float = 0.0) -> ReaderData:
    root = Path(datasets_dir)
    squad_train, squad_dev, squad_test = _squad_splits(root)
    subjqa, threshold_dev = _hold_out_products(_subjqa_train(root, subjqa_repeat), squad_dev, threshold_products)
    reviews = load_squad_json(root / REVIEW_SOURCE)
    others = squad_train + [e for rel in SQUAD_SOURCES if rel != REVIEW_SOURCE for e in load_squad_json(root / rel)]
    rng = random.Random(seed)
    train = [(e, 1) for e in reviews] + [(e, 1) for e in rng.sample(others, int(len(others) * replay))]
    train.extend(subjqa)
    return _held_out(root, train, threshold_dev, squad_test, squad_dev)


def load_heldout_products_data(datasets_dir: str | Path, fraction: float = 0.2, trained: float = 0.1,
                               subjqa_repeat: int = 3, replay: int = 2000, seed: int = 13) -> ReaderData:
    """Half of the SubjQA train products that ``reviews-heldout`` kept out (the ``trained`` part
    of the ``fraction`` it kept, by the same hash), plus ``replay`` examples of that recipe's own
    training data. The other held-out products stay in the threshold dev set, so the threshold
    is still fitted on review questions of the training domains that no phase trained on."""
    root = Path(datasets_dir)
    phase2 = load_review_reader_data(root, subjqa_repeat=subjqa_repeat, threshold_products=fraction)
    new = [(e, n) for e, n in _subjqa_train(root, subjqa_repeat) if _is_held_out_product(e, trained)]
    rng = random.Random(seed)
    train = new + rng.sample(phase2.train, min(replay, len(phase2.train)))
    # phase 2's threshold dev set, less what this phase trains on (its own dev pairs are already out)
    seen = {_pair(e) for e, _ in [*train, *phase2.train]}
    threshold_dev = [e for e in phase2.threshold_dev if _pair(e) not in seen]
    _check_disjoint(seen, phase2.squad_test + phase2.subjqa_test)
    return ReaderData(train, threshold_dev, phase2.squad_test, phase2.subjqa_test, _parts_of(phase2, threshold_dev))


def load_long_context_data(datasets_dir: str | Path, fraction: float = 0.2, subjqa_repeat: int = 2,
                           squad_questions: int = 1500, paragraphs: int = 3, replay: int = 2000,
                           seed: int = 13) -> ReaderData:
    """Long contexts, where the earlier phases saw few: most of their examples fit in one window,
    so the model never learned to tell the window that holds the answer from its neighbours.

    - the SubjQA train reviews of ``reviews-heldout``'s training products longer than
      ``LONG_CONTEXT_CHARS``, ``subjqa_repeat`` times;
    - ``squad_questions`` SQuAD questions of the training articles, each on its paragraph joined
      with its neighbours in the article (``paragraphs`` in all, its own at a random place),
      the answer offsets moved with it;
    - ``replay`` examples of ``reviews-heldout``'s own training data.

    Train it with ``--negative-keep 1``: the answer-less windows are the point. Nothing new is
    held out, so the threshold dev set is ``reviews-heldout``'s, and so are both test sets."""
    root = Path(datasets_dir)
    phase2 = load_review_reader_data(root, threshold_products=fraction)
    rng = random.Random(seed)
    reviews = [(e, n) for e, n in _subjqa_train(root, subjqa_repeat)
               if len(e.context) > LONG_CONTEXT_CHARS and not _is_held_out_product(e, fraction)]
    squad_train = _squad_splits(root)[0]
    articles = _article_paragraphs(squad_train)
    joined = [_with_neighbours(e, articles, paragraphs, rng)
              for e in rng.sample(squad_train, min(squad_questions, len(squad_train)))]
    train = reviews + [(e, 1) for e in joined] + rng.sample(phase2.train, min(replay, len(phase2.train)))
    _check_disjoint({_pair(e) for e, _ in train}, phase2.squad_test + phase2.subjqa_test)
    return ReaderData(train, phase2.threshold_dev, phase2.squad_test, phase2.subjqa_test, phase2.dev_parts)


def _article_paragraphs(examples: list[QAExample]) -> dict[str, list[str]]:
    """Each article's distinct paragraphs, in the order they first appear."""
    out: dict[str, list[str]] = {}
    for e in examples:
        paras = out.setdefault(e.group, [])
        if e.context not in paras:
            paras.append(e.context)
    return out


def _with_neighbours(example: QAExample, articles: dict[str, list[str]], paragraphs: int,
                     rng: random.Random) -> QAExample:
    """``example`` on a longer context: its paragraph and up to ``paragraphs - 1`` consecutive
    neighbours of the same article, separated by blank lines."""
    paras = articles[example.group]
    i = paras.index(example.context)
    first = rng.randint(max(0, i - paragraphs + 1), max(0, min(i, len(paras) - paragraphs)))
    chosen = paras[first : first + paragraphs]
    shift = sum(len(p) + 2 for p in chosen[: i - first])
    answers = tuple(GoldAnswer(a.text, a.start + shift) for a in example.answers)
    return QAExample(example.id, example.group, example.question, "\n\n".join(chosen), answers)


def _squad_splits(root: Path) -> tuple[list[QAExample], list[QAExample], list[QAExample]]:
    v1 = load_squad_json(root / "squad/dev-v1.1.json")
    v2 = load_squad_json(root / "squad/dev-v2.0.json")
    squad = dedupe_by_id(v2 + v1)  # v2 shares paragraphs and answerable ids with v1.1
    split = {e.group: squad_v2_split(e.group) for e in squad}
    train = [e for e in squad if split[e.group] == "train"]
    threshold_dev = [e for e in squad if split[e.group] == "dev"]
    squad_test = [e for e in v2 if split[e.group] == "test"]
    return train, threshold_dev, squad_test


def _subjqa_train(root: Path, repeat: int) -> list[tuple[QAExample, int]]:
    # Annotators mark different spans of one review: train on up to 3 of them.
    return [(e, 3) for domain in SUBJQA_TRAIN_DOMAINS
            for e in load_subjqa_csv(root / "subjqa" / domain / "train.csv") for _ in range(repeat)]


def _hold_out_products(subjqa: list[tuple[QAExample, int]], threshold_dev: list[QAExample], fraction: float,
                       ) -> tuple[list[tuple[QAExample, int]], list[QAExample]]:
    """Move the SubjQA train questions of ``fraction`` of the products (by a hash of item_id)
    from training to the threshold dev set."""
    if fraction <= 0:
        return subjqa, threshold_dev
    held = {e.id: e for e, _ in subjqa if _is_held_out_product(e, fraction)}
    return [(e, n) for e, n in subjqa if e.id not in held], threshold_dev + list(held.values())


def _is_held_out_product(example: QAExample, fraction: float) -> bool:
    return _bucket(example.group) < 100 * fraction


def _held_out(root: Path, train: list[tuple[QAExample, int]], threshold_dev: list[QAExample],
              squad_test: list[QAExample], squad_dev: list[QAExample]) -> ReaderData:
    for domain in SUBJQA_DEV_DOMAINS:
        threshold_dev = threshold_dev + load_subjqa_csv(root / "subjqa" / domain / "dev.csv")
    subjqa_test = load_subjqa_csv(root / "subjqa/electronics/test.csv")
    seen = {_pair(e) for e, _ in train}
    # SubjQA's dev splits repeat some (question, review) pairs of train: not usable for fitting. A
    # pair of a held-out train product can also be in the dev split: one example, both annotations.
    threshold_dev = merge_duplicates(e for e in threshold_dev if _pair(e) not in seen)
    _check_disjoint(seen, squad_test + subjqa_test)
    squad_ids = {e.id for e in squad_dev}
    parts = {SQUAD_DEV_PART: frozenset(e.id for e in threshold_dev if e.id in squad_ids),
             REVIEWS_DEV_PART: frozenset(e.id for e in threshold_dev if e.id not in squad_ids)}
    return ReaderData(train, threshold_dev, squad_test, subjqa_test, parts)


def _parts_of(data: ReaderData, threshold_dev: list[QAExample]) -> dict[str, frozenset[str]]:
    """``data``'s dev parts, less the questions that are not in ``threshold_dev``."""
    kept = {e.id for e in threshold_dev}
    return {name: ids & kept for name, ids in data.dev_parts.items()}


def _pair(example: QAExample) -> tuple[str, str]:
    return example.question.strip().lower(), example.context


def _check_disjoint(seen: set[tuple[str, str]], held: list[QAExample]) -> None:
    """No evaluation question-context pair is trained on. (SubjQA's official splits share some
    reviews between train and test with different questions; that is the book's protocol.)"""
    leaked = sum(1 for e in held if _pair(e) in seen)
    if leaked:
        raise ValueError(f"{leaked} held-out question-context pairs are in the training data")
