"""MetaplasticMTJ: Néel–Brown switching, consolidation, relaxation, read, energy, kernel ≡ reference,
physical bounds, state_dict, learning. (Closed forms of the device physics one by one:
test_device_physics.py.)"""
from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metaspin_snn.synapses.devices import NonIdeal
from metaspin_snn.synapses.mtj import MetaplasticMTJ, MTJParams, neel_brown_tau, switch_probability

STATE = ("s", "x", "n_pulse", "n_switch", "n_gate", "energy_write_pj", "time_s")
IDEAL = NonIdeal.ideal()


def mtj(shape=(64,), backend="torch", **kw) -> MetaplasticMTJ:
    return MetaplasticMTJ(shape, MTJParams(**kw), backend=backend)


def p_closed_form(delta, v, v_c, tau0, tp, b):
    """P_sw = 1 − exp(−t_p/τ), τ = τ₀·exp[Δ(1 − V/V_c)^b] (V < V_c), τ₀ otherwise."""
    tau = tau0 * math.exp(delta * (1 - v / v_c) ** b) if v < v_c else tau0
    return 1 - math.exp(-tp / tau)


def test_tau_formula():
    p = MTJParams()
    for delta, v, vc, b in [(30.0, 0.3, 0.5, 1.0), (80.0, 0.45, 0.5, 2.0), (40.0, 0.0, 0.5, 1.0),
                            (40.0, 0.6, 0.5, 1.0), (55.0, 0.5, 0.5, 2.0)]:
        d64, v64 = torch.tensor(delta, dtype=torch.float64), torch.tensor(v, dtype=torch.float64)
        tau = neel_brown_tau(d64, v64, vc, 1.0, b).item()
        want = 1.0 * math.exp(delta * (1 - v / vc) ** b) if v < vc else 1.0
        assert tau == pytest.approx(want, rel=1e-12, abs=0)
    # zero drive: thermal retention time τ₀·e^Δ (Δ = 40 kT → ~7.5 years)
    tau40 = neel_brown_tau(torch.tensor(40.0), torch.tensor(0.0), 0.5, 1.0, 1.0).item() * 1e-9
    assert 7 < tau40 / 3.15e7 < 8
    # switch probability formula and monotonicity in V and in x (barrier)
    vs = torch.linspace(0.0, 0.6, 61, dtype=torch.float64)
    P = switch_probability(torch.full_like(vs, 30.0), vs, 0.5, p)
    assert (P.diff() >= 0).all() and P[-1].item() == pytest.approx(1 - math.exp(-10.0))
    assert P[46].item() == pytest.approx(p_closed_form(30.0, 0.46, 0.5, 1.0, 10.0, 1.0), rel=1e-9, abs=0)
    # k pulses: 1 − exp(−k·t_p/τ)
    P3 = switch_probability(torch.full_like(vs, 30.0), vs, 0.5, p, pulses=3)
    tau = torch.tensor([math.exp(30.0 * max(1 - v / 0.5, 0.0)) for v in vs.tolist()], dtype=torch.float64)
    torch.testing.assert_close(P3, 1 - torch.exp(-3 * 10.0 / tau), rtol=1e-12, atol=1e-15)
    # defaults (generic-o): P(V_max) ≈ 0.60 plastic, ≈ 0.016 consolidated (symmetric part)
    assert p_closed_form(30.0, 0.46, 0.5, 1.0, 10.0, 1.0) == pytest.approx(0.596, abs=1e-3)
    assert p_closed_form(80.0, 0.46, 0.5, 1.0, 10.0, 1.0) == pytest.approx(0.0165, abs=1e-4)


@pytest.mark.parametrize("backend,b,x0,v", [
    ("numba", 1.0, 0.0, 0.46), ("numba", 1.0, 0.5, 0.47), ("numba", 2.0, 0.3, 0.40), ("numba", 1.0, 0.2, 0.6),
    ("numba", 1.5, 0.1, 0.45), ("torch", 1.0, 0.0, 0.46), ("torch", 2.0, 0.3, 0.40)])
