"""What the machine computes fast: used to pick bf16 where it is native, and nowhere else."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import ConfigError

READER_PRECISIONS = ("auto", "fp32", "bf16", "int8")
EMBEDDING_PRECISIONS = ("auto", "fp32", "bf16", "int8")


@functools.lru_cache(maxsize=1)  # the CPU's flags do not change; read them once
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 autocast is
    emulated and slow (measured on an AVX2-only AMD EPYC: about 10x slower than fp32 per training
    step, about 6x per reader batch)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` as ``bf16`` on a CPU with native bf16 or a CUDA GPU that supports it, else
    ``fp32``; any other value as given."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


@contextlib.contextmanager
def bf16_autocast(device: str, enabled: bool) -> Iterator[None]:
    """bfloat16 autocast on ``device`` while ``enabled``; nothing otherwise (torch is imported
    only when it is needed)."""
    if not enabled:
        yield
        return
    import torch

    with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
        yield


def quantize_linear_int8(model: Any) -> Any:
    """``model`` with its Linear layers dynamically quantised to int8 (CPU only): one weight scale
    per output channel, activations quantised on the fly. Per channel kept 0.4 to 3.6 F1 points of
    the shipped reader that one scale per matrix loses, at no cost in speed (reader model card)."""
    import torch

    ao_quantization = getattr(getattr(torch, "ao", None), "quantization", None)
    if ao_quantization is None or not hasattr(ao_quantization, "quantize_dynamic"):
        raise ConfigError("this torch build has no torch.ao.quantization.quantize_dynamic")
    with warnings.catch_warnings():  # deprecated in favour of torchao, still shipped
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        qconfig = ao_quantization.per_channel_dynamic_qconfig
        return ao_quantization.quantize_dynamic(model, {torch.nn.Linear: qconfig}, dtype=torch.qint8, inplace=True)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None


def release_freed_memory() -> bool:
    """Give the memory the process has freed back to the operating system (glibc's
    ``malloc_trim``); False where there is no such call. Training steps of many different shapes
    (length-grouped batches) leave glibc's heap full of freed blocks it keeps: measured on phase 1
    of the default reader (batch 64, up to 384 tokens, bf16, 2 threads), resident memory grew from
    2.4 to 6.9 GB in 35 steps without it and stayed at 1.2 to 1.4 GB with it, at the same speed;
    a real run reached 19.6 GB at step 166 and was killed for memory."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
