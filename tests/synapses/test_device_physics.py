"""MetaplasticMTJ against closed forms written out here (never the model's own helpers): Néel–Brown
switching and the verify scheme, asymmetry, thermal retention (telegraph process), Arrhenius, gate
kinetics, energies, the ideal limit bit for bit, the independence of the non-ideality switches and
config plumbing, the simulated clock."""
from __future__ import annotations

import math

import pytest
import torch

from metaspin_snn.synapses.devices import NONIDEAL_NAMES, NonIdeal
from metaspin_snn.synapses.mtj import MetaplasticMTJ, MTJParams

KB_EV = 8.617333262e-5  # Boltzmann constant [eV/K] (CODATA 2018)
IDEAL = NonIdeal.ideal()
N = 100_000


def only(*names: str) -> NonIdeal:
    """Only the named non-idealities on."""
    return NonIdeal(**{n: n in names for n in NONIDEAL_NAMES})


def mtj(shape, backend="numba", **kw) -> MetaplasticMTJ:
    return MetaplasticMTJ(shape, MTJParams(**kw), backend=backend)


def p_switch(delta, v, v_c, b=1.0, tau0_ns=1.0, tp_ns=10.0, pulses=1):
    """1 − exp(−k·t_p/τ), τ = τ₀·exp[Δ·max(1 − V/V_c, 0)^b]."""
    tau = tau0_ns * math.exp(delta * max(1.0 - v / v_c, 0.0) ** b)
    return 1.0 - math.exp(-pulses * tp_ns / tau)


def within_5_sigma(frac, p, n):
    tol = 5 * math.sqrt(max(p * (1 - p), 1e-7) / n)
    assert abs(frac - p) < tol, (frac, p, tol)


# ---- (a) switching probability ------------------------------------------------------------------
@pytest.mark.parametrize("backend,b,x0,v", [("numba", 1.0, 0.0, 0.46), ("torch", 1.0, 0.1, 0.45),
                                            ("numba", 2.0, 0.3, 0.40), ("numba", 1.5, 0.0, 0.42)])
def test_switching_probability_blind(backend, b, x0, v):
    m = mtj((N,), backend, b=b, x_init=x0, volt_per_grad=10.0, v_max=0.6, v_min=0.0, nonideal=IDEAL, seed=5)
    m.s.fill_(1)
    m.update(torch.full((N,), v / 10.0))  # g > 0: target AP, V = 10·g
    delta = 30.0 + (80.0 - 30.0) * x0
    tau = 1.0 * math.exp(delta * (1 - v / 0.5) ** b)  # ns
    P = 1 - math.exp(-10.0 / tau)
    assert 0.02 < P < 0.98
    within_5_sigma((m.s == -1).double().mean().item(), P, N)
    assert (m.n_pulse == 1).all() and m.total_switches() == int((m.s == -1).sum())


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_switching_probability_verify(backend):
    """Up to K = 3 pulses until switched: P = 1 − exp(−3t_p/τ); attempts per pulsed device: 1 + #not
    switched after k pulses, mean Σ_{k<K} (1 − P₁)^k."""
    K, v, x0 = 3, 0.45, 0.05
    m = mtj((N,), backend, x_init=x0, volt_per_grad=10.0, v_max=0.6, v_min=0.0, write_scheme="verify",
            verify_max=K, nonideal=IDEAL, seed=6)
    m.s.fill_(1)
    m.update(torch.full((N,), v / 10.0))
    delta = 30.0 + 50.0 * x0
    tau = math.exp(delta * (1 - v / 0.5))
    P1 = 1 - math.exp(-10.0 / tau)
    P = 1 - math.exp(-K * 10.0 / tau)
    assert 0.1 < P1 < 0.5
    within_5_sigma((m.s == -1).double().mean().item(), P, N)
    q = 1 - P1
    dist = {k: q ** (k - 1) * P1 for k in range(1, K)} | {K: q ** (K - 1)}  # P(attempts = k)
    mean = sum(k * pk for k, pk in dist.items())
    var = sum(k * k * pk for k, pk in dist.items()) - mean ** 2
    assert mean == pytest.approx(sum(q ** k for k in range(K)), rel=1e-12, abs=0)
    att = m.n_pulse.double()
    assert abs(att.mean().item() - mean) < 5 * math.sqrt(var / N), (att.mean().item(), mean)
    for k, pk in dist.items():
        within_5_sigma((att == k).double().mean().item(), pk, N)
    # a device that did not switch got all K pulses; one with fewer pulses switched
    assert ((m.s == -1) | (m.n_pulse == K)).all() and ((m.n_pulse == K) | (m.s == -1)).all()


