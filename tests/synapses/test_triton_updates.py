"""Fused Triton synapse updates (synapses/triton_updates.py), checked without a GPU: under Triton's
interpreter on the CPU they must give the torch reference's state to the bit, step after step; compiled
ahead of time for sm_90 the PTX must hold no fused multiply-add and only correctly rounded divisions
(``tests/test_cuda.py`` checks the same equality on a device)."""
from __future__ import annotations

import itertools
import re

import pytest
import torch

from metaspin_snn import gpu
import numpy as np

from metaspin_snn.synapses import (MESU, BayesianBinary, BayesianBinaryParams, MagnetoIonicPair, MESUParams,
                                   MetaplasticBinary, MetaplasticBinaryParams)
from metaspin_snn.synapses.bayesbinn import code_variance
from metaspin_snn.synapses import triton_updates

pytestmark = pytest.mark.skipif(not gpu.available(), reason="Triton is not installed")


@pytest.mark.parametrize("shrink", [False, True])
@pytest.mark.parametrize("prior", ["uniform", "per-synapse"])
@pytest.mark.parametrize("samples", [1, 3])
def test_mesu_triton_equals_torch_reference(interpret, shrink, prior, samples):
    """Same seed, same gradients: the Triton step (ḡ_σ = g·ε in the kernel for one sample, the summed
    statistics for three accumulated samples) leaves μ and σ bitwise equal to the torch reference."""
    p = MESUParams(N=50.0, sigma_prior=0.3, shrink_only=shrink, seed=4)
    shape = (37, 29)  # 1,073 synapses: two programs of BLOCK = 1024, the second one masked
    a, b = MESU(shape, p, backend="triton"), MESU(shape, p, backend="torch")
    if prior == "per-synapse":
        for m in (a, b):
            m.mu_prior.copy_(torch.linspace(-0.2, 0.2, m.mu.numel()).reshape(shape))
            m.sigma_prior.copy_(torch.linspace(0.1, 0.5, m.mu.numel()).reshape(shape))
    gen = torch.Generator().manual_seed(1)
    for step in range(4):
        for _ in range(samples):
            g = torch.randn(shape, generator=gen) * 3.0
            for m in (a, b):
                m.refresh(sample=True)
                if samples > 1:
                    m.accumulate(g)
            assert torch.equal(a.noise, b.noise)
        for m in (a, b):
            m.update(None if samples > 1 else g)
        assert torch.equal(a.mu, b.mu) and torch.equal(a.sigma, b.sigma), step
    moved = (a.sigma != MESU(shape, p).sigma).float().mean()
    assert moved > 0.9  # the steps did change σ (not a trivially equal state)
    assert a._uniform_prior() == (prior == "uniform")


def test_mesu_triton_clamps_like_the_reference(interpret):
    """Gradients large enough to push σ below σ_min and μ beyond ±μ_max."""
    p = MESUParams(N=10.0, sigma_min=0.05, mu_max=0.3, seed=2)
    a, b = MESU((8, 300), p, backend="triton"), MESU((8, 300), p, backend="torch")
    g = torch.randn(8, 300, generator=torch.Generator().manual_seed(3)) * 400.0
    for m in (a, b):
        m.refresh(sample=True)
        m.update(g)
    assert torch.equal(a.mu, b.mu) and torch.equal(a.sigma, b.sigma)
    assert (a.sigma == 0.05).any() and (a.mu.abs() == 0.3).any()


