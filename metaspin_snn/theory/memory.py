"""Memory curves measured by simulation: a population of N synapses stores one random ±1 pattern per
step and the overlap with a stored pattern is read at chosen lags (see :mod:`metaspin_snn.theory.curves`
for the definitions). ``mesu``, ``metaplastic`` and ``mtj`` run the library's own synapse models and
kernels (:class:`~metaspin_snn.synapses.MESU`, :class:`~metaspin_snn.synapses.MetaplasticBinary`,
:class:`~metaspin_snn.synapses.MetaplasticMTJ`): storing ξ is one ``update(grad)`` with grad = −g·ξ (a
descent step towards ξ), the weight read is the model's evaluation weight. ``binary``, ``cascade`` and
``chain`` are the textbook reference models, simulated as written in the papers.

Estimator: probes (stored patterns) every ``spacing`` steps after a burn-in, over several seeds;
S(t) = mean over probes of h(t); noise = √(E[w²]/N) with E[w²] the population's mean square weight
over the measurement; SNR(t) = S(t)/noise.
"""
from __future__ import annotations

import dataclasses
import math

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import curves as C

SYNAPSES = ("binary", "cascade", "chain", "mesu", "metaplastic", "mtj")
DEFAULTS: dict[str, dict[str, Any]] = {
    "binary": {"q": 0.1},
    "cascade": {"depth": 8, "x": 0.5},
    "chain": {"m": 6, "eta": 1.0},
    "mesu": {"sigma": 0.1, "window": 100.0, "sigma_prior": 0.1},
    "metaplastic": {"m": 1.35, "lr": 0.005, "grad": 1.0, "beta1": 0.9, "beta2": 0.999, "init_scale": 0.1},
    "mtj": {"grad": 1.0},
}


#: The MTJ of the memory-curve model (a stationary stochastic binary synapse): device-to-device spread
#: of Δ and V_c, relaxation of x over 10⁴ updates of 1 µs each (thermal flips then have a hazard below
#: 10⁻¹⁰ per update); no asymmetry, read noise, cycle-to-cycle variation, levels or ion-rate spread.
MTJ_THEORY: dict[str, Any] = {"step_time_s": 1e-6, "tau_relax_s": 1e-2, "gate_rate_spread": 0.0}


def mtj_params(p: dict[str, Any], seed: int):
    """MTJParams of the memory-curve MTJ: :data:`MTJ_THEORY` under the caller's parameters (``grad``
    excepted); non-idealities d2d and retention only, unless ``nonideal`` is given."""
    from ..synapses.devices import NonIdeal
    from ..synapses.mtj import MTJParams
    kw = {**MTJ_THEORY, **{k: v for k, v in p.items() if k != "grad"}}
    kw.setdefault("nonideal", dataclasses.replace(NonIdeal.ideal(), d2d=True, retention=True))
    return MTJParams(seed=seed, **kw)


class _Markov:
    def __init__(self, syn: C.MarkovSynapse, n: int, rng: np.random.Generator) -> None:
        self.syn, self.rng = syn, rng
        self.cum = np.stack([np.cumsum(syn.minus, 1), np.cumsum(syn.plus, 1)])  # [event, from, to]
        self.state = rng.choice(len(syn.w), size=n, p=syn.stationary())

    def store(self, xi: np.ndarray) -> None:
        rows = self.cum[(xi > 0).astype(int), self.state]                      # [n, k]
        r = self.rng.random(len(xi))[:, None]
        self.state = np.minimum((rows <= r).sum(1), rows.shape[1] - 1)

    def weights(self) -> np.ndarray:
        return self.syn.w[self.state]


class _Chain:
    def __init__(self, m: int, eta: float, n: int) -> None:
        self.AT, self.eta = C.chain_matrix(m).T, eta
        self.u = np.zeros((n, m))

    def store(self, xi: np.ndarray) -> None:
        self.u = self.u @ self.AT
        self.u[:, 0] += self.eta * xi

    def weights(self) -> np.ndarray:
        return self.u[:, 0]


class _Library:
    """A library synapse model of shape (1, n): store = refresh (a training sample) + update(−g ξ)."""

    def __init__(self, model: Any, grad: float) -> None:
        self.model, self.grad = model, float(grad)
        self.model.train()

    def store(self, xi: np.ndarray) -> None:
        self.model.refresh(sample=True)
        g = torch.from_numpy((-self.grad * xi).astype(np.float32)).reshape(self.model.shape)
        self.model.update(g)

    def weights(self) -> np.ndarray:
        return self.model.refresh(sample=False).detach().reshape(-1).double().numpy().copy()


