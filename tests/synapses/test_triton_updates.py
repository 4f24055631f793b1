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
from metaspin_snn.synapses import MESU, MESUParams, MetaplasticBinary
from metaspin_snn.synapses import triton_updates

pytestmark = pytest.mark.skipif(not gpu.available(), reason="Triton is not installed")


@pytest.fixture
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    triton_updates._kernels.cache_clear()
    yield
    triton_updates._kernels.cache_clear()


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
        MetaplasticBinary((4, 5), backend="triton")
    with pytest.raises(ValueError, match="backend must be one of"):
        MESU((4, 5), backend="cuda")
    auto = MESU((4, 5))  # on the CPU "auto" stays with the Numba kernel, even under the interpreter
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert auto.use_numba(torch.ones(4, 5)) and not auto.use_triton(torch.ones(4, 5))


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
                             options=dict(gpu.LAUNCH_OPTIONS)).asm["ptx"]
        assert ".target sm_90" in ptx
        assert not re.search(r"\bfma\.", ptx)
        assert set(re.findall(r"\b(?:div|rcp)\.[a-z0-9.]+", ptx)) == {"div.rn.f32"}
