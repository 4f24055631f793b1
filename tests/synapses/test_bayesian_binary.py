"""BayesianBinary (BayesBiNN, Meng et al. 2020): kernel ≡ reference, paper update, samples, prior.
The step-by-step comparison with the authors' code is tests/synapses/test_authors_code_bayesbinn.py."""
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
    torch.testing.assert_close(a.lam_mu, b.lam_mu, rtol=1e-5, atol=1e-5)


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
@pytest.mark.parametrize("lagged", [True, False])
def test_momentum_update_matches_reference_code_form(backend, lagged):
    """m ← βm + (1-β)(N s g + r(λ-λ_prior)); λ ← λ - lr·m/(1-βᵗ), three steps; the scale's μ is tanh of
    the λ before the previous step (the code's lagged μ) or of the current λ (``lagged_mu=False``)."""
    p = BayesianBinaryParams(lambda_init=0.3, lambda_std=0.3, lr=0.02, beta=0.8, reweight=0.5, n_data=3.0,
                             tau=1.0, lagged_mu=lagged)
    s = BayesianBinary((500,), p, backend=backend)
    lam = s.lam.double().numpy().copy()
    lam_mu = lam.copy()
    m = np.zeros_like(lam)
    rng = np.random.default_rng(3)
    for t in (1, 2, 3):
        w = s.effective_weight().detach().double().numpy().copy()
        g = rng.standard_normal(500).astype(np.float32)
        s.update(torch.from_numpy(g))
        sc = (1 - w ** 2 + 1e-10) / (p.tau * (1 - np.tanh(lam_mu) ** 2 + 1e-10))
        m = p.beta * m + (1 - p.beta) * (p.n_data * sc * g + p.reweight * lam)
        new = lam - p.lr * m / (1 - p.beta ** t)
        lam_mu = lam if lagged else new
        lam = new
    np.testing.assert_allclose(s.lam.numpy(), lam, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.lam_mu.numpy(), lam_mu, rtol=1e-5, atol=1e-5)


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
    """"sign" (default): the code's point estimate, μ ≤ 0 → −1 (λ = 0 → −1); "mean": tanh λ."""
    assert BayesianBinaryParams().eval_mode == "sign"
    lam = torch.tensor([-2.0, -0.1, 0.0, 0.5])
    for mode, expected in (("mean", torch.tanh(lam)), ("sign", torch.tensor([-1.0, -1.0, -1.0, 1.0]))):
        s = BayesianBinary((4,), BayesianBinaryParams(eval_mode=mode))
        with torch.no_grad():
            s.lam.copy_(lam)
            s.lam_mu.copy_(lam)
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
@pytest.mark.parametrize("reset", [False, True])
def test_prior_pull_and_task_boundary(backend, reset):
    """task_boundary(): λ_prior ← λ; momentum and step kept (the authors' CL script keeps its optimiser)
    unless ``reset_at_task``."""
    p = BayesianBinaryParams(lambda_init=2.0, lr=0.05, reset_at_task=reset)
    s = BayesianBinary(SHAPE, p, backend=backend)
    s.effective_weight()
    lam0 = s.lam.clone()
    s.update(torch.zeros(SHAPE))                # no data: λ ← (1 - lr·r)λ toward λ_prior = 0
    torch.testing.assert_close(s.lam, (1 - p.lr) * lam0)
    m = s.momentum.clone()
    s.task_boundary()
    assert torch.equal(s.lam_prior, s.lam)
    if reset:
        assert int(s.step) == 0 and torch.count_nonzero(s.momentum) == 0
    else:
        assert int(s.step) == 1 and torch.equal(s.momentum, m) and torch.count_nonzero(m) > 0
    lam1 = s.lam.clone()
    for _ in range(5):
        s.update(torch.zeros(SHAPE))            # now λ = λ_prior is a fixed point
    assert torch.equal(s.lam, lam1)
    torch.testing.assert_close(s.variance(), 1 - torch.tanh(s.lam) ** 2, rtol=1e-5, atol=1e-7)
    assert s.hidden() is s.lam


def test_lambda_is_not_clipped_at_moderate_values():
    """λ_max is only a finiteness guard (1e30): the code's λ grows to ~1e3-1e10 through rare
    unsaturated samples, which a clip at 100 would cut."""
    p = BayesianBinaryParams(n_data=1e4)
    assert p.lambda_max == 1e30
    s = BayesianBinary((4,), p)
    s.eval()
    s.update(torch.tensor([-1.0, 1.0, -1e2, 1e2]))  # point-estimate step: λ −= lr·(N·g + λ)
    assert s.lam[2] > 100.0 and s.lam[3] < -100.0


def test_params_validation_of_the_new_options():
    for bad in (dict(variance="float32"), dict(lagged_mu=1), dict(reset_at_task="yes"), dict(eval_mode="median"),
                dict(lambda_init=101.0)):
        with pytest.raises(ValueError):
            BayesianBinaryParams(**bad)


def test_state_dict_round_trip_and_old_checkpoints():
    a = BayesianBinary(SHAPE, BayesianBinaryParams(n_data=100.0, lambda_std=1.0, seed=3))
    for _ in range(3):
        a.refresh(sample=True)
        a.update(torch.randn(SHAPE) * 0.1)
    b = BayesianBinary(SHAPE, BayesianBinaryParams(n_data=100.0, seed=4))
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.lam_mu, a.lam_mu) and not torch.equal(a.lam_mu, a.lam)
    old = {k: v for k, v in a.state_dict().items() if k != "lam_mu"}  # saved before lam_mu existed
    c = BayesianBinary(SHAPE, BayesianBinaryParams(n_data=100.0, seed=4))
    c.load_state_dict(old)
    assert torch.equal(c.lam_mu, a.lam)


def test_code_variance_one_pass_equals_the_torch_expression_to_the_bit():
    """CPU float32: tanh in float64, rounded to float32, then 1 − μ·μ in float32 (BayesBiNN.py:175 on
    the correctly rounded μ), written out with torch ops here; saturated, tiny and signed-zero λ too."""
    from metaspin_snn.synapses.bayesbinn import code_variance_fused as code_variance

    gen = torch.Generator().manual_seed(11)
    lam = torch.cat([torch.randn(200_000, generator=gen) * s for s in (1e-3, 0.5, 3.0, 30.0)]
                    + [torch.tensor([0.0, -0.0, 1e-38, -1e-38, 9.01, -9.01, 20.0, -20.0, 1e30, -1e30])])
    mu = torch.tanh(lam.double()).to(torch.float32)
    want = 1.0 - mu * mu
    got = code_variance(lam.reshape(2, -1)[:, 1:].contiguous())  # any shape
    want = want.reshape(2, -1)[:, 1:]
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert torch.equal(got, want)
    m64 = torch.tanh(lam.double())
    assert torch.equal(code_variance(lam.double()), 1.0 - m64 * m64)  # float64: the torch expression
