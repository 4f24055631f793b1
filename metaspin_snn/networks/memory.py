"""Keep freed heap memory in the process, so that a training step's large temporaries do not page-fault.

A training step allocates and frees the same large buffers every step (currents, membranes and
spikes ``[T, B, n]``, their gradients, the event lists of a product). glibc serves an allocation
above its mmap threshold (dynamic, 128 KiB up to 32 MiB) with a fresh ``mmap`` and returns the free
top of the heap to the system above its trim threshold, so each step touches new pages: one page
fault and a zeroed page per 4 KiB written (``bench/peers.py --allocator default`` times the
step without this; results/speed/README.md). :func:`keep_freed_memory` sets, through
``mallopt(3)``, ``M_MMAP_THRESHOLD`` to its maximum (32 MiB on 64-bit), ``M_TRIM_THRESHOLD`` to 1 GiB
and ``M_TOP_PAD`` to 64 MiB: the buffers of one step are reused by the next. It changes no result (only
where memory comes from); the cost is a resident size that does not shrink after a peak. It acts on
the whole process (every library's allocations) and only with glibc; elsewhere it does nothing.
The ``metaspin`` command calls it once; ``METASPIN_KEEP_FREED_MEMORY=0`` turns that off.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt(3) parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))

_applied = False


def keep_freed_memory() -> bool:
    """Apply :data:`SETTINGS` with ``mallopt`` (once per process). Returns whether they are in
    effect: False where the C library is not glibc or ``METASPIN_KEEP_FREED_MEMORY=0``."""
    global _applied
    if _applied:
        return True
    if os.environ.get("METASPIN_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _applied = all(mallopt(param, value) == 1 for param, value in SETTINGS)
    return _applied
