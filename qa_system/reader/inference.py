"""The torch side of the reader: loading a Hugging Face QA model and running windows through it.

torch and transformers are imported only inside these functions, so importing the reader
package stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import ConfigError
from ..hardware import bf16_autocast, quantize_linear_int8
from .answers import WindowLogits
from .windows import BF16_BATCH_COST, FP32_BATCH_COST, Window, pad_batch, plan_batches


def _looks_like_path(name: str) -> bool:
    return os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name


def load_pretrained(name_or_path: str) -> tuple[Any, Any]:
    """Load ``(tokenizer, model)`` from a local folder or a model hub name.

    Raises ConfigError when the model cannot be loaded, is not a question-answering model with
    trained weights (e.g. a bare encoder, whose QA head would be random), or has no fast
    tokenizer (offsets are needed to map answers back to the text).
    """
    if _looks_like_path(name_or_path) and not Path(name_or_path).expanduser().is_dir():
        raise ConfigError(f"reader model folder {name_or_path!r} does not exist")
    path = str(Path(name_or_path).expanduser()) if _looks_like_path(name_or_path) else name_or_path
    from safetensors import SafetensorError
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model, info = AutoModelForQuestionAnswering.from_pretrained(path, output_loading_info=True)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
        raise ConfigError(f"cannot load reader model {name_or_path!r}: {e}") from e
    missing = sorted(info.get("missing_keys", ()))
    if missing:
        raise ConfigError(
            f"{name_or_path!r} is not a trained question-answering model: "
            f"weights missing for {', '.join(missing)}"
        )
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"{name_or_path!r} has no fast tokenizer (character offsets are needed)")
    return tokenizer, model


def prepare_model(model: Any, *, device: str, quantize: bool, torch_threads: int | None, bf16: bool = False) -> Any:
    """Eval mode on ``device``, with weights in the dtype it computes in: bf16 when ``bf16`` (cast
    once here rather than autocast on every call: 1.2x to 1.4x faster per window on a CPU with
    AMX, docs/performance.md), else fp32 on the CPU; optionally int8 dynamic quantisation of the
    Linear layers (CPU, per-channel weight scales)."""
    import torch

    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    if quantize and bf16:
        raise ConfigError("the reader computes in one precision: int8 or bf16, not both")
    try:
        model = model.to(torch.device(device))
        if bf16:
            model = model.to(torch.bfloat16)
        elif torch.device(device).type == "cpu" and _has_half_weights(model):
            # Shipped weights may be fp16 to stay small; CPUs compute fastest (and exactly) in fp32.
            model = model.float()
    except (RuntimeError, AssertionError, ValueError) as e:
        raise ConfigError(f"cannot use device {device!r} for the reader: {e}") from e
    model.eval()
    if quantize:
        if torch.device(device).type != "cpu":
            raise ConfigError(f"int8 reader precision (quantize=True) works on the CPU only, not on {device!r}")
        model = quantize_linear_int8(model)
    return model


def weights_dtype(model: Any) -> str | None:
    """The dtype of the model's first floating-point parameter (``float32``, ``bfloat16``...), or
    None for a model without any."""
    parameters = getattr(model, "parameters", None)
    if not callable(parameters):
        return None
    for p in parameters():
        if p.is_floating_point():
            return str(p.dtype).removeprefix("torch.")
    return None


def _has_half_weights(model: Any) -> bool:
    import torch

    parameters = getattr(model, "parameters", None)
    return callable(parameters) and any(p.dtype in (torch.float16, torch.bfloat16) for p in parameters())


def run_windows(
    model: Any,
    windows: Sequence[Window],
    *,
    batch_size: int,
    pad_token_id: int,
    device: str = "cpu",
    bf16: bool = False,
) -> list[WindowLogits]:
    """Start/end logits (float32, unpadded) of every window, in the order of ``windows``.

    Windows are batched by similar length; the model runs under ``torch.inference_mode()``,
    reading its weights only, so several threads may call this with the same model.
    """
    import torch

    results: list[WindowLogits | None] = [None] * len(windows)
    target = torch.device(device)
    in_bf16 = weights_dtype(model) == "bfloat16"
    cost = BF16_BATCH_COST if bf16 or in_bf16 else FP32_BATCH_COST
    # Weights cast to bf16 compute in bf16 as they are; autocast serves fp32 weights asked for bf16.
    with torch.inference_mode(), bf16_autocast(device, bf16 and not in_bf16):
        for batch in plan_batches([w.length for w in windows], batch_size, cost):
            arrays = pad_batch([windows[i] for i in batch], pad_token_id)
            inputs = {k: torch.from_numpy(v).to(target) for k, v in arrays.items()}
            output = model(**inputs)
            starts = output.start_logits.float().cpu().numpy()
            ends = output.end_logits.float().cpu().numpy()
            for row, i in enumerate(batch):
                n = windows[i].length
                results[i] = (np.array(starts[row, :n]), np.array(ends[row, :n]))
    return cast("list[WindowLogits]", results)
