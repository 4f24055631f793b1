"""Event-driven plasticity engine: spike-triggered local learning rules with Numba kernels.

A layer's synapses ``w`` have shape ``[n_post, n_pre]`` (the ``torch.nn.Linear`` convention). Spikes
arrive as sparse per-step event lists (:class:`SpikeEvents`, CSR: ``indices[indptr[t]:indptr[t+1]]``
are the neurons that spiked at step ``t``). Each neuron keeps an exponential trace

    x[t] = λ·x[t−1] + s[t],     λ = exp(−1/τ)      (τ in steps)

updated once per step (O(n_pre + n_post) per step). A rule then touches only the synapses in the
row (post event) or column (pre event) of a neuron that has an event at that step, in one pass over
the step's events, so the cost is O(events · fan) instead of O(n_post · n_pre) per step.

Rules (each a frozen params dataclass with a Numba kernel and a dense torch reference):

* :class:`PairSTDP` — pair-based STDP with soft/hard bounds (Song, Miller & Abbott 2000; Gütig,
  Aharonov, Rotter & Sompolinsky 2003).
* :class:`ThreeFactor` — error-modulated eligibility rule (e-prop, Bellec et al. 2020).
* :class:`ProbabilisticMetaplasticity` — probabilistic metaplasticity with error-triggered,
  one-level conductance steps (Zohora, Karia, Soures & Kudithipudi, Sci. Rep. 14, 2024).

Device models: :func:`spike_triggered_writes` turns the events into write pulses of any 2-D
:class:`~metaspin_snn.synapses.base.SynapseModel` (MetaplasticMTJ, MagnetoIonicPair) through the
model's own ``update``; only synapses touched by events get a pulse.

Order of operations inside one step ``t`` (the same in kernel and reference) is given in each rule's
docstring. Entry point: :func:`apply_events` (``backend="numba"`` event engine, ``"torch"`` dense
reference). All updates are in place on ``w`` (and on the traces / metaplastic state).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
import torch

from metaspin_snn.synapses.base import SynapseModel, check_range

EngineBackend = Literal["numba", "torch"]

__all__ = [
    "SpikeEvents", "PlasticityState", "PairSTDP", "ThreeFactor", "ProbabilisticMetaplasticity",
    "apply_events", "spike_triggered_writes", "trace_decay",
]


def trace_decay(tau: float) -> float:
    """Per-step decay factor λ = exp(−1/τ) of an exponential trace with time constant τ (steps)."""
    if not (isinstance(tau, (int, float)) and tau > 0 and math.isfinite(tau)):
        raise ValueError(f"trace_decay: tau must be a positive finite number of steps, got {tau!r}")
    return math.exp(-1.0 / tau)


def _f32(x: float) -> float:
    """A bound as stored in float32 weights (clipping to 0.4 stores 0.4000000059604645)."""
    return float(np.float32(x))


# ---------------------------------------------------------------------------------------------
# Sparse spike trains
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpikeEvents:
    """Spike events of ``n`` neurons over ``num_steps`` steps in CSR form.

    ``indices[indptr[t]:indptr[t+1]]`` are the neurons with an event at step ``t``; ``values`` (same
    length, optional) give a graded event value (e.g. a pseudo-derivative ψ); ``None`` means 1.
    """

    indptr: np.ndarray
    indices: np.ndarray
    n: int
    values: np.ndarray | None = None

    def __post_init__(self) -> None:
        ip = np.ascontiguousarray(np.asarray(self.indptr, dtype=np.int64))
        ix = np.ascontiguousarray(np.asarray(self.indices, dtype=np.int32))
        object.__setattr__(self, "indptr", ip)
        object.__setattr__(self, "indices", ix)
        if not isinstance(self.n, (int, np.integer)) or self.n <= 0:
            raise ValueError(f"SpikeEvents: n must be a positive int, got {self.n!r}")
        object.__setattr__(self, "n", int(self.n))
        if ip.ndim != 1 or ip.size < 1 or ip[0] != 0 or np.any(np.diff(ip) < 0) or ip[-1] != ix.size:
            raise ValueError("SpikeEvents: indptr must be non-decreasing, start at 0 and end at len(indices)")
        if ix.ndim != 1 or (ix.size and (ix.min() < 0 or ix.max() >= self.n)):
            raise ValueError(f"SpikeEvents: indices must be in [0, {self.n}), got range "
                             f"[{ix.min() if ix.size else 0}, {ix.max() if ix.size else 0}]")
        if ix.size:
            steps = np.repeat(np.arange(ip.size - 1, dtype=np.int64), np.diff(ip))
            if np.unique(steps * self.n + ix).size != ix.size:
                raise ValueError("SpikeEvents: a neuron appears twice in the same step")
        if self.values is not None:
            v = np.ascontiguousarray(np.asarray(self.values, dtype=np.float64))
            if v.shape != ix.shape:
                raise ValueError(f"SpikeEvents: values shape {v.shape} != indices shape {ix.shape}")
            if not np.all(np.isfinite(v)):
                raise ValueError("SpikeEvents: values contain NaN or inf")
            object.__setattr__(self, "values", v)

    @property
    def num_steps(self) -> int:
        return int(self.indptr.size - 1)

    @property
    def num_events(self) -> int:
        return int(self.indices.size)

    @classmethod
    def from_dense(cls, spikes: torch.Tensor | np.ndarray, graded: bool = False) -> "SpikeEvents":
        """From a dense ``[T, n]`` train: events where the entry is non-zero (``graded=True`` keeps
        the entries as ``values``; otherwise entries must be 0/1)."""
        a = spikes.detach().cpu().numpy() if isinstance(spikes, torch.Tensor) else np.asarray(spikes)
        if a.ndim != 2:
            raise ValueError(f"SpikeEvents.from_dense: expected a [T, n] array, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("SpikeEvents.from_dense: spikes contain NaN or inf")
        if not graded and not np.all((a == 0) | (a == 1)):
            raise ValueError("SpikeEvents.from_dense: spikes must be 0/1 (pass graded=True for values)")
        t, i = np.nonzero(a)
        counts = np.bincount(t, minlength=a.shape[0])
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return cls(indptr, i, a.shape[1], a[t, i].astype(np.float64) if graded else None)

    @classmethod
    def from_lists(cls, steps: list[list[int]] | list[np.ndarray], n: int) -> "SpikeEvents":
        """From one list of neuron indices per step."""
        counts = [len(s) for s in steps]
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        idx = np.concatenate([np.asarray(s, dtype=np.int32) for s in steps]) if steps else np.zeros(0, np.int32)
        return cls(indptr, idx, n)

    def to_dense(self) -> torch.Tensor:
        """Dense ``[T, n]`` float32 tensor (values, or 1 at events)."""
        out = np.zeros((self.num_steps, self.n), dtype=np.float32)
        t = np.repeat(np.arange(self.num_steps), np.diff(self.indptr))
        out[t, self.indices] = 1.0 if self.values is None else self.values
        return torch.from_numpy(out)

    def slice(self, start: int, stop: int) -> "SpikeEvents":
        """Steps ``start ≤ t < stop`` as a new train (step ``start`` becomes step 0)."""
        if not 0 <= start <= stop <= self.num_steps:
            raise ValueError(f"SpikeEvents.slice: need 0 <= start <= stop <= {self.num_steps}, got {start}, {stop}")
        a, b = int(self.indptr[start]), int(self.indptr[stop])
        return SpikeEvents(self.indptr[start:stop + 1] - a, self.indices[a:b], self.n,
                           None if self.values is None else self.values[a:b])


@dataclass
class PlasticityState:
    """Per-neuron traces (float64, ``[n_pre]`` / ``[n_post]``) and, for metaplastic rules, the
    per-synapse metaplasticity ``m`` (float32, shape of ``w``). Carried across calls."""

    x_pre: torch.Tensor
    x_post: torch.Tensor
    m: torch.Tensor | None = None

    @classmethod
    def zeros(cls, n_post: int, n_pre: int, with_m: bool = False) -> "PlasticityState":
        return cls(torch.zeros(n_pre, dtype=torch.float64), torch.zeros(n_post, dtype=torch.float64),
                   torch.zeros(n_post, n_pre, dtype=torch.float32) if with_m else None)

    def reset_traces(self) -> None:
        self.x_pre.zero_()
        self.x_post.zero_()


# ---------------------------------------------------------------------------------------------
# Shared Numba helpers
# ---------------------------------------------------------------------------------------------
_JIT = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(**_JIT)
def _trace_step(x, lam, indptr, indices, values, t):
    """x ← λ·x + Σ events at step t (value, 1 when values is empty)."""
    for k in range(x.size):
        x[k] *= lam
    graded = values.size > 0
    for e in range(indptr[t], indptr[t + 1]):
        x[indices[e]] += values[e] if graded else 1.0


@numba.njit(**_JIT)
def _active(x, thr, out):
    """Write indices k with x[k] > thr into out; return their count."""
    c = 0
    for k in range(x.size):
        if x[k] > thr:
            out[c] = k
            c += 1
    return c


# ---------------------------------------------------------------------------------------------
# Rule 1: pair-based STDP with weight dependence
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairSTDP:
    """Pair-based STDP with weight-dependent (soft) bounds, all-to-all pairing through traces.

    Song, Miller & Abbott, Nat. Neurosci. 3, 919 (2000) (additive, μ = 0, hard bounds);
    Gütig, Aharonov, Rotter & Sompolinsky, J. Neurosci. 23, 3697 (2003) (power-law soft bounds μ):

        at a post spike of i:  Δw_ij = +η · (w_max − w_ij)^μ · x_pre_j
        at a pre spike of j:   Δw_ij = −η · α · w_ij^μ · x_post_i
        then w ← clip(w, 0, w_max).

    Step order: decay both traces; add pre spikes to x_pre; depression at pre events with x_post
    (before this step's post spikes); add post spikes to x_post; potentiation at post events with
    x_pre (including this step's pre spikes). Window: Δt = t_post − t_pre ≥ 0 gives
    +η(w_max − w)^μ λ_pre^Δt, Δt < 0 gives −ηα w^μ λ_post^|Δt|.
    """

    eta: float = 0.01
    alpha: float = 1.05
    mu: float = 0.0
    w_max: float = 1.0
    tau_pre: float = 20.0
    tau_post: float = 20.0

    def __post_init__(self) -> None:
        check_range(self, "eta", 0.0)
        check_range(self, "alpha", 0.0)
        check_range(self, "mu", 0.0, 1.0)
        check_range(self, "w_max", 0.0, lo_open=True)
        check_range(self, "tau_pre", 0.0, lo_open=True)
        check_range(self, "tau_post", 0.0, lo_open=True)

    needs_m = False
    needs_third = False

    def _check_weight(self, lo: float, hi: float) -> None:
        if lo < 0 or hi > _f32(self.w_max):
            raise ValueError(f"PairSTDP: weights must lie in [0, w_max={self.w_max}], got [{lo}, {hi}]")

    def _numba(self, w, pre, post, third, st, uniforms, seed) -> None:
        _stdp_kernel(w, pre.indptr, pre.indices, post.indptr, post.indices,
                     st.x_pre.numpy(), st.x_post.numpy(), trace_decay(self.tau_pre),
                     trace_decay(self.tau_post), self.eta, self.alpha, self.mu, self.w_max)

    def _dense(self, w, s_pre, s_post, third, st, uniforms) -> None:
        lp, lq = trace_decay(self.tau_pre), trace_decay(self.tau_post)
        W = w.double()
        for t in range(s_pre.shape[0]):
            st.x_pre.mul_(lp).add_(s_pre[t])
            st.x_post.mul_(lq)
            dep = self.eta * self.alpha * W.pow(self.mu) * torch.outer(st.x_post, s_pre[t])
            W = (W - dep).clamp(0.0, self.w_max).float().double()
            st.x_post.add_(s_post[t])
            pot = self.eta * (self.w_max - W).pow(self.mu) * torch.outer(s_post[t], st.x_pre)
            W = (W + pot).clamp(0.0, self.w_max).float().double()
        w.copy_(W.float())


@numba.njit(**_JIT)
def _powmu(x, mu):
    """x**mu with the common exponents 0 and 1 special-cased (pow is the kernel's hot spot)."""
    if mu == 0.0:
        return 1.0
    if mu == 1.0:
        return x
    return x ** mu


@numba.njit(**_JIT)
def _stdp_kernel(w, pre_ptr, pre_idx, post_ptr, post_idx, x_pre, x_post, lam_pre, lam_post,
                 eta, alpha, mu, w_max):
    n_post = w.shape[0]
    n_pre = w.shape[1]
    T = pre_ptr.size - 1
    none = np.zeros(0, np.float64)
    for t in range(T):
        _trace_step(x_pre, lam_pre, pre_ptr, pre_idx, none, t)
        for i in range(n_post):
            x_post[i] *= lam_post
        # depression at pre events (column j), with x_post before this step's post spikes
        for e in range(pre_ptr[t], pre_ptr[t + 1]):
            j = pre_idx[e]
            for i in range(n_post):
                xi = x_post[i]
                if xi != 0.0:
                    wij = np.float64(w[i, j])
                    v = wij - eta * alpha * _powmu(wij, mu) * xi
                    w[i, j] = min(max(v, 0.0), w_max)
        for e in range(post_ptr[t], post_ptr[t + 1]):
            x_post[post_idx[e]] += 1.0
        # potentiation at post events (row i), with x_pre including this step's pre spikes
        for e in range(post_ptr[t], post_ptr[t + 1]):
            i = post_idx[e]
            for j in range(n_pre):
                xj = x_pre[j]
                if xj != 0.0:
                    wij = np.float64(w[i, j])
                    v = wij + eta * _powmu(w_max - wij, mu) * xj
                    w[i, j] = min(max(v, 0.0), w_max)


# ---------------------------------------------------------------------------------------------
# Rule 2: three-factor, error-modulated eligibility (e-prop style)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ThreeFactor:
    """Three-factor rule: eligibility × per-neuron learning signal (e-prop, Bellec et al., Nat.
    Commun. 11, 3625 (2020); eRBP, Neftci et al., Front. Neurosci. 11, 324 (2017)).

        e_ij[t] = x_pre_j[t] · ψ_i[t],      Δw_ij[t] = −η · L_i[t] · e_ij[t],
        then w ← clip(w, w_min, w_max).

    ψ_i[t] (pseudo-derivative of post neuron i) arrives as the *values* of the post events (a post
    event with no value counts ψ = 1); the rule touches only row i of a post event. ``third`` is the
    learning signal L, dense ``[T, n_post]``. x_pre[t] = λ·x_pre[t−1] + s_pre[t] (includes step t).
    (e-prop's eligibility uses a low-pass of the pre spikes z̄_j; here z̄_j = x_pre_j.)
    """

    eta: float = 0.01
    tau_pre: float = 20.0
    w_min: float = -math.inf
    w_max: float = math.inf

    def __post_init__(self) -> None:
        check_range(self, "eta", 0.0)
        check_range(self, "tau_pre", 0.0, lo_open=True)
        if not (self.w_min < self.w_max):
            raise ValueError(f"ThreeFactor: need w_min < w_max, got {self.w_min}, {self.w_max}")

    needs_m = False
    needs_third = True

    def _check_weight(self, lo: float, hi: float) -> None:
        if lo < _f32(self.w_min) or hi > _f32(self.w_max):
            raise ValueError(f"ThreeFactor: weights must lie in [{self.w_min}, {self.w_max}], got [{lo}, {hi}]")

    def _numba(self, w, pre, post, third, st, uniforms, seed) -> None:
        vals = post.values if post.values is not None else np.zeros(0, np.float64)
        _three_factor_kernel(w, pre.indptr, pre.indices, post.indptr, post.indices, vals,
                             third, st.x_pre.numpy(), st.x_post.numpy(), trace_decay(self.tau_pre),
                             self.eta, self.w_min, self.w_max)

    def _dense(self, w, s_pre, psi, third, st, uniforms) -> None:
        lp = trace_decay(self.tau_pre)
        W = w.double()
        for t in range(s_pre.shape[0]):
            st.x_pre.mul_(lp).add_(s_pre[t])
            st.x_post.mul_(lp).add_(psi[t])
            dw = -self.eta * torch.outer(third[t] * psi[t], st.x_pre)
            W = (W + dw).clamp(self.w_min, self.w_max).float().double()
        w.copy_(W.float())


@numba.njit(**_JIT)
def _three_factor_kernel(w, pre_ptr, pre_idx, post_ptr, post_idx, post_val, L, x_pre, x_post,
                         lam, eta, w_min, w_max):
    n_pre = w.shape[1]
    T = pre_ptr.size - 1
    none = np.zeros(0, np.float64)
    graded = post_val.size > 0
    for t in range(T):
        _trace_step(x_pre, lam, pre_ptr, pre_idx, none, t)
        _trace_step(x_post, lam, post_ptr, post_idx, post_val, t)  # low-pass of ψ (diagnostic)
        for e in range(post_ptr[t], post_ptr[t + 1]):
            i = post_idx[e]
            psi = post_val[e] if graded else 1.0
            g = -eta * L[t, i] * psi
            if g == 0.0:
                continue
            for j in range(n_pre):
                xj = x_pre[j]
                if xj != 0.0:
                    v = np.float64(w[i, j]) + g * xj
                    w[i, j] = min(max(v, w_min), w_max)


# ---------------------------------------------------------------------------------------------
# Rule 3: probabilistic metaplasticity (Zohora et al. 2024)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbabilisticMetaplasticity:
    """Probabilistic metaplasticity on low-precision (multi-level) weights.

    Zohora, Karia, Soures & Kudithipudi, "Probabilistic metaplasticity for continual learning with
    memristors in spiking networks", Sci. Rep. 14 (2024), doi:10.1038/s41598-024-78290-w, with
    error-threshold eRBP (Neftci et al.
    2017; Payvand et al. 2020). Weights live on ``n_levels`` conductance levels in [w_min, w_max],
    Δg = (w_max − w_min)/(n_levels − 1). Traces: x ← x + s − x/τ (τ = 25 in the paper), i.e.
    λ = 1 − 1/τ here (not exp(−1/τ)). At each step t:

    1. traces: x_pre ← (1 − 1/τ)·x_pre + s_pre[t];  x_post ← (1 − 1/τ)·x_post + s_post[t];
    2. error events: every post neuron i with |L_i[t]| > err_th; eligible synapses: x_pre_j > elig_th;
       each eligible (i, j) steps one level, w_ij ← clip(w_ij − sign(L_i)·Δg, w_min, w_max), with
       probability p_ij = exp(−m_ij·|w_ij|) (a uniform u < p);
    3. metaplasticity: m_ij ← min(m_ij + Δm, m_max) wherever x_pre_j > pre_th and x_post_i > post_th.

    The kernel visits only the product of error events × eligible pre neurons, and of active post ×
    active pre neurons (active sets rebuilt in O(n) per step).
    """

    n_levels: int = 16
    w_min: float = -1.0
    w_max: float = 1.0
    err_th: float = 0.5
    elig_th: float = 0.5
    pre_th: float = 1.0
    post_th: float = 1.0
    dm: float = 0.05
    m_max: float = 10.0
    tau: float = 25.0

    def __post_init__(self) -> None:
        if not isinstance(self.n_levels, int) or self.n_levels < 2:
            raise ValueError(f"ProbabilisticMetaplasticity.n_levels must be an int >= 2, got {self.n_levels!r}")
        if not (self.w_min < self.w_max):
            raise ValueError(f"ProbabilisticMetaplasticity: need w_min < w_max, got {self.w_min}, {self.w_max}")
        check_range(self, "err_th", 0.0)
        check_range(self, "elig_th", 0.0)
        check_range(self, "pre_th", 0.0)
        check_range(self, "post_th", 0.0)
        check_range(self, "dm", 0.0)
        check_range(self, "m_max", 0.0)
        check_range(self, "tau", 1.0, lo_open=True)

    needs_m = True
    needs_third = True

    @property
    def step(self) -> float:
        """Δg, one conductance level."""
        return (self.w_max - self.w_min) / (self.n_levels - 1)

    @property
    def lam(self) -> float:
        return 1.0 - 1.0 / self.tau

    def quantize(self, w: torch.Tensor) -> torch.Tensor:
        """Nearest conductance level of each weight (clipped to [w_min, w_max])."""
        k = torch.round((w.clamp(self.w_min, self.w_max) - self.w_min) / self.step)
        return (self.w_min + k * self.step).to(w.dtype)

    def update_probability(self, w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """p = exp(−m·|w|)."""
        return torch.exp(-m.double() * w.double().abs())

    def _check_weight(self, lo: float, hi: float) -> None:
        if lo < _f32(self.w_min) or hi > _f32(self.w_max):
            raise ValueError(f"ProbabilisticMetaplasticity: weights must lie in [{self.w_min}, {self.w_max}], "
                             f"got [{lo}, {hi}]")

    def _numba(self, w, pre, post, third, st, uniforms, seed) -> None:
        _pmp_kernel(w, st.m.numpy(), pre.indptr, pre.indices, post.indptr, post.indices, third,
                    st.x_pre.numpy(), st.x_post.numpy(), self.lam, self.err_th, self.elig_th,
                    self.pre_th, self.post_th, self.step, self.w_min, self.w_max, self.dm, self.m_max,
                    uniforms, seed)

    def _dense(self, w, s_pre, s_post, third, st, uniforms, gen: torch.Generator) -> None:
        lam = self.lam
        W = w.double()
        M = st.m.double()
        for t in range(s_pre.shape[0]):
            st.x_pre.mul_(lam).add_(s_pre[t])
            st.x_post.mul_(lam).add_(s_post[t])
            err = third[t]
            ev = err.abs() > self.err_th
            elig = st.x_pre > self.elig_th
            p = torch.exp(-M * W.abs())
            u = (uniforms[t].double() if uniforms is not None
                 else torch.rand(W.shape, generator=gen, dtype=torch.float64))
            mask = ev[:, None] & elig[None, :] & (u < p)
            W = (W - torch.sign(err)[:, None] * self.step * mask).clamp(self.w_min, self.w_max).float().double()
            grow = (st.x_post > self.post_th)[:, None] & (st.x_pre > self.pre_th)[None, :]
            M = (M + self.dm * grow).clamp(max=self.m_max).float().double()
        w.copy_(W.float())
        st.m.copy_(M.float())


@numba.njit(**_JIT)
def _pmp_kernel(w, m, pre_ptr, pre_idx, post_ptr, post_idx, L, x_pre, x_post, lam, err_th,
                elig_th, pre_th, post_th, step, w_min, w_max, dm, m_max, uniforms, seed):
    n_post = w.shape[0]
    n_pre = w.shape[1]
    T = pre_ptr.size - 1
    none = np.zeros(0, np.float64)
    have_u = uniforms.size > 0
    if not have_u:
        np.random.seed(seed)
    elig = np.empty(n_pre, np.int64)
    act_pre = np.empty(n_pre, np.int64)
    act_post = np.empty(n_post, np.int64)
    for t in range(T):
        _trace_step(x_pre, lam, pre_ptr, pre_idx, none, t)
        _trace_step(x_post, lam, post_ptr, post_idx, none, t)
        ne = _active(x_pre, elig_th, elig)
        if ne > 0:
            for i in range(n_post):
                err = L[t, i]
                if abs(err) > err_th:
                    d = -step if err > 0 else step
                    for k in range(ne):
                        j = elig[k]
                        wij = np.float64(w[i, j])
                        p = math.exp(-np.float64(m[i, j]) * abs(wij))
                        u = uniforms[t, i, j] if have_u else np.random.random()
                        if u < p:
                            w[i, j] = min(max(wij + d, w_min), w_max)
        if dm > 0.0:
            na = _active(x_pre, pre_th, act_pre)
            if na > 0:
                nq = _active(x_post, post_th, act_post)
                for a in range(nq):
                    i = act_post[a]
                    for k in range(na):
                        j = act_pre[k]
                        m[i, j] = min(np.float64(m[i, j]) + dm, m_max)


# ---------------------------------------------------------------------------------------------
# Engine entry point
# ---------------------------------------------------------------------------------------------
Rule = PairSTDP | ThreeFactor | ProbabilisticMetaplasticity


def _as_events(x: SpikeEvents | torch.Tensor | np.ndarray, n: int, name: str, graded: bool) -> SpikeEvents:
    ev = x if isinstance(x, SpikeEvents) else SpikeEvents.from_dense(x, graded=graded)
    if ev.n != n:
        raise ValueError(f"apply_events: {name} has {ev.n} neurons, weight expects {n}")
    return ev


def apply_events(rule: Rule, w: torch.Tensor, pre: SpikeEvents | torch.Tensor,
                 post: SpikeEvents | torch.Tensor, third: torch.Tensor | None = None,
                 state: PlasticityState | None = None, backend: EngineBackend = "numba",
                 uniforms: torch.Tensor | None = None, seed: int = 0) -> PlasticityState:
    """Run ``rule`` over ``T`` steps of pre/post events, updating ``w`` ([n_post, n_pre], float32,
    CPU, contiguous) in place. ``pre``/``post``: :class:`SpikeEvents` or dense ``[T, n]`` trains
    (post values = ψ for :class:`ThreeFactor`). ``third``: ``[T, n_post]`` learning signal / error
    (rules that need it). ``state``: traces (and m) carried across calls; created at zero if None.
    ``uniforms``: optional ``[T, n_post, n_pre]`` draws for stochastic rules (tests); otherwise the
    numba kernel seeds its generator with ``seed`` and the torch reference draws per step from
    torch.Generator(seed) (same distribution, different numbers).
    Returns the (updated) state."""
    if not isinstance(rule, (PairSTDP, ThreeFactor, ProbabilisticMetaplasticity)):
        raise TypeError(f"apply_events: unknown rule {type(rule).__name__}")
    if backend not in ("numba", "torch"):
        raise ValueError(f"apply_events: backend must be 'numba' or 'torch', got {backend!r}")
    if not isinstance(w, torch.Tensor) or w.ndim != 2:
        raise ValueError(f"apply_events: w must be a 2-D tensor [n_post, n_pre], got {getattr(w, 'shape', w)}")
    if w.dtype != torch.float32 or w.device.type != "cpu" or not w.is_contiguous():
        raise ValueError(f"apply_events: w must be a contiguous float32 CPU tensor, got {w.dtype} on "
                         f"{w.device} (contiguous={w.is_contiguous()})")
    lo, hi = (float(v) for v in torch.aminmax(w.detach()))  # one pass; NaN propagates
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("apply_events: w contains NaN or inf")
    n_post, n_pre = w.shape
    rule._check_weight(lo, hi)
    graded_post = isinstance(rule, ThreeFactor)
    pre_ev = _as_events(pre, n_pre, "pre", graded=False)
    post_ev = _as_events(post, n_post, "post", graded=graded_post)
    T = pre_ev.num_steps
    if post_ev.num_steps != T:
        raise ValueError(f"apply_events: pre has {T} steps, post has {post_ev.num_steps}")
    if rule.needs_third:
        if third is None:
            raise ValueError(f"apply_events: {type(rule).__name__} needs a third factor [T, n_post]")
        if tuple(third.shape) != (T, n_post):
            raise ValueError(f"apply_events: third factor shape {tuple(third.shape)} != {(T, n_post)}")
        if not torch.isfinite(third).all():
            raise ValueError("apply_events: third factor contains NaN or inf")
        third_np = np.ascontiguousarray(third.detach().cpu().numpy(), dtype=np.float64)
    else:
        third_np = np.zeros((T, n_post), np.float64)
    if state is None:
        state = PlasticityState.zeros(n_post, n_pre, with_m=rule.needs_m)
    if state.x_pre.shape != (n_pre,) or state.x_post.shape != (n_post,) or state.x_pre.dtype != torch.float64 \
            or state.x_post.dtype != torch.float64:
        raise ValueError("apply_events: state traces must be float64 [n_pre] and [n_post]")
    if rule.needs_m and (state.m is None or tuple(state.m.shape) != (n_post, n_pre) or state.m.dtype != torch.float32):
        raise ValueError(f"apply_events: {type(rule).__name__} needs state.m float32 {(n_post, n_pre)}")
    if uniforms is not None and tuple(uniforms.shape) != (T, n_post, n_pre):
        raise ValueError(f"apply_events: uniforms shape {tuple(uniforms.shape)} != {(T, n_post, n_pre)}")
    with torch.no_grad():
        if backend == "numba":
            u = (np.ascontiguousarray(uniforms.detach().cpu().numpy(), dtype=np.float64)
                 if uniforms is not None else np.zeros((0, 0, 0), np.float64))
            rule._numba(w.numpy() if not w.requires_grad else w.detach().numpy(), pre_ev, post_ev,
                        third_np, state, u, int(seed))
        else:
            s_pre = pre_ev.to_dense().double()
            s_post = post_ev.to_dense().double()
            th = torch.from_numpy(third_np)
            if isinstance(rule, ProbabilisticMetaplasticity):
                rule._dense(w, s_pre, s_post, th, state, uniforms, torch.Generator().manual_seed(int(seed)))
            else:
                rule._dense(w, s_pre, s_post, th, state, uniforms)
    return state


# ---------------------------------------------------------------------------------------------
# Device models: spike-triggered write pulses
# ---------------------------------------------------------------------------------------------
def spike_triggered_writes(model: SynapseModel, pre: SpikeEvents | torch.Tensor,
                           post: SpikeEvents | torch.Tensor, third: torch.Tensor, *,
                           tau_pre: float = 20.0, gain: float = 1.0, window: int | None = None,
                           state: PlasticityState | None = None) -> PlasticityState:
    """Spike-triggered write pulses on a device synapse model (e.g.
    :class:`~metaspin_snn.synapses.mtj.MetaplasticMTJ`,
    :class:`~metaspin_snn.synapses.magnetoionic.MagnetoIonicPair`; any 2-D ``SynapseModel``).

    For each write window of ``window`` steps (default: all T steps), the event engine accumulates
    the three-factor estimate of ∂L/∂w (e-prop / eRBP, as in :class:`ThreeFactor`) only at
    synapses in the rows of post events:

        g_ij = gain · Σ_{t ∈ window} L_i[t] · ψ_i[t] · x_pre_j[t]

    and hands it to the device's own write ``model.update(g)``. The device applies a pulse only
    where g_ij ≠ 0, so synapses that no event touched receive none. MetaplasticMTJ: a switching
    pulse (amplitude ∝ |g|, Néel–Brown probability) toward −sign(g) where the state disagrees,
    magneto-ionic consolidation where it agrees; MagnetoIonicPair: Δx = lr·|g|·ν pulses on the
    device selected by sign(g). (Per-update effects of a model, such as the MTJ's retention
    relaxation, happen once per window, as in the model.) ``post`` values are ψ (1 for spikes);
    ``third`` is L ``[T, n_post]``; traces in ``state`` carry across calls. Returns the state.
    """
    if not isinstance(model, SynapseModel):
        raise TypeError(f"spike_triggered_writes: model must be a SynapseModel, got {type(model).__name__}")
    if len(model.shape) != 2:
        raise ValueError(f"spike_triggered_writes: model must be 2-D [n_post, n_pre], got shape {model.shape}")
    if not (isinstance(gain, (int, float)) and math.isfinite(gain) and gain > 0):
        raise ValueError(f"spike_triggered_writes: gain must be a positive finite number, got {gain!r}")
    n_post, n_pre = model.shape
    pre_ev = _as_events(pre, n_pre, "pre", graded=False)
    post_ev = _as_events(post, n_post, "post", graded=True)
    T = pre_ev.num_steps
    if window is None:
        window = max(T, 1)
    if not isinstance(window, int) or window <= 0:
        raise ValueError(f"spike_triggered_writes: window must be a positive int, got {window!r}")
    if not isinstance(third, torch.Tensor) or tuple(third.shape) != (T, n_post):
        raise ValueError(f"spike_triggered_writes: third factor must be a [T={T}, n_post={n_post}] tensor, "
                         f"got {tuple(getattr(third, 'shape', ()))}")
    rule = ThreeFactor(eta=float(gain), tau_pre=tau_pre)
    acc = torch.zeros(n_post, n_pre, dtype=torch.float32)
    neg = -third.detach().double().cpu()  # ThreeFactor adds −η·(−L)·ψ·x = +gain·L·ψ·x
    for a in range(0, T, window):
        b = min(a + window, T)
        acc.zero_()
        state = apply_events(rule, acc, pre_ev.slice(a, b), post_ev.slice(a, b), neg[a:b], state)
        if bool(acc.any()):
            model.update(acc.to(device=model.weight.device))
    if state is None:  # T == 0
        state = PlasticityState.zeros(n_post, n_pre)
    return state