# ---- (b) asymmetry --------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_asymmetry_both_directions(backend):
    """P (s = +1) switches with V_c·√a and barrier Δ(1 + h)², AP with V_c/√a and Δ(1 − h)²."""
    a, h, n = 1.2, 0.05, N // 2
    m = mtj((2 * n,), backend, vc_asym=a, delta_asym=h, volt_per_grad=10.0, v_max=0.6, v_min=0.0,
            polarity_drive=False, nonideal=only("asymmetry"), seed=7)
    m.s[:n] = 1
    m.s[n:] = -1
    v_p, v_ap = 0.46, 0.40
    g = torch.cat([torch.full((n,), v_p / 10.0), torch.full((n,), -v_ap / 10.0)])  # both disagree
    m.update(g)
    P_p = 1 - math.exp(-10.0 / math.exp(30.0 * (1 + h) ** 2 * (1 - v_p / (0.5 * math.sqrt(a)))))
    P_ap = 1 - math.exp(-10.0 / math.exp(30.0 * (1 - h) ** 2 * (1 - v_ap / (0.5 / math.sqrt(a)))))
    assert 0.03 < P_p < 0.07 and 0.25 < P_ap < 0.35
    within_5_sigma((m.s[:n] == -1).double().mean().item(), P_p, n)
    within_5_sigma((m.s[n:] == 1).double().mean().item(), P_ap, n)
    # the polarity-aware driver (default) applies √a·V to P and V/√a to AP devices: the V_c asymmetry
    # cancels in (1 − V/V_c,dir), the barrier asymmetry stays
    m = mtj((2 * n,), backend, vc_asym=a, delta_asym=h, volt_per_grad=10.0, v_max=0.6, v_min=0.0,
            nonideal=only("asymmetry"), seed=7)
    m.s[:n] = 1
    m.s[n:] = -1
    m.update(torch.cat([torch.full((n,), 0.046), torch.full((n,), -0.046)]))
    r = 1 - 0.46 / 0.5
    within_5_sigma((m.s[:n] == -1).double().mean().item(), 1 - math.exp(-10.0 / math.exp(30.0 * (1 + h) ** 2 * r)), n)
    within_5_sigma((m.s[n:] == 1).double().mean().item(), 1 - math.exp(-10.0 / math.exp(30.0 * (1 - h) ** 2 * r)), n)


# ---- (c) retention ----------------------------------------------------------------------------
def _telegraph(a, b, t, start_p):
    """P[other state after t] of the two-state process, rates a (P→AP), b (AP→P)."""
    return (a if start_p else b) / (a + b) * (1 - math.exp(-(a + b) * t))


def test_advance_telegraph_symmetric():
    delta = 30.0
    m = mtj((N,), delta_min=delta, delta_max=delta + 10, x_init=0.0, tau_relax_s=math.inf,
            nonideal=only("retention"), seed=8)
    tau = 1e-9 * math.exp(delta)  # s
    a = b = 1.0 / tau
    s0 = m.s.clone()
    t = 0.5 * tau
    m.advance(t)
    changed = m.s != s0
    want = _telegraph(a, b, t, True)
    assert abs(want - 0.5 * (1 - math.exp(-1.0))) < 1e-12
    within_5_sigma(changed.double().mean().item(), want, N)
    for start in (1, -1):  # same law from either state
        sel = s0 == start
        within_5_sigma(changed[sel].double().mean().item(), want, int(sel.sum()))
    assert m.time_s.item() == t and torch.equal(m.n_switch, changed.int())
    assert torch.equal(m.x, torch.zeros(N))


def test_advance_telegraph_asymmetric():
    delta, h = 30.0, 0.05
    m = mtj((N,), delta_min=delta, x_init=0.0, tau_relax_s=math.inf, delta_asym=h,
            nonideal=only("retention", "asymmetry"), seed=9)
    a = math.exp(-delta * (1 + h) ** 2) / 1e-9  # P → AP
    b = math.exp(-delta * (1 - h) ** 2) / 1e-9  # AP → P
    t = 1.0 / b
    s0 = m.s.clone()
    m.advance(t)
    for start, start_p in ((1, True), (-1, False)):
        sel = s0 == start
        want = _telegraph(a, b, t, start_p)
        within_5_sigma((m.s[sel] != start).double().mean().item(), want, int(sel.sum()))
    assert _telegraph(a, b, t, True) < 0.002 < 0.6 < _telegraph(a, b, t, False)


