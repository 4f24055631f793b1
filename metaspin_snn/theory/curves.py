"""Memory curves in closed form (or exactly from a model's linear / Markov dynamics).

Setting (Amit & Fusi, Neural Comput. 6:957, 1994; Fusi, Drew & Abbott, Neuron 45:599, 2005): N
synapses store one random pattern ξ ∈ {±1}^N per step; the memory of the pattern stored at t₀ is read
at t₀ + t by the overlap h = (1/N) Σ_i ξ_i^{t₀} w_i(t₀ + t). Its signal is S(t) = E[ξ w(t₀ + t)] and its
noise, the spread of h for a pattern that was never stored, is √(E[w²]/N). So

    SNR(t) = √N · S(t) / √E[w²],        lifetime t* = the largest t with SNR(t) ≥ 1.

Every function takes the lags ``t`` (0 = read right after storing) and returns the signal; ``snr``
converts. Sources, per model:

* stochastic binary synapse (no metaplasticity): w ∈ {±1}, w ← ξ with probability q per pattern.
  S(t) = q(1 − q)^t, E[w²] = 1, so SNR = √N q (1 − q)^t and t* = ln(√N q) / (−ln(1 − q)) ≈ ln(√N q)/q —
  exponential forgetting, lifetime ∝ log N (Amit & Fusi 1994; FDA 2005 eq. 1).
* Fusi cascade (FDA 2005, Fig. 1 and eqs. 3–4): two strengths × n depths; a synapse of the opposite
  strength at depth i switches with q_i = x^{i−1} (q_n = x^{n−1}/(1 − x)), one of the same strength at
  depth i < n moves one level deeper with p_i = x^i/(1 − x). S(t) is computed exactly from the
  2n-state Markov chain: S(t) = ½ π (M₊ − M₋) M̄^t w with M̄ = ½(M₊ + M₋), π its stationary law and
  w = ±1 the strength of each state. FDA show S(t) ≈ t⁻¹ for 1 ≪ t ≪ x^{−n} (power law), then exponential.
* Benna–Fusi chain (Benna & Fusi, Nat. Neurosci. 19:1697, 2016): m coupled variables, u₁ the weight,
  capacities C_k = 2^{k−1}, couplings g_{k,k+1} = 2^{−k−2} (u_{m+1} ≡ 0), each pattern adding ηξ to u₁:
  u ← A u + ηξ e₁. Exact for this linear model: S(t) = η (A^t e₁)₁, E[u₁²] = η² Σ_k (A^k e₁)₁². The
  signal decays ≈ t^{−1/2} between the fastest and slowest time scales (lifetime ∝ √N).
* MESU's Gaussian synapse (Bonnet et al. 2025) with its variance held fixed (``lr_sigma = 0``): the
  update μ ← μ − σ² g + σ²(μ_p − μ)/(N_w σ_p²) is linear; with g = −ξ, μ_p = 0 it is μ ← (1 − a) μ + bξ,
  a = σ²/(N_w σ_p²), b = σ² (lr_μ = 1). Exactly S(t) = b(1 − a)^t, E[μ²] = b²/(1 − (1 − a)²), so
  SNR = √N (1 − a)^t √(1 − (1 − a)²) — exponential with time constant ≈ N_w σ_p²/σ², the memory window.
"""
from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Callable

import numpy as np


def snr(signal: np.ndarray, mean_sq: float, n: int) -> np.ndarray:
    """SNR(t) = √N · S(t) / √E[w²]."""
    return np.sqrt(n) * np.asarray(signal, dtype=float) / np.sqrt(mean_sq)


def lifetime(t: np.ndarray, snr_t: np.ndarray) -> float:
    """The lag where SNR falls to 1 (log-linear interpolation between the grid points around the
    last crossing); 0 when it starts below 1, the last lag (a lower bound) when it never falls."""
    t, s = np.asarray(t, dtype=float), np.asarray(snr_t, dtype=float)
    above = np.nonzero(s >= 1.0)[0]
    if above.size == 0:
        return 0.0
    i = int(above[-1])
    if i == len(s) - 1:
        return float(t[-1])
    s0, s1 = max(s[i], 1e-300), max(s[i + 1], 1e-300)
    f = np.log(s0) / (np.log(s0) - np.log(s1)) if s1 < s0 else 0.0
    return float(t[i] + f * (t[i + 1] - t[i]))


