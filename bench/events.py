"""Event-driven plasticity engine (Numba) vs dense per-step torch updates, one thread.

For each rule, synapse count n_post·n_pre ∈ {10³, 10⁴, 10⁵, 10⁶} (square layers) and spike rate
0.5–20 %, runs T steps of Bernoulli pre/post spikes through

* ``event``: :func:`metaspin_snn.synapses.events.apply_events` (Numba, touches only event rows/cols),
* ``dense``: a lean float32 torch loop doing the same rule as full-matrix ops every step (in place;
  faster than the float64 test reference in events.py, so the ratio is not flattered),

and prints the best-of-``--repeat`` wall time of each and the ratio dense/event measured in this run.
Before timing, a small case checks that the lean dense loop agrees with the engine.

    python bench/events.py [--steps 200] [--repeat 3] [--rules stdp,three,pmp]
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import math  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from metaspin_snn.synapses.events import (PairSTDP, PlasticityState, ProbabilisticMetaplasticity,  # noqa: E402
                                          SpikeEvents, ThreeFactor, apply_events, trace_decay)


def dense_stdp(rule: PairSTDP, w, s_pre, s_post) -> None:
    lp, lq = trace_decay(rule.tau_pre), trace_decay(rule.tau_post)
    xp = torch.zeros(w.shape[1]); xq = torch.zeros(w.shape[0])
    tmp = torch.empty_like(w)
    for t in range(s_pre.shape[0]):
        xp.mul_(lp).add_(s_pre[t]); xq.mul_(lq)
        torch.outer(xq, s_pre[t], out=tmp)
        if rule.mu != 0.0:
            tmp.mul_(w.pow(rule.mu))
        w.sub_(tmp, alpha=rule.eta * rule.alpha).clamp_(0.0, rule.w_max)
        xq.add_(s_post[t])
        torch.outer(s_post[t], xp, out=tmp)
        if rule.mu != 0.0:
            tmp.mul_((rule.w_max - w).pow(rule.mu))
        w.add_(tmp, alpha=rule.eta).clamp_(0.0, rule.w_max)


def dense_three(rule: ThreeFactor, w, s_pre, psi, L) -> None:
    lp = trace_decay(rule.tau_pre)
    xp = torch.zeros(w.shape[1])
    tmp = torch.empty_like(w)
    for t in range(s_pre.shape[0]):
        xp.mul_(lp).add_(s_pre[t])
        torch.outer(L[t] * psi[t], xp, out=tmp)
        w.sub_(tmp, alpha=rule.eta).clamp_(rule.w_min, rule.w_max)


def dense_pmp(rule: ProbabilisticMetaplasticity, w, m, s_pre, s_post, L, gen) -> None:
    lam = rule.lam
    xp = torch.zeros(w.shape[1]); xq = torch.zeros(w.shape[0])
    u = torch.empty_like(w)
    for t in range(s_pre.shape[0]):
        xp.mul_(lam).add_(s_pre[t]); xq.mul_(lam).add_(s_post[t])
        ev = (L[t].abs() > rule.err_th).float() * torch.sign(L[t])
        elig = (xp > rule.elig_th).float()
        u.uniform_(generator=gen)
        p = torch.exp(-m * w.abs())
        step = torch.outer(ev, elig) * (u < p)
        w.sub_(step, alpha=rule.step).clamp_(rule.w_min, rule.w_max)
        grow = torch.outer((xq > rule.post_th).float(), (xp > rule.pre_th).float())
        m.add_(grow, alpha=rule.dm).clamp_(max=rule.m_max)


def _best(fn, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def case(rule_name: str, n: int, rate: float, T: int, repeat: int, seed: int = 0) -> tuple[float, float]:
    g = torch.Generator().manual_seed(seed)
    s_pre = (torch.rand(T, n, generator=g) < rate).float()
    s_post = (torch.rand(T, n, generator=g) < rate).float()
    ev_pre = SpikeEvents.from_dense(s_pre)
    ev_post = SpikeEvents.from_dense(s_post)
    # third factor: dense Gaussian for the three-factor rule (its events are the ψ/post events);
    # for PMP, error events at the spike rate (|L| = 2 > err_th), zero elsewhere
    L = torch.randn(T, n, generator=g)
    L_err = torch.sign(L) * 2.0 * (torch.rand(T, n, generator=g) < rate)
    if rule_name == "stdp":
        rule = PairSTDP(eta=0.01, alpha=1.05, mu=0.0)
        w0 = torch.rand(n, n, generator=g)
        ev = lambda: apply_events(rule, w0.clone(), ev_pre, ev_post)  # noqa: E731
        de = lambda: dense_stdp(rule, w0.clone(), s_pre, s_post)  # noqa: E731
    elif rule_name == "three":
        rule = ThreeFactor(eta=0.01, w_min=-1.0, w_max=1.0)
        w0 = torch.rand(n, n, generator=g) - 0.5
        ev_psi = SpikeEvents.from_dense(s_post, graded=True)  # ψ = 1 at post spikes, as values
        ev = lambda: apply_events(rule, w0.clone(), ev_pre, ev_psi, L)  # noqa: E731
        de = lambda: dense_three(rule, w0.clone(), s_pre, s_post, L)  # noqa: E731
    else:
        rule = ProbabilisticMetaplasticity(n_levels=16, err_th=1.0, elig_th=0.5, pre_th=1.5, post_th=1.5,
                                           dm=0.05, m_max=5.0)
        w0 = rule.quantize(torch.rand(n, n, generator=g) * 2 - 1)

        def ev() -> None:
            st = PlasticityState.zeros(n, n, with_m=True)
            apply_events(rule, w0.clone(), ev_pre, ev_post, L_err, st, seed=1)

        def de() -> None:
            dense_pmp(rule, w0.clone(), torch.zeros(n, n), s_pre, s_post, L_err, torch.Generator().manual_seed(1))
    return _best(ev, repeat), _best(de, max(1, repeat if n * n <= 10**5 else 1))


def sanity() -> None:
    """The lean dense loops compute the same rule as the engine (small case)."""
    g = torch.Generator().manual_seed(0)
    T, n = 80, 40
    s_pre = (torch.rand(T, n, generator=g) < 0.1).float(); s_post = (torch.rand(T, n, generator=g) < 0.1).float()
    L = torch.randn(T, n, generator=g)
    r1 = PairSTDP(eta=0.02, mu=0.5)
    w0 = torch.rand(n, n, generator=g); a = w0.clone(); b = w0.clone()
    apply_events(r1, a, s_pre, s_post); dense_stdp(r1, b, s_pre, s_post)
    assert (a - b).abs().max() < 1e-4, "dense STDP loop disagrees with the engine"
    r2 = ThreeFactor(eta=0.02, w_min=-1, w_max=1)
    w0 = torch.rand(n, n, generator=g) - 0.5; a = w0.clone(); b = w0.clone()
    apply_events(r2, a, s_pre, s_post, L); dense_three(r2, b, s_pre, s_post, L)
    assert (a - b).abs().max() < 1e-4, "dense three-factor loop disagrees with the engine"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rules", default="stdp,three,pmp")
    ap.add_argument("--sizes", default="32,100,316,1000", help="layer widths n (n² synapses)")
    ap.add_argument("--rates", default="0.005,0.01,0.02,0.05,0.1,0.2")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sanity()
    for name in args.rules.split(","):
        case(name, 8, 0.1, 5, 1)  # compile / load the cached kernel
    print(f"T = {args.steps} steps, 1 thread, best of {args.repeat} (dense at 10^6: 1 run)")
    print(f"{'rule':6s} {'synapses':>9s} {'rate':>6s} {'event ms':>10s} {'dense ms':>10s} {'dense/event':>11s}")
    for name in args.rules.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            for rate in (float(r) for r in args.rates.split(",")):
                te, td = case(name, n, rate, args.steps, args.repeat)
                print(f"{name:6s} {n * n:9d} {rate * 100:5.1f}% {te * 1e3:10.2f} {td * 1e3:10.2f} {td / te:10.1f}x",
                      flush=True)


if __name__ == "__main__":
    main()