def test_switch_probability_statistics(backend, b, x0, v):
    """Empirical switching fraction over 10⁵ identical devices vs the closed form (5σ binomial); the
    closed form assumes no spread, symmetric switching and no c2c: the ideal device."""
    n = 100_000
    kw = dict(b=b, x_init=x0, volt_per_grad=10.0, v_max=0.6, v_min=0.0, nonideal=IDEAL, seed=11)
    m = mtj((n,), backend=backend, **kw)
    m.s.fill_(1)
    g = torch.full((n,), v / 10.0)  # g > 0 → target −1, pulse of amplitude V = 10·g
    P = p_closed_form(30.0 + 50.0 * x0, v, 0.5, 1.0, 10.0, b)
    assert m.switch_probability(g)[:3].tolist() == pytest.approx([P] * 3, rel=1e-5, abs=0)
    m.update(g)
    frac = (m.s == -1).double().mean().item()
    tol = 5 * math.sqrt(max(P * (1 - P), 1e-6) / n)
    assert abs(frac - P) < tol, (frac, P, tol)
    assert m.total_switches() == int((m.s == -1).sum()) and m.total_pulses() == n
    assert 0.01 < P  # the check is informative


def test_consolidated_devices_resist_switching():
    """Metaplasticity: the same opposing pulse flips plastic devices (x = 0) ~36× more often than
    consolidated ones (x = 1), P ≈ 0.596 vs 0.0165 at V_max (ideal device); with every non-ideality
    on the contrast stays large."""
    n = 40_000
    m = mtj((2 * n,), backend="numba", nonideal=IDEAL, seed=2)
    m.s.fill_(-1)
    m.x[n:] = 1.0
    m.update(torch.full((2 * n,), -1.0))  # g < 0: target +1, V capped at V_max = 0.46 V
    f0 = (m.s[:n] == 1).double().mean().item()
    f1 = (m.s[n:] == 1).double().mean().item()
    assert abs(f0 - 0.596) < 0.015 and abs(f1 - 0.0165) < 0.004, (f0, f1)
    assert torch.equal(m.x[n:], torch.ones(n))  # disagreeing gradient does not consolidate
    # every non-ideality on (defaults; the polarity-aware driver scales V by √1.2 for P → AP, so r is
    # the symmetric one, and the barrier asymmetry h = 0.05 remains): P → AP nominal P ≈ 0.51 plastic
    # (Δ_P = 30·1.05²) vs ≈ 0.009 consolidated (Δ_P = 80·1.05²), broadened by the spreads; AP → P
    # (Δ_AP = Δ·0.95²) ≈ 0.68 vs ≈ 0.03.
    for start, grad, lo, hi in ((1, 1.0, 0.40, 0.62), (-1, -1.0, 0.55, 0.78)):
        m = mtj((2 * n,), backend="numba", seed=2)
        m.s.fill_(start)
        m.x[n:] = 1.0
        m.update(torch.full((2 * n,), grad))
        f0 = (m.s[:n] == -start).double().mean().item()
        f1 = (m.s[n:] == -start).double().mean().item()
        assert lo < f0 < hi and f1 < 0.08 and f0 > 8 * f1, (start, f0, f1)
    assert (m.x[n:] > 0.99).all()  # only relaxation (τ_relax = 10⁴ s) and level rounding act on x


@pytest.mark.parametrize("b,parallel,scheme,on_flip,levels", [
    (1.0, False, "blind", "keep", True), (2.0, False, "blind", "keep", False),
    (1.0, True, "blind", "keep", False), (2.0, True, "blind", "keep", True),
    (1.0, False, "verify", "reset", False), (2.0, False, "verify", "reset", True)])
