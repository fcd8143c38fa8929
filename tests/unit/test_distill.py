"""Distillation's pure parts: carrying a teacher's scores to the student's tokens, the loss, the cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qa_system.errors import ConfigError
from qa_system.reader.windows import Window
from qa_system.training.distill import MASKED, TeacherCache, carry_scores, char_to_token, distillation_loss


def test_char_to_token_gives_gaps_to_the_next_token() -> None:
    offsets = np.array([[0, 0], [0, 5], [6, 11]])  # [CLS] "hello" "world"
    owner = char_to_token(offsets, np.array([False, True, True]), 11)
    assert owner[:5].tolist() == [1] * 5 and owner[5] == 2 and owner[6:11].tolist() == [2] * 5


def test_scores_are_carried_by_character_across_tokenizers() -> None:
    # context "unbelievable news" at characters 10..27 of its passage; the student cut "unbelievable"
    # in two tokens, the teacher kept it whole
    student = Window(question_index=0, passage_index=0, input_ids=np.arange(6), token_type_ids=None,
                     offsets=np.array([[0, 0], [0, 3], [10, 12], [12, 22], [23, 27], [0, 0]]),
                     context_mask=np.array([False, False, True, True, True, False]), cls_index=0)
    teacher_offsets = np.array([[0, 0], [0, 12], [13, 17], [0, 0]])  # relative to character 10
    teacher_context = np.array([False, True, True, False])
    start, end = carry_scores(student, 10, teacher_offsets, teacher_context, 0,
                              np.array([5.0, 1.0, 2.0, 0.0]), np.array([6.0, 3.0, 4.0, 0.0]), 17)
    assert start.tolist() == [5.0, MASKED, 1.0, 1.0, 2.0, MASKED]  # "un" and "believable" start where the word does
    assert end.tolist() == [6.0, MASKED, 3.0, 3.0, 4.0, MASKED]


def test_distillation_loss_is_zero_for_the_teachers_own_scores_and_ignores_masked_positions() -> None:
    teacher = torch.tensor([[2.0, 1.0, MASKED, 0.5]])
    assert distillation_loss(teacher.clone(), teacher, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    moved = torch.tensor([[2.0, 1.0, 50.0, 0.5]])  # only a masked position differs
    assert distillation_loss(moved, teacher, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(torch.tensor([[0.0, 3.0, 0.0, 0.0]]), teacher, 2.0).item() > 0.1


def test_cache_round_trips_and_names_its_teacher(tmp_path) -> None:
    cache = TeacherCache(tmp_path, "t1")
    cache.put("k", (np.array([1.0, 2.0]), np.array([3.0, 4.0])))
    cache.flush()
    again = TeacherCache(tmp_path)
    assert again.teacher == "t1" and again.get("k")[1].tolist() == [3.0, 4.0]
    with pytest.raises(ConfigError, match="not a teacher-score cache"):
        TeacherCache(tmp_path / "empty")
