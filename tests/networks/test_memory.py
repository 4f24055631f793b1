"""keep_freed_memory: glibc's mallopt settings that let a step's freed buffers serve the next one."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

_PROBE = r"""
import ctypes, sys, torch
from metaspin_snn.networks import keep_freed_memory

class Mallinfo2(ctypes.Structure):  # glibc >= 2.33, malloc.h
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
print("applied", keep_freed_memory())
before = libc.mallinfo2().hblkhd
a = torch.ones(24 * (1 << 20) // 4)  # a 24 MiB buffer: mmap'd under glibc's defaults, heap when kept
print("mmapped", libc.mallinfo2().hblkhd - before)
"""


def _probe(env_value: str) -> tuple[bool, int]:
    env = dict(os.environ, METASPIN_KEEP_FREED_MEMORY=env_value, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True).stdout
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    return lines["applied"] == "True", int(lines["mmapped"])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_kept_memory_serves_large_buffers_from_the_heap():
    """Under glibc's defaults a fresh 24 MiB buffer is an mmap (returned to the system when freed, page-
    faulted in again next step); with keep_freed_memory() it comes from the heap, which is kept."""
    applied, mmapped_kept = _probe("1")
    off, mmapped_default = _probe("0")
    assert applied and not off
    assert mmapped_default >= 24 << 20
    assert mmapped_kept < 1 << 20


def test_no_effect_without_glibc(monkeypatch):
    import ctypes

    from metaspin_snn.networks import memory

    monkeypatch.setattr(memory, "_applied", False)

    def no_libc(*a, **k):
        raise OSError("no C library")
    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert memory.keep_freed_memory() is False
    monkeypatch.setenv("METASPIN_KEEP_FREED_MEMORY", "0")
    assert memory.keep_freed_memory() is False
