"""One-sample-at-a-time spiking learner trained by local, event-driven plasticity (no BPTT).

Network: ``n_in → n_hidden → n_out`` leaky integrate-and-fire layers (subtract reset, no delay):

    v[t] = β·v[t−1] + g·W·s_in[t],   s[t] = H(v[t] − θ),   v[t] ← v[t] − θ·s[t]

with rate-coded input (:func:`metaspin_snn.data.encoding.rate`; or, with ``input="spikes"``, event
frames such as N-MNIST bins used as the input spikes) and a fixed read gain ``g`` per
layer (``gain_hidden``, ``gain_out``: a crossbar read scale, so that the weights themselves live on
the rule's conductance range). Each sample is presented for ``num_steps`` steps with the weights of
that moment; the recorded spike trains then drive the plasticity engine of
:mod:`metaspin_snn.synapses.events` over the same steps (weights change between samples, not
inside a presentation).

Learning signal (error-triggered random back-propagation, eRBP: Neftci et al., Front. Neurosci. 11,
324 (2017); error threshold: Payvand, Fouda, Kurdahi, Eltawil & Neftci, "Error-triggered three-factor
learning dynamics for crossbar arrays", IEEE AICAS 2020):

    e_k[t] = s_out_k[t] − ρ·y_k                                    (output error, y one-hot)
    U_k ← U_k + e_k[t];  U_h ← U_h + ψ_h[t]·Σ_k B_hk·e_k[t]        (dendritic compartments)

with fixed random feedback ``B`` [n_hidden, n_out] and a boxcar ψ_h = 1 when
``box_lo < v_h < box_hi``. Rules (``rule=``):

* ``"pmp"`` — :class:`~metaspin_snn.synapses.events.ProbabilisticMetaplasticity` (Zohora et al.
  2024): when ``|U_i|`` crosses ``err_th`` an error event is sent (third factor = U_i) and U_i resets
  to 0; eligible synapses step one conductance level with probability exp(−m|w|); m grows when pre
  and post traces both exceed their thresholds.
* ``"three"`` — :class:`~metaspin_snn.synapses.events.ThreeFactor` (e-prop-style): Δw_ij =
  −η·L_i[t]·ψ_i[t]·x_pre_j[t] with L = Σ_k B·e (hidden) or e (output) every step, ψ = boxcar
  (hidden) or 1 (output).

Prediction: argmax of output spike counts (ties broken by summed output membrane potential).

What differs from Zohora et al. (2024), whose text was not available here beyond the abstract and the
caption of its Algorithm 1: the weights are frozen during a presentation and updated from the
recorded trains right after it; the dendritic error is an integrate-and-reset compartment whose
threshold crossing is the error event; m grows at every step where both traces are above threshold;
the read gains, the 64 levels in [−1, 1], err_th, dm, m_max and the trace thresholds were chosen here
by a small sweep (first on the test split; redone on a validation split of held-out training samples,
``bench/online_validation_sweep.py``, which picks dm = 0.01 and the same err_th, within 0.6 points of
these defaults), not taken from the paper.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numba
import numpy as np
import torch

from metaspin_snn.data.encoding import rate
from metaspin_snn.synapses.base import check_range
from metaspin_snn.synapses.events import (PlasticityState, ProbabilisticMetaplasticity, SpikeEvents,
                                          ThreeFactor, apply_events)

__all__ = ["OnlineConfig", "OnlineSNN"]


@dataclass(frozen=True)
class OnlineConfig:
    """Hyper-parameters of :class:`OnlineSNN` (see the module docstring for the equations)."""

    n_in: int = 784
    n_hidden: int = 200
    n_out: int = 2
    num_steps: int = 25
    input: Literal["rate", "spikes"] = "rate"
    input_gain: float = 1.0
    beta: float = 0.9
    threshold: float = 1.0
    gain_hidden: float = 0.1
    gain_out: float = 0.1
    target_rate: float = 0.5
    box_lo: float = 0.0
    box_hi: float = 2.0
    rule: Literal["pmp", "three"] = "pmp"
    train_hidden: bool = True
    # probabilistic metaplasticity (per layer: hidden, output)
    pmp_hidden: ProbabilisticMetaplasticity = field(default_factory=lambda: ProbabilisticMetaplasticity(
        n_levels=64, err_th=4.0, elig_th=0.5, pre_th=2.0, post_th=2.0, dm=0.02, m_max=15.0))
    pmp_out: ProbabilisticMetaplasticity = field(default_factory=lambda: ProbabilisticMetaplasticity(
        n_levels=64, err_th=2.0, elig_th=0.5, pre_th=2.0, post_th=2.0, dm=0.02, m_max=15.0))
    # three-factor learning rates
    eta_hidden: float = 2e-5
    eta_out: float = 5e-5
    tau_pre: float = 10.0
    w_bound: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for k in ("n_in", "n_hidden", "n_out", "num_steps"):
            v = getattr(self, k)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"OnlineConfig.{k} must be a positive int, got {v!r}")
        check_range(self, "beta", 0.0, 1.0)
        check_range(self, "threshold", 0.0, lo_open=True)
        check_range(self, "input_gain", 0.0)
        check_range(self, "gain_hidden", 0.0, lo_open=True)
        check_range(self, "gain_out", 0.0, lo_open=True)
        check_range(self, "target_rate", 0.0, 1.0)
        check_range(self, "eta_hidden", 0.0)
        check_range(self, "eta_out", 0.0)
        check_range(self, "tau_pre", 0.0, lo_open=True)
        check_range(self, "w_bound", 0.0, lo_open=True)
        if self.input not in ("rate", "spikes"):
            raise ValueError(f"OnlineConfig.input must be 'rate' or 'spikes', got {self.input!r}")
        if self.rule not in ("pmp", "three"):
            raise ValueError(f"OnlineConfig.rule must be 'pmp' or 'three', got {self.rule!r}")
        if not self.box_lo < self.box_hi:
            raise ValueError(f"OnlineConfig: need box_lo < box_hi, got {self.box_lo}, {self.box_hi}")


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _lif(current, beta, thr, spikes, volts):
    """LIF over [T, N] input currents: v ← βv + I; s = v > θ; record v (before reset); v ← v − θs."""
    T, N = current.shape
    for n in range(N):
        v = 0.0
        for t in range(T):
            v = beta * v + current[t, n]
            volts[t, n] = v
            if v > thr:
                spikes[t, n] = 1.0
                v -= thr
            else:
                spikes[t, n] = 0.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _event_current(indptr, indices, w, gain, out):
    """Event-driven input current: out[t, i] = gain·Σ_{j spiking at t} w[i, j] (row-wise gather)."""
    T = indptr.size - 1
    N = w.shape[0]
    for t in range(T):
        a, b = indptr[t], indptr[t + 1]
        for i in range(N):
            acc = 0.0
            for e in range(a, b):
                acc += w[i, indices[e]]
            out[t, i] = gain * acc


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _error_events(e, thr, U, out):
    """Dendritic integrate-and-reset: U ← U + e[t]; where |U| > thr emit U into out[t] and reset U."""
    T, N = e.shape
    for t in range(T):
        for n in range(N):
            u = U[n] + e[t, n]
            if abs(u) > thr:
                out[t, n] = u
                u = 0.0
            else:
                out[t, n] = 0.0
            U[n] = u


def _lif_torch(current: torch.Tensor, beta: float, thr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched LIF (same equations as :func:`_lif`) over ``[T, B, N]``: spikes and membrane sums."""
    v = torch.zeros_like(current[0])
    spikes = torch.empty_like(current)
    vsum = torch.zeros_like(current[0])
    for t in range(current.shape[0]):
        v = beta * v + current[t]
        vsum += v
        s = (v > thr).float()
        spikes[t] = s
        v = v - thr * s
    return spikes, vsum