def test_kernel_equals_reference(b, parallel, scheme, on_flip, levels):
    """Every non-ideality on (defaults; finite levels on or off, so that x's bits are compared
    unrounded too), thermal flips and relaxation visible: the numba kernel and the torch reference
    give the same bits."""
    kw = dict(b=b, delta_min=20.0, delta_max=40.0, kappa=20.0, tau_relax_s=0.05, x_rest=0.1, seed=4,
              write_scheme=scheme, on_flip=on_flip, e_driver_pj=0.01, nonideal=NonIdeal(finite_levels=levels))
    a = MetaplasticMTJ((2, 12001), MTJParams(**kw), backend="numba", parallel=parallel)
    c = MetaplasticMTJ((2, 12001), MTJParams(**kw), backend="torch")
    gen = torch.Generator().manual_seed(1)
    for _ in range(40):
        g = torch.randn((2, 12001), generator=gen) * 0.04
        g[torch.rand((2, 12001), generator=gen) < 0.1] = 0.0
        a.update(g)
        c.update(g)
    pulsed_flips = a.total_switches()
    assert pulsed_flips > 500 and a.total_gate_events() > 500 and a.time_s.item() > 0
    assert 0.1 < a.x.mean().item() < 0.9  # gating, relaxation and level rounding all at work
    for k in STATE:
        assert torch.equal(getattr(a, k), getattr(c, k)), k
    for name in ("switch", "c2c", "finite_levels"):
        assert torch.equal(a.generator(name).get_state(), c.generator(name).get_state()), name


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_consolidation_only_when_gradient_agrees(backend):
    """Gate kinetics of the ideal device at 300 K: x ← x + (1 − x)(1 − exp(−κ|g|)) where the
    gradient agrees with the state, nothing where it disagrees or is zero."""
    m = mtj((4,), backend=backend, kappa=2.0, x_init=0.2, v_min=0.45, nonideal=IDEAL, seed=0)
    m.s.copy_(torch.tensor([1, -1, 1, -1], dtype=torch.int8))
    g = torch.tensor([-0.1, 0.3, 0.1, 0.0])  # agree, agree, disagree, zero
    m.update(g)
    want = [0.2 + 0.8 * (1 - math.exp(-0.2)), 0.2 + 0.8 * (1 - math.exp(-0.6)), 0.2, 0.2]
    assert m.x.tolist() == pytest.approx(want, abs=1e-6)
    assert m.n_gate.tolist() == [1, 1, 0, 0]
    assert m.n_pulse.tolist() == [0, 0, 1, 0]
    # huge agreeing gradient: the gate pulse is clipped at t_g,max = 1 s, k·t = 300 → x = 1 exactly
    m.update(torch.tensor([-1e30, 0.0, 0.0, 0.0]))
    assert m.x[0].item() == 1.0


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_relaxation_over_simulated_time(backend):
    """Relaxation (retention on, everything else off): over n updates of a fixed step time T,
    x = x_rest + (x₀ − x_rest)·exp(−nT/τ_relax); no pulses, no gating with a zero gradient; Δ
    large enough that no thermal flip happens."""
    T, tau = 0.4, 10.0
    ni = NonIdeal(**{**{n: False for n in ("d2d", "c2c", "read_noise", "finite_levels", "asymmetry")},
                     "retention": True})
    m = mtj((3,), backend=backend, x_init=0.8, x_rest=0.1, tau_relax_s=tau, step_time_s=T,
            delta_min=80.0, delta_max=90.0, nonideal=ni)
    s0 = m.s.clone()
    for _ in range(25):
        m.update(torch.zeros(3))
    want = 0.1 + 0.7 * math.exp(-25 * T / tau)
    assert m.x.tolist() == pytest.approx([want] * 3, rel=1e-5, abs=0)
    assert m.time_s.item() == pytest.approx(25 * T, rel=1e-12, abs=0)
    assert m.total_pulses() == 0 and m.total_gate_events() == 0 and torch.equal(m.s, s0)
    # idle time: the same law
    m.advance(7.0)
    assert m.x.tolist() == pytest.approx([0.1 + 0.7 * math.exp(-(25 * T + 7.0) / tau)] * 3, rel=1e-5, abs=0)
    # τ_relax = inf: x stays
    m2 = mtj((3,), backend=backend, x_init=0.8, tau_relax_s=math.inf, step_time_s=T, nonideal=ni)
    m2.update(torch.zeros(3))
    m2.advance(1e6)
    assert torch.equal(m2.x, torch.full((3,), 0.8))


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_energy_pulse_and_vmin(backend):
    # Δ huge so nothing switches: energy per pulse E = V²/R_s(V)·t_p, R_AP(V) = R_P(1 + TMR/(1 + (V/V_h)²))
    kw = dict(delta_min=900.0, delta_max=900.0, v_min=0.2, r_p_ohm=2000.0, tmr=1.5, v_half=0.5,
              t_pulse_ns=10.0, volt_per_grad=10.0, v_max=0.46, kappa=0.0, nonideal=IDEAL)
    m = mtj((4,), backend=backend, **kw)
    m.s.copy_(torch.tensor([1, -1, 1, 1], dtype=torch.int8))
    m.update(torch.tensor([0.04, -0.1, 0.01, 0.03]))  # V = 0.4 (P), 0.46 capped (AP), 0.1 < v_min, 0.3
    r_ap = 2000 * (1 + 1.5 / (1 + (0.46 / 0.5) ** 2))
    e = [0.4 ** 2 / 2000 * 10e-9, 0.46 ** 2 / r_ap * 10e-9, 0.0, 0.3 ** 2 / 2000 * 10e-9]
    assert m.energy_write_pj.tolist() == pytest.approx([v * 1e12 for v in e], rel=1e-5, abs=0)
    assert m.n_pulse.tolist() == [1, 1, 0, 1] and m.total_switches() == 0
    assert m.total_energy_pj() == pytest.approx(sum(e) * 1e12, rel=1e-5, abs=0)
    assert m.energy_j()["write"] == pytest.approx(sum(e), rel=1e-5, abs=0)


