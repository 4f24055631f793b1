"""Continual-learning metrics from the accuracy matrix.

``R[i, j]`` is the test accuracy on task ``j`` after training on tasks ``0..i``; ``b[j]`` is the
accuracy on task ``j`` of the randomly initialised network (before any training). With ``T`` tasks:

* ACC  = 1/T Σ_j R[T-1, j]                                   (Lopez-Paz & Ranzato 2017, GEM, Eq. 2)
* BWT  = 1/(T-1) Σ_{j<T-1} (R[T-1, j] - R[j, j])             (ibid.)
* FWT  = 1/(T-1) Σ_{j≥1}  (R[j-1, j] - b[j])                 (ibid.)
* forgetting of task j after task k (j < k):
  f_j^k = max_{l∈{0..k-1}} R[l, j] - R[k, j];  F_k = 1/k Σ_{j<k} f_j^k   (Chaudhry et al. 2018, RWalk, Eq. 4–5)
* intransigence of task k: I_k = a*_k - R[k, k], with a*_k a reference accuracy on task k
  (Chaudhry et al. use a model trained jointly on all data; see ``runner`` for what we use);
  reported as the mean over k (ibid., Eq. 6).

Undefined values (one task for BWT/FWT/forgetting, no reference for intransigence) are ``None``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

ArrayLike = Sequence[Sequence[float]] | np.ndarray


def _matrix(R: ArrayLike) -> np.ndarray:
    a = np.asarray(R, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"accuracy matrix must be square T×T with T ≥ 1, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("accuracy matrix contains NaN or inf")
    return a


def _vector(v: Sequence[float] | np.ndarray, T: int, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.shape != (T,):
        raise ValueError(f"{name} must have shape ({T},) to match the accuracy matrix, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def average_accuracy(R: ArrayLike) -> float:
    """ACC = mean of the last row of R."""
    a = _matrix(R)
    return float(a[-1].mean())


def backward_transfer(R: ArrayLike) -> float | None:
    """BWT = 1/(T-1) Σ_{j<T-1} (R[T-1, j] − R[j, j]); negative values are forgetting."""
    a = _matrix(R)
    T = a.shape[0]
    if T < 2:
        return None
    return float(np.mean(a[-1, :-1] - np.diag(a)[:-1]))


def forward_transfer(R: ArrayLike, b: Sequence[float] | np.ndarray) -> float | None:
    """FWT = 1/(T-1) Σ_{j≥1} (R[j-1, j] − b[j])."""
    a = _matrix(R)
    T = a.shape[0]
    bb = _vector(b, T, "b (random-init accuracies)")
    if T < 2:
        return None
    return float(np.mean([a[j - 1, j] - bb[j] for j in range(1, T)]))


def forgetting_per_step(R: ArrayLike) -> list[float | None]:
    """F_k for k = 0..T-1 (F_0 is None): mean over j<k of max_{l<k} R[l, j] − R[k, j]."""
    a = _matrix(R)
    out: list[float | None] = [None]
    for k in range(1, a.shape[0]):
        f = [a[:k, j].max() - a[k, j] for j in range(k)]
        out.append(float(np.mean(f)))
    return out


def forgetting(R: ArrayLike) -> float | None:
    """Final forgetting F_{T-1} (Chaudhry et al. 2018)."""
    return forgetting_per_step(R)[-1]


def intransigence(R: ArrayLike, reference: Sequence[float] | np.ndarray | None) -> float | None:
    """Mean over k of I_k = a*_k − R[k, k]; ``None`` without a reference."""
    a = _matrix(R)
    if reference is None:
        return None
    ref = _vector(reference, a.shape[0], "reference accuracies")
    return float(np.mean(ref - np.diag(a)))


def all_metrics(R: ArrayLike, b: Sequence[float] | np.ndarray,
                reference: Sequence[float] | np.ndarray | None = None) -> dict[str, float | None]:
    """ACC, BWT, FWT, forgetting and intransigence in one dict (accuracies as given, e.g. in [0, 1])."""
    return {
        "acc": average_accuracy(R),
        "bwt": backward_transfer(R),
        "fwt": forward_transfer(R, b),
        "forgetting": forgetting(R),
        "intransigence": intransigence(R, reference),
    }
