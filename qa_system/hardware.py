"""What the machine computes fast: used to pick bf16 where it is native, and nowhere else."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


def describe_torch_runtime(model: Any, via: str | None = None) -> str:
    """How a loaded torch model computes, in words for ``/readyz`` and ``ask --json``: torch's
    version (and the library ``via`` that drives it), the weights' dtype or int8 quantisation,
    and the attention implementation where the model says, e.g. ``torch 2.13.0+cpu: bfloat16
    weights, sdpa attention``."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    head = f"torch {torch.__version__}"
    if via is not None:
        try:
            head += f" ({via} {version(via)})"
        except PackageNotFoundError:
            head += f" ({via})"
    modules = getattr(model, "modules", None)
    quantized = callable(modules) and any(
        type(m).__module__.startswith("torch.ao.nn.quantized") for m in modules())
    parts = []
    if quantized:
        parts.append("int8 dynamic-quantised Linear layers")
    parameters = getattr(model, "parameters", None)
    dtypes = {str(p.dtype).removeprefix("torch.") for p in parameters() if p.is_floating_point()} \
        if callable(parameters) else set()
    if dtypes:
        parts.append(f"{'/'.join(sorted(dtypes))} {'other ' if quantized else ''}weights")
    children = modules() if callable(modules) else ()
    configs = [getattr(model, "config", None)] + [getattr(m, "config", None) for m in children]
    attention = next((getattr(c, "_attn_implementation", None) for c in configs
                      if getattr(c, "_attn_implementation", None)), None)
    if attention:
        parts.append(f"{attention} attention")
    return f"{head}: {', '.join(parts)}" if parts else head


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


# Allocators that can stand in for glibc's malloc (LD_PRELOAD), and the libraries that provide them.
ALLOCATOR_LIBRARIES = {
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
    "jemalloc": ("libjemalloc.so.2", "libjemalloc.so.1"),
}
LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
# What tcmalloc was measured to give over glibc's malloc, by task (2-core EPYC with AVX512-BF16).
TCMALLOC_GAINS = {
    # benchmarks/training_speed.py: the default reader's phase 1 (batch 64, 384 tokens, bf16, 2 threads)
    "training": "reader training ran 1.42x faster (benchmarks/training_speed.py)",
    # benchmarks/load_test.py -n 1200 -c 16, one worker: 5.4 against 4.9 questions/s; resident memory
    # grew by 305 MiB against 588 MiB over the run
    "serving": "the service answered 1.10x more questions per second and its memory grew half as much under "
               "load (benchmarks/load_test.py)",
}


def find_allocator(name: str, dirs: tuple[str, ...] = LIBRARY_DIRS) -> Path | None:
    """The installed library of allocator ``name`` (a key of ``ALLOCATOR_LIBRARIES``), or None."""
    for library in ALLOCATOR_LIBRARIES[name]:
        for folder in dirs:
            if (Path(folder) / library).is_file():
                return Path(folder) / library
    return None


def loaded_allocator(maps: str | None = None) -> str | None:
    """The allocator this process runs with in place of glibc's malloc (preloaded), or None.
    ``maps``: the text of ``/proc/self/maps`` (read when not given; None where there is none)."""
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return None
    for name, libraries in ALLOCATOR_LIBRARIES.items():
        if any(f"/{library}" in maps for library in libraries):
            return name
    return None


def allocator_hint(task: str) -> str | None:
    """One line for a ``task`` (a key of ``TCMALLOC_GAINS``) run on the CPU under glibc's malloc on
    Linux: what tcmalloc gives and how to use it; None where another allocator is loaded already or
    the system is not glibc Linux."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or loaded_allocator() is not None:
        return None
    library = find_allocator("tcmalloc")
    how = (f"LD_PRELOAD={library} before the command" if library is not None
           else "install it (Debian/Ubuntu: apt-get install libtcmalloc-minimal4) and preload it (LD_PRELOAD)")
    return f"note: with tcmalloc in place of glibc's malloc, {TCMALLOC_GAINS[task]}; to use it, {how}"


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    if loaded_allocator() is not None:  # glibc's heap is not the one in use: nothing to trim
        return None
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
    ``malloc_trim``), if it holds more than ``above_bytes``; True when it did. Nothing is done
    (False) where glibc's malloc is not the one in use (tcmalloc or jemalloc preloaded, not glibc).

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