def test_read_levels_and_noise():
    p = MTJParams(read_noise=0.02, tmr=1.5, v_read=0.1, v_half=0.5, scale=0.5, eval_noise=False)
    m = MetaplasticMTJ((200_000,), p)
    s = m.s.float()
    assert torch.equal(m.refresh(sample=False), 0.5 * s)  # noise-free read: w = scale·s exactly
    assert 0.45 < (m.s > 0).float().mean().item() < 0.55
    w = m.refresh(sample=True).clone()
    gap = 1 / (1 + 1.5 / (1 + (0.1 / 0.5) ** 2))  # G_AP/G_P at the read bias
    half = (1 - gap) / 2  # G_half / G_P
    assert m.conductance_levels() == pytest.approx((1.0, (1 + gap) / 2, half), rel=1e-12, abs=0)
    for sign, gs in ((1, 1.0), (-1, gap)):
        sel = m.s == sign
        dev = w[sel] - 0.5 * sign
        sd = dev.std().item()
        want = 0.5 * 0.02 * gs / half
        assert abs(sd - want) < 5 * want / math.sqrt(2 * int(sel.sum())), (sign, sd, want)
        assert abs(dev.mean().item()) < 5 * want / math.sqrt(int(sel.sum()))
    m.eval()
    assert torch.equal(m.effective_weight(), 0.5 * s)
    # eval_noise (the default): evaluation reads are noisy too, a fresh draw each time
    m2 = MetaplasticMTJ((1000,), MTJParams(scale=0.5)).eval()
    w1, w2 = m2.refresh().clone(), m2.refresh().clone()
    assert not torch.equal(w1, w2) and torch.equal(torch.sign(w1), m2.s.float())


def test_device_spread_fixed_and_bounded():
    m = mtj((100_000,), delta_spread=0.05, v_c_spread=0.02, gate_rate_spread=0.1)
    assert m.delta_factor.std().item() == pytest.approx(0.05, rel=0.05, abs=0)
    assert m.delta_factor.mean().item() == pytest.approx(1.0, abs=1e-3)
    assert m.v_c.mean().item() == pytest.approx(0.5, abs=1e-3)
    assert m.v_c.std().item() == pytest.approx(0.5 * 0.02, rel=0.05, abs=0)
    assert m.rate_factor.log().std().item() == pytest.approx(0.1, rel=0.05, abs=0)
    assert m.delta_factor.min().item() >= 1 - 3 * 0.05 - 1e-6 and m.delta_factor.max().item() <= 1 + 3 * 0.05 + 1e-6
    assert m.v_c.min().item() >= 0.5 * 0.94 - 1e-6 and m.v_c.max().item() <= 0.5 * 1.06 + 1e-6
    before = (m.delta_factor.clone(), m.v_c.clone(), m.rate_factor.clone())
    m.update(torch.randn(100_000))
    m.advance(10.0)
    assert all(torch.equal(a, b) for a, b in zip(before, (m.delta_factor, m.v_c, m.rate_factor)))


finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=40, deadline=None)
@given(grads=st.lists(hnp.arrays(np.float32, (24,), elements=finite32), min_size=1, max_size=4),
       b=st.sampled_from([1.0, 2.0]), kappa=st.sampled_from([0.0, 0.5, 1e30]),
       backend=st.sampled_from(["numba", "torch"]), scheme=st.sampled_from(["blind", "verify"]),
       on_flip=st.sampled_from(["keep", "reset"]), grad_norm=st.sampled_from(["none", "rms"]),
       step_time_s=st.sampled_from([0.0, 1e5]))
