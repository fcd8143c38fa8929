"""`qa-system train-reader` and `qa-system eval-reader`."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import DEFAULT_EMBEDDING_MODEL
from ..errors import ConfigError
from ..hardware import READER_PRECISIONS, allocator_hint, resolve_precision
from .folders import TEACHER_CACHE, check_model_output, check_run_output
from .recipe import RECIPES

if TYPE_CHECKING:
    from .run import TrainingData

EVAL_HEADER = f"{'file':<44} {'n':>5} {'EM':>6} {'F1':>6} {'HasAns F1':>9} {'NoAns acc':>9}"


def add_train_reader_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", nargs="+", default=[], metavar="FILE", help="SQuAD v1.1/v2.0 JSON or SubjQA CSV files")
    p.add_argument("--eval", nargs="*", default=[], metavar="FILE",
                   help="held-out evaluation files (default: 10%% of the training articles/products held out)")
    p.add_argument("--dev", nargs="*", default=[], metavar="FILE",
                   help="files to fit the no-answer threshold on (default: the evaluation examples)")
    p.add_argument("--recipe", choices=list(RECIPES),
                   help="the default reader's data from --datasets: 'default' (phase 1, from the encoder), "
                        "'reviews' (phase 2, from a phase-1 model: SubjQA and review QA); 'default-heldout' and "
                        "'reviews-heldout': the same with a fifth of the SubjQA train products kept for fitting "
                        "the threshold; 'reviews-products' (phase 3, after reviews-heldout): those products, "
                        "with a replay; 'reviews-long' (phase 3, after reviews-heldout): contexts longer than "
                        "one window, with a replay (use --negative-keep 1)")
    p.add_argument("--datasets", default="../shared/datasets", help="folder of the public datasets (recipe only)")
    p.add_argument("--base-model", default=DEFAULT_EMBEDDING_MODEL,
                   help="a QA model or a plain encoder (gets a new QA head); name or folder")
    p.add_argument("--output", required=True, type=Path, help="run folder: checkpoints, history, model/")
    p.add_argument("--max-length", type=int, default=192, help="window length in tokens")
    p.add_argument("--stride", type=int, default=64, help="tokens shared by consecutive windows")
    p.add_argument("--batch-size", type=int, default=32, help="windows per training step")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (after a short warm-up, decays to 0)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the training windows (may be fractional)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (default: as many as --epochs asks for)")
    p.add_argument("--negative-keep", type=float, default=0.5,
                   help="share of answer-less windows of answerable questions kept for training")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto: bf16 autocast on a GPU that supports it or a CPU with native bf16 (AVX512-BF16/AMX), "
                        "else fp32")
    p.add_argument("--device", default="auto", help="auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda")
    p.add_argument("--time-budget", type=float, metavar="MINUTES",
                   help="end the training steps within this many minutes: the pace measured once a tenth of "
                        "it is spent (half, if 25 steps take longer; then after each further tenth) sets "
                        "how many steps fit, never more than the epochs ask for, and the "
                        "learning-rate schedule is fitted to them without jumps")
    p.add_argument("--shared-norm", type=float, default=0.0, metavar="WEIGHT",
                   help="weight of a second loss that scores the answer against all windows of a long context "
                        "at once (keeps them in one batch); 0 turns it off")
    p.add_argument("--teacher", metavar="MODEL",
                   help="distil from this QA model (name or folder; any tokenizer): the student also learns the "
                        "teacher's start/end distributions. Its scores are cached (--teacher-cache), so a resumed "
                        "run needs no teacher")
    p.add_argument("--teacher-cache", type=Path, metavar="DIR",
                   help="folder of cached teacher scores (default: OUTPUT/teacher-cache); alone, without "
                        "--teacher, trains from a cache computed elsewhere (e.g. on a GPU)")
    p.add_argument("--distill-weight", type=float, default=0.5,
                   help="with a teacher: share of the loss that follows the teacher (the rest: the gold labels)")
    p.add_argument("--temperature", type=float, default=2.0, help="with a teacher: softmax temperature")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's own choice)")
    p.add_argument("--seed", type=int, default=13, help="random seed (held-out split, windows kept, batch order)")
    p.add_argument("--checkpoint-every", type=int, default=50,
                   help="save a checkpoint to resume from every this many steps")
    p.add_argument("--skip-tests", action="store_true",
                   help="after training, fit the no-answer threshold but score no held-out test set (e.g. an "
                        "intermediate phase; score it later with eval-reader)")
    p.add_argument("--export-fp16", type=Path, help="also write a half-precision copy of the final model here")
    p.add_argument("--overwrite-export", action="store_true",
                   help="let --export-fp16 replace the model already in that folder")


def _add_scoring_precision(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reader-precision", choices=list(READER_PRECISIONS), default="fp32",
                   help="how the reader computes while scoring (default fp32, so that scores compare across "
                        "machines; auto, bf16 or int8 to measure what a deployment with that setting gets)")


def add_eval_reader_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="QA model folder or name")
    p.add_argument("files", nargs="+", help="SQuAD JSON or SubjQA CSV files")
    p.add_argument("--threshold", type=float, help="no-answer threshold (default: the model's fitted one)")
    p.add_argument("--max-seq-length", type=int,
                   help="window length in tokens (default: the model folder's qa_system_reader.json, else 384)")
    p.add_argument("--doc-stride", type=int,
                   help="tokens shared by consecutive windows (default: the model folder's, else 128)")
    p.add_argument("--limit", type=int, help="evaluate on the first N questions of each file")
    p.add_argument("--json", type=Path, help="write the scores to this JSON file")
    _add_scoring_precision(p)


def add_fit_threshold_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="a local QA model folder (its qa_system_reader.json is rewritten)")
    p.add_argument("files", nargs="*", help="dev files: SQuAD JSON or SubjQA CSV")
    p.add_argument("--recipe", choices=list(RECIPES),
                   help="fit on this recipe's threshold dev split of --datasets (instead of, or besides, files)")
    p.add_argument("--datasets", default="../shared/datasets", help="folder of the public datasets (recipe only)")
    p.add_argument("--print-only", action="store_true",
                   help="print the fitted threshold without writing it (use it as QA_SYSTEM_NO_ANSWER_THRESHOLD)")
    _add_scoring_precision(p)


def add_average_readers_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", type=Path, help="local QA model folders of one architecture (two or more)")
    p.add_argument("--output", required=True, type=Path, help="folder for the averaged model (fp16)")
    p.add_argument("--weights", type=float, nargs="+", help="one per model, summing to 1 (default: equal)")
    p.add_argument("--overwrite", action="store_true", help="replace the model already in --output")


def average_readers_command(args: argparse.Namespace) -> int:
    """Average the weights of readers fine-tuned from one base; the result needs fit-threshold."""
    from .finalize import average_weights

    out = average_weights(args.models, args.output, args.weights, overwrite=args.overwrite)
    print(f"averaged {len(args.models)} models into {out}; fit its no-answer threshold next: "
          f"qa-system fit-threshold {out} DEV_FILE... (or --recipe NAME)")
    return 0


def _base_model_path(name: str) -> str:
    from ..embedding import resolve_embedding_model

    return resolve_embedding_model(name)


def _use_bf16(precision: str, device: str) -> bool:
    return resolve_precision(precision, device) == "bf16"


def _training_device(name: str) -> str:
    """``auto`` resolved; a device torch cannot use is refused here (``ConfigError``)."""
    import torch

    from .trainer import checked_device

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(checked_device(name))


def train_reader_command(args: argparse.Namespace) -> int:
    from .run import data_from_files, recipe_data, run_training
    from .trainer import TrainConfig

    # settings errors first, before minutes of data loading and tokenising
    if args.time_budget is not None and args.time_budget <= 0:
        raise ConfigError(f"--time-budget must be positive, got {args.time_budget}")
    if not (args.shared_norm >= 0 and math.isfinite(args.shared_norm)):
        raise ConfigError(f"--shared-norm must be a finite weight >= 0, got {args.shared_norm}")
    check_run_output(args.output)
    if args.export_fp16:
        check_model_output(args.export_fp16, args.overwrite_export, flag="--overwrite-export")
    if not (0 < args.distill_weight <= 1 and args.temperature > 0):
        raise ConfigError("--distill-weight must be in (0, 1] and --temperature positive")
    device = _training_device(args.device)
    teacher = _teacher(args, device)
    hint = allocator_hint("training") if device == "cpu" else None
    if hint:
        print(hint, file=sys.stderr)
    if args.recipe:
        data = recipe_data(args.recipe, args.datasets)
    elif args.train:
        data = data_from_files(args.train, args.eval, eval_fraction=0.1, seed=args.seed)
    else:
        raise ConfigError("give --train FILE... or --recipe NAME")
    config = TrainConfig(
        output_dir=str(args.output), base_model=_base_model_path(args.base_model), max_length=args.max_length,
        stride=args.stride, batch_size=args.batch_size, learning_rate=args.lr, epochs=args.epochs,
        seed=args.seed, bf16=_use_bf16(args.precision, device), checkpoint_every_steps=args.checkpoint_every,
        torch_threads=args.threads, max_steps=args.max_steps, device=device,
        time_budget_s=None if args.time_budget is None else 60.0 * args.time_budget, shared_norm=args.shared_norm,
        distill_weight=args.distill_weight if teacher is not None else 0.0, distill_temperature=args.temperature,
    )
    model_dir = run_training(config, data, negative_keep=args.negative_keep, teacher=teacher)
    finish_training(model_dir, data, dev_files=args.dev, export_fp16=args.export_fp16, device=device,
                    overwrite_export=args.overwrite_export, score_tests=not args.skip_tests)
    return 0


def _teacher(args: argparse.Namespace, device: str):  # noqa: ANN202 - a distill.Teacher or None
    if args.teacher is None and args.teacher_cache is None:
        return None
    from .distill import Teacher, TeacherCache

    model = _base_model_path(args.teacher) if args.teacher else None
    cache = TeacherCache(args.teacher_cache or Path(args.output) / TEACHER_CACHE,
                         None if model is None else Path(model).name)
    return Teacher(model, cache, device=device)


def finish_training(model_dir: Path, data: TrainingData, *, dev_files: list[str], export_fp16: Path | None,
                    device: str = "cpu", overwrite_export: bool = False, score_tests: bool = True) -> None:
    """Fit the no-answer threshold, score the held-out sets (unless ``score_tests`` is False),
    optionally export an fp16 copy."""
    from ..config import Settings
    from ..qa_datasets import load_examples, merge_duplicates
    from .finalize import export_half_precision, fit_and_save_threshold

    settings = Settings(device=device, reader_precision="fp32")  # scores that compare across machines
    dev = merge_duplicates(e for f in dev_files for e in load_examples(f)) or data.eval
    if dev:
        fit = fit_and_save_threshold(model_dir, dev, settings=settings)
        print(f"no-answer threshold {_thresholds(fit)} (dev F1 {100 * fit.f1:.2f} on {fit.examples} questions)")
    tests = (data.tests or ({"held-out": data.eval} if data.eval else {})) if score_tests else {}
    results = {name: _evaluate(str(model_dir), examples, None, None, None, settings=settings)
               for name, examples in tests.items()}
    for name, scores in results.items():
        _print_scores(name, scores)
    if results:
        (Path(model_dir) / "eval_results.json").write_text(json.dumps(results, indent=2))
    if export_fp16:
        print(f"fp16 copy: {export_half_precision(model_dir, export_fp16, overwrite_export)}")
    print(f"model: {model_dir}")


def _evaluate(model: str, examples: list, threshold: float | None, max_seq_length: int | None,
              doc_stride: int | None, settings: Any = None) -> dict:
    from ..config import Settings
    from ..evaluation.reader_eval import run_reader, score_run
    from ..reader import ExtractiveReader

    reader = ExtractiveReader(model, settings=settings or Settings(reader_precision="fp32"),
                              max_seq_length=max_seq_length, doc_stride=doc_stride,
                              no_answer_threshold=threshold).load()
    used, long = reader.params.no_answer_threshold, reader.params.long_passage_no_answer_threshold
    scores = score_run(run_reader(reader, examples, progress=True), examples, used, long)
    return {"threshold": used, "long_passage_threshold": long, **asdict(scores)}


def _thresholds(fit: Any) -> str:
    """A fit's threshold(s), as the commands print them."""
    if fit.long_threshold is None:
        return f"{fit.threshold:.3f}"
    return (f"{fit.threshold:.3f} ({fit.examples - fit.long_examples} contexts read in one window), "
            f"{fit.long_threshold:.3f} ({fit.long_examples} read in several)")


