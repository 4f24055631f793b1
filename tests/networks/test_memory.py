"""keep_freed_memory: glibc's mallopt settings that let a step's freed buffers serve the next one."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

_PROBE = r"""
import resource, sys, torch
from metaspin_snn.networks import keep_freed_memory
print("applied", keep_freed_memory())
n = 6 * (1 << 20) // 4  # 6 MiB buffers: above glibc's initial mmap threshold, below the kept one
for _ in range(3):
    a = torch.ones(n); b = torch.ones(2 * n); del a; c = torch.ones(n); del b; del c
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = torch.ones(n); b = torch.ones(2 * n); del a; c = torch.ones(n); del b; del c
print("faults", (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 20)
"""


def _probe(env_value: str) -> tuple[bool, float]:
    env = dict(os.environ, METASPIN_KEEP_FREED_MEMORY=env_value, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True).stdout
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    return lines["applied"] == "True", float(lines["faults"])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_kept_memory_removes_most_page_faults_of_repeated_buffers():
    applied, faults_kept = _probe("1")
    off, faults_default = _probe("0")
    assert applied and not off
    # one 6 MiB buffer is 1536 pages; glibc's defaults fault in a good part of them every iteration
    assert faults_default > 300
    assert faults_kept < 0.5 * faults_default


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
