"""Entry points behind `qa-system train-reader`: user files or the default-reader recipe."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..qa_datasets import QAExample, load_examples, merge_duplicates
from ..reader.windows import check_tokenizer_windows
from .distill import Teacher
from .features import TrainWindow, build_windows
from .folders import check_run_output
from .recipe import load_recipe_data
from .trainer import TrainConfig, train_reader


@dataclass(frozen=True)
class TrainingData:
    train: list[tuple[QAExample, int]]
    eval: list[QAExample]  # held out: watched during training, fits the no-answer threshold
    tests: dict[str, list[QAExample]] = field(default_factory=dict)  # scored once, after training


def data_from_files(train_files: Sequence[str], eval_files: Sequence[str], eval_fraction: float,
                    seed: int) -> TrainingData:
    """User data: SQuAD JSON / SubjQA CSV files. Without eval files, whole groups (articles or
    products) are held out for evaluation so that no evaluation context was trained on."""
    train: list[tuple[QAExample, int]] = []
    for f in train_files:
        # SubjQA annotators mark different spans: train on up to 3 per question.
        n_answers = 3 if str(f).lower().endswith(".csv") else 1
        train.extend((e, n_answers) for e in load_examples(f))
    held = merge_duplicates(e for f in eval_files for e in load_examples(f))
    if not held and eval_fraction > 0:
        groups = sorted({e.group for e, _ in train})
        random.Random(seed).shuffle(groups)
        n_held = max(1, int(len(groups) * eval_fraction)) if len(groups) > 1 else 0
        out = set(groups[:n_held])
        held = merge_duplicates(e for e, _ in train if e.group in out)
        train = [(e, n) for e, n in train if e.group not in out]
    if not train:
        raise ConfigError("no training examples in the given files")
    return TrainingData(train, held)


def windows_for(
    data: Sequence[tuple[QAExample, int]], tokenizer: object, max_length: int, stride: int, negative_keep: float,
    seed: int, teacher: Teacher | None = None,
) -> list[TrainWindow]:
    by_answers: dict[int, list[QAExample]] = {}
    for example, n in data:
        by_answers.setdefault(n, []).append(example)
    windows: list[TrainWindow] = []
    for n, examples in sorted(by_answers.items()):
        windows.extend(build_windows(examples, tokenizer, max_length=max_length, stride=stride,
                                     negative_keep=negative_keep, max_answers=n, seed=seed,
                                     first_group=windows[-1].group + 1 if windows else 0, teacher=teacher))
    if teacher is not None:
        teacher.cache.flush()
    return windows


def run_training(
    config: TrainConfig,
    data: TrainingData,
    *,
    negative_keep: float = 0.5,
    eval_loss_examples: int = 300,
    log: Callable[[str], None] = print,
    teacher: Teacher | None = None,
) -> Path:
    from transformers import AutoTokenizer

    check_run_output(config.output_dir)  # before minutes of tokenising, as the CLI does
    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    check_tokenizer_windows(tokenizer, config.max_length, config.stride)  # before minutes of tokenising
    began = time.perf_counter()
    windows = windows_for(data.train, tokenizer, config.max_length, config.stride, negative_keep, config.seed,
                          teacher)
    if teacher is not None:
        log(f"teacher scores: {teacher.computed} windows computed, {len(windows) - teacher.computed} from the "
            f"cache {teacher.cache.folder}")
    eval_examples = random.Random(config.seed).sample(data.eval, min(eval_loss_examples, len(data.eval)))
    eval_windows = build_windows(eval_examples, tokenizer, max_length=config.max_length, stride=config.stride)
    log(f"{len(data.train)} training examples -> {len(windows)} windows; {len(eval_windows)} held-out windows "
        f"({time.perf_counter() - began:.0f}s)")
    return train_reader(config, windows, eval_windows=eval_windows, tokenizer=tokenizer, log=log)


def recipe_data(name: str, datasets_dir: str) -> TrainingData:
    data = load_recipe_data(name, datasets_dir)
    # Held-out loss during training is watched on the threshold-fitting dev split, never on test.
    return TrainingData(data.train, data.threshold_dev,
                        {"squad-v2-dev-heldout-articles": data.squad_test, "subjqa-electronics-test": data.subjqa_test})

