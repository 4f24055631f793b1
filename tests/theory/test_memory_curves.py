"""Memory curves: simulations of the synapse populations (the library's MESU kernel included) against
their closed forms, written out here independently of metaspin_snn.theory."""
from __future__ import annotations

import json

import numpy as np
import pytest

from metaspin_snn.cli import main
from metaspin_snn.theory import (binary_lifetime, binary_synapse, cascade_synapse, decay_exponent, lifetime,
                                 memory_curve)

N = 10_000


def test_binary_markov_chain_is_the_closed_form():
    q = 0.07
    t = np.arange(0, 60)
    np.testing.assert_allclose(binary_synapse(q).signal(t), q * (1 - q) ** t, rtol=1e-12)
    # lifetime: √N q (1 − q)^t* = 1  ⇔  t* = ln(√N q) / −ln(1 − q)
    assert binary_lifetime(1e4, q) == pytest.approx(np.log(100 * q) / -np.log(1 - q))
    tt = np.arange(0, 200)
    assert lifetime(tt, 100 * q * (1 - q) ** tt) == pytest.approx(binary_lifetime(1e4, q), abs=0.05)


def test_binary_simulation_within_5_percent_of_closed_form():
    q = 0.1
    c = memory_curve("binary", N, t_max=40, probes=100, spacing=10, seeds=(0, 1, 2, 3), params={"q": q})
    t = np.array(c.t, dtype=float)
    closed = np.sqrt(N) * q * (1 - q) ** t            # E[w²] = 1 for ±1 weights
    np.testing.assert_allclose(c.snr_theory, closed, rtol=1e-9)
    m = closed > 3
    assert m.sum() >= 10
    err = np.abs(np.array(c.snr)[m] / closed[m] - 1)
    assert err.max() < 0.05, err
    assert abs(c.lifetime - c.lifetime_theory) < 2.0
    assert c.mean_sq == pytest.approx(1.0)


def test_cascade_power_law_exponent():
    """FDA 2005: the cascade's signal decays as a power law for 1 ≪ t ≪ x^{−n}; the simulated exponent
    is within 0.1 of the exact chain's over that range, and both are near −1 (not exponential)."""
    depth, x = 8, 0.5
    lo, hi = 10, 200                                  # x^{−n} = 256
    c = memory_curve("cascade", N, t_max=hi, probes=60, spacing=20, seeds=(0, 1, 2, 3),
                     params={"depth": depth, "x": x})
    t = np.array(c.t, dtype=float)
    exact = cascade_synapse(depth, x).signal(t.astype(int))
    np.testing.assert_allclose(np.array(c.snr_theory), np.sqrt(N) * exact, rtol=1e-9)
    k_sim = decay_exponent(t, np.array(c.signal), lo, hi)
    k_th = decay_exponent(t, exact, lo, hi)
    assert abs(k_sim - k_th) < 0.1, (k_sim, k_th)
    assert -1.1 < k_th < -0.6
    # a binary synapse with the cascade's initial signal forgets exponentially: its slope steepens
    b = binary_synapse(float(exact[0]))
    assert decay_exponent(t, b.signal(t.astype(int)), lo, hi) < k_th - 0.5


def test_mesu_kernel_matches_its_exact_linear_form():
    """The library's MESU update with σ fixed is μ ← (1 − a) μ + σ² ξ, a = σ²/(N_w σ_p²): signal
    σ²(1 − a)^t, E[μ²] = σ⁴ / (1 − (1 − a)²)."""
    sigma, window, sp = 0.1, 100.0, 0.1
    c = memory_curve("mesu", N, t_max=400, probes=60, spacing=20, seeds=(0, 1, 2, 3),
                     params={"sigma": sigma, "window": window, "sigma_prior": sp})
    a = sigma ** 2 / (window * sp ** 2)
    t = np.array(c.t, dtype=float)
    closed = np.sqrt(N) * (1 - a) ** t * np.sqrt(1 - (1 - a) ** 2)
    np.testing.assert_allclose(c.snr_theory, closed, rtol=1e-9)
    assert c.mean_sq == pytest.approx(sigma ** 4 / (1 - (1 - a) ** 2), rel=0.03)
    m = closed > 3
    err = np.abs(np.array(c.snr)[m] / closed[m] - 1)
    assert m.sum() >= 10 and err.max() < 0.06, err