def decay_exponent(t: np.ndarray, signal: np.ndarray, lo: float, hi: float) -> float:
    """Least-squares slope of log S against log t over lo ≤ t ≤ hi (−1 for S ∝ 1/t)."""
    t, s = np.asarray(t, dtype=float), np.asarray(signal, dtype=float)
    m = (t >= lo) & (t <= hi) & (s > 0)
    if m.sum() < 2:
        raise ValueError(f"decay_exponent: fewer than 2 positive points in [{lo}, {hi}]")
    return float(np.polyfit(np.log(t[m]), np.log(s[m]), 1)[0])


# ---- discrete-state (Markov) synapses: binary and cascade -------------------------------------------
@dataclass(frozen=True)
class MarkovSynapse:
    """A synapse with ``k`` states, strengths ``w[k]`` and transition matrices ``plus``/``minus``
    (row = from, column = to) for a potentiation (ξ = +1) / depression (ξ = −1) event."""

    w: np.ndarray
    plus: np.ndarray
    minus: np.ndarray

    def stationary(self) -> np.ndarray:
        """π with π M̄ = π, M̄ = ½(M₊ + M₋)."""
        mbar = 0.5 * (self.plus + self.minus)
        vals, vecs = np.linalg.eig(mbar.T)
        v = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
        return v / v.sum()

    def signal(self, t: np.ndarray) -> np.ndarray:
        """S(t) = ½ π (M₊ − M₋) M̄^t w, exactly."""
        t = np.asarray(t, dtype=int)
        mbar = 0.5 * (self.plus + self.minus)
        row = 0.5 * self.stationary() @ (self.plus - self.minus)
        out, cur, k = np.empty(len(t)), row.copy(), 0
        order = np.argsort(t)
        for j in order:
            while k < t[j]:
                cur = cur @ mbar
                k += 1
            out[j] = cur @ self.w
        return out

    def mean_sq(self) -> float:
        return float(self.stationary() @ (self.w ** 2))


def binary_synapse(q: float) -> MarkovSynapse:
    """Stochastic binary synapse: w ← ξ with probability q (states 0 = −1, 1 = +1)."""
    if not 0 < q <= 1:
        raise ValueError(f"binary synapse: q must be in (0, 1], got {q}")
    plus = np.array([[1 - q, q], [0.0, 1.0]])
    return MarkovSynapse(np.array([-1.0, 1.0]), plus, _mirror(plus, 1))


def binary_signal(t: np.ndarray, q: float) -> np.ndarray:
    """Closed form S(t) = q (1 − q)^t."""
    return q * (1.0 - q) ** np.asarray(t, dtype=float)


def binary_lifetime(n: float, q: float) -> float:
    """t* = ln(√N q) / (−ln(1 − q)) (0 when √N q < 1)."""
    v = np.log(np.sqrt(n) * q)
    return float(max(v, 0.0) / -np.log1p(-q)) if q < 1 else 0.0


def _mirror(plus: np.ndarray, n: int) -> np.ndarray:
    """The depression matrix of a synapse whose ``n`` weak and ``n`` strong states are mirror images:
    M₋[a, b] = M₊[σ(a), σ(b)] with σ swapping weak depth i and strong depth i."""
    swap = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    return plus[np.ix_(swap, swap)]


def cascade_synapse(n: int, x: float = 0.5) -> MarkovSynapse:
    """FDA 2005 cascade with ``n`` depths per strength; states 0..n−1 weak (depth 1..n), n..2n−1 strong."""
    if n < 1 or not 0 < x < 1:
        raise ValueError(f"cascade: need n >= 1 and 0 < x < 1, got n={n}, x={x}")
    q = [x ** i for i in range(n)]
    if n > 1:
        q[n - 1] = x ** (n - 1) / (1 - x)
    p = [x ** (i + 1) / (1 - x) for i in range(n - 1)]
    k = 2 * n
    plus = np.zeros((k, k))
    for i in range(n):
        weak, strong = i, n + i
        # potentiation: weak depth i → strong depth 1 with q_i; strong depth i → depth i+1 with p_i
        plus[weak, n] += q[i]
        plus[weak, weak] += 1 - q[i]
        if i < n - 1:
            plus[strong, strong + 1] += p[i]
            plus[strong, strong] += 1 - p[i]
        else:
            plus[strong, strong] += 1.0
    minus = _mirror(plus, n)                                  # depression: the mirror image
    w = np.array([-1.0] * n + [1.0] * n)
    return MarkovSynapse(w, plus, minus)