def _population(name: str, n: int, seed: int, p: dict[str, Any]):
    rng = np.random.default_rng(seed)
    if name == "binary":
        return _Markov(C.binary_synapse(float(p["q"])), n, rng), rng
    if name == "cascade":
        return _Markov(C.cascade_synapse(int(p["depth"]), float(p["x"])), n, rng), rng
    if name == "chain":
        return _Chain(int(p["m"]), float(p["eta"]), n), rng
    if name == "mesu":
        from ..synapses.mesu import MESU, MESUParams
        s = float(p["sigma"])
        params = MESUParams(init="gauss", sigma_init=s, mu_init_std=0.0, sigma_prior=float(p["sigma_prior"]),
                            N=float(p["window"]), lr_sigma=0.0, seed=seed)
        return _Library(MESU((1, n), params), 1.0), rng
    if name == "metaplastic":
        from ..synapses.metaplastic import MetaplasticBinary, MetaplasticBinaryParams
        params = MetaplasticBinaryParams(m=float(p["m"]), lr=float(p["lr"]), betas=(float(p["beta1"]), float(p["beta2"])),
                                         init_scale=float(p["init_scale"]), seed=seed)
        return _Library(MetaplasticBinary((1, n), params), float(p["grad"])), rng
    if name == "mtj":
        from ..synapses.mtj import MetaplasticMTJ
        return _Library(MetaplasticMTJ((1, n), mtj_params(p, seed)), float(p["grad"])), rng
    raise ValueError(f"memory curve: synapse must be one of {', '.join(SYNAPSES)}, got {name!r}")


def theory(name: str, t: np.ndarray, n: int, p: dict[str, Any], t0s: np.ndarray | None = None,
           seeds: tuple[int, ...] = (0,)) -> tuple[np.ndarray, float] | None:
    """(S(t), E[w²]) of the model's closed / exact / mean-field form, or None where there is none here
    (the metaplastic rule with Adam's moment averaging, β ≠ 0). ``t0s``: storage times of the probes
    (the metaplastic rule is non-stationary); ``seeds``: the MTJ populations' device spreads."""
    if name == "binary":
        return C.binary_signal(t, float(p["q"])), 1.0
    if name == "cascade":
        syn = C.cascade_synapse(int(p["depth"]), float(p["x"]))
        return syn.signal(t), syn.mean_sq()
    if name == "chain":
        return C.chain_signal(t, int(p["m"]), float(p["eta"]))
    if name == "mesu":
        return C.mesu_signal(t, float(p["sigma"]), float(p["window"]), float(p["sigma_prior"]))
    if name == "metaplastic" and float(p["beta1"]) == 0.0 and float(p["beta2"]) == 0.0 and float(p["grad"]) > 0:
        t0s = np.array([burn_in(name, p)]) if t0s is None else t0s
        return C.laborieux_signal(t, float(p["m"]), float(p["lr"]), float(p["init_scale"]), t0s)
    if name == "mtj":
        import torch

        from ..synapses.mtj import MetaplasticMTJ, switch_probability
        qs = []
        for seed in seeds:
            mp = mtj_params(p, int(seed))
            dev = MetaplasticMTJ((1, n), mp)
            g = abs(float(p["grad"]))
            tau_steps = mp.tau_relax() / mp.step_time_s if mp.nonideal.retention else math.inf
            x_ss = C.mtj_stationary_x(mp.kappa * g, tau_steps, mp.x_rest)
            delta = dev.delta_factor.double() * (mp.delta_min + (mp.delta_max - mp.delta_min) * x_ss)
            v = torch.full(dev.shape, min(mp.volt_per_grad * g, mp.v_max), dtype=torch.float64)
            q = switch_probability(delta, v, dev.v_c.double(), mp)
            qs.append(torch.where(v >= mp.v_min, q, torch.zeros_like(q)).numpy().ravel())
        return C.mtj_signal(t, np.concatenate(qs))
    return None


def burn_in(name: str, p: dict[str, Any]) -> int:
    """Steps before the first probe: several of the slowest time scale (0 for Markov models started
    from their stationary law)."""
    if name in ("binary", "cascade"):
        return 0
    if name == "chain":
        return int(min(3 * 2.0 ** (2 * int(p["m"]) + 1), 200_000))
    if name == "mesu":
        a = float(p["sigma"]) ** 2 / (float(p["window"]) * float(p["sigma_prior"]) ** 2)
        return int(min(6 / a, 200_000))
    return 200


@dataclass
class MemoryCurve:
    synapse: str
    n: int
    params: dict
    t: list[int]
    signal: list[float]
    snr: list[float]
    snr_theory: list[float] | None
    lifetime: float
    lifetime_theory: float | None
    probes: int
    seeds: list[int]
    mean_sq: float
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"synapse": self.synapse, "n": self.n, "params": self.params, "t": self.t, "snr": self.snr,
                "snr_theory": self.snr_theory, "lifetime": self.lifetime, "lifetime_theory": self.lifetime_theory,
                "signal": self.signal, "probes": self.probes, "seeds": self.seeds, "mean_sq": self.mean_sq,
                **self.extra}


