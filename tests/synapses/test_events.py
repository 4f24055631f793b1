"""Event-driven plasticity engine: kernel ≡ dense torch reference, and each rule's equation."""
import math

import numpy as np
import pytest
import torch

from metaspin_snn.synapses.events import (PairSTDP, PlasticityState, ProbabilisticMetaplasticity,
                                          SpikeEvents, ThreeFactor, apply_events, trace_decay)


def _trains(seed, T, n_post, n_pre, rate):
    g = torch.Generator().manual_seed(seed)
    pre = (torch.rand(T, n_pre, generator=g) < rate).float()
    post = (torch.rand(T, n_post, generator=g) < rate).float()
    return g, pre, post


def _both(rule, w0, pre, post, third=None, uniforms=None, calls=2):
    """Run the numba engine and the torch reference over `calls` consecutive chunks (state carried)."""
    out = []
    for backend in ("numba", "torch"):
        w = w0.clone()
        st = None
        T = pre.shape[0]
        cut = [0, T // 3, T][: calls + 1] if calls == 2 else [0, T]
        for a, b in zip(cut[:-1], cut[1:]):
            st = apply_events(rule, w, SpikeEvents.from_dense(pre[a:b]),
                              post[a:b] if isinstance(rule, ThreeFactor) else SpikeEvents.from_dense(post[a:b]),
                              None if third is None else third[a:b], st, backend=backend,
                              uniforms=None if uniforms is None else uniforms[a:b])
        out.append((w, st))
    return out


@pytest.mark.parametrize("seed,rate,mu", [(0, 0.02, 0.0), (1, 0.1, 1.0), (2, 0.2, 0.5)])
def test_stdp_engine_matches_dense(seed, rate, mu):
    g, pre, post = _trains(seed, 120, 13, 29, rate)
    rule = PairSTDP(eta=0.03, alpha=1.1, mu=mu, w_max=1.0, tau_pre=8.0, tau_post=12.0)
    w0 = torch.rand(13, 29, generator=g)
    (wn, sn), (wt, stt) = _both(rule, w0, pre, post)
    assert (wn - w0).abs().max() > 1e-3  # the rule did something
    torch.testing.assert_close(wn, wt, atol=1e-6, rtol=0)
    torch.testing.assert_close(sn.x_pre, stt.x_pre)
    torch.testing.assert_close(sn.x_post, stt.x_post)


@pytest.mark.parametrize("seed,rate", [(0, 0.03), (3, 0.15)])
def test_three_factor_engine_matches_dense(seed, rate):
    g, pre, _ = _trains(seed, 100, 9, 31, rate)
    psi = torch.rand(100, 9, generator=g) * (torch.rand(100, 9, generator=g) < 0.3)
    L = torch.randn(100, 9, generator=g)
    rule = ThreeFactor(eta=0.02, tau_pre=10.0, w_min=-0.4, w_max=0.4)
    w0 = (torch.rand(9, 31, generator=g) - 0.5) * 0.8
    (wn, _), (wt, _) = _both(rule, w0, pre, psi, third=L)
    assert (wn - w0).abs().max() > 1e-3
    torch.testing.assert_close(wn, wt, atol=1e-6, rtol=0)


def test_three_factor_equation_single_event():
    """Δw_ij = −η·L_i·ψ_i·x_pre_j with x_pre = λ^Δt after one pre spike Δt steps earlier."""
    rule = ThreeFactor(eta=0.1, tau_pre=5.0)
    w = torch.zeros(2, 3)
    pre = torch.zeros(6, 3); pre[0, 1] = 1; pre[2, 2] = 1
    psi = torch.zeros(6, 2); psi[4, 0] = 0.7
    L = torch.full((6, 2), 2.0)
    apply_events(rule, w, pre, psi, L)
    lam = math.exp(-1 / 5)
    expect = torch.zeros(2, 3, dtype=torch.float64)
    expect[0, 1] = -0.1 * 2.0 * 0.7 * lam ** 4
    expect[0, 2] = -0.1 * 2.0 * 0.7 * lam ** 2
    torch.testing.assert_close(w.double(), expect, atol=1e-7, rtol=0)


@pytest.mark.parametrize("seed,rate", [(0, 0.05), (4, 0.25)])
def test_pmp_engine_matches_dense_same_uniforms(seed, rate):
    g, pre, post = _trains(seed, 80, 12, 25, rate)
    rule = ProbabilisticMetaplasticity(n_levels=9, err_th=0.5, elig_th=0.4, pre_th=2.5, post_th=2.5,
                                       dm=0.05, m_max=2.0)
    L = torch.randn(80, 12, generator=g)
    U = torch.rand(80, 12, 25, generator=g, dtype=torch.float64)
    w0 = rule.quantize(torch.rand(12, 25, generator=g) * 2 - 1)
    (wn, sn), (wt, stt) = _both(rule, w0, pre, post, third=L, uniforms=U)
    assert (wn - w0).abs().max() > 0 and sn.m.max() > 0 and sn.m.min() < rule.m_max
    torch.testing.assert_close(wn, wt, atol=0, rtol=0)
    torch.testing.assert_close(sn.m, stt.m, atol=0, rtol=0)
    # weights stay on the level grid
    torch.testing.assert_close(wn, rule.quantize(wn), atol=1e-6, rtol=0)


@pytest.mark.parametrize("mu", [0.0, 1.0])
def test_stdp_window_shape(mu):
    """One pre and one post spike Δt apart: Δw = +η(w_max−w)^μ λ_pre^Δt (Δt ≥ 0),
    −ηα w^μ λ_post^|Δt| (Δt < 0) — exponential in |Δt|, sign set by the order."""
    rule = PairSTDP(eta=0.01, alpha=1.2, mu=mu, w_max=1.0, tau_pre=10.0, tau_post=15.0)
    w_init = 0.4
    got, want = [], []
    for dt in range(-12, 13):
        T = 30
        pre = torch.zeros(T, 1); post = torch.zeros(T, 1)
        t0 = 14
        pre[t0, 0] = 1; post[t0 + dt, 0] = 1
        w = torch.full((1, 1), w_init)
        apply_events(rule, w, pre, post)
        got.append(float(w) - w_init)
        if dt >= 0:
            want.append(0.01 * (1.0 - w_init) ** mu * trace_decay(10.0) ** dt)
        else:
            want.append(-0.01 * 1.2 * w_init ** mu * trace_decay(15.0) ** (-dt))
    got, want = np.array(got), np.array(want)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
    assert np.all(got[:12] < 0) and np.all(got[12:] > 0)
    # exponential decay in |Δt| on both sides
    np.testing.assert_allclose(got[13:] / got[12:-1], trace_decay(10.0), rtol=1e-4)


def test_stdp_stays_in_bounds():
    g, pre, post = _trains(5, 300, 20, 20, 0.3)
    rule = PairSTDP(eta=0.5, alpha=1.0, mu=0.0)
    w = torch.rand(20, 20, generator=g)
    apply_events(rule, w, pre, post)
    assert w.min() >= 0 and w.max() <= 1.0


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_pmp_step_frequency_matches_exp(backend):
    """Fraction of eligible synapses that step one level ≈ exp(−m|w|) (binomial z-test)."""
    rule = ProbabilisticMetaplasticity(n_levels=9, err_th=0.5, elig_th=0.5, dm=0.0, m_max=10.0)
    ms = torch.tensor([0.0, 0.5, 1.0, 2.0, 4.0])
    levels = torch.tensor([-0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0])
    n_rows_per, n_cols_per = 120, 40
    n_post, n_pre = n_rows_per * len(levels), n_cols_per * len(ms)
    w0 = levels.repeat_interleave(n_rows_per)[:, None].expand(n_post, n_pre).contiguous()
    m0 = ms.repeat_interleave(n_cols_per)[None, :].expand(n_post, n_pre).contiguous()
    pre = torch.ones(1, n_pre)  # every pre eligible
    post = torch.zeros(1, n_post)
    L = torch.ones(1, n_post)  # positive error above threshold → step down one level
    w = w0.clone()
    st = PlasticityState(torch.zeros(n_pre, dtype=torch.float64), torch.zeros(n_post, dtype=torch.float64),
                         m0.clone())
    apply_events(rule, w, pre, post, L, st, backend=backend, seed=123)
    dw = w - w0
    torch.testing.assert_close(dw[dw != 0], torch.full_like(dw[dw != 0], -rule.step), atol=1e-6, rtol=0)
    for a, lv in enumerate(levels):
        for b, m in enumerate(ms):
            blk = dw[a * n_rows_per:(a + 1) * n_rows_per, b * n_cols_per:(b + 1) * n_cols_per]
            n = blk.numel()
            freq = float((blk != 0).float().mean())
            p = math.exp(-float(m) * abs(float(lv)))
            sd = math.sqrt(max(p * (1 - p), 1e-12) / n)
            assert abs(freq - p) <= 4.5 * sd + 1e-9, (float(lv), float(m), freq, p)


def test_pmp_no_update_below_error_threshold_or_without_eligibility():
    rule = ProbabilisticMetaplasticity(err_th=0.5, elig_th=0.5, dm=0.0)
    w0 = rule.quantize(torch.zeros(4, 6))
    pre = torch.zeros(3, 6); pre[0, :3] = 1  # only pre 0..2 eligible
    L = torch.zeros(3, 4); L[1, 0] = 0.4; L[1, 1] = -0.9  # only post 1 has |error| > threshold
    w = w0.clone()
    apply_events(rule, w, pre, torch.zeros(3, 4), L, seed=0)  # m = 0 → p = 1
    changed = (w != w0)
    assert changed[1, :3].all() and changed.sum() == 3
    assert torch.allclose(w[1, :3] - w0[1, :3], torch.full((3,), rule.step))  # negative error → step up


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_pmp_m_grows_only_when_both_traces_cross(backend):
    """m_ij += Δm exactly at steps with x_pre_j > pre_th and x_post_i > post_th, capped at m_max."""
    tau = 25.0
    rule = ProbabilisticMetaplasticity(err_th=1e9, pre_th=1.5, post_th=1.2, dm=0.1, m_max=0.75, tau=tau)
    T = 40
    pre = torch.zeros(T, 3); post = torch.zeros(T, 2)
    pre[[2, 4], 0] = 1           # pre 0: two close spikes → crosses 1.5
    pre[[2, 30], 1] = 1          # pre 1: far apart → never above 1.5
    pre[[5, 6, 7, 8], 2] = 1     # pre 2: burst, crosses for a long time
    post[[3, 5], 0] = 1          # post 0: crosses 1.2
    post[1, 1] = 1               # post 1: single spike, never crosses
    w = torch.zeros(2, 3)
    st = apply_events(rule, w, pre, post, torch.zeros(T, 2), backend=backend)
    lam = 1 - 1 / tau
    xp, xq = np.zeros(3), np.zeros(2)
    expect = np.zeros((2, 3))
    for t in range(T):
        xp = lam * xp + pre[t].numpy(); xq = lam * xq + post[t].numpy()
        expect = np.minimum(expect + 0.1 * np.outer(xq > 1.2, xp > 1.5), 0.75)
    np.testing.assert_allclose(st.m.numpy(), expect, atol=1e-6)
    assert expect[0, 0] > 0 and expect[0, 2] == pytest.approx(0.75)  # grew, and hit the cap
    assert (st.m[:, 1] == 0).all() and (st.m[1] == 0).all()  # no crossing → no growth
    assert (w == 0).all()  # error never above threshold → no weight change


def test_bad_inputs_raise():
    rule = PairSTDP()
    w = torch.rand(3, 4)
    with pytest.raises(ValueError, match="pre has 4 neurons|weight expects"):
        apply_events(rule, w, torch.zeros(5, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="steps"):
        apply_events(rule, w, torch.zeros(5, 4), torch.zeros(6, 3))
    with pytest.raises(ValueError, match="NaN"):
        apply_events(rule, torch.full((3, 4), float("nan")), torch.zeros(5, 4), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="w_max"):
        apply_events(rule, w + 2, torch.zeros(5, 4), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="third factor"):
        apply_events(ThreeFactor(), w, torch.zeros(5, 4), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="float32"):
        apply_events(rule, w.double(), torch.zeros(5, 4), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="0/1"):
        SpikeEvents.from_dense(torch.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="twice"):
        SpikeEvents.from_lists([[1, 1]], 3)
    with pytest.raises(ValueError, match="eta"):
        PairSTDP(eta=-1.0)
    with pytest.raises(ValueError, match="n_levels"):
        ProbabilisticMetaplasticity(n_levels=1)


def test_spike_events_roundtrip():
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(17, 9, generator=g) < 0.2).float()
    ev = SpikeEvents.from_dense(s)
    assert ev.num_steps == 17 and ev.num_events == int(s.sum())
    torch.testing.assert_close(ev.to_dense(), s)