def test_cli_writes_the_curve(tmp_path):
    out = tmp_path / "b"
    assert main(["theory", "memory-curve", "--synapse", "binary", "--n", "2000", "--param", "q=0.2",
                 "--probes", "20", "--seeds", "0", "--out", str(out)]) == 0
    d = json.loads((out / "memory_curve.json").read_text())
    assert {"synapse", "n", "t", "snr", "snr_theory", "lifetime", "lifetime_theory"} <= set(d)
    assert d["synapse"] == "binary" and d["n"] == 2000 and len(d["t"]) == len(d["snr"]) == len(d["snr_theory"])
    assert (out / "memory_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["theory", "memory-curve", "--synapse", "binary", "--param", "qq=1", "--out", str(out)]) == 2


def test_bridge_recovers_a_matrix_made_by_its_own_approximation():
    """R[i, k] = c + (R[k, k] − c)·e^{−κ L}: the fit on R[1, 0] finds κ and predicts every other entry."""
    from metaspin_snn.theory.bridge import bridge, curve_rho, exponential_rho, predict_matrix
    T, c, kappa = 5, 0.1, 3e-4
    steps = np.array([400, 400, 300, 500, 400], float)
    diag = np.array([0.9, 0.88, 0.91, 0.87, 0.9])
    R = predict_matrix(np.diag(diag), c, steps, exponential_rho(), kappa)
    R = np.where(np.isnan(R), 0.1, R)
    res = bridge({"matrix": R.tolist(), "per_task": [{"steps": s} for s in steps], "random_init": [c] * T},
                 exponential_rho())
    assert res["kappa"] == pytest.approx(kappa, rel=1e-6) and res["rmse_points"] < 1e-6
    # a hand-made check of one predicted entry: task 0 after tasks 1..3 (L = 400 + 300 + 500 steps)
    assert res["predicted"][3][0] == pytest.approx(c + (0.9 - c) * np.exp(-kappa * 1200))
    # a measured curve: held at 1 up to its peak, non-increasing after it
    rho = curve_rho(np.array([0, 1, 10, 100]), np.array([0.2, 1.0, 0.5, 0.6]))
    np.testing.assert_allclose(rho(np.array([0.0, 1.0, 10.0, 100.0])), [1.0, 1.0, 0.5, 0.5])


def test_cli_bridge(tmp_path):
    from metaspin_snn.theory.bridge import exponential_rho, predict_matrix
    R = predict_matrix(np.diag([0.9, 0.9, 0.9]), 0.1, np.array([10, 10, 10.0]), exponential_rho(), 0.01)
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"matrix": np.nan_to_num(R, nan=0.1).tolist(),
                                                  "per_task": [{"steps": 10}] * 3, "random_init": [0.1] * 3}))
    assert main(["theory", "bridge", "--run", str(run), "--curve", "exponential", "--out", str(tmp_path / "b")]) == 0
    d = json.loads((tmp_path / "b" / "bridge.json").read_text())
    assert d["kappa"] == pytest.approx(0.01, rel=1e-6) and (tmp_path / "b" / "bridge.png").is_file()
    assert main(["theory", "bridge", "--run", str(tmp_path), "--curve", "exponential", "--out", str(tmp_path / "c")]) == 2


def test_metaplastic_kernel_matches_the_mean_field_of_laborieux_rule():
    """The library's MetaplasticBinary kernel with β₁ = β₂ = 0 (steps lr·sign(g): the small-step rule)
    against the density evolution of h ± lr / h ∓ lr(1 − tanh²(m|h|)), and a hand check of the rule."""
    from metaspin_snn.synapses.metaplastic import MetaplasticBinary, MetaplasticBinaryParams
    import torch
    m, lr = 1.35, 0.005
    syn = MetaplasticBinary((1, 4), MetaplasticBinaryParams(m=m, lr=lr, betas=(0.0, 0.0)))
    h0 = torch.tensor([[0.3, 0.3, -0.2, -0.2]])
    syn.hidden_weight.copy_(h0)
    syn.update(torch.tensor([[-1.0, 1.0, -1.0, 1.0]]))          # ξ = −g: +1, −1, +1, −1
    f = 1 - np.tanh(m * np.abs(h0.numpy())) ** 2
    want = h0.numpy() + lr * np.array([[1.0, -f[0, 1], f[0, 2], -1.0]])
    np.testing.assert_allclose(syn.hidden_weight.numpy(), want, rtol=1e-5)
    c = memory_curve("metaplastic", N, t_max=300, probes=50, spacing=10, seeds=(0, 1, 2, 3),
                     params={"m": m, "lr": lr, "beta1": 0.0, "beta2": 0.0})
    s, th = np.array(c.snr), np.array(c.snr_theory)
    assert th[0] > 3 and np.max(np.abs(s / th - 1)) < 0.06, np.round(s / th, 3)
    assert memory_curve("metaplastic", 200, t_max=5, probes=2, seeds=(0,)).snr_theory is None   # Adam's β: none


def test_mtj_kernel_matches_its_mean_field():
    """MetaplasticMTJ under constant pulses: a binary synapse per device with q_i = P_sw(Δ_i(x*)) (the
    model's Néel–Brown probability at its stationary ionic state); S = mean_i q_i (1 − q_i)^t."""
    c = memory_curve("mtj", N, t_max=60, probes=50, spacing=10, seeds=(0, 1, 2, 3))
    s, th = np.array(c.snr), np.array(c.snr_theory)
    m = th > 2
    assert m.sum() >= 6 and np.max(np.abs(s[m] / th[m] - 1)) < 0.08, np.round(s / th, 3)
    # a slower-consolidating device population (κ small) has a larger x* gap and faster forgetting
    from metaspin_snn.theory.curves import mtj_stationary_x
    assert mtj_stationary_x(0.5, 1e4, 0.0) > mtj_stationary_x(0.01, 1e4, 0.0) > 0
    assert mtj_stationary_x(0.5, float("inf"), 0.0) == pytest.approx(1.0, abs=1e-6)