def test_survival_and_long_times():
    # t ≪ τ: P[flip] = 1 − exp(−t/τ) ≈ t/τ
    delta = 30.0
    tau = 1e-9 * math.exp(delta)
    n = 4 * N
    m = mtj((n,), delta_min=delta, tau_relax_s=math.inf, nonideal=only("retention"), seed=10)
    s0 = m.s.clone()
    t = 2e-3 * tau
    m.advance(t)
    want = 1 - math.exp(-t / tau)
    assert want == pytest.approx(t / tau, rel=2e-3, abs=0)
    within_5_sigma((m.s != s0).double().mean().item(), want, n)
    # Δ = 80: nothing flips in a year; Δ = 30: about half after 10 τ
    year = 365.25 * 86400.0
    m80 = mtj((N,), delta_min=80.0, delta_max=80.0, tau_relax_s=math.inf, nonideal=only("retention"), seed=11)
    s80 = m80.s.clone()
    m80.advance(year)
    assert torch.equal(m80.s, s80) and m80.total_switches() == 0
    m30 = mtj((N,), delta_min=30.0, tau_relax_s=math.inf, nonideal=only("retention"), seed=12)
    s30 = m30.s.clone()
    m30.advance(10 * tau)
    within_5_sigma((m30.s != s30).double().mean().item(), 0.5 * (1 - math.exp(-20.0)), N)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_thermal_flips_during_training(backend):
    """Fixed step time T, zero gradients (no pulse, no gate): every update flips 1 − exp(−T/τ_th),
    τ_th = τ₀·e^Δ (independently per update)."""
    delta = 30.0
    tau = 1e-9 * math.exp(delta)
    T = 0.5 * tau
    m = mtj((N,), backend, delta_min=delta, tau_relax_s=math.inf, step_time_s=T,
            nonideal=only("retention"), seed=13)
    want = 1 - math.exp(-T / tau)
    for k in range(2):
        s0 = m.s.clone()
        m.update(torch.zeros(N))
        within_5_sigma((m.s != s0).double().mean().item(), want, N)
    assert m.total_pulses() == 0 and m.total_gate_events() == 0
    assert m.time_s.item() == pytest.approx(2 * T, rel=1e-15, abs=0)
    # retention off: no flip at all
    m2 = mtj((N,), backend, delta_min=delta, step_time_s=T, nonideal=IDEAL, seed=13)
    s0 = m2.s.clone()
    m2.update(torch.zeros(N))
    assert torch.equal(m2.s, s0)


# ---- (d) Arrhenius -------------------------------------------------------------------------------
@pytest.mark.parametrize("ea", [0.5, 1.0])
def test_arrhenius_rates(ea):
    hot, ref = MTJParams(temperature_k=350.0, gate_ea_ev=ea), MTJParams(gate_ea_ev=ea)
    ratio = math.exp(-ea / KB_EV * (1 / 350.0 - 1 / 300.0))
    assert hot.gate_rate() / ref.gate_rate() == pytest.approx(ratio, rel=1e-12, abs=0)
    assert ref.gate_rate() == pytest.approx(300.0, rel=1e-15, abs=0)  # k_ref at V_g = V_ref, 300 K
    assert hot.tau_relax() / ref.tau_relax() == pytest.approx(1 / ratio, rel=1e-12, abs=0)
    assert ref.tau_relax() == pytest.approx(1e4, rel=1e-15, abs=0)
    # k ∝ exp[(V_g − V_ref)/V_0]
    fast = MTJParams(gate_v=3.5, gate_ea_ev=ea)
    assert fast.gate_rate() / ref.gate_rate() == pytest.approx(math.exp(0.5 / 0.26), rel=1e-12, abs=0)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_barrier_scales_with_temperature(backend):
    """Δ(T) = Δ₃₀₀·300/T: at 450 K a device of Δ₃₀₀ = 30 switches like Δ = 20 at 300 K."""
    from metaspin_snn.synapses.mtj import barrier

    p = MTJParams(temperature_k=450.0)
    assert float(barrier(0.0, p)) == pytest.approx(20.0, rel=1e-12, abs=0)
    assert float(barrier(1.0, p)) == pytest.approx(80.0 * 300 / 450, rel=1e-12, abs=0)
    v = 0.44
    m = mtj((N,), backend, temperature_k=450.0, volt_per_grad=10.0, v_min=0.0, nonideal=IDEAL, seed=14)
    m.s.fill_(1)
    m.update(torch.full((N,), v / 10.0))
    P = 1 - math.exp(-10.0 / math.exp(20.0 * (1 - v / 0.5)))
    P_300 = 1 - math.exp(-10.0 / math.exp(30.0 * (1 - v / 0.5)))
    assert 0.1 < P < 0.9 and P_300 < 0.5 * P
    within_5_sigma((m.s == -1).double().mean().item(), P, N)