class OnlineSNN:
    """Two-layer spiking network learning one sample at a time with event-driven plasticity.

    ``fit_online(images, labels)`` trains in the given order; ``predict(images)`` returns labels;
    ``task_boundary()`` is a no-op hook (consolidation lives in the synapses' m). Images: ``[N, ...]``
    uint8 (0–255) or float in [0, 1], flattened to ``n_in`` features; with ``input="spikes"``,
    frames ``[N, T, ...]`` (event counts, > 0 counts as a spike)."""

    def __init__(self, config: OnlineConfig | None = None) -> None:
        self.config = c = config or OnlineConfig()
        g = torch.Generator().manual_seed(c.seed)
        self._gen = g
        self._seed_rng = np.random.default_rng(c.seed)
        if c.rule == "pmp":
            r1, r2 = c.pmp_hidden, c.pmp_out
            self.rule_hidden: ProbabilisticMetaplasticity | ThreeFactor = r1
            self.rule_out: ProbabilisticMetaplasticity | ThreeFactor = r2
            self.w_hidden = r1.quantize((torch.rand(c.n_hidden, c.n_in, generator=g) * 2 - 1) * r1.w_max)
            self.w_out = r2.quantize((torch.rand(c.n_out, c.n_hidden, generator=g) * 2 - 1) * r2.w_max)
        else:
            b = c.w_bound
            self.rule_hidden = ThreeFactor(eta=c.eta_hidden, tau_pre=c.tau_pre, w_min=-b, w_max=b)
            self.rule_out = ThreeFactor(eta=c.eta_out, tau_pre=c.tau_pre, w_min=-b, w_max=b)
            self.w_hidden = (torch.rand(c.n_hidden, c.n_in, generator=g) * 2 - 1) * b
            self.w_out = (torch.rand(c.n_out, c.n_hidden, generator=g) * 2 - 1) * b
        self.feedback = torch.randn(c.n_hidden, c.n_out, generator=g, dtype=torch.float64) / math.sqrt(c.n_out)
        with_m = c.rule == "pmp"
        self.state_hidden = PlasticityState.zeros(c.n_hidden, c.n_in, with_m=with_m)
        self.state_out = PlasticityState.zeros(c.n_out, c.n_hidden, with_m=with_m)
        self.samples_seen = 0

    # ---- data ----------------------------------------------------------------------------------
    def _as_inputs(self, images: torch.Tensor, where: str) -> torch.Tensor:
        """``input="rate"``: intensities [N, n_in] in [0, 1] (uint8 /255); ``"spikes"``: event frames
        [N, T, ...] → binary spikes [N, T, n_in] (counts > 0 → 1)."""
        if not isinstance(images, torch.Tensor) or images.dim() < 1:
            raise ValueError(f"OnlineSNN.{where}: images must be a tensor [N, ...], got {type(images).__name__}")
        if self.config.input == "spikes":
            if images.dim() < 3:
                raise ValueError(f"OnlineSNN.{where}: input='spikes' needs frames [N, T, ...], got shape "
                                 f"{tuple(images.shape)}")
            s = images.reshape(images.shape[0], images.shape[1], -1)
            if s.shape[2] != self.config.n_in:
                raise ValueError(f"OnlineSNN.{where}: frames have {s.shape[2]} features per step, network "
                                 f"expects {self.config.n_in}")
            if s.is_floating_point() and torch.isnan(s).any():
                raise ValueError(f"OnlineSNN.{where}: frames contain NaN")
            if (s < 0).any():
                raise ValueError(f"OnlineSNN.{where}: frames must be non-negative event counts")
            return (s > 0).float()
        x = images.reshape(images.shape[0], -1)
        if x.shape[1] != self.config.n_in:
            raise ValueError(f"OnlineSNN.{where}: images have {x.shape[1]} features, network expects "
                             f"{self.config.n_in}")
        if x.dtype == torch.uint8:
            return x.float() / 255.0
        x = x.float()
        if torch.isnan(x).any() or x.min() < 0 or x.max() > 1:
            raise ValueError(f"OnlineSNN.{where}: float images must lie in [0, 1] without NaN")
        return x

    # ---- one sample ----------------------------------------------------------------------------
    def _forward_one(self, pre_in: SpikeEvents):
        """Event-driven forward of one presentation: hidden/output spikes and membranes [T, N]."""
        c = self.config
        T = pre_in.num_steps
        i_h = np.empty((T, c.n_hidden))
        _event_current(pre_in.indptr, pre_in.indices, self.w_hidden.numpy(), c.gain_hidden, i_h)
        s_h = np.empty((T, c.n_hidden)); v_h = np.empty((T, c.n_hidden))
        _lif(i_h, c.beta, c.threshold, s_h, v_h)
        pre_h = SpikeEvents.from_dense(s_h)
        i_o = np.empty((T, c.n_out))
        _event_current(pre_h.indptr, pre_h.indices, self.w_out.numpy(), c.gain_out, i_o)
        s_o = np.empty((T, c.n_out)); v_o = np.empty((T, c.n_out))
        _lif(i_o, c.beta, c.threshold, s_o, v_o)
        return pre_h, s_h, v_h, s_o, v_o

    def learn_one(self, x: torch.Tensor, y: int) -> None:
        """Present one sample (features [n_in] in [0, 1], or spikes [T, n_in] with input='spikes')
        with label ``y`` and apply the rule."""
        c = self.config
        if not 0 <= int(y) < c.n_out:
            raise ValueError(f"OnlineSNN.learn_one: label {y} outside [0, {c.n_out})")
        if c.input == "spikes":
            s_in = x
        else:
            s_in = rate(x[None], c.num_steps, gain=c.input_gain, generator=self._gen)[:, 0]  # [T, n_in]
        pre_in = SpikeEvents.from_dense(s_in)
        pre_h, s_h, v_h, s_o, _ = self._forward_one(pre_in)
        target = np.zeros(c.n_out); target[int(y)] = c.target_rate
        e_o = s_o - target[None, :]                                  # [T, n_out]
        psi_h = ((v_h > c.box_lo) & (v_h < c.box_hi)).astype(np.float64)
        e_h = psi_h * (e_o @ self.feedback.numpy().T)                # [T, n_hidden]
        for st in (self.state_hidden, self.state_out):
            st.reset_traces()  # each presentation starts from rest
        seeds = self._seed_rng.integers(0, 2**31 - 1, size=2)
        if c.rule == "pmp":
            L_o = np.empty_like(e_o); L_h = np.empty_like(e_h)
            _error_events(e_o, self.rule_out.err_th, np.zeros(c.n_out), L_o)
            _error_events(e_h, self.rule_hidden.err_th, np.zeros(c.n_hidden), L_h)
            apply_events(self.rule_out, self.w_out, pre_h, SpikeEvents.from_dense(s_o),
                         torch.from_numpy(L_o), self.state_out, seed=int(seeds[0]))
            if c.train_hidden:
                apply_events(self.rule_hidden, self.w_hidden, pre_in, SpikeEvents.from_dense(s_h),
                             torch.from_numpy(L_h), self.state_hidden, seed=int(seeds[1]))
        else:
            psi_o = np.ones_like(e_o)
            apply_events(self.rule_out, self.w_out, pre_h, SpikeEvents.from_dense(psi_o, graded=True),
                         torch.from_numpy(e_o), self.state_out)
            if c.train_hidden:
                apply_events(self.rule_hidden, self.w_hidden, pre_in, SpikeEvents.from_dense(psi_h, graded=True),
                             torch.from_numpy(e_h), self.state_hidden)
        self.samples_seen += 1

    # ---- learner API ---------------------------------------------------------------------------
    def fit_online(self, images: torch.Tensor, labels: torch.Tensor) -> "OnlineSNN":
        """Train on each (image, label) once, in the given order (one sample at a time)."""
        x = self._as_inputs(images, "fit_online")
        labels = torch.as_tensor(labels).reshape(-1)
        if labels.shape[0] != x.shape[0]:
            raise ValueError(f"OnlineSNN.fit_online: {x.shape[0]} images but {labels.shape[0]} labels")
        for k in range(x.shape[0]):
            self.learn_one(x[k], int(labels[k]))
        return self

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Predicted labels ``[N]`` (int64): argmax of output spike counts, ties by membrane sum."""
        c = self.config
        x = self._as_inputs(images, "predict")
        g = torch.Generator().manual_seed(c.seed + 1)
        out = []
        for a in range(0, x.shape[0], batch_size):
            if c.input == "spikes":
                s_in = x[a:a + batch_size].transpose(0, 1)  # [T, B, n_in]
            else:
                s_in = rate(x[a:a + batch_size], c.num_steps, gain=c.input_gain, generator=g)  # [T, B, n_in]
            s_h, _ = _lif_torch(c.gain_hidden * (s_in @ self.w_hidden.T), c.beta, c.threshold)
            s_o, vsum = _lif_torch(c.gain_out * (s_h @ self.w_out.T), c.beta, c.threshold)
            score = s_o.sum(0) + 1e-3 * torch.tanh(vsum)
            out.append(score.argmax(1))
        return torch.cat(out)

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        return float((self.predict(images) == torch.as_tensor(labels).reshape(-1)).float().mean())

    def task_boundary(self) -> None:
        """No-op: consolidation is carried by the synapses' metaplasticity m."""

    # ---- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Weights, metaplastic state, feedback matrix and generator states (resume-exact)."""
        return {"w_hidden": self.w_hidden.clone(), "w_out": self.w_out.clone(),
                "feedback": self.feedback.clone(),
                "m_hidden": None if self.state_hidden.m is None else self.state_hidden.m.clone(),
                "m_out": None if self.state_out.m is None else self.state_out.m.clone(),
                "gen": self._gen.get_state(), "seed_rng": self._seed_rng.bit_generator.state,
                "samples_seen": self.samples_seen}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (same config); shapes are checked."""
        for k in ("w_hidden", "w_out", "feedback"):
            cur = getattr(self, k)
            if tuple(state[k].shape) != tuple(cur.shape):
                raise ValueError(f"OnlineSNN.load_state_dict: {k} has shape {tuple(state[k].shape)}, "
                                 f"expected {tuple(cur.shape)}")
            cur.copy_(state[k])
        for k, st in (("m_hidden", self.state_hidden), ("m_out", self.state_out)):
            if (state[k] is None) != (st.m is None):
                raise ValueError(f"OnlineSNN.load_state_dict: {k} does not match rule {self.config.rule!r}")
            if st.m is not None:
                st.m.copy_(state[k])
        self._gen.set_state(state["gen"])
        self._seed_rng.bit_generator.state = state["seed_rng"]
        self.samples_seen = int(state["samples_seen"])
