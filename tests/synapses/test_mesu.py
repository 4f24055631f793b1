"""MESU (Bonnet et al. 2025): kernel ≡ reference, the update equations, fixed point, forgetting window."""
import numpy as np
import pytest
import torch

from metaspin_snn.synapses import MESU, MESUParams

SHAPE = (40, 30)


def test_kernel_matches_reference_with_same_seeded_draws():
    p = MESUParams(N=50.0, lr_mu=0.5, lr_sigma=0.7)  # authors' init: |μ| up to 4/√fan_in, so atol 1e-6
    a, b = MESU(SHAPE, p, backend="numba"), MESU(SHAPE, p, backend="torch")
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        wa, wb = a.effective_weight(), b.effective_weight()
        torch.testing.assert_close(wa, wb, rtol=1e-5, atol=1e-6)
        g = torch.randn(SHAPE, generator=gen)
        a.update(g)
        b.update(g)
    torch.testing.assert_close(a.mu, b.mu, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.sigma, b.sigma, rtol=1e-5, atol=1e-6)


def _mesu_numpy(mu, sig, eps, g, mup, sigp, lr_mu, lr_sig, n):
    """The issue's formula, float64."""
    mu_new = mu + lr_mu * (-sig ** 2 * g + sig ** 2 * (mup - mu) / (n * sigp ** 2))
    sig_new = sig + lr_sig * 0.5 * (-sig ** 2 * g * eps + sig * (sigp ** 2 - sig ** 2) / (n * sigp ** 2))
    return mu_new, sig_new