# ---- (e) gate kinetics -----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_gate_kinetics(backend):
    kappa, x0, k, t_min, t_max = 0.5, 0.3, 300.0, 1e-6, 1e-3
    m = mtj((1, 5), backend, kappa=kappa, x_init=x0, gate_t_min_s=t_min, gate_t_max_s=t_max, nonideal=IDEAL)
    m.s.fill_(1)
    g = torch.tensor([[-0.01, -0.2, -0.5, -1e-4, -5.0]])  # all agree (target P)
    tg = [kappa * abs(v) / k for v in g[0].tolist()]
    assert t_min <= tg[0] and tg[2] <= t_max and tg[3] < t_min and tg[4] > t_max
    m.update(g)
    want = [x0 + (1 - x0) * (1 - math.exp(-kappa * abs(v))) for v in g[0, :3].tolist()]
    want += [x0, x0 + (1 - x0) * (1 - math.exp(-k * t_max))]
    assert m.x[0].tolist() == pytest.approx(want, abs=1e-6)
    assert m.n_gate[0].tolist() == [1, 1, 1, 0, 1] and m.total_pulses() == 0
    assert m.time_s.item() == pytest.approx(t_max, rel=1e-12, abs=0)  # one row: its longest gate pulse
    # a disagreeing or zero gradient never gates
    m2 = mtj((1, 2), backend, kappa=kappa, x_init=x0, nonideal=IDEAL)
    m2.s.fill_(1)
    m2.update(torch.tensor([[0.1, 0.0]]))
    assert m2.total_gate_events() == 0 and torch.equal(m2.x, torch.full((1, 2), x0))


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_gate_kinetics_temperature_and_voltage(backend):
    """t_g = κ|g|/k_nom (nominal rate: V_g, 300 K) but ions move with k(V_g, T): at 350 K the step
    is 1 − exp(−κ|g|·Arrhenius); a higher V_g shortens t_g by exp[(V_g − V_ref)/V_0]."""
    kappa, x0, ea = 0.5, 0.2, 1.0
    ratio = math.exp(-ea / KB_EV * (1 / 350.0 - 1 / 300.0))
    m = mtj((1, 2), backend, kappa=kappa, x_init=x0, temperature_k=350.0, gate_ea_ev=ea, nonideal=IDEAL)
    m.s.fill_(1)
    g = torch.tensor([[-0.002, -0.004]])
    m.update(g)
    want = [x0 + (1 - x0) * (1 - math.exp(-kappa * abs(v) * ratio)) for v in g[0].tolist()]
    assert m.x[0].tolist() == pytest.approx(want, abs=1e-6)
    m3 = mtj((1, 2), backend, kappa=kappa, x_init=x0, gate_v=3.26, nonideal=IDEAL)
    m3.s.fill_(1)
    g3 = torch.tensor([[-0.2, -0.1]])
    m3.update(g3)
    g_max = abs(float(g3[0, 0]))  # the float32 value
    assert m3.time_s.item() == pytest.approx(kappa * g_max / (300.0 * math.exp(0.26 / 0.26)), rel=1e-12, abs=0)
    assert m3.x[0].tolist() == pytest.approx([x0 + (1 - x0) * (1 - math.exp(-kappa * v)) for v in (0.2, 0.1)],
                                             abs=1e-6)


# ---- (f) energies --------------------------------------------------------------------------------
E_PARAMS = dict(delta_min=900.0, delta_max=900.0, r_p_ohm=2000.0, tmr=1.5, v_half=0.5, t_pulse_ns=10.0,
                v_read=0.1, t_read_ns=10.0, e_driver_pj=0.3, e_sense_pj=0.01, volt_per_grad=10.0,
                v_max=0.46, v_min=0.2, kappa=0.0, nonideal=IDEAL)


