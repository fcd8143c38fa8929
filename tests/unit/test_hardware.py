"""What the machine offers: handing freed memory back to the operating system, other allocators."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from qa_system import hardware


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC or hardware.loaded_allocator() is not None, reason="glibc's malloc only")
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


def test_find_allocator_looks_in_the_given_folders(tmp_path: Path) -> None:
    empty, system = tmp_path / "empty", tmp_path / "lib"
    empty.mkdir()
    system.mkdir()
    assert hardware.find_allocator("tcmalloc", (str(empty), str(system))) is None
    (system / "libtcmalloc.so.4").write_bytes(b"")
    assert hardware.find_allocator("tcmalloc", (str(empty), str(system))) == system / "libtcmalloc.so.4"
    (empty / "libtcmalloc_minimal.so.4").write_bytes(b"")  # the minimal build is preferred
    assert hardware.find_allocator("tcmalloc", (str(system), str(empty))) == empty / "libtcmalloc_minimal.so.4"
    assert hardware.find_allocator("jemalloc", (str(empty), str(system))) is None


def test_loaded_allocator_reads_the_process_maps() -> None:
    libc = "7f0000000000-7f0000001000 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
    jemalloc = "7f0000002000-7f0000003000 r-xp 00000000 08:01 2 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n"
    assert hardware.loaded_allocator(libc) is None
    assert hardware.loaded_allocator(libc + jemalloc) == "jemalloc"
    assert hardware.loaded_allocator("/home/x/notlibjemalloc.so.2.txt\n") is None


_PROBE = """
from qa_system import hardware
print(hardware.loaded_allocator(), hardware.release_freed_memory(), hardware.allocator_hint("training") is None)
"""


@pytest.mark.skipif(not GLIBC or hardware.find_allocator("tcmalloc") is None, reason="tcmalloc is not installed")
def test_a_preloaded_tcmalloc_is_seen_and_glibc_is_not_trimmed() -> None:
    env = {"LD_PRELOAD": str(hardware.find_allocator("tcmalloc")), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == ["tcmalloc", "False", "True"]
    plain = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin"}, check=True)
    assert plain.stdout.split() == ["None", "True", "False"]
