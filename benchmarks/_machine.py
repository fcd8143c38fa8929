"""What machine a benchmark ran on, printed under every table (timings mean nothing without it)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    except OSError:
        pass
    return []


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except (OSError, ValueError):
        pass
    return None


def machine_info() -> dict[str, Any]:
    """CPU, cores, torch threads, library versions and the load at the time of the run."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "niceness": os.nice(0) if hasattr(os, "nice") else None,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
    except ImportError:
        info["torch"] = None
    try:
        import faiss

        info["faiss"] = faiss.__version__
        info["faiss_omp_threads"] = faiss.omp_get_max_threads()
    except ImportError:
        pass
    return info


def format_machine(info: dict[str, Any] | None = None) -> str:
    info = machine_info() if info is None else info
    mem = f"{info['memory_gib']:.0f} GiB" if info.get("memory_gib") else "?"
    parts = [
        f"machine: {info['cpu']} ({', '.join(info['cpu_flags']) or 'no AVX2/AVX-512 flags'}), "
        f"{info['usable_cores']} usable of {info['logical_cores']} logical cores, {mem} RAM",
        f"         torch {info.get('torch')} with {info.get('torch_threads')} intra-op threads"
        + (f", faiss {info['faiss']} with {info['faiss_omp_threads']} OpenMP threads" if "faiss" in info else "")
        + f"; python {info['python']}",
        f"         load average {info['load_average_1m']:.2f} at the end of the run, niceness {info['niceness']}"
        " (other processes on the machine slow these numbers down)",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    print(format_machine())
