"""After training: fit the no-answer threshold on a dev set and write the shippable model folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Sequence

from ..evaluation.reader_eval import ThresholdFit, fit_threshold, run_reader
from ..reader import ExtractiveReader, ReaderModelConfig, save_reader_config
from ..qa_datasets import QAExample


def fit_and_save_threshold(
    model_dir: str | Path, dev: Sequence[QAExample], *, max_seq_length: int = 384, doc_stride: int = 128,
    progress: bool = True, reader: Any = None, save: bool = True, settings: Any = None,
) -> ThresholdFit:
    """Read ``dev`` with the model at ``model_dir``, pick the F1-maximising no-answer threshold
    and (``save``) store it, with the window settings, in the folder's ``qa_system_reader.json``."""
    reader = reader or ExtractiveReader(
        str(model_dir), settings=settings, max_seq_length=max_seq_length, doc_stride=doc_stride,
        no_answer_threshold=0.0,
    ).load()
    fit = fit_threshold(run_reader(reader, dev, progress=progress), dev)
    if not save:
        return fit
    save_reader_config(
        model_dir,
        ReaderModelConfig(no_answer_threshold=round(fit.threshold, 4), max_seq_length=max_seq_length,
                          doc_stride=doc_stride, max_answer_tokens=30),
    )
    (Path(model_dir) / "threshold_fit.json").write_text(json.dumps(
        {"method": "max F1 over every margin on the dev set (SQuAD 2.0 best_f1_thresh)",
         "threshold": fit.threshold, "dev_f1_at_threshold": fit.f1, "dev_examples": fit.examples,
         "dev_has_answer": fit.has_answer}, indent=2))
    return fit


def export_half_precision(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Copy a trained QA model folder with its weights stored as fp16 (half the size); the
    reader casts them back to fp32 when it loads on a CPU."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    src, out = Path(model_dir), Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model = AutoModelForQuestionAnswering.from_pretrained(src, dtype=torch.float32)
    model.half().save_pretrained(tmp)
    AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
    for extra in ("qa_system_reader.json", "threshold_fit.json", "eval_results.json"):
        if (src / extra).exists():
            shutil.copy2(src / extra, tmp / extra)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
