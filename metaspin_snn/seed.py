"""One seed for every random stream: Python, NumPy, torch (all devices) and Numba's own generator."""
from __future__ import annotations

import random

import numba
import numpy as np
import torch


@numba.njit(cache=True)
def _seed_numba(seed: int) -> None:
    np.random.seed(seed)


def seed_everything(seed: int) -> torch.Generator:
    """Seed ``random``, ``numpy``, ``torch`` and Numba's per-thread generator (``np.random`` inside
    ``@njit`` code is a separate stream from NumPy's). Returns a CPU ``torch.Generator`` seeded
    with ``seed`` for code that prefers an explicit generator."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    _seed_numba(seed % 2**32)
    return torch.Generator().manual_seed(seed)