def _r_ap(v):  # R_AP(V) = R_P·(1 + TMR/(1 + (V/V_h)²)) [Ω]
    return 2000.0 * (1 + 1.5 / (1 + (v / 0.5) ** 2))


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_write_energy_blind(backend):
    m = mtj((1, 2), backend, **E_PARAMS)
    m.s.copy_(torch.tensor([[1, -1]], dtype=torch.int8))
    m.update(torch.tensor([[0.04, -0.04]]))  # both disagree, V = 0.4 V; Δ = 900: nothing switches
    e = [0.4 ** 2 / 2000.0 * 10e-9 + 0.3e-12, 0.4 ** 2 / _r_ap(0.4) * 10e-9 + 0.3e-12]  # J
    assert m.energy_write_pj[0].tolist() == pytest.approx([v * 1e12 for v in e], rel=1e-6, abs=0)
    ej = m.energy_j()
    assert set(ej) == {"write", "read", "gate"}
    assert ej["write"] == pytest.approx(sum(e), rel=1e-6, abs=0) and ej["read"] == 0 and ej["gate"] == 0
    assert m.total_energy_pj() == pytest.approx(sum(e) * 1e12, rel=1e-6, abs=0)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_write_energy_verify(backend):
    K = 3
    m = mtj((1, 2), backend, write_scheme="verify", verify_max=K, **E_PARAMS)
    m.s.copy_(torch.tensor([[1, -1]], dtype=torch.int8))
    m.update(torch.tensor([[0.04, -0.04]]))  # never switches: K pulses + K verify reads each
    g_p, g_ap = 1 / 2000.0, 1 / _r_ap(0.1)  # read conductances at V_read
    e_p = 0.4 ** 2 / 2000.0 * 10e-9 + 0.3e-12 + 0.1 ** 2 * g_p * 10e-9
    e_ap = 0.4 ** 2 / _r_ap(0.4) * 10e-9 + 0.3e-12 + 0.1 ** 2 * g_ap * 10e-9
    assert m.n_pulse[0].tolist() == [K, K]
    assert m.energy_write_pj[0].tolist() == pytest.approx([K * e_p * 1e12, K * e_ap * 1e12], rel=1e-6, abs=0)
    assert m.energy_j()["write"] == pytest.approx(K * (e_p + e_ap), rel=1e-6, abs=0)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_gate_energy(backend):
    m = mtj((1, 3), backend, **{**E_PARAMS, "kappa": 0.5, "gate_cap_f": 2e-16, "gate_v": 3.2})
    m.s.copy_(torch.tensor([[1, -1, 1]], dtype=torch.int8))
    m.update(torch.tensor([[-0.1, 0.1, 0.0]]))  # two agreeing gradients: two gating events
    assert m.n_gate[0].tolist() == [1, 1, 0]
    ej = m.energy_j()
    assert ej["gate"] == pytest.approx(2 * 2e-16 * 3.2 ** 2, rel=1e-12, abs=0) and ej["write"] == 0


def test_read_energy():
    out, fan_in, n = 3, 4, 5
    m = mtj((out, fan_in), **E_PARAMS)
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(n, fan_in, generator=gen) * 2 - 1
    m.count_reads(u)
    g_p, g_ap = 1 / 2000.0, 1 / _r_ap(0.1)
    s = m.s.tolist()
    e = 0.0
    for nn_ in range(n):
        for i in range(fan_in):
            gsum = sum(g_p if s[j][i] > 0 else g_ap for j in range(out))
            e += float(u[nn_, i]) ** 2 * 0.1 ** 2 * 10e-9 * gsum
    e += 0.01e-12 * out * n
    assert m.energy_j()["read"] == pytest.approx(e, rel=1e-6, abs=0)  # the model's G_s are float32
    assert m.read_cycles.item() == n
    assert any(v > 0 for row in s for v in row) and any(v < 0 for row in s for v in row)