def test_triton_backend_needs_a_kernel_and_a_device(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    m = MESU((4, 5), backend="triton")
    m.refresh(sample=True)
    with pytest.raises(ValueError, match="backend='triton' needs Triton"):
        m.update(torch.ones(4, 5))
    with pytest.raises(ValueError, match="has no Triton kernel"):
        MagnetoIonicPair((4, 5), backend="triton")
    with pytest.raises(ValueError, match="backend must be one of"):
        MESU((4, 5), backend="cuda")
    auto = MESU((4, 5))  # on the CPU "auto" stays with the Numba kernel, even under the interpreter
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert auto.use_numba(torch.ones(4, 5)) and not auto.use_triton(torch.ones(4, 5))
    assert MESU((4, 5), backend="triton").use_triton(torch.ones(4, 5))
    monkeypatch.setenv("METASPIN_TRITON", "0")  # switched off: Triton is not used, even when asked for
    assert not gpu.available()
    with pytest.raises(ValueError, match="backend='triton' needs Triton"):
        MESU((4, 5), backend="triton").use_triton(torch.ones(4, 5))


def test_mesu_kernel_compiles_for_sm90_without_fma_or_approximate_division():
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    triton_updates._kernels.cache_clear()
    kern = triton_updates._kernels()["_mesu"]
    sig = {k: "*fp32" for k in ("mu", "sig", "g", "e", "mup", "sigp", "consts")}
    sig["n"] = "i64"
    for fg, sh, up in itertools.product((False, True), repeat=3):
        ce = {"FROM_GRAD": fg, "SHRINK": sh, "UNIFORM_PRIOR": up, "BLOCK": triton_updates.BLOCK}
        s = dict(sig, **{k: "constexpr" for k in ce})
        ptx = triton.compile(ASTSource(kern, s, constexprs=ce), target=GPUTarget("cuda", 90, 32),
                             options=dict(gpu.LAUNCH_OPTIONS, num_warps=triton_updates.NUM_WARPS)).asm["ptx"]
        assert ".target sm_90" in ptx
        assert not re.search(r"\bfma\.", ptx)
        assert set(re.findall(r"\b(?:div|rcp)\.[a-z0-9.]+", ptx)) == {"div.rn.f32"}


def _adam_meta_float64(w, m, v, g, t, p: MetaplasticBinaryParams):
    """Laborieux et al.'s Adam_meta step written out in float64 (eps_mode "adam_meta": step size
    lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ), denominator √v + ε; "torch": lr/(1 − β₁ᵗ) and √v/√(1 − β₂ᵗ) + ε)."""
    b1, b2 = p.betas
    g = np.clip(g + p.weight_decay * w, -p.grad_clip, p.grad_clip)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    if p.eps_mode == "adam_meta":
        step, denom = p.lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t), np.sqrt(v) + p.eps
    else:
        step, denom = p.lr / (1 - b1 ** t), np.sqrt(v) / np.sqrt(1 - b2 ** t) + p.eps
    fmeta = 1.0 - np.tanh(p.m * np.abs(w)) ** 2
    toward_zero = np.where(w >= 0, 1.0, -1.0) * m > 0
    w = w - step * np.where(toward_zero, fmeta * m, m) / denom
    return w, m, v


