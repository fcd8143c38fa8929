"""What the machine computes fast: used to pick bf16 where it is native, and nowhere else."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
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


def physical_memory_bytes() -> int | None:
    """The machine's memory, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def resident_bytes() -> int | None:
    """This process's resident memory (Linux ``/proc/self/statm``), or None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        return None


def release_freed_memory(*, above_bytes: int = 0) -> bool:
    """Give the memory the process has freed back to the operating system (glibc's
    ``malloc_trim``), if it holds more than ``above_bytes``; True when it did.

    Training steps of many different shapes (length-grouped batches) leave glibc's heap full of
    freed blocks that it keeps and does not reuse well. Measured on 60 steps of the default
    reader's phase 1 (batch 64, up to 384 tokens, bf16, 2 threads): without trimming, resident
    memory passed 16 GB and the process was killed for memory (a real run: 19.6 GB at step 166).
    Trimming after every step held it at 1.4 GB but cost 14% of the speed (4.46 against 3.90
    s/step: the next step faults its pages in again); trimming only above a quarter of the
    machine's memory trimmed 4 times in 60 steps and held at most 6.0 GB between steps (a step's
    activations come on top: the real run moved between 6.4 and 12.5 GB)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    if above_bytes > 0:
        held = resident_bytes()
        if held is not None and held <= above_bytes:
            return False
    trim(0)
    return True