# ---- linear synapses: Benna–Fusi chain and MESU ------------------------------------------------------
def chain_matrix(m: int) -> np.ndarray:
    """A of u ← A u for the Benna–Fusi chain: C_k = 2^{k−1}, g_{k,k+1} = 2^{−k−2}, u_{m+1} = 0."""
    if m < 1:
        raise ValueError(f"chain: need m >= 1 variables, got {m}")
    C = 2.0 ** np.arange(m)
    g = 2.0 ** (-(np.arange(1, m + 1)) - 2)           # g_{k,k+1}, k = 1..m (the last one leaks to 0)
    A = np.eye(m)
    for k in range(m):
        A[k, k] -= g[k] / C[k]
        if k + 1 < m:
            A[k, k + 1] += g[k] / C[k]
            A[k + 1, k + 1] -= g[k] / C[k + 1]
            A[k + 1, k] += g[k] / C[k + 1]
    return A


def chain_signal(t: np.ndarray, m: int, eta: float = 1.0) -> tuple[np.ndarray, float]:
    """(S(t) = η (A^t e₁)₁, E[u₁²] = η² Σ_k (A^k e₁)₁²), exactly (the sum to 200× the slowest time scale)."""
    A = chain_matrix(m)
    t = np.asarray(t, dtype=int)
    horizon = int(max(t.max(initial=0) + 1, 200 * 2.0 ** (2 * m + 1)))
    horizon = min(horizon, 5_000_000)
    v = np.zeros(m)
    v[0] = 1.0
    first = np.empty(horizon)
    for k in range(horizon):
        first[k] = v[0]
        v = A @ v
    return eta * first[t], float(eta ** 2 * np.sum(first ** 2))


def mesu_signal(t: np.ndarray, sigma: float, window: float, sigma_prior: float) -> tuple[np.ndarray, float]:
    """MESU with fixed σ: (S(t) = b(1 − a)^t, E[μ²] = b²/(1 − (1 − a)²)), a = σ²/(N_w σ_p²), b = σ²."""
    a = sigma ** 2 / (window * sigma_prior ** 2)
    b = sigma ** 2
    if not 0 < a < 1:
        raise ValueError(f"mesu: need 0 < σ²/(N σ_p²) < 1, got {a}")
    return b * (1 - a) ** np.asarray(t, dtype=float), float(b ** 2 / (1 - (1 - a) ** 2))


THEORY: dict[str, Callable[..., tuple[np.ndarray, float]]] = {}


