"""What the machine offers: handing freed memory back to the operating system."""

from __future__ import annotations

import platform

import pytest

from qa_system import hardware


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_release_freed_memory_hands_a_fragmented_heap_back() -> None:
    # 200,000 blocks of about 1 kB (malloc'd: above CPython's small-object limit, below the mmap
    # threshold) fill about 200 MB of heap. Freeing all but the last leaves the heap's top in use,
    # so glibc keeps the freed pages resident, as it kept a training run's freed activations.
    blocks = [bytes(1000) + bytes([i % 256]) for i in range(200_000)]
    last = blocks[-1]
    del blocks
    before = _rss_mib()
    held = hardware.resident_bytes()
    assert held is not None and abs(held / 2**20 - before) < 50
    # above a bound it does not hold yet: nothing is handed back
    assert hardware.release_freed_memory(above_bytes=held + 2**30) is False
    assert _rss_mib() > before - 20
    assert hardware.release_freed_memory(above_bytes=held // 2) is True
    after = _rss_mib()
    assert before - after > 100, (before, after)
    assert last[-1] == 199_999 % 256


def test_physical_memory_is_read() -> None:
    total = hardware.physical_memory_bytes()
    assert total is None or total > 2**28