def test_state_stays_physical(grads, b, kappa, backend, scheme, on_flip, grad_norm, step_time_s):
    m = mtj((24,), backend=backend, b=b, kappa=kappa, tau_relax_s=100.0, x_rest=0.3, write_scheme=scheme,
            on_flip=on_flip, grad_norm=grad_norm, step_time_s=step_time_s)
    t_prev, n_prev = 0.0, m.n_pulse.clone()
    for g in grads:
        m.update(torch.from_numpy(g.copy()))
        assert set(m.s.unique().tolist()) <= {-1, 1}
        assert torch.isfinite(m.x).all() and (m.x >= 0).all() and (m.x <= 1).all()
        assert torch.isfinite(m.energy_write_pj).all() and (m.energy_write_pj >= 0).all()
        dn = m.n_pulse - n_prev
        n_prev = m.n_pulse.clone()
        assert (dn >= 0).all() and (dn <= (m.params.verify_max if scheme == "verify" else 1)).all()
        t = m.time_s.item()
        assert math.isfinite(t) and t >= t_prev
        t_prev = t
        w = m.refresh(sample=False)
        assert torch.isfinite(w).all() and torch.equal(torch.sign(w), m.s.float())
        e = m.energy_j()
        assert all(math.isfinite(v) and v >= 0 for v in e.values())


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_rms_drive_of_tiny_gradients(backend):
    """grad_norm = "rms": ∂L/∂w / RMS with an RMS below the float32 range (subnormal gradients) is
    still finite (it was inf/NaN: the RMS was rounded to float32 before dividing)."""
    m = mtj((24,), backend=backend, grad_norm="rms")
    g = torch.zeros(24)
    g[3] = 1e-45
    d = m.drive(g)
    assert torch.isfinite(d).all() and d[3].item() == pytest.approx(math.sqrt(24), rel=1e-6, abs=0)
    assert (d[torch.arange(24) != 3] == 0).all()
    m.update(g)
    assert torch.isfinite(m.energy_write_pj).all() and m.total_pulses() <= 1
    big = torch.full((24,), 3e38)
    assert torch.equal(m.drive(big), torch.ones(24))


@pytest.mark.parametrize("bad", [float("nan"), float("-inf")])
def test_nonfinite_gradient_raises_state_untouched(bad):
    m = mtj((5,), backend="numba")
    m.update(torch.full((5,), 0.05))
    before = {k: v.clone() for k, v in m.state_dict().items() if torch.is_tensor(v)}
    gens_before = {k: g.get_state().clone() for k, g in m._gens.items()}
    g = torch.zeros(5)
    g[1] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        m.update(g)
    for k, v in m.state_dict().items():
        if torch.is_tensor(v):
            assert torch.equal(v, before[k]), k
    for k, st_ in gens_before.items():
        assert torch.equal(st_, m.generator(k).get_state()), k