def lag_grid(t_max: int, points: int = 40) -> np.ndarray:
    """0 and ``points`` log-spaced integer lags up to ``t_max``."""
    return np.unique(np.concatenate([[0], np.round(np.geomspace(1, max(t_max, 1), points)).astype(int)]))


def memory_curve(synapse: str, n: int = 10_000, *, t_max: int = 200, probes: int = 50, spacing: int = 10,
                 seeds: tuple[int, ...] = (0, 1, 2, 3), params: dict[str, Any] | None = None,
                 lags: np.ndarray | None = None) -> MemoryCurve:
    """Simulate and, where a closed form exists, compare (see the module docstring)."""
    if synapse not in SYNAPSES:
        raise ValueError(f"memory curve: synapse must be one of {', '.join(SYNAPSES)}, got {synapse!r}")
    for k, v in (("n", n), ("t_max", t_max), ("probes", probes), ("spacing", spacing)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"memory curve: {k} must be a positive integer, got {v!r}")
    p = {**DEFAULTS[synapse], **(params or {})}
    bad = set(params or {}) - set(DEFAULTS[synapse]) if synapse != "mtj" else set()  # MTJParams checks its own
    if bad:
        raise ValueError(f"memory curve: unknown parameter {sorted(bad)[0]!r} for {synapse!r} "
                         f"(known: {', '.join(DEFAULTS[synapse])})")
    t = np.asarray(lag_grid(t_max) if lags is None else lags, dtype=int)
    want = set(int(v) for v in t)
    sums = np.zeros(len(t))
    counts = np.zeros(len(t))
    sq_sum, sq_n = 0.0, 0
    index = {int(v): i for i, v in enumerate(t)}
    for seed in seeds:
        pop, rng = _population(synapse, n, int(seed), p)
        for _ in range(burn_in(synapse, p)):
            pop.store(rng.choice([-1.0, 1.0], size=n))
        total = (probes - 1) * spacing + int(t.max()) + 1
        active: list[tuple[int, np.ndarray]] = []
        for step in range(total):
            xi = rng.choice([-1.0, 1.0], size=n)
            pop.store(xi)
            if step % spacing == 0 and step // spacing < probes:
                active.append((step, xi))
            lagged = [(step - s0, x) for s0, x in active if (step - s0) in want]
            if lagged:
                w = pop.weights()
                sq_sum += float(np.mean(w ** 2))
                sq_n += 1
                for lag, x in lagged:
                    i = index[lag]
                    sums[i] += float(x @ w) / n
                    counts[i] += 1
            active = [(s0, x) for s0, x in active if step - s0 < int(t.max())]
    signal = sums / np.maximum(counts, 1)
    mean_sq = sq_sum / max(sq_n, 1)
    snr_sim = C.snr(signal, mean_sq, n)
    b = burn_in(synapse, p)
    th = theory(synapse, t, n, p, t0s=np.array([b + k * spacing for k in range(probes)]), seeds=tuple(seeds))
    snr_th = None if th is None else C.snr(th[0], th[1], n)
    return MemoryCurve(synapse, n, p, [int(v) for v in t], signal.tolist(), snr_sim.tolist(),
                       None if snr_th is None else snr_th.tolist(), C.lifetime(t, snr_sim),
                       None if snr_th is None else C.lifetime(t, snr_th), int(probes) * len(seeds),
                       [int(s) for s in seeds], float(mean_sq))


def lifetime_theory(synapse: str, n: float, params: dict[str, Any] | None = None, t_max: int = 10 ** 6,
                    seeds: tuple[int, ...] = (0,)) -> float | None:
    """Lifetime of the closed / exact / mean-field form at population size ``n`` (None without one).
    The lag grid runs to ``t_max`` (10⁶ for the stationary models); the MTJ's mean field to
    min(t_max, 2·10⁴), the metaplastic rule's density evolution to min(t_max, 2,000), since its grid
    grows with the lag (a lifetime equal to that bound is a lower bound)."""
    p = {**DEFAULTS[synapse], **(params or {})}
    if synapse == "binary":
        return C.binary_lifetime(n, float(p["q"]))
    if synapse == "mtj":
        t_max = min(t_max, 20_000)
    if synapse == "metaplastic":
        t_max = min(t_max, 2_000)
    t = lag_grid(t_max, 200)
    th = theory(synapse, t, int(n), p, seeds=seeds)
    return None if th is None else C.lifetime(t, C.snr(th[0], th[1], int(n)))


__all__ = ["SYNAPSES", "DEFAULTS", "MemoryCurve", "memory_curve", "theory", "lifetime_theory", "lag_grid"]
