"""Numerical checks of the identities stated in docs/theory.md."""
import math

import numpy as np
import torch

from metaspin_snn.synapses import (MESU, BayesianBinary, BayesianBinaryParams, MESUParams, MetaplasticBinary,
                                   MetaplasticBinaryParams)
from metaspin_snn.synapses.bayesbinn import bernoulli_variance

LAM = torch.tensor([-3.0, -1.0, -0.2, 0.0, 0.4, 1.5, 2.5], dtype=torch.float64)


def test_bernoulli_moments_are_tanh_and_one_minus_tanh2():
    n = 400_000
    gen = torch.Generator().manual_seed(0)
    p = torch.sigmoid(2 * LAM)
    w = torch.where(torch.rand(n, LAM.numel(), generator=gen, dtype=torch.float64) < p, 1.0, -1.0)
    var = 1 - torch.tanh(LAM) ** 2
    se = torch.sqrt(var / n)
    assert torch.all((w.mean(0) - torch.tanh(LAM)).abs() < 5 * se + 1e-12)
    assert torch.all((w.var(0) - var).abs() < 5 * torch.sqrt(4 * var * (1 - var) / n) + 1e-4)
    # the exact identities behind them
    torch.testing.assert_close(2 * p - 1, torch.tanh(LAM), rtol=0, atol=1e-14)
    torch.testing.assert_close(4 * p * (1 - p), var, rtol=0, atol=1e-14)


def test_variance_is_derivative_of_mean():
    lam = LAM.clone().requires_grad_(True)
    (dmean,) = torch.autograd.grad(torch.tanh(lam).sum(), lam)
    torch.testing.assert_close(dmean, 1 - torch.tanh(LAM) ** 2)
    torch.testing.assert_close(bernoulli_variance(LAM), 1 - torch.tanh(LAM) ** 2)


def test_fmeta_equals_posterior_variance_at_lambda_m_wh():
    p = MetaplasticBinaryParams(m=1.7, init_scale=1.0)
    s = MetaplasticBinary((50, 40), p)
    b = BayesianBinary((50, 40), BayesianBinaryParams(lambda_init=0.0))
    with torch.no_grad():
        b.lam.copy_(p.m * s.hidden_weight)
    torch.testing.assert_close(s.consolidation(), b.variance(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(torch.sign(b.mean()), s.effective_weight().detach())


def test_metaplastic_step_scale_is_posterior_variance_for_consolidating_steps():
    p = MetaplasticBinaryParams(m=2.0, init_scale=0.5)
    meta = MetaplasticBinary((2000,), p, backend="numba")
    plain = MetaplasticBinary((2000,), MetaplasticBinaryParams(m=0.0, init_scale=0.5), backend="numba")
    plain.load_state_dict(meta.state_dict())
    w0 = meta.hidden_weight.clone()
    g = torch.randn(2000, generator=torch.Generator().manual_seed(1))
    meta.update(g)
    plain.update(g)
    scale = (meta.hidden_weight - w0) / (plain.hidden_weight - w0)
    consolidating = torch.sign(w0) * g > 0
    post_var = bernoulli_variance(p.m * w0)
    big = consolidating & ((plain.hidden_weight - w0).abs() * post_var > 1e-4)
    assert big.sum() > 200
    torch.testing.assert_close(scale[big], post_var[big], rtol=2e-3, atol=0.0)
    torch.testing.assert_close(scale[~consolidating], torch.ones(int((~consolidating).sum())), rtol=1e-5, atol=0.0)


def test_mesu_learning_rate_is_sigma_squared():
    s = MESU((1000,), MESUParams(N=1e12, lr_mu=0.5, mu_init_std=0.0), backend="numba")
    with torch.no_grad():
        s.sigma.copy_(torch.linspace(0.01, 0.5, 1000))
    s.eval()                                   # w = μ: ∂C/∂μ = g
    mu0, sig0 = s.mu.clone(), s.sigma.clone()
    g = torch.full((1000,), 0.01)
    s.update(g)
    torch.testing.assert_close((mu0 - s.mu) / (0.5 * g), sig0 ** 2, rtol=1e-5, atol=0.0)


def test_mtj_pulse_of_softplus_duration_samples_the_posterior():
    """Thermal switching times T ~ Exp(τ); P(T < τ·softplus(2λ)) = sigmoid(2λ)."""
    rng = np.random.default_rng(2)
    tau, n = 3e-9, 300_000
    for lam in (-2.0, -0.5, 0.0, 0.7, 1.8):
        t_p = tau * math.log1p(math.exp(2 * lam))
        p_sw_closed = 1 - math.exp(-t_p / tau)
        p = 1 / (1 + math.exp(-2 * lam))
        assert abs(p_sw_closed - p) < 1e-12
        switched = rng.exponential(tau, n) < t_p
        w = np.where(switched, 1.0, -1.0)       # reset to −1, pulse, read
        assert abs(switched.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
        assert abs(w.mean() - math.tanh(lam)) < 10 * math.sqrt((1 - math.tanh(lam) ** 2) / n)
        # and back: λ = ½·logit(P_sw)
        assert abs(0.5 * math.log(p_sw_closed / (1 - p_sw_closed)) - lam) < 1e-9
