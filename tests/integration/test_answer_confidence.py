"""The answer confidence in the whole pipeline: off-topic and nonsense questions over a corpus larger
than the sample one get "no answer", on-topic ones keep theirs, and every answer carries a probability."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_system.answer_text import normalize_answer
from qa_system.config import load_settings
from qa_system.system import QASystem
from tests.support import DATA, sample_questions

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
OFF_TOPIC = ["What is the capital of France?", "Who wrote Pride and Prejudice?", "Who won the 2018 World Cup?",
             "How do I bake sourdough bread?", "What is the boiling point of water on Mars?",
             "Which river flows through Vienna?"]
NONSENSE = ["???", "...", "asdf qwerty", "!!!", "zzz", "x?"]


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Path:  # noqa: ANN001
    """The sample help centre plus this project's own documentation (about 2.5x the passages)."""
    store = tmp_path_factory.mktemp("confidence-store")
    with QASystem(load_settings(store_dir=store), embedder=real_embedder) as qa:
        report = qa.ingest([DATA / "sample_corpus", ROOT / "docs"])
        assert not report.failed
        assert qa.stats().chunks > 150
    return store


def _ask(store: Path, embedder, questions: list[str], **settings) -> list:  # noqa: ANN001
    with QASystem(load_settings(store_dir=store, **settings), embedder=embedder) as qa:
        return qa.ask_many(questions)


def test_off_topic_and_nonsense_questions_get_no_answer(corpus_store: Path, real_embedder) -> None:  # noqa: ANN001
    results = _ask(corpus_store, real_embedder, OFF_TOPIC + NONSENSE)
    answered = [(r.question, r.answers[0].text, r.answers[0].confidence) for r in results if r.has_answer]
    assert answered == []
    assert all(r.answers[0].confidence is not None and r.confidence_threshold is not None for r in results)


def test_on_topic_questions_keep_their_answers(corpus_store: Path, real_embedder) -> None:  # noqa: ANN001
    questions = sample_questions()
    results = _ask(corpus_store, real_embedder, [q["question"] for q in questions])
    def overlaps(gold: str, text: str) -> bool:
        gold, text = normalize_answer(gold), normalize_answer(text)
        return bool(text) and (gold in text or text in gold)

    pairs = zip(questions, results, strict=True)
    right = sum(r.has_answer and overlaps(q["answer"], r.answers[0].text) for q, r in pairs)
    answered = sum(r.has_answer for r in results)
    assert answered >= 16, f"only {answered} of {len(questions)} sample questions answered"
    assert right >= 14
    for r in results:  # answers come best first, with probabilities in [0, 1]
        assert all(0.0 <= a.confidence <= 1.0 for a in r.answers)


def test_the_threshold_setting_moves_the_decision_and_off_turns_it_off(
        corpus_store: Path, real_embedder) -> None:  # noqa: ANN001
    question = ["What is the capital of France?"]
    [never] = _ask(corpus_store, real_embedder, question, answer_confidence_threshold=0.0)
    assert never.has_answer  # a threshold of 0 answers everything
    [margin] = _ask(corpus_store, real_embedder, question, answer_confidence=False)
    assert margin.answers[0].confidence is None and margin.confidence_threshold is None
    assert margin.has_answer == margin.margin_rule_answers