def test_state_dict_round_trip():
    a = mtj((20, 10), seed=3, kappa=5.0, tau_relax_s=1e-2)
    gen = torch.Generator().manual_seed(0)
    a.train()
    for _ in range(30):
        a.refresh(sample=True)
        a.count_reads(torch.rand(4, 10, generator=gen))
        a.update(torch.randn(20, 10, generator=gen) * 0.05)
    a.count_reads(torch.rand(4, 10, generator=gen))  # pending read cycles travel too
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = mtj((20, 10), seed=77, kappa=5.0, tau_relax_s=1e-2)
    b.load_state_dict(torch.load(buf, weights_only=False))
    for k in STATE + ("delta_factor", "v_c", "rate_factor", "energy_read_j", "read_cycles"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    for name in a._gens:
        assert torch.equal(a.generator(name).get_state(), b.generator(name).get_state()), name
    assert torch.equal(a.refresh(sample=True).clone(), b.refresh(sample=True))
    for _ in range(5):  # same draws of every stream afterwards
        g = torch.randn(20, 10, generator=gen) * 0.05
        a.update(g)
        b.update(g)
        a.advance(0.5)
        b.advance(0.5)
    for k in STATE:
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    assert torch.equal(a.refresh(sample=True).clone(), b.refresh(sample=True))


@pytest.mark.parametrize("field,value", [
    ("delta_min", 0.0), ("delta_max", 10.0), ("delta_spread", 0.5), ("tau0_ns", 0.0),
    ("t_pulse_ns", -1.0), ("v_c", 0.0), ("v_c_spread", -0.1), ("v_max", 0.0), ("v_min", 1.0),
    ("volt_per_grad", -1.0), ("volt_per_grad", math.inf), ("b", 3.0), ("b", 0.5), ("kappa", -1.0),
    ("tau_relax_s", 0.0), ("tau_relax_s", -1.0), ("temperature_k", 0.0), ("vc_asym", 10.0),
    ("delta_asym", 0.9), ("gate_t_max_s", -1.0), ("step_time_s", -1.0),
    ("x_rest", 1.5), ("x_init", -0.1), ("r_p_ohm", 0.0), ("tmr", 0.0), ("read_noise", 2.0),
    ("scale", 0.0), ("delta_min", float("nan")),
])
def test_bad_params_name_the_field(field, value):
    with pytest.raises(ValueError, match=rf"MTJParams\.{field} must be a number in"):
        MTJParams(**{field: value})


def test_bad_other_inputs():
    with pytest.raises(ValueError, match="MTJParams.seed"):
        MTJParams(seed=-3)
    with pytest.raises(ValueError, match="MTJParams.eval_noise"):
        MTJParams(eval_noise="yes")
    with pytest.raises(ValueError, match="MTJParams.write_scheme"):
        MTJParams(write_scheme="twice")
    with pytest.raises(ValueError, match="MTJParams.levels"):
        MTJParams(levels=1)
    with pytest.raises(ValueError, match="nonideal"):
        MTJParams(nonideal={"d2d": "no"})
    with pytest.raises(TypeError, match="MTJParams"):
        MetaplasticMTJ((3,), params=object())
    with pytest.raises(ValueError, match="grad shape"):
        mtj((4,)).update(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="advance"):
        mtj((4,)).advance(-1.0)


def _binary_teacher_task(seed: int = 0, d: int = 64):
    """y = [x·u > 0] with a binary teacher u ∈ {±1}^d: a binary student can solve it exactly."""
    g = torch.Generator().manual_seed(seed)
    u = torch.where(torch.rand(d, generator=g) < 0.5, 1.0, -1.0)
    X = torch.randn(3000, d, generator=g)
    y = (X @ u > 0).float()
    return X[:2000], y[:2000], X[2000:], y[2000:]


def _learn(seed, **kw):
    X, y, Xt, yt = _binary_teacher_task(seed)
    m = MetaplasticMTJ((64,), MTJParams(seed=100 + seed, **kw))
    gen = torch.Generator().manual_seed(seed + 1)
    acc0 = ((Xt @ m.refresh(sample=False) > 0).float() == yt).float().mean().item()
    m.train()
    for _ in range(200):
        idx = torch.randint(0, 2000, (50,), generator=gen)
        logit = X[idx] @ m.effective_weight() * (4.0 / 8.0)
        torch.nn.functional.binary_cross_entropy_with_logits(logit, y[idx]).backward()
        m.update()
    m.eval()
    acc = ((Xt @ m.effective_weight() > 0).float() == yt).float().mean().item()
    return m, acc0, acc


@pytest.mark.parametrize("seed", [0, 1])
def test_learns_a_linear_classifier_with_defaults(seed):
    """Every non-ideality on (the defaults: spread, c2c, noisy reads in training and evaluation,
    retention, 32 levels, barrier asymmetry h = 0.05, V_c asymmetry 1.2 with the polarity-aware
    driver)."""
    m, acc0, acc = _learn(seed)
    assert acc > 0.9 and acc > acc0 + 0.2, (acc0, acc)
    assert m.total_switches() > 0 and m.hidden().mean().item() > 0.2  # it consolidated
    assert m.total_time_s() > 0 and m.energy_j()["gate"] > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_uncompensated_vc_asymmetry_drifts_to_parallel(seed):
    """Without the polarity-aware driver (polarity_drive = False) an AP→P pulse at V_max = 0.46 V is
    above V_c/√1.2 = 0.456 V (P_sw ≈ 1) while P→AP needs V_c·√1.2 = 0.548 V (P_sw ≈ 0.05 at x = 0):
    the states drift to P and the sign learner stays near chance."""
    m, acc0, acc = _learn(seed, polarity_drive=False)
    assert acc < 0.75, (acc0, acc)
    assert (m.s > 0).float().mean().item() > 0.7                    # most devices ended in P
    m2, _, acc2 = _learn(seed, polarity_drive=False, vc_asym=1.0)    # symmetric: the driver does not matter
    assert acc2 > 0.9


def test_polarity_drive_scales_the_pulse_and_its_energy():
    """One pulse each way on a 2-synapse device with only asymmetry on: P→AP at √a·V, AP→P at V/√a;
    the write energy is (√a·V)²/R_P·t_p and (V/√a)²/R_AP(V/√a)·t_p."""
    a = 1.44
    p = MTJParams(vc_asym=a, delta_asym=0.0, volt_per_grad=10.0, v_min=0.0, seed=1,
                  nonideal=dataclasses.replace(NonIdeal.ideal(), asymmetry=True))
    m = MetaplasticMTJ((2,), p, backend="numba")
    m.s.copy_(torch.tensor([1, -1], dtype=torch.int8))
    m.update(torch.tensor([0.04, -0.04]))     # both pushed to the other state: V = 0.4 V nominal
    vp, va = 0.4 * math.sqrt(a), 0.4 / math.sqrt(a)
    tmr_a = p.tmr / (1 + (va / p.v_half) ** 2)
    want = [vp ** 2 / p.r_p_ohm * p.t_pulse_ns * 1e-9 * 1e12, va ** 2 / (p.r_p_ohm * (1 + tmr_a)) * p.t_pulse_ns * 1e3]
    assert m.energy_write_pj.tolist() == pytest.approx(want, rel=1e-5)
    # the nominal switching probability is the same in both directions (h = 0)
    m.s.copy_(torch.tensor([1, -1], dtype=torch.int8))
    P = m.switch_probability(torch.tensor([0.04, -0.04]))
    assert P[0].item() > 0.01 and P[0].item() == pytest.approx(P[1].item(), rel=1e-5)  # 1 − exp(−10·e^{−6})
    # without the polarity-aware driver they differ by orders of magnitude
    m.params.__dict__["polarity_drive"] = False  # frozen dataclass: a test-only change
    P = m.switch_probability(torch.tensor([0.04, -0.04]))
    assert P[1].item() > 20 * P[0].item()


def test_trains_through_synaptic_optimizer_and_dtype_moves():
    from metaspin_snn.synapses import SynapticOptimizer

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.syn = MetaplasticMTJ((2, 8), MTJParams(seed=1))
            self.bias = torch.nn.Parameter(torch.zeros(2))

        def forward(self, x):
            return torch.nn.functional.linear(x, self.syn.effective_weight(), self.bias)

    net = Net()
    opt = SynapticOptimizer(net, lambda ps: torch.optim.SGD(ps, lr=0.1))
    x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    assert net.syn.total_pulses() + net.syn.total_gate_events() > 0
    net.double()  # float64 state: the torch reference runs, weights follow the dtype
    assert net.syn.x.dtype == torch.float64 and net.syn.effective_weight().dtype == torch.float64
    net.syn.update(torch.randn(2, 8, dtype=torch.float64) * 0.05)
    assert set(net.syn.s.unique().tolist()) <= {-1, 1}
    assert ((net.syn.x >= 0) & (net.syn.x <= 1)).all()
    with pytest.raises(ValueError, match="float32 state on the CPU"):
        MetaplasticMTJ((3,), backend="numba").double().update(torch.zeros(3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_reference_equals_cpu_kernel():
    """Draws come from the model's CPU generators, so the torch reference on the GPU takes the same
    decisions as the Numba kernel on the CPU."""
    kw = dict(delta_min=20.0, delta_max=40.0, kappa=20.0, tau_relax_s=0.05, seed=4)
    a = MetaplasticMTJ((50, 40), MTJParams(**kw), backend="numba")
    c = MetaplasticMTJ((50, 40), MTJParams(**kw), backend="torch").cuda()
    gen = torch.Generator().manual_seed(1)
    for _ in range(30):
        g = torch.randn((50, 40), generator=gen) * 0.04
        a.update(g)
        c.update(g.cuda())
    for k in STATE:
        assert torch.equal(getattr(a, k), getattr(c, k).cpu()), k
    assert c.effective_weight().device.type == "cuda"
