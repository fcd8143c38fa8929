"""After training: fit the no-answer threshold on a dev set and write the shippable model folder."""

from __future__ import annotations

import json
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ConfigError
from ..evaluation.reader_eval import MIN_LONG_EXAMPLES, ThresholdFit, fit_thresholds, run_reader, score_parts
from ..qa_datasets import QAExample
from ..reader import ExtractiveReader, ReaderModelConfig, save_reader_config
from .folders import atomic_save_dir, check_model_output


def fit_and_save_threshold(
    model_dir: str | Path, dev: Sequence[QAExample], *, max_seq_length: int = 384, doc_stride: int = 128,
    progress: bool = True, reader: Any = None, save: bool = True, settings: Any = None,
    parts: Mapping[str, Collection[str]] | None = None,
) -> ThresholdFit:
    """Read ``dev`` with the model at ``model_dir``, pick the F1-maximising no-answer thresholds
    (one for contexts read in one window, one for contexts read in several, when dev has enough
    of those: ``fit_thresholds``) and (``save``) store them, with the window settings, in the
    folder's ``qa_system_reader.json``.
    Without ``settings`` the reader computes in fp32, so that a fit compares across machines.
    ``parts`` (name -> question ids) are scored apart at the fitted threshold (``fit.parts``)."""
    reader = reader or ExtractiveReader(
        str(model_dir), settings=settings or Settings(reader_precision="fp32"), max_seq_length=max_seq_length,
        doc_stride=doc_stride,
        no_answer_threshold=0.0,
    ).load()
    run = run_reader(reader, dev, progress=progress)
    fit = fit_thresholds(run, dev)
    if parts:
        fit = replace(fit, parts=score_parts(run, dev, fit.threshold, parts, fit.long_threshold))
    if not save:
        return fit
    save_reader_config(
        model_dir,
        ReaderModelConfig(no_answer_threshold=round(fit.threshold, 4), max_seq_length=max_seq_length,
                          doc_stride=doc_stride, max_answer_tokens=30,
                          long_passage_no_answer_threshold=(None if fit.long_threshold is None
                                                            else round(fit.long_threshold, 4))),
    )
    (Path(model_dir) / "threshold_fit.json").write_text(json.dumps(
        {"method": "max F1 over every margin on the dev set (SQuAD 2.0 best_f1_thresh), fitted apart on "
                   f"contexts read in one window and on those read in several (if at least {MIN_LONG_EXAMPLES})",
         "threshold": fit.threshold, "long_passage_threshold": fit.long_threshold,
         "dev_long_context_examples": fit.long_examples, "dev_f1_at_threshold": fit.f1, "dev_examples": fit.examples,
         "dev_has_answer": fit.has_answer, "reader_precision": getattr(reader, "precision", None),
         "dev_parts": {name: asdict(part) for name, part in fit.parts.items()}}, indent=2))
    return fit


def require_model_folder(path: str | Path) -> Path:
    """``path`` as a local model folder, or ConfigError naming it."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder} is not a local model folder (no config.json)")
    return folder


def export_half_precision(model_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Copy a trained QA model folder with its weights stored as fp16 (half the size); the
    reader casts them back to fp32 when it loads on a CPU. An existing model at ``out_dir`` is
    replaced only with ``overwrite`` (see ``check_model_output``)."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    check_model_output(out_dir, overwrite)
    src = require_model_folder(model_dir)
    model = AutoModelForQuestionAnswering.from_pretrained(src, dtype=torch.float32)
    return _save_half_precision(model, src, out_dir, extras=("qa_system_reader.json", "threshold_fit.json",
                                                              "eval_results.json"))


def _save_half_precision(model: Any, src: Path, out_dir: str | Path, extras: Sequence[str] = ()) -> Path:
    """Write ``model`` in fp16 with ``src``'s tokenizer (and its ``extras`` files, where present) to
    ``out_dir``, swapped in whole (``atomic_save_dir``): a failure leaves no half-written model."""
    from transformers import AutoTokenizer

    def write(tmp: Path) -> None:
        model.half().save_pretrained(tmp)
        AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
        for extra in extras:
            if (src / extra).exists():
                shutil.copy2(src / extra, tmp / extra)

    out = Path(out_dir)
    atomic_save_dir(write, out)
    return out


def average_weights(model_dirs: Sequence[str | Path], out_dir: str | Path,
                    weights: Sequence[float] | None = None, overwrite: bool = False) -> Path:
    """Write a QA model whose every weight is the weighted mean of the same weight in
    ``model_dirs`` (a "model soup"; equal weights by default), stored in fp16 with the first
    folder's tokenizer. The models must share one architecture, e.g. fine-tuned from one base.
    The average has no fitted no-answer threshold: run ``fit-threshold`` on it. An existing model
    at ``out_dir`` (one of ``model_dirs`` included) is replaced only with ``overwrite``."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    dirs = [require_model_folder(d) for d in model_dirs]
    check_model_output(out_dir, overwrite)
    if len(dirs) < 2:
        raise ConfigError("give at least two model folders to average")
    for d in dirs:
        architectures = json.loads((d / "config.json").read_text()).get("architectures") or []
        if not any(a.endswith("ForQuestionAnswering") for a in architectures):
            # loading it would give a new, random span head: averaging with that is noise
            raise ConfigError(f"{d} is not a question-answering model (architectures: {architectures})")
    weights = [1.0 / len(dirs)] * len(dirs) if weights is None else [float(w) for w in weights]
    if len(weights) != len(dirs) or any(w < 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
        raise ConfigError(f"need one non-negative weight per model, summing to 1; got {weights}")
    models = [AutoModelForQuestionAnswering.from_pretrained(d, dtype=torch.float32) for d in dirs]
    states = [m.state_dict() for m in models]
    for d, state in zip(dirs[1:], states[1:], strict=True):
        if state.keys() != states[0].keys() or any(state[k].shape != v.shape for k, v in states[0].items()):
            raise ConfigError(f"{d} and {dirs[0]} have different architectures: their weights cannot be averaged")
    averaged = {}
    for k, first in states[0].items():
        if first.is_floating_point():
            averaged[k] = sum(w * s[k] for w, s in zip(weights, states, strict=True))
        elif all(torch.equal(s[k], first) for s in states[1:]):
            averaged[k] = first  # integer buffers (e.g. position ids) must agree, not be averaged
        else:
            raise ConfigError(f"{k} differs between the models and cannot be averaged")
    models[0].load_state_dict(averaged)
    return _save_half_precision(models[0], dirs[0], out_dir)
