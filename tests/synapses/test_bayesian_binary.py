"""BayesianBinary (BayesBiNN, Meng et al. 2020): kernel ≡ reference, paper update, samples, prior."""
import numpy as np
import pytest
import torch

from metaspin_snn.synapses import BayesianBinary, BayesianBinaryParams

SHAPE = (40, 30)


@pytest.mark.parametrize("beta,train", [(0.0, True), (0.9, True), (0.5, False)])
def test_kernel_matches_reference(beta, train):
    p = BayesianBinaryParams(lambda_init=1.0, lambda_std=1.0, beta=beta, n_data=50.0, tau=0.7, lr=1e-3)
    a, b = BayesianBinary(SHAPE, p, backend="numba"), BayesianBinary(SHAPE, p, backend="torch")
    a.train(train)
    b.train(train)
    gen = torch.Generator().manual_seed(0)
    for _ in range(15):
        torch.testing.assert_close(a.effective_weight(), b.effective_weight(), rtol=1e-5, atol=1e-6)
        g = 0.01 * torch.randn(SHAPE, generator=gen)
        a.update(g)
        b.update(g)
    torch.testing.assert_close(a.lam, b.lam, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.momentum, b.momentum, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_paper_update_beta0(backend):
    """λ ← (1-α)λ - α[N·s·g - λ_prior], s = (1-w²+1e-10)/(τ(1-tanh²λ+1e-10)) (paper Eq. + code guards)."""
    p = BayesianBinaryParams(lambda_init=0.5, lambda_std=0.5, lr=0.01, n_data=20.0, tau=0.5)
    s = BayesianBinary(SHAPE, p, backend=backend)
    rng = np.random.default_rng(2)
    with torch.no_grad():
        s.lam_prior.copy_(torch.from_numpy(rng.uniform(-1, 1, SHAPE).astype(np.float32)))
    w = s.effective_weight().detach().double().numpy().copy()
    lam, lam0 = s.lam.double().numpy().copy(), s.lam_prior.double().numpy().copy()
    g = rng.standard_normal(SHAPE).astype(np.float32) * 0.1
    s.update(torch.from_numpy(g))
    sc = (1 - w ** 2 + 1e-10) / (p.tau * (1 - np.tanh(lam) ** 2 + 1e-10))
    expected = (1 - p.lr) * lam - p.lr * (p.n_data * sc * g - lam0)
    np.testing.assert_allclose(s.lam.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_momentum_update_matches_reference_code_form(backend):
    """m ← βm + (1-β)(N s g + r(λ-λ_prior)); λ ← λ - lr·m/(1-βᵗ), two steps."""
    p = BayesianBinaryParams(lambda_init=0.3, lambda_std=0.3, lr=0.02, beta=0.8, reweight=0.5, n_data=3.0)
    s = BayesianBinary((500,), p, backend=backend)
    lam = s.lam.double().numpy().copy()
    m = np.zeros_like(lam)
    rng = np.random.default_rng(3)
    for t in (1, 2):
        w = s.effective_weight().detach().double().numpy().copy()
        g = rng.standard_normal(500).astype(np.float32)
        s.update(torch.from_numpy(g))
        sc = (1 - w ** 2 + 1e-10) / (p.tau * (1 - np.tanh(lam) ** 2 + 1e-10))
        m = p.beta * m + (1 - p.beta) * (p.n_data * sc * g + p.reweight * lam)
        lam = lam - p.lr * m / (1 - p.beta ** t)
    np.testing.assert_allclose(s.lam.numpy(), lam, rtol=1e-5, atol=1e-5)


def test_relaxed_sample_sign_is_bernoulli_sigmoid_2lambda():
    lam = torch.tensor([-1.5, -0.4, 0.0, 0.3, 1.2])
    n = 40_000
    s = BayesianBinary((n, 5), BayesianBinaryParams(tau=0.3, seed=11))
    with torch.no_grad():
        s.lam.copy_(lam.expand(n, 5))
    w = s.refresh(sample=True).detach()
    assert (w.abs() < 1).any() and w.abs().max() <= 1
    freq = (w > 0).float().mean(0)
    p = torch.sigmoid(2 * lam)
    assert torch.all((freq - p).abs() < 4 * torch.sqrt(p * (1 - p) / n) + 1e-3)
    # relaxed sample: w = tanh((λ + δ)/τ) — tighter τ gives more binary samples
    cold = BayesianBinary((n, 5), BayesianBinaryParams(tau=0.01, seed=11))
    with torch.no_grad():
        cold.lam.copy_(lam.expand(n, 5))
    assert cold.refresh(sample=True).abs().mean() > w.abs().mean()


def test_eval_modes():
    lam = torch.tensor([-2.0, -0.1, 0.0, 0.5])
    for mode, expected in (("mean", torch.tanh(lam)), ("sign", torch.tensor([-1.0, -1.0, 1.0, 1.0]))):
        s = BayesianBinary((4,), BayesianBinaryParams(eval_mode=mode))
        with torch.no_grad():
            s.lam.copy_(lam)
        s.eval()
        assert torch.equal(s.effective_weight().detach(), expected)
    n = 50_000
    s = BayesianBinary((n, 4), BayesianBinaryParams(eval_mode="sample"))
    with torch.no_grad():
        s.lam.copy_(lam.expand(n, 4))
    s.eval()
    w = s.effective_weight().detach()
    assert set(w.unique().tolist()) <= {-1.0, 1.0}
    torch.testing.assert_close(w.mean(0), torch.tanh(lam), atol=0.02, rtol=0.0)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_prior_pull_and_task_boundary(backend):
    p = BayesianBinaryParams(lambda_init=2.0, lr=0.05)
    s = BayesianBinary(SHAPE, p, backend=backend)
    s.effective_weight()
    lam0 = s.lam.clone()
    s.update(torch.zeros(SHAPE))                # no data: λ ← (1 - lr·r)λ toward λ_prior = 0
    torch.testing.assert_close(s.lam, (1 - p.lr) * lam0)
    s.task_boundary()
    assert torch.equal(s.lam_prior, s.lam) and int(s.step) == 0 and torch.count_nonzero(s.momentum) == 0
    lam1 = s.lam.clone()
    for _ in range(5):
        s.update(torch.zeros(SHAPE))            # now λ = λ_prior is a fixed point
    assert torch.equal(s.lam, lam1)
    torch.testing.assert_close(s.variance(), 1 - torch.tanh(s.lam) ** 2, rtol=1e-5, atol=1e-7)
    assert s.hidden() is s.lam