def _update_and_check(s: MESU, p: MESUParams, rng: np.random.Generator) -> None:
    """One update of ``s`` (whose current sample is drawn) from a random g, held to :func:`_mesu_numpy`."""
    eps = s.noise.double().numpy().copy()
    mu, sig = s.mu.double().numpy().copy(), s.sigma.double().numpy().copy()
    mup, sigp = s.mu_prior.double().numpy(), s.sigma_prior.double().numpy()
    g = rng.standard_normal(SHAPE).astype(np.float32)
    s.update(torch.from_numpy(g))
    mu1, sig1 = _mesu_numpy(mu, sig, eps, g.astype(np.float64), mup, sigp, p.lr_mu, p.lr_sigma, p.N)
    np.testing.assert_allclose(s.mu.numpy(), mu1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(s.sigma.numpy(), sig1, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_update_equation_against_numpy(backend):
    p = MESUParams(N=20.0, lr_mu=0.3, lr_sigma=0.9, mu_prior=0.1, sigma_prior=0.2, sigma_init=0.15, init="gauss")
    s = MESU(SHAPE, p, backend=backend)
    rng = np.random.default_rng(1)
    with torch.no_grad():
        s.sigma.copy_(torch.from_numpy(rng.uniform(0.05, 0.3, SHAPE).astype(np.float32)))
        s.sigma_prior.copy_(torch.from_numpy(rng.uniform(0.1, 0.3, SHAPE).astype(np.float32)))
    w = s.effective_weight()
    torch.testing.assert_close(w.detach(), s.mu + s.sigma * s.noise)       # reparameterised sample
    _update_and_check(s, p, rng)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_fixed_point_without_data(backend):
    p = MESUParams(N=10.0, mu_prior=0.3, sigma_prior=0.05, sigma_init=0.05, init="gauss")
    s = MESU(SHAPE, p, backend=backend)
    with torch.no_grad():
        s.mu.fill_(0.3)
    s.effective_weight()                        # a sample is drawn (ε ≠ 0) but g = 0
    for _ in range(50):
        s.update(torch.zeros(SHAPE))
    assert torch.equal(s.mu, torch.full(SHAPE, 0.3))
    assert torch.equal(s.sigma, torch.full(SHAPE, 0.05))


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_forgetting_window_N(backend):
    """Without data and σ = σ_p: μ_k = μ_p + (μ_0 - μ_p)(1 - η_μ/N)^k; σ relaxes to σ_p."""
    N, eta = 100.0, 1.0
    s = MESU((4, 5), MESUParams(N=N, lr_mu=eta, sigma_prior=0.1, sigma_init=0.1, init="gauss"), backend=backend)
    mu0 = s.mu.double().clone()
    for _ in range(200):
        s.update(torch.zeros(4, 5))
    expected = mu0 * (1 - eta / N) ** 200
    torch.testing.assert_close(s.mu.double(), expected, rtol=1e-4, atol=1e-8)
    # σ above and below the prior both relax monotonically toward σ_p
    t = MESU((2,), MESUParams(N=N, sigma_prior=0.1, sigma_init=0.1, init="gauss"), backend=backend)
    with torch.no_grad():
        t.sigma.copy_(torch.tensor([0.02, 0.5]))
    prev = t.sigma.clone()
    for _ in range(3000):
        t.update(torch.zeros(2))
        assert t.sigma[0] >= prev[0] and t.sigma[1] <= prev[1]
        prev = t.sigma.clone()
    torch.testing.assert_close(t.sigma, torch.full((2,), 0.1), rtol=1e-2, atol=0.0)


def test_eval_uses_mean_and_zero_noise():
    s = MESU(SHAPE)
    s.train()
    w_train = s.effective_weight().detach().clone()
    assert not torch.equal(w_train, s.mu)
    s.eval()
    assert torch.equal(s.effective_weight(), s.mu)
    assert torch.count_nonzero(s.noise) == 0
    mu0, sig0 = s.mu.clone(), s.sigma.clone()
    s.update(torch.ones(SHAPE))                 # ∂C/∂σ = g·0: σ only feels the prior term
    expected_sig = sig0 + 0.5 * (sig0 * (s.sigma_prior ** 2 - sig0 ** 2) / (s.params.N * s.sigma_prior ** 2))
    torch.testing.assert_close(s.sigma, expected_sig)
    assert (s.mu < mu0).all()


def test_samples_have_the_posterior_moments_and_are_seeded():
    p = MESUParams(mu_init_std=0.0, mu_prior=0.2, sigma_init=0.3, seed=7, init="gauss")
    s = MESU((200_000,), p)
    w = s.refresh(sample=True).detach()
    assert abs(w.mean().item() - 0.2) < 4 * 0.3 / 200_000 ** 0.5
    assert abs(w.std().item() - 0.3) < 0.003
    s2 = MESU((200_000,), p)
    assert torch.equal(s2.refresh(sample=True).detach(), w)
    s3 = MESU((200_000,), MESUParams(mu_init_std=0.0, mu_prior=0.2, sigma_init=0.3, seed=8, init="gauss"))
    assert not torch.equal(s3.refresh(sample=True).detach(), w)


def test_task_boundary_keeps_the_fixed_prior_unless_asked():
    s = MESU(SHAPE)
    s.effective_weight()
    s.update(torch.randn(SHAPE))
    s.task_boundary()
    assert torch.equal(s.mu_prior, torch.zeros(SHAPE))
    v = MESU(SHAPE, MESUParams(prior_from_posterior=True))
    v.effective_weight()
    v.update(torch.randn(SHAPE))
    v.task_boundary()
    assert torch.equal(v.mu_prior, v.mu) and torch.equal(v.sigma_prior, v.sigma)
    assert v.hidden() is v.sigma


# ---- options for few Monte-Carlo samples: antithetic pairs and a non-negative curvature term ----------

def _quadratic_pair_stats(p: MESUParams, stacked: bool):
    """Two samples of C = ½ Σ h w² (g = h·w) through MESU's own sampling; returns (s, h, ε of sample 1,
    μ, σ before the step) and the accumulated (Σ g, Σ g·ε) over the two samples."""
    s = MESU(SHAPE, p, backend="torch")
    h = torch.rand(SHAPE, generator=torch.Generator().manual_seed(3)) + 0.5
    mu, sig = s.mu.clone(), s.sigma.clone()
    if stacked:
        s.set_mc_samples(2)
        w = s.effective_weight()
        eps1 = s.noise[0].clone()
        g = h * w.detach()
        stats = [t.sum(0) for t in s._sample_stats(g)]
    else:
        stats = [torch.zeros(SHAPE), torch.zeros(SHAPE)]
        eps1 = None
        for _ in range(2):
            w = s.effective_weight()
            eps1 = s.noise.clone() if eps1 is None else eps1
            for a, t in zip(stats, s._sample_stats(h * w.detach())):
                a.add_(t)
            s.accumulate(h * w.detach())
    return s, h, eps1, mu, sig, stats


@pytest.mark.parametrize("stacked", [False, True])
def test_antithetic_pair_cancels_the_first_order_term(stacked):
    # pair ε, −ε of C = ½ h w²: Σ g = 2hμ and Σ g·ε = 2hσε² exactly (no hμε term), written out here
    s, h, eps, mu, sig, (gmu, gsig) = _quadratic_pair_stats(MESUParams(antithetic=True), stacked)
    torch.testing.assert_close(gmu, 2 * h * mu, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gsig, 2 * h * sig * eps ** 2, rtol=1e-5, atol=1e-6)
    # without the option the two draws are independent and the first-order term stays
    _, h2, _, mu2, _, (gmu2, _) = _quadratic_pair_stats(MESUParams(antithetic=False), stacked)
    assert (gmu2 - 2 * h2 * mu2).abs().max() > 1e-2


def test_antithetic_pairs_restart_at_each_step_and_after_mode_changes():
    s = MESU(SHAPE, MESUParams(antithetic=True), backend="torch")
    s.effective_weight()
    e1 = s.noise.clone()
    s.update(torch.zeros(SHAPE))          # a one-sample step ends the pair
    s.effective_weight()
    assert not torch.equal(s.noise, -e1)  # a fresh draw, not the mirror of the last step's sample
    s.accumulate(torch.zeros(SHAPE))
    s.eval(); s.train()                   # a pair never spans evaluation
    s.effective_weight()
    e3 = s.noise.clone()
    s.accumulate(torch.zeros(SHAPE))
    s.effective_weight()
    torch.testing.assert_close(s.noise, -e3)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_shrink_only_clips_the_data_term_of_sigma(backend):
    p = MESUParams(N=20.0, lr_mu=0.3, lr_sigma=0.9, sigma_prior=0.2, sigma_init=0.15, init="gauss", shrink_only=True)
    s = MESU(SHAPE, p, backend=backend)
    w = s.effective_weight()
    eps = s.noise.double().numpy().copy()
    mu, sig = s.mu.double().numpy().copy(), s.sigma.double().numpy().copy()
    g = np.random.default_rng(2).standard_normal(SHAPE)
    s.update(torch.from_numpy(g.astype(np.float32)))
    sp2, n = 0.2 ** 2, p.N
    gsig = np.maximum(g * eps, 0.0)                           # the variant: max(ḡ_σ, 0)
    sig1 = sig + p.lr_sigma * 0.5 * (-sig ** 2 * gsig + sig * (sp2 - sig ** 2) / (n * sp2))
    mu1 = mu + p.lr_mu * (-sig ** 2 * g + sig ** 2 * (0.0 - mu) / (n * sp2))
    np.testing.assert_allclose(s.sigma.numpy(), sig1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(s.mu.numpy(), mu1, rtol=1e-5, atol=1e-7)
    grew = g * eps < 0
    assert grew.any() and (~grew).any()
    # where ḡ_σ < 0 only the prior term moves σ (toward σ_p = 0.2 > 0.15: up by at most σ(σ_p²−σ²)/(2Nσ_p²))
    bound = sig * (sp2 - sig ** 2) / (n * sp2) * p.lr_sigma * 0.5
    np.testing.assert_allclose(s.sigma.numpy()[grew] - sig[grew], bound[grew], rtol=1e-4, atol=1e-7)


def test_kernel_reads_a_prior_changed_in_place_after_steps():
    """The kernel takes a uniform prior as one value; a prior written in place later (per synapse,
    as an analysis or a checkpoint load does) must be the one the next step uses."""
    p = MESUParams(N=20.0, lr_mu=0.3, lr_sigma=0.9, init="gauss", sigma_init=0.15)
    s = MESU(SHAPE, p, backend="numba")
    rng = np.random.default_rng(2)
    for step in range(3):
        if step == 2:
            with torch.no_grad():
                s.mu_prior.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, SHAPE).astype(np.float32)))
                s.sigma_prior[0, 0] = 0.05  # and a non-uniform σ_p
        s.effective_weight()
        _update_and_check(s, p, rng)
    assert not s._prior_uniform


@pytest.mark.parametrize("shrink", [False, True])
def test_fused_single_sample_step_equals_the_two_pass_step_to_the_bit(shrink):
    """One sample: the kernel forms g·ε itself; the result is that of the step on (g, g·ε) formed by
    torch first (the path stacked samples take), to the bit."""
    p = MESUParams(N=50.0, shrink_only=shrink)
    a, b = MESU(SHAPE, p, backend="numba"), MESU(SHAPE, p, backend="numba")
    gen = torch.Generator().manual_seed(5)
    for _ in range(5):
        a.effective_weight(), b.effective_weight()
        g = torch.randn(SHAPE, generator=gen)
        a.update(g)
        with torch.no_grad():
            b._update_stats(b._sample_stats(g))
        b._stale = True
        assert torch.equal(a.mu, b.mu) and torch.equal(a.sigma, b.sigma)
