"""scripts/condense_contexts.py: the sentence cutting and the condensing of long contexts (a fake
embedder; the shipped reader's tokenizer counts the tokens)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from qa_system.qa_datasets import GoldAnswer, QAExample

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import condense_contexts  # noqa: E402


class KeywordEmbedder:
    """Unit vectors: the question and sentences holding ``word`` point one way, the rest another."""

    def __init__(self, word: str) -> None:
        self.word = word

    def encode(self, texts):
        return np.array([[1.0, 0.0] if self.word in t else [0.0, 1.0] for t in texts])


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(Path(__file__).resolve().parents[2] / "qa_system/models/reader")


def example(context: str, question: str = "how loud is the fan?") -> QAExample:
    return QAExample(id="q1", group="g", question=question, context=context,
                     answers=(GoldAnswer(text="very quiet", start=context.find("very quiet")),))


def test_sentences_cut_after_end_marks_and_at_line_breaks() -> None:
    text = "It works. Is it loud?  No!\n\nBattery lasts 3.5 hours\nend"
    assert condense_contexts.sentences(text) == ["It works.", "Is it loud?", "No!", "Battery lasts 3.5 hours", "end"]
    assert condense_contexts.sentences("   ") == []


def test_short_context_is_read_unchanged(tokenizer) -> None:
    e = example("The fan is very quiet. I like it.")
    out, n = condense_contexts.condense([e], tokenizer, KeywordEmbedder("fan"), 384)
    assert n == 0 and out == [e]


def test_long_context_keeps_the_sentences_like_the_question_in_order_and_fits_a_window(tokenizer) -> None:
    filler = [f"Sentence number {i} talks about the box and the cable and the manual." for i in range(60)]
    fan = ["The fan is very quiet.", "The fan never gets loud."]
    context = " ".join(filler[:20] + fan[:1] + filler[20:40] + fan[1:] + filler[40:])
    e = example(context)
    (out,), n = condense_contexts.condense([e], tokenizer, KeywordEmbedder("fan"), 128)
    assert n == 1
    assert out.context.index("The fan is very quiet.") < out.context.index("The fan never gets loud.")
    assert out.question == e.question and out.answers == e.answers
    window = tokenizer(out.question, out.context)["input_ids"]
    assert len(window) <= 128
    assert len(tokenizer(e.question, e.context)["input_ids"]) > 128
    kept = condense_contexts.sentences(out.context)
    assert all(s in filler or "fan" in s for s in kept)
    assert [s for s in kept if s in filler] == sorted((s for s in kept if s in filler), key=filler.index)