@pytest.mark.parametrize("eps_mode", ["adam_meta", "torch"])
@pytest.mark.parametrize("wd_clip", [(0.0, 1e15), (0.01, 0.5)])
def test_metaplastic_triton_follows_adam_meta(interpret, eps_mode, wd_clip):
    """Five steps of the Triton kernel against the equations in float64 (tight), and against the torch
    reference and the Numba kernel (to float32 rounding: they form f_meta differently)."""
    wd, clip = wd_clip
    p = MetaplasticBinaryParams(m=3.0, lr=0.01, eps_mode=eps_mode, weight_decay=wd, grad_clip=clip, seed=3)
    shape = (41, 27)
    tri, ref, nb = (MetaplasticBinary(shape, p, backend=b) for b in ("triton", "torch", "numba"))
    w, m, v = (x.double().numpy() for x in (tri.hidden_weight, tri.exp_avg, tri.exp_avg_sq))
    gen = torch.Generator().manual_seed(5)
    for t in range(1, 6):
        g = torch.randn(shape, generator=gen)
        for model in (tri, ref, nb):
            model.update(g)
        w, m, v = _adam_meta_float64(w, m, v, g.double().numpy(), t, p)
        np.testing.assert_allclose(tri.exp_avg.numpy(), m, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(tri.exp_avg_sq.numpy(), v, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(tri.hidden_weight.numpy(), w, rtol=1e-5, atol=1e-6)
    assert (tri.hidden_weight != MetaplasticBinary(shape, p).hidden_weight).float().mean() > 0.9
    for other in (ref, nb):
        torch.testing.assert_close(tri.hidden_weight, other.hidden_weight, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(tri.exp_avg, other.exp_avg, rtol=1e-5, atol=1e-7)


def test_metaplastic_kernel_compiles_for_sm90():
    """No FMA, divisions and square roots correctly rounded (the exponential is the GPU's ex2)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    triton_updates._kernels.cache_clear()
    kern = triton_updates._kernels()["_metaplastic"]
    sig = {k: "*fp32" for k in ("w", "m", "v", "g", "consts")}
    sig["n"] = "i64"
    for wd in (False, True):
        ce = {"WD": wd, "BLOCK": triton_updates.BLOCK}
        ptx = triton.compile(ASTSource(kern, dict(sig, **{k: "constexpr" for k in ce}), constexprs=ce),
                             target=GPUTarget("cuda", 90, 32),
                             options=dict(gpu.LAUNCH_OPTIONS, num_warps=triton_updates.NUM_WARPS)).asm["ptx"]
        assert not re.search(r"\bfma\.", ptx)
        assert set(re.findall(r"\b(?:div|rcp)\.[a-z0-9.]+", ptx)) == {"div.rn.f32"}
        assert set(re.findall(r"\bsqrt\.[a-z0-9.]+", ptx)) == {"sqrt.rn.f32"}


def _bayesbinn_cuda_order(lam, mom, lam0, v, w, g, relaxed, t, p: BayesianBinaryParams):
    """BayesBiNN.py:175-191 in float32 numpy, each operation rounded as eager CUDA torch rounds it:
    ``tensor / scalar`` is ``tensor · float32(1/float32(scalar))``, every other operation IEEE."""
    f = np.float32

    def rcp(x):
        return f(1.0) / f(x)
    if relaxed:
        scale = (((f(1.0) - w * w) + f(1e-10)) * rcp(p.tau)) / (v + f(1e-10))
        gh = (scale * g) * f(p.n_data)
    else:
        gh = g * f(p.n_data)
    d = np.clip(gh + f(p.reweight) * (lam - lam0), f(-p.drive_max), f(p.drive_max))
    mom = mom * f(p.beta) + f(1.0 - p.beta) * d
    new = np.clip(lam - (f(p.lr) * mom) * rcp(1.0 - p.beta ** t), f(-p.lambda_max), f(p.lambda_max))
    return new, mom


@pytest.mark.parametrize("beta", [0.0, 0.9])
@pytest.mark.parametrize("lagged", [True, False])
def test_bayesbinn_triton_equals_the_cuda_order_formula(interpret, beta, lagged):
    """Relaxed-sample steps and one eval-mode step (unscaled g): λ, momentum and λ_μ equal the
    formula in eager CUDA's roundings to the bit, and the CPU torch reference (true divisions by τ and
    1 − βᵗ) to float32 rounding."""
    p = BayesianBinaryParams(lr=0.05, beta=beta, tau=0.5, n_data=100.0, lambda_init=1.0, lambda_std=0.5,
                             lagged_mu=lagged, seed=6)
    shape = (33, 40)
    tri, ref = BayesianBinary(shape, p, backend="triton"), BayesianBinary(shape, p, backend="torch")
    lam, mom, lam0, lam_mu = (b.numpy().copy() for b in (tri.lam, tri.momentum, tri.lam_prior, tri.lam_mu))
    gen = torch.Generator().manual_seed(7)
    for t in range(1, 6):
        relaxed = t != 4
        for m in (tri, ref):
            m.train(relaxed)
            m.refresh()
        if t == 1:  # same seed, same state: the same sample (later λ differ in the last bits)
            assert torch.equal(tri.weight, ref.weight)
        g = torch.randn(shape, generator=gen) * 0.01
        v = code_variance(torch.from_numpy(lam_mu)).numpy()
        w = tri.weight.detach().numpy()
        new, mom = _bayesbinn_cuda_order(lam, mom, lam0, v, w, g.numpy(), relaxed, t, p)
        lam_mu = lam.copy() if lagged else new.copy()
        lam = new
        for m in (tri, ref):
            m.update(g)
        assert np.array_equal(tri.lam.numpy(), lam) and np.array_equal(tri.momentum.numpy(), mom)
        assert np.array_equal(tri.lam_mu.numpy(), lam_mu)
        torch.testing.assert_close(tri.lam, ref.lam, rtol=1e-5, atol=1e-6)
    assert (tri.lam != BayesianBinary(shape, p).lam).float().mean() > 0.9


def test_bayesbinn_kernel_compiles_for_sm90():
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    triton_updates._kernels.cache_clear()
    kern = triton_updates._kernels()["_bayesbinn"]
    sig = {k: "*fp32" for k in ("lam", "mom", "lam0", "lam_mu", "v", "w", "g", "consts")}
    sig["n"] = "i64"
    for relaxed, lagged in itertools.product((False, True), repeat=2):
        ce = {"RELAXED": relaxed, "LAGGED": lagged, "BLOCK": triton_updates.BLOCK}
        ptx = triton.compile(ASTSource(kern, dict(sig, **{k: "constexpr" for k in ce}), constexprs=ce),
                             target=GPUTarget("cuda", 90, 32),
                             options=dict(gpu.LAUNCH_OPTIONS, num_warps=triton_updates.NUM_WARPS)).asm["ptx"]
        assert not re.search(r"\bfma\.", ptx)
        assert set(re.findall(r"\b(?:div|rcp)\.[a-z0-9.]+", ptx)) == ({"div.rn.f32"} if relaxed else set())
