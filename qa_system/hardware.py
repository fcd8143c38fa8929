"""What the machine computes fast: used to pick bf16 where it is native, and nowhere else."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Iterator

READER_PRECISIONS = ("auto", "fp32", "bf16", "int8")
EMBEDDING_PRECISIONS = ("auto", "fp32", "bf16")


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
