"""Every statement of docs/theory.md, checked through the library's own models (test names carry the
doc's section numbers). Reference values are written out here independently of the library (closed
forms, 1/cosh², quadrature), sampled checks are seeded with 5σ tolerances, and all parameters the
checks depend on are passed explicitly (no reliance on the models' defaults)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metaspin_snn.synapses import (MESU, BayesianBinary, BayesianBinaryParams, MESUParams, MetaplasticBinary,
                                   MetaplasticBinaryParams, MetaplasticMTJ, MTJParams)
from metaspin_snn.synapses.bayesbinn import bernoulli_variance
from metaspin_snn.synapses.devices import NONIDEAL_NAMES
from metaspin_snn.synapses.mtj import switch_probability

F64 = torch.float64
LAM = torch.tensor([-3.0, -1.0, -0.2, 0.0, 0.4, 1.5, 2.5], dtype=F64)


def sech2(x: torch.Tensor) -> torch.Tensor:
    """1 − tanh²x written as 1/cosh²x (not the library's 4e/(1+e)² form)."""
    return 1.0 / torch.cosh(x) ** 2


def sigmoid(x):
    return 1.0 / (1.0 + torch.exp(-x)) if torch.is_tensor(x) else 1.0 / (1.0 + math.exp(-x))


def bayes_binary(n: int, dtype=F64, **kw) -> BayesianBinary:
    """BayesBiNN synapses on the torch reference (float64 unless asked), every parameter explicit:
    exact variance 1 − tanh²λ, μ of the current λ (no lag) unless a test asks otherwise."""
    p = dict(lr=1e-3, beta=0.0, tau=1.0, n_data=1.0, reweight=0.0, lambda_init=0.0, lambda_std=0.0,
             lambda_max=100.0, drive_max=1e30, eval_mode="sample", variance="exact", lagged_mu=False,
             reset_at_task=False, seed=0)
    p.update(kw)
    return BayesianBinary((n,), BayesianBinaryParams(**p), backend="torch").to(dtype)


def set_lambda(b: BayesianBinary, lam: torch.Tensor) -> None:
    """λ ← lam, and the code's μ with it (a fresh state: μ = tanh λ)."""
    with torch.no_grad():
        b.lam.copy_(lam)
        b.lam_mu.copy_(lam)


def mesu(n: int, **kw) -> MESU:
    p = dict(lr_mu=1.0, lr_sigma=1.0, mu_prior=0.0, sigma_prior=1.0, N=100.0, sigma_min=1e-9, sigma_max=100.0,
             mu_max=1e6, seed=0)
    p.update(kw)
    return MESU((n,), MESUParams(**p), backend="torch").double()


def quad_logistic(f, lam: float, n: int = 400_001, half_width: float = 40.0) -> float:
    """E[f(λ + δ)] for δ = ½·log(u/(1−u)), u ~ U(0,1): δ has density ½·sech²(δ) (trapezoid rule)."""
    x = np.linspace(lam - half_width, lam + half_width, n)
    dens = 0.5 / np.cosh(x - lam) ** 2
    return float(np.trapz(dens * f(x), x))


# ---- §1 Bernoulli posterior and BayesBiNN ------------------------------------------------------------
def test_1_1_hard_samples_of_bayesian_binary_have_tanh_mean_and_sech2_variance():
    """q(w) ∝ exp(λw): P(+1) = sigmoid(2λ), E w = tanh λ, Var w = 1 − tanh²λ — on ±1 draws made by
    BayesianBinary itself (eval_mode="sample", refresh(sample=False))."""
    rep, draws = 20_000, 10
    b = bayes_binary(LAM.numel() * rep, eval_mode="sample", seed=3)
    set_lambda(b, LAM.repeat(rep))
    w = torch.stack([b.refresh(sample=False).detach().clone() for _ in range(draws)]).reshape(-1, LAM.numel())
    n = w.shape[0]
    assert set(w.unique().tolist()) == {-1.0, 1.0}
    p = sigmoid(2 * LAM)
    mean, var = torch.tanh(LAM), sech2(LAM)
    frac = (w > 0).double().mean(0)
    assert torch.all((frac - p).abs() < 5 * torch.sqrt(p * (1 - p) / n))
    assert torch.all((w.mean(0) - mean).abs() < 5 * torch.sqrt(var / n))
    assert torch.all((w.var(0) - var).abs() < 5 * 2 * mean.abs() * torch.sqrt(var / n) + 10.0 / n)


def test_1_1_bernoulli_variance_is_one_minus_tanh2_and_the_derivative_of_the_mean():
    lam = torch.cat([LAM, torch.tensor([-40.0, -12.0, 9.0, 30.0], dtype=F64)])
    var = bernoulli_variance(lam)
    torch.testing.assert_close(var, sech2(lam), rtol=1e-12, atol=0.0)  # also for large |λ|
    g = LAM.clone().requires_grad_(True)            # autograd's 1 − tanh² cancels for large |λ|
    (dmean,) = torch.autograd.grad(torch.tanh(g).sum(), g)
    torch.testing.assert_close(bernoulli_variance(LAM), dmean, rtol=1e-12, atol=0.0)
    b = bayes_binary(lam.numel())
    set_lambda(b, lam)
    torch.testing.assert_close(b.variance(), sech2(lam), rtol=1e-12, atol=0.0)
    torch.testing.assert_close(b.mean(), torch.tanh(lam), rtol=0.0, atol=1e-15)


@pytest.mark.parametrize("tau", [1.0, 0.3, 1e-2, 1e-6])
def test_1_2_sign_of_the_relaxed_sample_is_bernoulli_for_every_tau(tau):
    rep, draws = 20_000, 5
    b = bayes_binary(LAM.numel() * rep, tau=tau, seed=4)
    set_lambda(b, LAM.repeat(rep))
    w = torch.stack([b.refresh(sample=True).detach().clone() for _ in range(draws)]).reshape(-1, LAM.numel())
    n = w.shape[0]
    p = sigmoid(2 * LAM)
    frac = (w > 0).double().mean(0)
    assert torch.all((frac - p).abs() < 5 * torch.sqrt(p * (1 - p) / n))
    assert torch.all(w.abs() <= 1.0)
    if tau == 1.0:  # the relaxed value itself is biased: E w = E tanh(λ + δ) ≠ tanh λ for λ ≠ 0
        want = torch.tensor([quad_logistic(np.tanh, float(l)) for l in LAM], dtype=F64)
        se = w.std(0) / math.sqrt(n)
        assert torch.all((w.mean(0) - want).abs() < 5 * se)
        off = LAM != 0
        assert torch.all((want - torch.tanh(LAM)).abs()[off] > 20 * se[off])
        assert want[LAM == -1.0].item() == pytest.approx(-0.5890, abs=1e-3)  # vs tanh(−1) = −0.7616


@pytest.mark.parametrize("lagged", [False, True])
def test_1_3_bayesbinn_step_divides_the_pathwise_gradient_by_the_variance(lagged):
    """One step (β = 0): Δλ = −α[N·ŝ·g + r(λ − λ_p)],
    ŝ = (1 − w² + 1e-10)/(τ(1 − tanh²λ + 1e-10)); Δλ·Var(λ) = −αN·g·∂w/∂λ with ∂w/∂λ = (1 − w²)/τ.
    First step from a fresh state (where the authors' one-step-lagged μ and the current tanh λ coincide)."""
    n, lr, tau, N, r = 4000, 0.05, 0.5, 50.0, 0.3
    gen = torch.Generator().manual_seed(5)
    lam0 = torch.linspace(-3.0, 3.0, n, dtype=F64)
    prior = 0.5 * torch.randn(n, generator=gen, dtype=F64)
    g = torch.randn(n, generator=gen, dtype=F64)
    b = bayes_binary(n, lr=lr, tau=tau, n_data=N, reweight=r, lagged_mu=lagged, lambda_max=1e6, seed=6)
    set_lambda(b, lam0)
    with torch.no_grad():
        b.lam_prior.copy_(prior)
    b.train()
    w = b.refresh(sample=True).detach().clone()
    assert (w.abs() < 1).all() and not torch.all(w.abs() == w.abs()[0])  # a relaxed sample
    b.update(g)
    dlam = b.lam - lam0
    s_hat = (1 - w * w + 1e-10) / (tau * (sech2(lam0) + 1e-10))
    torch.testing.assert_close(dlam, -lr * (N * s_hat * g + r * (lam0 - prior)), rtol=1e-9, atol=1e-12)
    # the same step, read as "pathwise gradient ∂ℓ/∂λ = g·∂w/∂λ divided by the variance"
    lam_ad = lam0.clone().requires_grad_(True)
    delta = tau * torch.atanh(w) - lam0                       # the logistic noise this sample used
    (dw_dlam,) = torch.autograd.grad(torch.tanh((lam_ad + delta) / tau).sum(), lam_ad)
    data = (dlam + lr * r * (lam0 - prior)) * sech2(lam0)
    ok = 1 - w * w > 1e-4                      # atanh(w) well conditioned, the 1e-10 guards negligible
    assert ok.sum() > n // 2
    torch.testing.assert_close(data[ok], (-lr * N * g * dw_dlam)[ok], rtol=1e-5, atol=1e-12)
    # the authors' μ lags one step: after this step it is still tanh(λ₀) (with the lag), else tanh(λ₁)
    torch.testing.assert_close(b.mu, torch.tanh(lam0 if lagged else b.lam), rtol=0.0, atol=1e-15)


def test_1_3_authors_float32_variance_vanishes_for_large_lambda_and_the_guard_sets_the_scale():
    """variance="code" in float32 (the authors' tensors): 1 − tanh²(±10) rounds to 0 and the samples
    saturate (w = ±1), so ŝ = (0 + 1e-10)/τ/(0 + 1e-10) = 1/τ instead of (1 − w²)/(τ·sech²λ)."""
    n, lr, tau = 1000, 1e-3, 1e-2
    b = bayes_binary(n, dtype=torch.float32, lr=lr, tau=tau, variance="code", lambda_init=10.0, seed=20)
    assert torch.all(b.lam.abs() == 10.0)
    lam0 = b.lam.clone()
    b.train()
    w = b.refresh(sample=True).detach()
    assert torch.all(w.abs() == 1.0)
    b.update(torch.ones(n))
    torch.testing.assert_close(lam0 - b.lam, torch.full((n,), lr / tau), rtol=0.0, atol=2e-6)  # ulp(10) ≈ 1e-6


@pytest.mark.parametrize("tau,lams", [(1.0, (0.0, 1.0, 2.0, 3.0)), (1e-2, (0.0, 0.5, 1.0))])
def test_1_3_mean_bayesbinn_scale_is_one_for_small_tau_and_grows_with_lambda_at_tau_1(tau, lams):
    """E_δ[ŝ] = E[sech²((λ+δ)/τ)]/(τ·sech²λ) (quadrature here) against the mean of the scales the
    library applies; → 1 + O(τ²) as τ → 0, 0.67 / 1.08 / 2.31 / 4.07 at λ = 0 / 1 / 2 / 3 for τ = 1."""
    rep, rounds, lr = 100_000, 4, 1e-3
    lam0 = torch.tensor(lams, dtype=F64).repeat(rep)
    b = bayes_binary(lam0.numel(), lr=lr, tau=tau, n_data=1.0, reweight=0.0, seed=7)
    b.train()
    s = []
    for _ in range(rounds):
        set_lambda(b, lam0)
        b.refresh(sample=True)
        b.update(torch.ones_like(lam0))
        s.append(((lam0 - b.lam) / lr).reshape(rep, len(lams)))
    s = torch.cat(s)
    def sech2_np(x):  # 4e/(1+e)², e = exp(−2|x|): no overflow for |x/τ| large
        e = np.exp(-2 * np.abs(x))
        return 4 * e / (1 + e) ** 2

    want = [quad_logistic(lambda x: sech2_np(x / tau), l) / (tau / math.cosh(l) ** 2) for l in lams]
    se = s.std(0) / math.sqrt(s.shape[0])
    for j, l in enumerate(lams):
        assert abs(s[:, j].mean().item() - want[j]) < 5 * se[j].item() + 1e-6, (l, s[:, j].mean().item(), want[j])
    if tau == 1.0:
        assert want == pytest.approx([2 / 3, 1.0794, 2.3126, 4.0700], abs=1e-3)
    else:
        assert want == pytest.approx([1.0] * len(lams), abs=1e-3)


# ---- §2 Laborieux's f_meta -----------------------------------------------------------------------------
def test_2_1_fmeta_is_the_bernoulli_variance_at_lambda_m_wh():
    m = 1.7
    s = MetaplasticBinary((50, 40), MetaplasticBinaryParams(m=m, seed=1), backend="torch").double()
    wh = torch.randn(50, 40, generator=torch.Generator().manual_seed(1), dtype=F64)
    with torch.no_grad():
        s.hidden_weight.copy_(wh)
    torch.testing.assert_close(s.consolidation(), sech2(m * wh), rtol=1e-12, atol=0.0)
    torch.testing.assert_close(s.consolidation(), bernoulli_variance(m * wh), rtol=1e-12, atol=0.0)
    torch.testing.assert_close(s.effective_weight().detach(), torch.where(torch.tanh(m * wh) >= 0, 1.0, -1.0).to(F64))


def test_2_2_adam_meta_multiplies_only_steps_toward_zero_after_adam_normalisation():
    """First step from zero moments: ΔW_h = −lr·g/(|g| + ε_t)·(f_meta if sign(W_h)·g > 0 else 1), whatever
    |g| (Adam normalisation); ε_t = ε/√(1−β₂) with the authors' ε placement, ε with torch's."""
    n, m, lr, eps, b2 = 4000, 1.3, 0.01, 1e-3, 0.999
    gen = torch.Generator().manual_seed(8)
    wh0 = torch.linspace(-4.0, 4.0, n, dtype=F64)
    g = (0.05 + torch.rand(n, generator=gen, dtype=F64)) * torch.where(torch.rand(n, generator=gen) < 0.5, 1.0, -1.0)
    toward_zero = torch.sign(wh0) * g > 0
    f = torch.where(toward_zero, sech2(m * wh0), torch.ones_like(wh0))
    for eps_mode, eps_t in (("adam_meta", eps / math.sqrt(1 - b2)), ("torch", eps)):
        s = MetaplasticBinary((n,), MetaplasticBinaryParams(lr=lr, betas=(0.9, b2), eps=eps, eps_mode=eps_mode, m=m,
                                                            weight_decay=0.0, seed=0), backend="torch").double()
        with torch.no_grad():
            s.hidden_weight.copy_(wh0)
        s.update(g)
        dw = s.hidden_weight - wh0
        torch.testing.assert_close(dw, -lr * g / (g.abs() + eps_t) * f, rtol=1e-9, atol=1e-16)
    assert toward_zero.sum() > n // 3 and (~toward_zero).sum() > n // 3
    assert f[toward_zero].min() < 1e-3  # the factor is informative (m·|W_h| up to 5.2)


def test_2_3_m_zero_is_adam_on_the_hidden_weight():
    n = 500
    gen = torch.Generator().manual_seed(9)
    s = MetaplasticBinary((n,), MetaplasticBinaryParams(lr=0.01, betas=(0.9, 0.999), eps=1e-8, eps_mode="torch", m=0.0,
                                                        weight_decay=0.0, seed=2), backend="torch").double()
    with torch.no_grad():
        s.hidden_weight.copy_(0.3 * torch.randn(n, generator=gen, dtype=F64))
    ref = s.hidden_weight.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    for _ in range(5):
        sign = torch.where(torch.rand(n, generator=gen) < 0.5, 1.0, -1.0)
        g = (0.05 + torch.rand(n, generator=gen, dtype=F64)) * sign
        s.update(g)
        ref.grad = g.clone()
        opt.step()
    torch.testing.assert_close(s.hidden_weight, ref.detach(), rtol=1e-12, atol=1e-15)


# ---- §3 MESU --------------------------------------------------------------------------------------------
def test_3_1_mesu_step_is_the_authors_update_with_sigma2_as_learning_rate():
    n, N, lr_mu, lr_sig, mup, sp = 1000, 30.0, 0.7, 1.3, 0.25, 0.5  # μ_p, σ_p exact in float32 buffers
    gen = torch.Generator().manual_seed(10)
    s = mesu(n, N=N, lr_mu=lr_mu, lr_sigma=lr_sig, mu_prior=mup, sigma_prior=sp, seed=11)
    mu0 = torch.randn(n, generator=gen, dtype=F64)
    sig0 = torch.linspace(0.01, 0.9, n, dtype=F64)
    g = 0.1 * torch.randn(n, generator=gen, dtype=F64)
    with torch.no_grad():
        s.mu.copy_(mu0)
        s.sigma.copy_(sig0)
    s.train()
    w = s.refresh(sample=True).detach().clone()
    eps = (w - mu0) / sig0                                       # the sample's ε, recovered from w
    s.update(g)
    want_mu = mu0 + lr_mu * (-sig0 ** 2 * g + sig0 ** 2 * (mup - mu0) / (N * sp ** 2))
    want_sig = sig0 + lr_sig * 0.5 * (-sig0 ** 2 * g * eps + sig0 * (sp ** 2 - sig0 ** 2) / (N * sp ** 2))
    torch.testing.assert_close(s.mu, want_mu, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s.sigma, want_sig, rtol=1e-10, atol=1e-12)
    # the data term of Δμ: learning rate σ² (with the prior switched off)
    s2 = mesu(n, N=1e300, lr_mu=0.5, mu_prior=0.0, sigma_prior=1.0)
    with torch.no_grad():
        s2.mu.copy_(mu0)
        s2.sigma.copy_(sig0)
    s2.eval()
    s2.refresh(sample=False)
    s2.update(g)
    torch.testing.assert_close((mu0 - s2.mu) / (0.5 * g), sig0 ** 2, rtol=1e-9, atol=0.0)


def test_3_1_with_monte_carlo_samples_the_step_uses_the_sample_means():
    """S = 3 samples accumulated (gradients of the 1/S-scaled loss): ∂C/∂μ = ⟨g⟩, ∂C/∂σ = ⟨g·ε⟩."""
    n, N, mup, sp, S = 500, 30.0, 0.25, 0.5, 3
    gen = torch.Generator().manual_seed(21)
    s = mesu(n, N=N, lr_mu=1.0, lr_sigma=1.0, mu_prior=mup, sigma_prior=sp, seed=22)
    mu0 = torch.randn(n, generator=gen, dtype=F64)
    sig0 = torch.linspace(0.05, 0.6, n, dtype=F64)
    with torch.no_grad():
        s.mu.copy_(mu0)
        s.sigma.copy_(sig0)
    s.train()
    gs, eps = [], []
    for _ in range(S):
        w = s.refresh(sample=True).detach().clone()
        g = 0.3 * torch.randn(n, generator=gen, dtype=F64)
        gs.append(g)
        eps.append((w - mu0) / sig0)
        s.accumulate(g / S)
    s.update()
    g_mu = sum(gs) / S
    g_sig = sum(g * e for g, e in zip(gs, eps)) / S
    assert not torch.allclose(eps[0], eps[1])  # fresh ε per sample
    want_mu = mu0 + (-sig0 ** 2 * g_mu + sig0 ** 2 * (mup - mu0) / (N * sp ** 2))
    want_sig = sig0 + 0.5 * (-sig0 ** 2 * g_sig + sig0 * (sp ** 2 - sig0 ** 2) / (N * sp ** 2))
    torch.testing.assert_close(s.mu, want_mu, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s.sigma, want_sig, rtol=1e-10, atol=1e-12)


def _no_data_trajectory(s: MESU, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.zeros(s.shape, dtype=F64)
    mus, sigs = [s.mu.clone()], [s.sigma.clone()]
    for _ in range(steps):
        s.update(z)
        mus.append(s.mu.clone())
        sigs.append(s.sigma.clone())
    return torch.stack(mus), torch.stack(sigs)


def test_3_2_mesu_no_data_recursion_fixed_point_and_rates():
    N, lr_mu, lr_sig, mup, sp, K = 40.0, 0.7, 1.3, 0.25, 0.5, 300
    sig0 = torch.tensor([0.05, 0.2, 0.5, 0.5 * (1 + 1e-4), 0.9, 1.5], dtype=F64)
    at_p, near_p = 2, 3
    s = mesu(sig0.numel(), N=N, lr_mu=lr_mu, lr_sigma=lr_sig, mu_prior=mup, sigma_prior=sp)
    with torch.no_grad():
        s.mu.fill_(mup + 1.0)
        s.sigma.copy_(sig0)
    mu, sig = _no_data_trajectory(s, K)
    # the exact coupled recursion, step by step
    fac = 1 - lr_mu * sig[:-1] ** 2 / (N * sp ** 2)
    torch.testing.assert_close(mu[1:] - mup, fac * (mu[:-1] - mup), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(sig[1:], sig[:-1] * (1 + lr_sig / (2 * N) * (1 - sig[:-1] ** 2 / sp ** 2)),
                               rtol=1e-12, atol=0.0)
    k = torch.arange(K + 1, dtype=F64)
    # σ = σ_p: a fixed point of σ; μ − μ_p decays exactly as (1 − η_μ/N)^k
    torch.testing.assert_close(sig[:, at_p], torch.full((K + 1,), sp, dtype=F64), rtol=1e-14, atol=0.0)
    torch.testing.assert_close(mu[:, at_p] - mup, (1 - lr_mu / N) ** k, rtol=1e-10, atol=0.0)
    # linearised σ rate at σ_p: (σ − σ_p) decays as (1 − η_σ/N)^k
    torch.testing.assert_close((sig[:, near_p] - sp) / (sig0[near_p] - sp), (1 - lr_sig / N) ** k, rtol=5e-4, atol=1e-6)
    # σ ≠ σ_p: σ moves (monotonically, toward σ_p), and the μ factor differs from 1 − η_μ/N accordingly
    for j in (0, 1, 4, 5):
        d = sig[1:, j] - sig[:-1, j]
        assert torch.all(d * (sp - sig0[j]) > 0) and torch.all((sig[:, j] - sp) * (sig0[j] - sp) > 0)
        assert abs(sig[-1, j] - sp) < 0.5 * abs(sig0[j] - sp)
        slower = sig0[j] < sp
        assert torch.all((fac[:, j] > 1 - lr_mu / N) == slower)


def test_3_3_mesu_no_data_closed_form_and_delayed_forgetting():
    """η_μ = η_σ = η, N/η ≫ 1: σ_k² = σ_p²/(1 + (σ_p²/σ_0² − 1)e^{−ηk/N}),
    (μ_k − μ_p)/(μ_0 − μ_p) = 1/(1 + (σ_0²/σ_p²)(e^{ηk/N} − 1)),
    half-life (N/η)·ln(1 + σ_p²/σ_0²)."""
    N, eta, sp, mup = 500.0, 1.0, 1.0, 0.0
    sig0 = torch.tensor([0.01, 0.1, 0.5, 1.0, 2.0], dtype=F64)
    K = int(12 * N)
    s = mesu(sig0.numel(), N=N, lr_mu=eta, lr_sigma=eta, mu_prior=mup, sigma_prior=sp)
    with torch.no_grad():
        s.mu.fill_(1.0)
        s.sigma.copy_(sig0)
    mu, sig = _no_data_trajectory(s, K)
    e = torch.exp(eta * torch.arange(K + 1, dtype=F64)[:, None] / N)
    mu_cf = 1 / (1 + sig0 ** 2 / sp ** 2 * (e - 1))
    s2_cf = sp ** 2 / (1 + (sp ** 2 / sig0 ** 2 - 1) / e)
    assert (mu - mu_cf).abs().max() < 2.0 / N
    assert ((sig ** 2 - s2_cf) / s2_cf).abs().max() < 3.0 / N
    half = N / eta * torch.log(1 + sp ** 2 / sig0 ** 2)
    crossed = (mu < 0.5).double().argmax(0).double()
    assert torch.all((crossed - half).abs() <= 0.01 * half + 2)
    assert crossed[0] > 13 * crossed[3]  # σ_0 = σ_p/100: remembered ~13× longer than at σ_0 = σ_p


def test_3_4_mesu_stationary_posterior_and_memory_window_of_n_steps():
    """Quadratic per-sample loss ½h(w − c)², summed over B samples per step (H = B·h), one MC sample
    per step, η = 1: σ² → 1/(N·B·h + 1/σ_p²) (the posterior after N·B samples) and, after the data
    move by less than a posterior width, μ follows the new posterior mean as (1 − 1/N)^k for every h."""
    N, B, sp, mup, reps = 200, 4, 1.0, 0.0, 1000
    h = torch.tensor([0.05, 0.5, 5.0], dtype=F64).repeat(reps)
    H = B * h
    s2_star = 1 / (N * H + 1 / sp ** 2)
    gen = torch.Generator().manual_seed(12)
    c1 = torch.randn(h.numel(), generator=gen, dtype=F64)
    c2 = c1 + 0.5 * s2_star.sqrt()
    post_mean = lambda c: (N * H * c + mup / sp ** 2) * s2_star  # noqa: E731
    s = mesu(h.numel(), N=float(N), lr_mu=1.0, lr_sigma=1.0, mu_prior=mup, sigma_prior=sp, seed=13)
    with torch.no_grad():
        s.mu.copy_(c1)
        s.sigma.copy_(2 * s2_star.sqrt())
    s.train()

    def step(c):
        w = s.refresh(sample=True).detach()
        s.update(H * (w - c))

    for _ in range(10 * N):
        step(c1)
    s2_avg = torch.zeros_like(h)
    mu_avg = torch.zeros_like(h)
    for _ in range(N):
        step(c1)
        s2_avg += s.sigma ** 2 / N
        mu_avg += s.mu / N
    ratio = (s2_avg / s2_star).reshape(reps, 3)
    z = ((mu_avg - post_mean(c1)) / s2_star.sqrt()).reshape(reps, 3)
    for j in range(3):
        assert abs(ratio[:, j].mean() - 1) < 5 * ratio[:, j].std() / math.sqrt(reps) + 0.01
        assert abs(z[:, j].mean()) < 5 * z[:, j].std() / math.sqrt(reps) + 0.01
    frac = []
    for _ in range(2 * N):
        step(c2)
        frac.append(((s.mu - post_mean(c2)) / (post_mean(c1) - post_mean(c2))).reshape(reps, 3))
    for k in (N // 2, N, 2 * N):
        f = frac[k - 1]
        for j in range(3):
            assert abs(f[:, j].mean() - (1 - 1 / N) ** k) < 5 * f[:, j].std() / math.sqrt(reps) + 0.005, (k, j)


def test_3_4_explicit_step_overshoots_when_eta_sigma2_h_exceeds_2():
    """Each step multiplies μ − c by 1 − ησ²(H + 1/(Nσ_p²)) (ε = 0 here: an evaluation-mode point); it
    is < −1, so |μ − c| grows, when ησ²H > 2 — e.g. a synapse still at σ = σ_p = 1 with H = 3."""
    N, H, c = 1e12, 3.0, 0.5
    s = mesu(3, N=N, lr_mu=1.0, lr_sigma=1.0, mu_prior=0.0, sigma_prior=1.0)
    with torch.no_grad():
        s.mu.fill_(0.0)
        s.sigma.copy_(torch.tensor([1.0, 0.5, 0.1], dtype=F64))
    s.eval()
    d = [(s.mu - c).clone()]
    for _ in range(3):
        s.refresh(sample=False)
        s.update(H * (s.mu - c))
        d.append((s.mu - c).clone())
    d = torch.stack(d)
    sig = torch.tensor([1.0, 0.5, 0.1], dtype=F64)
    # σ moves by O(1/N) only (no ε), so the factor is 1 − σ²(H + 1/(Nσ_p²)) to ~1e-12
    torch.testing.assert_close(d[1:] / d[:-1], (1 - sig ** 2 * (H + 1 / N)).expand(3, 3), rtol=1e-9, atol=0.0)
    assert torch.all(d[-1, 0].abs() > 7.9 * d[0, 0].abs())   # factor −2: diverges
    assert torch.all(d[-1, 1:].abs() < d[0, 1:].abs())       # ησ²H = 0.75, 0.03: converges


# ---- §4 MetaplasticMTJ --------------------------------------------------------------------------------
def mtj(n: int, **kw) -> MetaplasticMTJ:
    p = dict(delta_min=30.0, delta_max=80.0, delta_spread=0.0, tau0_ns=1.0, t_pulse_ns=10.0, v_c=0.5, v_c_spread=0.0,
             v_max=0.6, v_min=0.0, volt_per_grad=10.0, b=1.0, kappa=0.0, tau_relax_s=math.inf, x_rest=0.0, x_init=0.0,
             read_noise=0.0, gate_rate_spread=0.0, seed=0,
             nonideal={**{k: False for k in NONIDEAL_NAMES}, "d2d": True})  # spreads as given
    p.update(kw)
    return MetaplasticMTJ((n,), MTJParams(**p), backend="torch")


def neel_brown(delta: float, v: float, v_c: float, tau0: float, t_p: float, b: float) -> float:
    """P_sw = 1 − exp(−t_p/τ), τ = τ₀·exp[Δ·max(1 − V/V_c, 0)^b]."""
    tau = tau0 * math.exp(delta * max(1 - v / v_c, 0.0) ** b)
    return -math.expm1(-t_p / tau)


def test_4_1_device_spread_enters_through_each_devices_barrier_and_critical_voltage():
    """With spread, device i switches with P_sw(d_i·Δ(x), V, V_c,i) (its own buffers delta_factor, v_c)."""
    n, v, x = 200_000, 0.46, 0.3
    m = mtj(n, delta_spread=0.05, v_c_spread=0.02, x_init=x, seed=18)
    with torch.no_grad():
        m.s.fill_(1)
    d = (m.delta_factor.double() * (30.0 + 50.0 * x)).tolist()
    vc = m.v_c.double().tolist()
    p = torch.tensor([neel_brown(di, v, ci, 1.0, 10.0, 1.0) for di, ci in zip(d, vc)], dtype=F64)
    assert p.std() > 0.05  # the spread matters
    m.update(torch.full((n,), v / 10.0))
    switched = (m.s == -1).double()
    assert abs(switched.sum() - p.sum()) < 5 * torch.sqrt((p * (1 - p)).sum())
    # and device by device: the devices with the larger P_sw switch more often
    hi = p > p.median()
    assert switched[hi].mean() - switched[~hi].mean() > 0.5 * (p[hi].mean() - p[~hi].mean())


@pytest.mark.parametrize("b,v", [(1.0, 0.46), (2.0, 0.40), (1.0, 0.55)])
def test_4_1_one_write_switches_with_the_neel_brown_probability(b, v):
    """Devices in s = +1, one write toward −1 (g > 0, V = volt_per_grad·g): switched fraction per
    ionic state x against P_sw with τ = τ₀·exp[Δ(x)(1 − V/V_c)^b], Δ(x) = Δ_min + (Δ_max − Δ_min)x."""
    xs, rep = (0.0, 0.2, 0.5, 1.0), 50_000
    m = mtj(len(xs) * rep, b=b, seed=14)
    with torch.no_grad():
        m.s.fill_(1)
        m.x.copy_(torch.tensor(xs).repeat(rep))
    g = torch.full((len(xs) * rep,), v / 10.0)
    m.update(g)
    frac = (m.s == -1).double().reshape(rep, len(xs)).mean(0)
    want = [neel_brown(30.0 + 50.0 * x, v, 0.5, 1.0, 10.0, b) for x in xs]
    lib = switch_probability(torch.tensor([30.0 + 50.0 * x for x in xs], dtype=F64),
                             torch.full((len(xs),), v, dtype=F64), 0.5, m.params)
    for j in range(len(xs)):
        tol = 5 * math.sqrt(max(want[j] * (1 - want[j]), 1e-6) / rep)
        assert abs(frac[j].item() - want[j]) < tol, (xs[j], frac[j], want[j])
        assert lib[j].item() == pytest.approx(want[j], rel=1e-9)
    if v < 0.5:  # the barrier matters below V_c: P_sw falls with x ...
        assert all(want[j + 1] < want[j] for j in range(len(xs) - 1)) and want[-1] < 0.5 * want[0]
    else:        # ... and not above it (τ = τ₀)
        assert want == pytest.approx([-math.expm1(-10.0)] * len(xs))


def test_4_2_a_write_is_not_a_fresh_draw_it_depends_on_the_present_state():
    """Target t = −sign(g): from s = t nothing switches (and x consolidates), from s = −t the switch
    has probability P_sw. So the state after a write is not distributed by the hidden variable alone."""
    rep, v, kappa = 50_000, 0.46, 0.5
    m = mtj(2 * rep, kappa=kappa, seed=15)
    with torch.no_grad():
        m.s[:rep] = 1   # already at the target +1
        m.s[rep:] = -1  # opposite
        m.x.fill_(0.2)
    g = torch.full((2 * rep,), -v / 10.0)  # g < 0: target +1
    m.update(g)
    p = neel_brown(30.0 + 50.0 * 0.2, v, 0.5, 1.0, 10.0, 1.0)
    assert torch.all(m.s[:rep] == 1)
    frac = (m.s[rep:] == 1).double().mean().item()
    assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / rep) and 0.1 < p < 0.9
    # consolidation only where the gradient agreed with the state: x ← x + (1 − e^{−κ|g|})(1 − x)
    # (first-order gate kinetics at 300 K; the pulse width is κ|g|/k)
    torch.testing.assert_close(m.x[:rep], torch.full((rep,), 0.2 + -math.expm1(-kappa * v / 10.0) * 0.8),
                               rtol=1e-6, atol=0.0)
    torch.testing.assert_close(m.x[rep:], torch.full((rep,), 0.2), rtol=0.0, atol=0.0)
    # below V_min there is no pulse at all
    m3 = mtj(rep, v_min=0.3, seed=19)
    with torch.no_grad():
        m3.s.fill_(-1)
    m3.update(torch.full((rep,), -0.029))  # V = 0.29 V < V_min, target +1
    assert torch.all(m3.s == -1) and m3.total_pulses() == 0


@pytest.mark.parametrize("lam", [-1.5, -0.4, 0.0, 0.6, 1.2])
def test_4_3_reset_then_softplus_pulse_would_sample_q_but_needs_a_per_lambda_pulse_time(lam):
    """With the reset done by hand (s ← −1) and a pulse time t_p = τ·softplus(2λ) set per model
    (MTJParams.t_pulse_ns is one global number), a write toward +1 gives P(+1) = sigmoid(2λ)."""
    n, v, x, b = 100_000, 0.46, 0.2, 1.0
    tau = 1.0 * math.exp((30.0 + 50.0 * x) * (1 - v / 0.5) ** b)  # ns, this device's τ at V
    t_p = tau * math.log1p(math.exp(2 * lam))
    m = mtj(n, t_pulse_ns=t_p, b=b, x_init=x, seed=16)
    with torch.no_grad():
        m.s.fill_(-1)                      # the reset MetaplasticMTJ does not perform
    m.update(torch.full((n,), -v / 10.0))  # target +1
    w = m.s.double()
    p = sigmoid(2 * lam)
    assert abs(-math.expm1(-t_p / tau) - p) < 1e-12     # 1 − exp(−softplus(2λ)) = sigmoid(2λ)
    assert abs((w > 0).double().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert abs(w.mean().item() - math.tanh(lam)) < 5 * math.sqrt((1 - math.tanh(lam) ** 2) / n)
    # without the reset, devices already at +1 stay there: P(+1) = 1/2 + 1/2·sigmoid(2λ) from a random state
    m2 = mtj(n, t_pulse_ns=t_p, b=b, x_init=x, seed=17)
    start_up = (m2.s == 1).double().mean().item()
    m2.update(torch.full((n,), -v / 10.0))
    want = start_up + (1 - start_up) * p
    se = math.sqrt(want * (1 - want) / n)
    assert abs((m2.s == 1).double().mean().item() - want) < 5 * se
    assert abs(want - p) > 20 * se and 0.4 < start_up < 0.6
