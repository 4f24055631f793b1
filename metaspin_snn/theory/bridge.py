"""From memory curves to continual learning: predict the accuracy matrix of a task stream.

Stated approximation (a linear-signal picture, not a derivation for deep networks):
- Each update step of a later task writes into every synapse like one random pattern, as far as
  task k is concerned. So the part of the weights that encodes task k decays like the synapse's
  memory signal ρ(L) = S(L)/S_max after L update steps.
- The accuracy above chance c is proportional to that remaining signal:

      R̂[i, k] = c + (R[k, k] − c) · ρ(κ · L_{ik}),   L_{ik} = Σ_{j=k+1..i} steps_j   (i > k).

κ (patterns per update step: how strongly one minibatch step writes into a synapse) is the one free
parameter. It is fitted on R[1, 0] alone; every other entry below the diagonal is a prediction. ρ
comes from the model's memory curve: exponential for the binary synapse and MESU, the measured
curve (normalised by its peak, non-increasing after it) for Laborieux's metaplastic synapse.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

Rho = Callable[[np.ndarray], np.ndarray]


def exponential_rho() -> Rho:
    """ρ(L) = e^{−L} (the rate is absorbed into κ)."""
    return lambda L: np.exp(-np.asarray(L, dtype=float))


def curve_rho(t: np.ndarray, signal: np.ndarray) -> Rho:
    """ρ from a measured memory curve: signal / peak, held at 1 before the peak and made non-increasing
    after it (running minimum), log-interpolated in t; beyond the last lag the last slope continues."""
    t, s = np.asarray(t, dtype=float), np.maximum(np.asarray(signal, dtype=float), 1e-12)
    k = int(np.argmax(s))
    r = s / s[k]
    r[:k] = 1.0
    r[k:] = np.minimum.accumulate(r[k:])
    lt, lr = np.log(np.maximum(t, 0.5)), np.log(r)

    def rho(L: np.ndarray) -> np.ndarray:
        x = np.log(np.maximum(np.asarray(L, dtype=float), 0.5))
        y = np.interp(x, lt, lr)
        slope = (lr[-1] - lr[-2]) / (lt[-1] - lt[-2]) if len(lt) > 1 else 0.0
        beyond = x > lt[-1]
        y[beyond] = lr[-1] + slope * (x[beyond] - lt[-1])
        return np.exp(np.minimum(y, 0.0))
    return rho


def predict_matrix(R: np.ndarray, chance: float, steps: np.ndarray, rho: Rho, kappa: float) -> np.ndarray:
    """R̂ (lower triangle predicted, diagonal copied, upper triangle NaN)."""
    R = np.asarray(R, dtype=float)
    T = R.shape[0]
    cum = np.concatenate([[0.0], np.cumsum(np.asarray(steps, dtype=float))])
    P = np.full_like(R, np.nan)
    for k in range(T):
        P[k, k] = R[k, k]
        for i in range(k + 1, T):
            L = cum[i + 1] - cum[k + 1]
            P[i, k] = chance + (R[k, k] - chance) * float(rho(np.array([kappa * L]))[0])
    return P


def fit_kappa(R: np.ndarray, chance: float, steps: np.ndarray, rho: Rho) -> float:
    """κ with R̂[1, 0] = R[1, 0] (bisection on log κ; the retained fraction is clipped to (0, 1))."""
    R = np.asarray(R, dtype=float)
    target = float(np.clip((R[1, 0] - chance) / max(R[0, 0] - chance, 1e-9), 1e-6, 1 - 1e-6))
    L = float(steps[1])
    lo, hi = -20.0, 20.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if float(rho(np.array([np.exp(mid) * L]))[0]) > target:
            lo = mid
        else:
            hi = mid
    return float(np.exp(0.5 * (lo + hi)))


def bridge(results: dict, rho: Rho, chance: float | None = None) -> dict:
    """Fit κ on R[1, 0] and predict the rest of a run's accuracy matrix (``results.json`` content)."""
    R = np.asarray(results["matrix"], dtype=float)
    if R.shape[0] < 3:
        raise ValueError("bridge: needs a run of at least 3 tasks (one entry fits κ, the rest are predicted)")
    steps = np.array([t["steps"] for t in results["per_task"]], dtype=float)
    c = float(np.mean(results["random_init"])) if chance is None else chance
    kappa = fit_kappa(R, c, steps, rho)
    P = predict_matrix(R, c, steps, rho, kappa)
    lower = np.tril_indices(R.shape[0], -1)
    mask = np.ones(len(lower[0]), bool)
    mask[(lower[0] == 1) & (lower[1] == 0)] = False      # the fitted entry
    err = P[lower][mask] - R[lower][mask]
    return {"kappa": kappa, "chance": c, "predicted": P.tolist(), "measured": R.tolist(),
            "rmse_points": float(100 * np.sqrt(np.mean(err ** 2))), "bias_points": float(100 * np.mean(err)),
            "final_row_predicted": P[-1].tolist(), "final_row_measured": R[-1].tolist()}


def load_curve(path: str | Path) -> Rho:
    """ρ from a ``memory_curve.json`` written by ``metaspin theory memory-curve``."""
    d = json.loads(Path(path).read_text())
    return curve_rho(np.array(d["t"]), np.array(d["signal"]))