# ---- (g) the ideal limit bit for bit -----------------------------------------------------------
def _ideal_step(s, x, g, gen, P):
    """The ideal rule in float32, written out: V = min(volt_per_grad·|g|, V_max), pulse iff g ≠ 0,
    s ≠ −sign(g), V ≥ V_min; flip ⇔ Δ(x)·r^b < ln(t_p/τ₀) + G, r = max(1 − V/V_c, 0), G = −ln(−ln u)
    (standard Gumbel); agreeing gradients gate for t_g = κ|g|/k (none below t_g,min, clipped at
    t_g,max) and x ← x + c(1 − x), c = 1 − exp(−k·t_g). Operation order as the model's kernel (float32
    rounding): Δ(x) = Δ_min + (Δ_max − Δ_min)·x (the model's factors d2d = 1, 300 K/T = 1 and
    (1 + h)² = 1 are exact multiplications by one), c from float64."""
    f = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    u = torch.rand(s.shape, generator=gen, dtype=torch.float64)
    G = (-torch.log(-torch.log(u))).float()
    t = torch.where(g > 0, -1, 1).to(torch.int8)
    V = torch.clamp(g.abs() * f(P["volt_per_grad"]), max=f(P["v_max"]))
    pulse = (g != 0) & (s != t) & (V >= f(P["v_min"]))
    r = torch.clamp(1 - V / f(P["v_c"]), min=0.0)
    rb = r if P["b"] == 1.0 else r * r
    delta = f(P["delta_min"]) + f(P["delta_max"] - P["delta_min"]) * x
    flip = pulse & (delta * rb < f(math.log(P["t_pulse_ns"] / 1.0)) + G)
    k = P["gate_rate_hz"]  # V_g = V_ref, 300 K
    tg = P["kappa"] * g.double().abs() / k
    gated = (g != 0) & (s == t) & (tg >= P["gate_t_min_s"]) & (tg > 0)
    tg = torch.clamp(tg, max=P["gate_t_max_s"])
    c = torch.where(gated, -torch.expm1(-k * tg), torch.zeros_like(tg)).float()
    return torch.where(flip, -s, s), x + c * (1 - x), pulse, flip, gated


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("b", [1.0, 2.0])
def test_ideal_limit_bit_for_bit(backend, b):
    P = dict(delta_min=20.0, delta_max=40.0, volt_per_grad=10.0, v_max=0.46, v_min=0.25, v_c=0.5, b=b,
             t_pulse_ns=10.0, kappa=2.0, gate_rate_hz=300.0, gate_t_min_s=1e-4, gate_t_max_s=1e-3)
    m = mtj((64, 32), backend, nonideal=IDEAL, seed=21, **P)
    s, x = m.s.clone(), m.x.clone()
    data = torch.Generator().manual_seed(3)
    tot = dict(pulse=0, flip=0, gated=0, clipped=0)
    for _ in range(20):
        g = torch.randn(64, 32, generator=data) * 0.1
        g[torch.rand(64, 32, generator=data) < 0.1] = 0.0
        gen = torch.Generator()
        gen.set_state(m.generator("switch").get_state())
        s, x, pulse, flip, gated = _ideal_step(s, x, g, gen, P)
        m.update(g)
        assert torch.equal(m.s, s) and torch.equal(m.x, x)
        tot["pulse"] += int(pulse.sum())
        tot["flip"] += int(flip.sum())
        tot["gated"] += int(gated.sum())
        tot["clipped"] += int((gated & (P["kappa"] * g.abs() / 300.0 > P["gate_t_max_s"])).sum())
    assert m.total_pulses() == tot["pulse"] and m.total_switches() == tot["flip"]
    assert m.total_gate_events() == tot["gated"]
    assert tot["flip"] > 1000 and tot["pulse"] - tot["flip"] > 1000 and tot["clipped"] > 100
    assert 0.2 < m.x.mean().item() < 0.95