def _print_scores(name: str, s: dict) -> None:
    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}"

    print(EVAL_HEADER)
    print(f"{name[-44:]:<44} {s['total']:>5} {fmt(s['exact_match']):>6} {fmt(s['f1']):>6} "
          f"{fmt(s['has_answer_f1']):>9} {fmt(s['no_answer_f1']):>9}")


def fit_threshold_command(args: argparse.Namespace) -> int:
    """Re-fit a model folder's no-answer threshold on dev data (e.g. your own domain's)."""
    from ..config import Settings
    from ..qa_datasets import load_examples, merge_duplicates
    from ..reader.model_config import load_reader_config, reader_config_path
    from .finalize import fit_and_save_threshold, require_model_folder
    from .recipe import load_recipe_data

    require_model_folder(args.model)
    dev: list = []
    parts: dict[str, set[str]] = {}
    for f in args.files:
        examples = load_examples(f)
        dev += examples
        parts.setdefault(str(f), set()).update(e.id for e in examples)
    if args.recipe:
        data = load_recipe_data(args.recipe, args.datasets)
        dev += data.threshold_dev
        for name, ids in data.dev_parts.items():
            parts.setdefault(f"{args.recipe}: {name}", set()).update(ids)
    dev = merge_duplicates(dev)  # a question in two files is one question, with the gold answers of both
    if not dev:
        raise ConfigError("give dev FILEs or --recipe NAME to fit the threshold on")
    saved = load_reader_config(args.model)  # a corrupt file stops here, before anything is overwritten
    before = "not set"
    if reader_config_path(args.model).is_file():
        long = saved.long_passage_no_answer_threshold
        before = f"{saved.no_answer_threshold:.3f}" + ("" if long is None else f" / {long:.3f}")
    fit = fit_and_save_threshold(args.model, dev, max_seq_length=saved.max_seq_length or 384,
                                 doc_stride=saved.doc_stride or 128, save=not args.print_only,
                                 settings=Settings(reader_precision=args.reader_precision),
                                 parts=parts if len(parts) > 1 else None)
    where = ("not written (--print-only): set QA_SYSTEM_NO_ANSWER_THRESHOLD to use the first for every context"
             if args.print_only
             else f"written to {reader_config_path(args.model)}")
    print(f"no-answer threshold {_thresholds(fit)} (was {before}); dev F1 {100 * fit.f1:.2f} on {fit.examples} "
          f"questions, {fit.has_answer} with an answer; {where}")
    if fit.parts:
        print(f"\n{'dev part':<44} {'n':>5} {'HasAns':>6} {'F1':>6} {'HasAns F1 answering all':>24}")
        for name, part in fit.parts.items():
            answer_all = "-" if part.has_answer_f1_answer_all is None else f"{100 * part.has_answer_f1_answer_all:.2f}"
            print(f"{name[-44:]:<44} {part.questions:>5} {part.has_answer:>6} {100 * part.f1:>6.2f} {answer_all:>24}")
    return 0


def eval_reader_command(args: argparse.Namespace) -> int:
    from ..config import Settings
    from ..errors import InputError
    from ..qa_datasets import load_examples, merge_duplicates

    results = {}
    for f in args.files:
        examples = load_examples(f)  # its errors name the file
        try:
            examples = merge_duplicates(examples)
        except InputError as e:
            raise InputError(f"{f}: {e}") from e
        if args.limit:
            examples = examples[: args.limit]
        results[f] = _evaluate(args.model, examples, args.threshold, args.max_seq_length, args.doc_stride,
                               settings=Settings(reader_precision=args.reader_precision))
        _print_scores(f, results[f])
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "results": results}, indent=2))
    return 0
