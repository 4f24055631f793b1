"""MetaplasticMTJ: Néel–Brown switching, consolidation, retention, read, energy, kernel ≡ reference,
physical bounds, state_dict, learning."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metaspin_snn.synapses.mtj import MetaplasticMTJ, MTJParams, neel_brown_tau, switch_probability

STATE = ("s", "x", "n_pulse", "n_switch", "n_consolidate", "energy_pj")


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
        assert tau == pytest.approx(want, rel=1e-12)
    # zero drive: thermal retention time τ₀·e^Δ (Δ = 40 kT → ~7.5 years)
    tau40 = neel_brown_tau(torch.tensor(40.0), torch.tensor(0.0), 0.5, 1.0, 1.0).item() * 1e-9
    assert 7 < tau40 / 3.15e7 < 8
    # switch probability formula and monotonicity in V and in x (barrier)
    vs = torch.linspace(0.0, 0.6, 61, dtype=torch.float64)
    P = switch_probability(torch.full_like(vs, 30.0), vs, 0.5, p)
    assert (P.diff() >= 0).all() and P[-1].item() == pytest.approx(1 - math.exp(-10.0))
    assert P[46].item() == pytest.approx(p_closed_form(30.0, 0.46, 0.5, 1.0, 10.0, 1.0), rel=1e-9)
    # defaults as stated in the docstring: P(V_max) ≈ 0.60 plastic, ≈ 0.016 consolidated
    assert p_closed_form(30.0, 0.46, 0.5, 1.0, 10.0, 1.0) == pytest.approx(0.596, abs=1e-3)
    assert p_closed_form(80.0, 0.46, 0.5, 1.0, 10.0, 1.0) == pytest.approx(0.0165, abs=1e-4)


@pytest.mark.parametrize("backend,b,x0,v", [
    ("numba", 1.0, 0.0, 0.46), ("numba", 1.0, 0.5, 0.47), ("numba", 2.0, 0.3, 0.40), ("numba", 1.0, 0.2, 0.6),
    ("numba", 1.5, 0.1, 0.45), ("torch", 1.0, 0.0, 0.46), ("torch", 2.0, 0.3, 0.40)])
def test_switch_probability_statistics(backend, b, x0, v):
    """Empirical switching fraction over 10⁵ identical devices vs the closed form (5σ binomial)."""
    n = 100_000
    kw = dict(b=b, x_init=x0, delta_spread=0.0, v_c_spread=0.0, volt_per_grad=10.0, v_max=0.6,
              v_min=0.0, tau_ret=math.inf, seed=11)
    m = mtj((n,), backend=backend, **kw)
    m.s.fill_(1)
    g = torch.full((n,), v / 10.0)  # g > 0 → target −1, pulse of amplitude V = 10·g
    P = p_closed_form(30.0 + 50.0 * x0, v, 0.5, 1.0, 10.0, b)
    assert m.switch_probability(g)[:3].tolist() == pytest.approx([P] * 3, rel=1e-5)
    m.update(g)
    frac = (m.s == -1).double().mean().item()
    tol = 5 * math.sqrt(max(P * (1 - P), 1e-6) / n)
    assert abs(frac - P) < tol, (frac, P, tol)
    assert m.total_switches() == int((m.s == -1).sum()) and m.total_pulses() == n
    assert 0.01 < P  # the check is informative


def test_consolidated_devices_resist_switching():
    """Metaplasticity: the same opposing pulse flips plastic devices (x = 0) ~36× more often than
    consolidated ones (x = 1), P ≈ 0.596 vs 0.0165 at V_max with the defaults (no spread here)."""
    n = 40_000
    m = mtj((2 * n,), backend="numba", delta_spread=0.0, v_c_spread=0.0, tau_ret=math.inf, seed=2)
    m.s.fill_(-1)
    m.x[n:] = 1.0
    m.update(torch.full((2 * n,), -1.0))  # g < 0: target +1, V capped at V_max = 0.46 V
    f0 = (m.s[:n] == 1).double().mean().item()
    f1 = (m.s[n:] == 1).double().mean().item()
    assert abs(f0 - 0.596) < 0.015 and abs(f1 - 0.0165) < 0.004, (f0, f1)
    assert torch.equal(m.x[n:], torch.ones(n))  # disagreeing gradient does not consolidate


@pytest.mark.parametrize("b", [1.0, 2.0])
@pytest.mark.parametrize("parallel", [False, True])
def test_kernel_equals_reference(b, parallel):
    kw = dict(b=b, delta_min=10.0, delta_max=30.0, kappa=20.0, tau_ret=50.0, x_rest=0.1, seed=4)
    a = MetaplasticMTJ((2, 12001), MTJParams(**kw), backend="numba", parallel=parallel)
    c = MetaplasticMTJ((2, 12001), MTJParams(**kw), backend="torch")
    gen = torch.Generator().manual_seed(1)
    for _ in range(40):
        g = torch.randn((2, 12001), generator=gen) * 0.04
        g[torch.rand((2, 12001), generator=gen) < 0.1] = 0.0
        a.update(g)
        c.update(g)
    assert a.total_switches() > 500 and int(a.n_consolidate.sum()) > 500
    for k in STATE:
        assert torch.equal(getattr(a, k), getattr(c, k)), k


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_consolidation_only_when_gradient_agrees(backend):
    m = mtj((4,), backend=backend, kappa=2.0, tau_ret=math.inf, x_init=0.2, v_min=0.45, seed=0)
    m.s.copy_(torch.tensor([1, -1, 1, -1], dtype=torch.int8))
    g = torch.tensor([-0.1, 0.3, 0.1, 0.0])  # agree (c=0.2), agree (c=min(0.6,1)), disagree, zero
    m.update(g)
    want = [0.2 + 0.2 * 0.8, 0.2 + 0.6 * 0.8, 0.2, 0.2]
    assert m.x.tolist() == pytest.approx(want, abs=1e-6)
    assert m.n_consolidate.tolist() == [1, 1, 0, 0]
    # huge agreeing gradient saturates at exactly 1 (rate capped at 1)
    m.update(torch.tensor([-1e30, 0.0, 0.0, 0.0]))
    assert m.x[0].item() == 1.0


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_retention_decay(backend):
    m = mtj((3,), backend=backend, x_init=0.8, x_rest=0.1, tau_ret=10.0)
    for _ in range(25):
        m.update(torch.zeros(3))
    want = 0.1 + 0.7 * (1 - 1 / 10.0) ** 25
    assert m.x.tolist() == pytest.approx([want] * 3, rel=1e-5)
    assert m.total_pulses() == 0 and int(m.n_consolidate.sum()) == 0


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_energy_pulse_and_vmin(backend):
    # Δ huge so nothing switches: energy per pulse E = V²/R·t_p with R of the current state
    kw = dict(delta_min=900.0, delta_max=900.0, delta_spread=0.0, v_c_spread=0.0, v_min=0.2,
              r_p_ohm=2000.0, tmr=1.5, t_pulse_ns=10.0, volt_per_grad=10.0, v_max=0.46)
    m = mtj((4,), backend=backend, **kw)
    m.s.copy_(torch.tensor([1, -1, 1, 1], dtype=torch.int8))
    m.update(torch.tensor([0.04, -0.1, 0.01, 0.03]))  # V = 0.4 (P), 0.46 capped (AP), 0.1 < v_min, 0.3
    e = [0.4 ** 2 / 2000 * 10e-9, 0.46 ** 2 / 5000 * 10e-9, 0.0, 0.3 ** 2 / 2000 * 10e-9]
    assert m.energy_pj.tolist() == pytest.approx([v * 1e12 for v in e], rel=1e-5)
    assert m.n_pulse.tolist() == [1, 1, 0, 1] and m.total_switches() == 0
    assert m.total_energy_pj() == pytest.approx(sum(e) * 1e12, rel=1e-5)


def test_read_levels_and_noise():
    p = MTJParams(read_noise=0.02, tmr=1.5, scale=0.5)
    m = MetaplasticMTJ((200_000,), p)
    s = m.s.float()
    assert torch.equal(m.refresh(sample=False), 0.5 * s)  # noise-free read: w = scale·s exactly
    assert 0.45 < (m.s > 0).float().mean().item() < 0.55
    w = m.refresh(sample=True).clone()
    half = (1 - 1 / 2.5) / 2  # G_half / G_P
    for sign, gs in ((1, 1.0), (-1, 1 / 2.5)):
        sel = m.s == sign
        sd = (w[sel] - 0.5 * sign).std().item()
        want = 0.5 * 0.02 * gs / half
        assert abs(sd - want) < 5 * want / math.sqrt(2 * int(sel.sum())), (sign, sd, want)
    m.eval()
    assert torch.equal(m.effective_weight(), 0.5 * s)


def test_device_spread_fixed_and_bounded():
    m = mtj((100_000,), delta_spread=0.05, v_c_spread=0.02)
    assert m.delta_factor.std().item() == pytest.approx(0.05, rel=0.05)
    assert m.v_c.mean().item() == pytest.approx(0.5, abs=1e-3)
    assert m.delta_factor.min().item() >= 1 - 3 * 0.05 - 1e-6 and m.v_c.max().item() <= 0.5 * 1.06 + 1e-6
    before = (m.delta_factor.clone(), m.v_c.clone())
    m.update(torch.randn(100_000))
    assert torch.equal(before[0], m.delta_factor) and torch.equal(before[1], m.v_c)


finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=40, deadline=None)
@given(grads=st.lists(hnp.arrays(np.float32, (24,), elements=finite32), min_size=1, max_size=4),
       b=st.sampled_from([1.0, 2.0]), kappa=st.sampled_from([0.0, 0.5, 1e30]),
       backend=st.sampled_from(["numba", "torch"]))
def test_state_stays_physical(grads, b, kappa, backend):
    m = mtj((24,), backend=backend, b=b, kappa=kappa, tau_ret=100.0, x_rest=0.3)
    for g in grads:
        m.update(torch.from_numpy(g.copy()))
        assert set(m.s.unique().tolist()) <= {-1, 1}
        assert torch.isfinite(m.x).all() and (m.x >= 0).all() and (m.x <= 1).all()
        assert torch.isfinite(m.energy_pj).all() and (m.energy_pj >= 0).all()
        w = m.refresh(sample=False)
        assert set(w.unique().tolist()) <= {-1.0, 1.0}


@pytest.mark.parametrize("bad", [float("nan"), float("-inf")])
def test_nonfinite_gradient_raises_state_untouched(bad):
    m = mtj((5,), backend="numba")
    m.update(torch.full((5,), 0.05))
    before = {k: v.clone() for k, v in m.state_dict().items() if torch.is_tensor(v)}
    gen_before = m._gen.get_state().clone()
    g = torch.zeros(5)
    g[1] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        m.update(g)
    for k, v in m.state_dict().items():
        if torch.is_tensor(v):
            assert torch.equal(v, before[k]), k
    assert torch.equal(gen_before, m._gen.get_state())


def test_state_dict_round_trip():
    a = mtj((20, 10), seed=3, kappa=5.0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        a.refresh(sample=True)
        a.update(torch.randn(20, 10, generator=gen) * 0.05)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = mtj((20, 10), seed=77, kappa=5.0)
    b.load_state_dict(torch.load(buf, weights_only=False))
    for k in STATE + ("delta_factor", "v_c"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    assert torch.equal(a.refresh(sample=True).clone(), b.refresh(sample=True))
    for _ in range(5):  # same switching draws afterwards
        g = torch.randn(20, 10, generator=gen) * 0.05
        a.update(g)
        b.update(g)
    for k in STATE:
        assert torch.equal(getattr(a, k), getattr(b, k)), k


@pytest.mark.parametrize("field,value", [
    ("delta_min", 0.0), ("delta_max", 10.0), ("delta_spread", 0.5), ("tau0_ns", 0.0),
    ("t_pulse_ns", -1.0), ("v_c", 0.0), ("v_c_spread", -0.1), ("v_max", 0.0), ("v_min", 1.0),
    ("volt_per_grad", -1.0), ("volt_per_grad", math.inf), ("b", 3.0), ("b", 0.5), ("kappa", -1.0),
    ("tau_ret", 0.5),
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
    with pytest.raises(TypeError, match="MTJParams"):
        MetaplasticMTJ((3,), params=object())
    with pytest.raises(ValueError, match="grad shape"):
        mtj((4,)).update(torch.zeros(2, 2))


def _binary_teacher_task(seed: int = 0, d: int = 64):
    """y = [x·u > 0] with a binary teacher u ∈ {±1}^d: a binary student can solve it exactly."""
    g = torch.Generator().manual_seed(seed)
    u = torch.where(torch.rand(d, generator=g) < 0.5, 1.0, -1.0)
    X = torch.randn(3000, d, generator=g)
    y = (X @ u > 0).float()
    return X[:2000], y[:2000], X[2000:], y[2000:]


@pytest.mark.parametrize("seed", [0, 1])
def test_learns_a_linear_classifier_with_defaults(seed):
    X, y, Xt, yt = _binary_teacher_task(seed)
    m = MetaplasticMTJ((64,), MTJParams(seed=100 + seed))
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
    assert acc > 0.9 and acc > acc0 + 0.2, (acc0, acc)
    assert m.total_switches() > 0 and m.hidden().mean().item() > 0.2  # it consolidated


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
    assert net.syn.total_pulses() + int(net.syn.n_consolidate.sum()) > 0
    net.double()  # float64 state: the torch reference runs, weights follow the dtype
    assert net.syn.x.dtype == torch.float64 and net.syn.effective_weight().dtype == torch.float64
    net.syn.update(torch.randn(2, 8, dtype=torch.float64) * 0.05)
    assert set(net.syn.s.unique().tolist()) <= {-1, 1}
    with pytest.raises(ValueError, match="float32 state on the CPU"):
        MetaplasticMTJ((3,), backend="numba").double().update(torch.zeros(3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_reference_equals_cpu_kernel():
    """Draws come from the model's CPU generator, so the torch reference on the GPU takes the same
    decisions as the Numba kernel on the CPU."""
    kw = dict(delta_min=10.0, delta_max=30.0, kappa=20.0, tau_ret=50.0, seed=4)
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
