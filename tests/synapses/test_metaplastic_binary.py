"""MetaplasticBinary (Laborieux et al. 2021, Adam_meta): kernel ≡ reference, m = 0 ≡ Adam (in the
ε placement of each ``eps_mode``), equations. Tests against the authors' code itself:
test_authors_code_metaplastic.py."""
import numpy as np
import pytest
import torch

from metaspin_snn.synapses import MetaplasticBinary, MetaplasticBinaryParams

SHAPE = (64, 50)


def _pair(params):
    a = MetaplasticBinary(SHAPE, params, backend="numba")
    b = MetaplasticBinary(SHAPE, params, backend="torch")
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("eps_mode", ["adam_meta", "torch"])
@pytest.mark.parametrize("m,wd", [(0.0, 0.0), (1.35, 0.0), (5.0, 1e-3)])
def test_kernel_matches_reference(m, wd, eps_mode):
    a, b = _pair(MetaplasticBinaryParams(m=m, weight_decay=wd, lr=0.01, eps_mode=eps_mode))
    gen = torch.Generator().manual_seed(1)
    for _ in range(30):
        g = torch.randn(SHAPE, generator=gen)
        a.update(g)
        b.update(g)
    for name in ("hidden_weight", "exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-7)
    assert int(a.step) == int(b.step) == 30
    assert torch.equal(a.effective_weight(), b.effective_weight())


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_m0_torch_eps_mode_is_exactly_binarised_adam(wd):
    """eps_mode="torch", m = 0: torch.optim.Adam on W_h, bit for bit (torch backend)."""
    p = MetaplasticBinaryParams(m=0.0, weight_decay=wd, lr=0.01, eps_mode="torch")
    ref = MetaplasticBinary(SHAPE, p, backend="torch")
    fused = MetaplasticBinary(SHAPE, p, backend="numba")
    w = torch.nn.Parameter(ref.hidden_weight.clone())
    opt = torch.optim.Adam([w], lr=p.lr, betas=p.betas, eps=p.eps, weight_decay=wd, foreach=False)
    gen = torch.Generator().manual_seed(2)
    for _ in range(25):
        g = torch.randn(SHAPE, generator=gen)
        w.grad = g.clone()
        opt.step()
        ref.update(g)
        fused.update(g)
    assert torch.equal(ref.hidden_weight, w.detach())            # bit for bit
    torch.testing.assert_close(fused.hidden_weight, w.detach(), rtol=1e-5, atol=1e-7)
    assert torch.equal(ref.effective_weight(), torch.where(w.detach() >= 0, 1.0, -1.0))


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("wd", [0.0, 1e-7])
def test_m0_adam_meta_is_binarised_adam_with_eps_over_sqrt_bias_correction(backend, wd):
    """Default eps_mode="adam_meta", m = 0: torch.optim.Adam on W_h whose ε at step t is
    ε/√(1-β₂ᵗ) (ε before the bias correction, as Adam_meta); gradients ~ ε so that ε matters, and
    with a fixed ε Adam does differ there."""
    p = MetaplasticBinaryParams(m=0.0, weight_decay=wd, lr=0.01)
    syn = MetaplasticBinary(SHAPE, p, backend=backend)
    w = torch.nn.Parameter(syn.hidden_weight.clone())
    fixed = torch.nn.Parameter(syn.hidden_weight.clone())
    opt = torch.optim.Adam([w], lr=p.lr, betas=p.betas, eps=p.eps, weight_decay=wd, foreach=False)
    opt_fixed = torch.optim.Adam([fixed], lr=p.lr, betas=p.betas, eps=p.eps, weight_decay=wd, foreach=False)
    gen = torch.Generator().manual_seed(2)
    for t in range(1, 41):
        g = 1e-8 * torch.randn(SHAPE, generator=gen) * 10.0 ** (2 * torch.rand(SHAPE, generator=gen) - 1)
        opt.param_groups[0]["eps"] = p.eps / (1 - p.betas[1] ** t) ** 0.5
        w.grad, fixed.grad = g.clone(), g.clone()
        opt.step()
        opt_fixed.step()
        syn.update(g)
    torch.testing.assert_close(syn.hidden_weight, w.detach(), rtol=1e-5, atol=1e-7)
    assert (syn.hidden_weight - fixed.detach()).abs().max() > 1e-2


def _adam_meta_numpy(w, m, v, g, t, lr, b1, b2, eps, meta, wd, eps_mode):
    """Adam_meta in float64 numpy (condition sign(W_h)·m > 0, f = 1 - tanh²(meta·|W_h|)), ε placed
    as ``eps_mode`` says ("adam_meta": √v + ε then ×√(1-β₂ᵗ); "torch": √v/√(1-β₂ᵗ) + ε)."""
    g = g + wd * w
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    bc2 = np.sqrt(1 - b2 ** t)
    denom = (np.sqrt(v) + eps) / bc2 if eps_mode == "adam_meta" else np.sqrt(v) / bc2 + eps
    f = 1 - np.tanh(meta * np.abs(w)) ** 2
    u = np.where(np.sign(w) * m > 0, f * m, m)
    return w - lr / (1 - b1 ** t) * u / denom, m, v


@pytest.mark.parametrize("eps_mode", ["adam_meta", "torch"])
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_equations_against_numpy(backend, eps_mode):
    p = MetaplasticBinaryParams(m=2.0, weight_decay=1e-3, lr=0.02, init_scale=0.5, eps_mode=eps_mode)
    s = MetaplasticBinary(SHAPE, p, backend=backend)
    w = s.hidden_weight.double().numpy().copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    rng = np.random.default_rng(3)
    for t in range(1, 11):
        g = rng.standard_normal(SHAPE).astype(np.float32)
        s.update(torch.from_numpy(g))
        w, m, v = _adam_meta_numpy(w, m, v, g.astype(np.float64), t, p.lr, *p.betas, p.eps, p.m, p.weight_decay,
                                   p.eps_mode)
    np.testing.assert_allclose(s.hidden_weight.numpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.exp_avg_sq.numpy(), v, rtol=1e-5, atol=1e-9)


def test_consolidating_steps_are_scaled_and_growing_steps_are_not():
    p = MetaplasticBinaryParams(m=1.5, init="gauss", init_scale=1.0)
    meta = MetaplasticBinary(SHAPE, p, backend="numba")
    plain = MetaplasticBinary(SHAPE, MetaplasticBinaryParams(m=0.0, init="gauss", init_scale=1.0), backend="numba")
    plain.load_state_dict(meta.state_dict())
    w0 = meta.hidden_weight.clone()
    g = torch.randn(SHAPE, generator=torch.Generator().manual_seed(4))
    meta.update(g)
    plain.update(g)
    d_meta, d_plain = meta.hidden_weight - w0, plain.hidden_weight - w0
    toward_zero = torch.sign(w0) * g > 0            # first step: m = (1-β1)·g
    f = 1 - torch.tanh(p.m * w0.abs()) ** 2
    # differences of float32 W_h ~ 1 carry ~1e-7 rounding: absolute tolerance of a few ulp
    torch.testing.assert_close(d_meta[toward_zero], (f * d_plain)[toward_zero], rtol=1e-3, atol=1e-6)
    big = toward_zero & (f * d_plain.abs() > 1e-3)
    assert big.sum() > 100
    torch.testing.assert_close(d_meta[big] / d_plain[big], f[big], rtol=1e-3, atol=0.0)
    torch.testing.assert_close(d_meta[~toward_zero], d_plain[~toward_zero], rtol=1e-6, atol=0.0)
    assert toward_zero.any() and (~toward_zero).any()


def test_sign_of_zero_is_plus_one_and_hidden_is_wh():
    """Our choice (module docstring): sign(0) = +1, also for -0.0, where the authors' torch.sign gives 0."""
    s = MetaplasticBinary((2, 3))
    with torch.no_grad():
        s.hidden_weight.copy_(torch.tensor([[0.0, -0.0, 1e-30], [-1e-30, 2.0, -3.0]]))
    s.refresh()
    assert s.weight.tolist() == [[1.0, 1.0, 1.0], [-1.0, 1.0, -1.0]]
    assert s.hidden() is s.hidden_weight


def test_numba_backend_refuses_float64():
    s = MetaplasticBinary((3, 3), backend="numba")
    with pytest.raises(ValueError, match="float32 CPU"):
        s.update(torch.zeros(3, 3, dtype=torch.float64))


def test_reset_at_task_restarts_adam_and_keeps_hidden_weights():
    """``reset_at_task=True`` (the default): after task_boundary() the next update equals a fresh
    model's first update from the same W_h (a new Adam_meta per task, as in Laborieux et al.'s code);
    ``reset_at_task=False`` keeps the moments."""
    g = torch.Generator().manual_seed(5)
    a = MetaplasticBinary((20, 10), MetaplasticBinaryParams(m=1.0))
    keep = MetaplasticBinary((20, 10), MetaplasticBinaryParams(m=1.0, reset_at_task=False))
    keep.load_state_dict(a.state_dict())
    for _ in range(5):
        gr = torch.randn(20, 10, generator=g)
        a.update(gr)
        keep.update(gr)
    w = a.hidden().clone()
    a.task_boundary()
    keep.task_boundary()
    assert torch.equal(a.hidden(), w) and int(a.step) == 0 and not a.exp_avg.any() and not a.exp_avg_sq.any()
    assert int(keep.step) == 5 and keep.exp_avg.any()                     # reset_at_task=False: kept
    fresh = MetaplasticBinary((20, 10), MetaplasticBinaryParams(m=1.0))
    fresh.hidden_weight.copy_(w)
    gr = torch.randn(20, 10, generator=g)
    a.update(gr)
    fresh.update(gr)
    assert torch.equal(a.hidden(), fresh.hidden())
    with pytest.raises(ValueError, match="reset_at_task"):
        MetaplasticBinaryParams(reset_at_task=1)