# ---- (h) the switches are separate; config plumbing ---------------------------------------------
def test_switch_draws_are_independent():
    g = torch.randn(40, 30, generator=torch.Generator().manual_seed(0)) * 0.05
    ref = mtj((40, 30), seed=4)
    arrays_ref = ref.step_inputs(ref.drive(g))[0]
    for name in NONIDEAL_NAMES:
        ni = NonIdeal(**{n: n != name for n in NONIDEAL_NAMES})
        m = mtj((40, 30), seed=4, nonideal=ni)
        assert torch.equal(m.s, ref.s), name  # init stream
        if name != "d2d":
            for k in ("delta_factor", "v_c", "rate_factor"):
                assert torch.equal(getattr(m, k), getattr(ref, k)), (name, k)
        gum, cg, vcj, u = m.step_inputs(m.drive(g))[0]
        assert torch.equal(gum, arrays_ref[0]), name  # switch stream
        if name != "c2c":
            assert torch.equal(vcj, arrays_ref[2]), name
        if name != "finite_levels":
            assert torch.equal(u, arrays_ref[3]), name
        else:
            assert torch.equal(u, torch.zeros_like(u))
        for stream in ("init", "switch", *NONIDEAL_NAMES):  # no stream drew for another's switch
            if stream != name:
                assert torch.equal(m.generator(stream).get_state(), ref.generator(stream).get_state()), (name, stream)
    # c2c off: its draws are gone, V_c per pulse nominal
    m = mtj((40, 30), seed=4, nonideal=NonIdeal(c2c=False))
    assert torch.equal(m.step_inputs(m.drive(g))[0][2], torch.ones(40, 30))
    # read noise off vs on: identical updates (read noise only enters the weight)
    a, b = mtj((40, 30), seed=4), mtj((40, 30), seed=4, nonideal=NonIdeal(read_noise=False))
    for _ in range(3):
        a.refresh(sample=True)
        b.refresh(sample=True)
        a.update(g)
        b.update(g)
    for k in ("s", "x", "n_pulse", "n_switch", "n_gate", "energy_write_pj", "time_s"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    # ... and the other way round: c2c off leaves the read-noise draws unchanged
    c, d = mtj((40, 30), seed=4), mtj((40, 30), seed=4, nonideal=NonIdeal(c2c=False))
    c.update(g)
    d.update(g)
    c.s.copy_(d.s)
    assert torch.equal(c.refresh(sample=True), d.refresh(sample=True))


def test_d2d_and_read_noise_off():
    m = mtj((50, 20), v_c=0.47, nonideal=NonIdeal(d2d=False))
    assert torch.equal(m.delta_factor, torch.ones(50, 20))
    assert torch.equal(m.v_c, torch.full((50, 20), 0.47)) and m.v_c.dtype == torch.float32
    assert torch.equal(m.rate_factor, torch.ones(50, 20))
    on = mtj((50, 20), v_c=0.47)
    assert not torch.equal(on.delta_factor, m.delta_factor) and not torch.equal(on.v_c, m.v_c)
    q = mtj((50, 20), scale=0.7, nonideal=NonIdeal(read_noise=False))
    for mode in (True, False):
        q.train(mode)
        w = q.refresh()
        assert torch.equal(w, 0.7 * q.s.float()), mode
    q.train()
    q.update(torch.randn(50, 20) * 0.05)
    assert torch.equal(q.refresh(), 0.7 * q.s.float())
    noisy = mtj((50, 20), scale=0.7).eval()
    assert not torch.equal(noisy.refresh(), 0.7 * noisy.s.float())  # eval_noise on by default


def test_config_plumbing():
    from metaspin_snn.synapses.registry import layer_synapse_factories

    (fac,) = layer_synapse_factories("mtj", 1, **{"nonideal.d2d": False})
    ni = fac.params.nonideal
    assert ni.d2d is False and all(getattr(ni, n) is True for n in NONIDEAL_NAMES if n != "d2d")
    (fac,) = layer_synapse_factories("mtj", 1, nonideal={"c2c": False, "retention": False})
    assert fac.params.nonideal == NonIdeal(c2c=False, retention=False)
    (fac,) = layer_synapse_factories("mtj", 1, preset="ikeda2010-o")
    assert fac.params.delta_min == 40.0 and fac.params.v_c == 0.39 and fac.params.preset == "ikeda2010-o"
    (fac,) = layer_synapse_factories("mtj", 1, preset="ikeda2010-o", delta_min=45.0)  # explicit keys win
    assert fac.params.delta_min == 45.0
    with pytest.raises(ValueError, match="no-such-device"):
        layer_synapse_factories("mtj", 1, preset="no-such-device")
    with pytest.raises(ValueError, match="warp_drive"):
        layer_synapse_factories("mtj", 1, **{"nonideal.warp_drive": False})
    with pytest.raises(ValueError, match="warp_drive"):
        MTJParams(nonideal={"warp_drive": True})


# ---- (i) the simulated clock -----------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_time_schedule(backend):
    R, C = 6, 5
    m = mtj((R, C), backend, kappa=0.0, volt_per_grad=10.0, v_min=0.25, t_pulse_ns=10.0, t_read_ns=7.0)
    m.s.fill_(1)
    g = torch.zeros(R, C)
    g[0, 1] = 0.04              # pulse (V = 0.4 V)
    g[2, :] = 0.05              # a row of pulses: one slot
    g[5, 0], g[5, 4] = 0.03, 0.1  # two pulses in row 5
    g[1, 2] = 0.01              # V = 0.1 V < V_min: no pulse
    g[3, :] = -0.1              # agreeing: would gate, κ = 0
    m.update(g)
    assert int((m.n_pulse.sum(1) > 0).sum()) == 3 and m.total_gate_events() == 0
    assert m.time_s.item() == pytest.approx(3 * 10e-9, rel=1e-12, abs=0)
    # read cycles of the training forward passes since the last update count too (N·t_read)
    m.train()
    m.count_reads(torch.ones(4, C))
    m.update(torch.zeros(R, C))
    assert m.time_s.item() == pytest.approx(3 * 10e-9 + 4 * 7e-9, rel=1e-12, abs=0)
    m.eval()
    m.count_reads(torch.ones(4, C))  # evaluation reads take no training time
    m.update(torch.zeros(R, C))
    assert m.time_s.item() == pytest.approx(3 * 10e-9 + 4 * 7e-9, rel=1e-12, abs=0)
    # verify: one slot of K·(t_p + t_read) per row with a pulse
    v = mtj((R, C), backend, kappa=0.0, write_scheme="verify", verify_max=3, t_pulse_ns=10.0, t_read_ns=7.0)
    v.s.fill_(1)
    v.update(g)
    assert v.time_s.item() == pytest.approx(3 * 3 * 17e-9, rel=1e-12, abs=0)
    # fixed clock
    T = 0.123
    f = mtj((R, C), backend, kappa=5.0, step_time_s=T)
    f.update(g)
    assert f.time_s.item() == T
    f.update(torch.zeros(R, C))
    assert f.time_s.item() == 2 * T


# ---- controller drives: RMS normalisation, calibrated write, bidirectional gating ---------------------
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_calibrated_drive_switches_plastic_devices_with_the_target_probability(backend):
    """write_drive = "calibrated": a plastic nominal device (x = 0) pushed by |g| switches with
    P = p_per_grad·|g| (below P_sw(V_max)); the same pulse on a consolidated device (x = 1) with the
    closed form at Δ_max: 1 − exp(−t_p/τ₀·exp(−Δ_max·r)), r from P at Δ_min."""
    n, pg, g = N // 2, 0.04, 5.0
    m = mtj((2 * n,), backend, write_drive="calibrated", p_per_grad=pg, nonideal=NonIdeal.ideal(), seed=21)
    m.s.fill_(1)
    m.x[n:] = 1.0
    m.update(torch.full((2 * n,), g))
    P0 = pg * g
    within_5_sigma((m.s[:n] == -1).double().mean().item(), P0, n)
    r = (math.log(10.0) - math.log(-math.log(1 - P0))) / 30.0       # Δ_min·r = ln(t_p/τ₀) − ln(−ln(1 − P))
    P1 = 1 - math.exp(-10.0 * math.exp(-80.0 * r))
    within_5_sigma((m.s[n:] == -1).double().mean().item(), P1, n)
    assert P1 < P0 / 100                                              # metaplasticity survives the drive
    # the applied voltage is the inverse of the switching curve: V = V_c(1 − r), below V_max
    gk, vpg = m.kernel_grad(torch.tensor([g, -g, 0.0]))
    assert vpg == 1.0 and gk.tolist() == pytest.approx([0.5 * (1 - r), -0.5 * (1 - r), 0.0], rel=1e-5)


def test_rms_drive_divides_by_the_array_rms():
    m = mtj((4,), grad_norm="rms", nonideal=NonIdeal.ideal())
    g = torch.tensor([1.0, -2.0, 0.0, 2.0])
    assert m.drive(g).tolist() == pytest.approx((g / math.sqrt(9 / 4)).tolist(), rel=1e-6)
    assert torch.equal(mtj((4,)).drive(g), g)                        # default: the gradient itself


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_bidirectional_gating_depletes_opposed_devices(backend):
    """gate_mode = "bidirectional": agreeing |g| raises x by (1 − x)(1 − e^{−κ|g|}), opposing |g|
    lowers it to x·e^{−κ|g|} (ideal device at 300 K); "agree" leaves opposed devices' x alone."""
    kappa, g = 0.4, 0.5
    for mode, down in (("bidirectional", True), ("agree", False)):
        m = mtj((2,), backend, gate_mode=mode, kappa=kappa, x_init=0.5, volt_per_grad=0.0,
                nonideal=NonIdeal.ideal(), seed=3)
        m.s.copy_(torch.tensor([1, 1], dtype=torch.int8))
        m.update(torch.tensor([-g, g]))                               # first agrees (target +1), second opposes
        c = 1 - math.exp(-kappa * g)
        assert m.x[0].item() == pytest.approx(0.5 + 0.5 * c, rel=1e-6)
        assert m.x[1].item() == pytest.approx(0.5 * math.exp(-kappa * g) if down else 0.5, rel=1e-6)
        assert m.n_gate.tolist() == [1, 1 if down else 0]