# ---- Laborieux's rule, small steps: density evolution (mean field) ------------------------------------
def laborieux_signal(t: np.ndarray, m: float, lr: float, init_width: float, t0s: np.ndarray,
                     cells_per_step: int = 32) -> tuple[np.ndarray, float]:
    """Mean-field memory signal of Laborieux et al.'s metaplastic rule (Nat. Commun. 2021, eq. 3 /
    their ``Adam_meta``) with constant-magnitude steps (Adam with β₁ = β₂ = 0, i.e. lr·sign(g), the
    small-step limit): under a random pattern ξ the hidden weight h moves outwards by lr, or inwards by
    lr·(1 − tanh²(m|h|)), with probability ½ each; the stored weight is sign(h).

    The population is a density on a grid of spacing lr/``cells_per_step`` (outward steps exact, inward
    ones split linearly between the two nearest cells), started uniform on ±init_width/2 (the library's
    init) and evolved to the probes' storage times ``t0s``; S(τ) = E[sign h(t₀ + τ) | ξ = +1 at t₀],
    averaged over t₀ (exact by linearity of the density dynamics). The grid's splitting adds a little
    numerical diffusion: S is ≈ 2 % high at 32 cells per step (6 % at 8), shrinking as the grid refines.
    Non-stationary: |h| drifts outwards by
    lr·tanh²(m|h|)/2 per step, so S depends on t₀. Returns (S(t), E[w²] = 1)."""
    t = np.asarray(t, dtype=int)
    t0s = np.asarray(t0s, dtype=int)
    K = int(cells_per_step)
    d = lr / K
    H = init_width / 2 + lr * (int(t0s.max()) + int(t.max()) + 2)
    J = int(np.ceil(H / d)) + K + 1
    h = (np.arange(2 * J + 1) - J) * d
    pos = h >= 0
    out_target = np.where(pos, np.arange(2 * J + 1) + K, np.arange(2 * J + 1) - K).clip(0, 2 * J)
    shift = K * (1.0 - np.tanh(m * np.abs(h)) ** 2)          # inward move in cells
    inner = np.where(pos, np.arange(2 * J + 1) - shift, np.arange(2 * J + 1) + shift)
    lo = np.floor(inner).astype(int).clip(0, 2 * J)
    frac = inner - np.floor(inner)
    hi = (lo + 1).clip(0, 2 * J)
    n = 2 * J + 1

    def step(p: np.ndarray, xi: int | None) -> np.ndarray:
        """One pattern: xi = +1 / −1 (all synapses) or None (random, probability ½ each)."""
        out = np.bincount(out_target, p, n)
        inw = np.bincount(lo, p * (1 - frac), n) + np.bincount(hi, p * frac, n)
        if xi is None:
            return 0.5 * (out + inw)
        # ξ = +1: h ≥ 0 moves out (+), h < 0 moves in (+); ξ = −1 mirrors
        plus = np.where(pos, 1.0, 0.0)
        up = np.bincount(out_target, p * plus, n) + np.bincount(lo, p * (1 - plus) * (1 - frac), n) \
            + np.bincount(hi, p * (1 - plus) * frac, n)
        return up if xi > 0 else out + inw - up

    p = (np.abs(h) <= init_width / 2).astype(float)
    p /= p.sum()
    acc = np.zeros(n)
    t0_sorted = np.sort(t0s)
    k = 0
    for s in range(int(t0_sorted.max())):
        while k < len(t0_sorted) and t0_sorted[k] == s:
            acc += p
            k += 1
        p = step(p, None)
    while k < len(t0_sorted):
        acc += p
        k += 1
    q = step(acc / len(t0s), +1)                              # the probe's own pattern, ξ = +1
    sign = np.where(pos, 1.0, -1.0)
    out = np.empty(len(t))
    order = np.argsort(t)
    cur, done = q, 0
    for j in order:
        while done < t[j]:
            cur = step(cur, None)
            done += 1
        out[j] = float(sign @ cur)
    return out, 1.0


# ---- the MTJ with a magneto-ionic barrier: mean field ------------------------------------------------
def mtj_signal(t: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean-field memory signal of a population of MTJs (``MetaplasticMTJ``) driven by constant-size
    pulses: each device is a stochastic binary synapse with its own switching probability q_i, so
    S(t) = mean_i q_i (1 − q_i)^t and E[w²] = 1 (noise-free reads). q_i = P_sw(Δ_i(x*), V, V_c,i) is
    the Néel–Brown probability at the stationary ionic state x* (``mtj_stationary_x``), Δ_i(x) =
    d_i(Δ_min + (Δ_max − Δ_min)x) — the coupling x → Δ of the model. Assumes x ≈ x* for every device
    (x is raised on every agreeing step, i.e. half of the steps, so it settles within a few steps)."""
    t = np.asarray(t, dtype=float)
    q = np.asarray(q, dtype=float).ravel()
    return np.array([float(np.mean(q * (1.0 - q) ** tt)) for tt in t]), 1.0


def mtj_stationary_x(kappa_g: float, tau_ret: float, x_rest: float) -> float:
    """Fixed point of the mean ionic dynamics of ``MetaplasticMTJ`` at 300 K without rate spread: with
    probability ½ (the pulse agrees with the state) a gate pulse x ← x + c(1 − x), c = 1 − e^{−κ|g|},
    then relaxation x ← x_rest + (x − x_rest)·k, k = e^{−1/τ_ret} (τ_ret in updates) every step. In the
    mean this is the affine map x ← a x + b, a = k(1 − c/2), b = k·c/2 + (1 − k)x_rest, so
    x* = b/(1 − a); with no drive at all (c = 0, τ = ∞) x stays at its start, 0."""
    c = -math.expm1(-kappa_g)
    keep = math.exp(-1.0 / tau_ret)
    a = keep * (1.0 - 0.5 * c)
    b = keep * 0.5 * c + (1.0 - keep) * x_rest
    return 0.0 if a >= 1.0 else float(b / (1.0 - a))
