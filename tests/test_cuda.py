"""The torch paths on a CUDA device, held equal to the CPU (Numba kernels, fast LIF path, runner).

Skipped where torch sees no GPU (CI); run on a GPU machine with ``python -m pytest -q tests/test_cuda.py``.
Random draws differ between a CPU and a CUDA generator, so stochastic models are compared one update
at a time from the same sample (ε for MESU, the relaxed weight for BayesBiNN)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from metaspin_snn.continual.config import RunConfig
from metaspin_snn.continual.runner import run_stream
from metaspin_snn.networks import SpikingMLP
from metaspin_snn.synapses.registry import synapse_factory
from metaspin_snn.synapses import (MESU, BayesianBinary, BayesianBinaryParams, MESUParams, MetaplasticBinary,
                                   MetaplasticBinaryParams)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _pair(cls, params, shape=(64, 48)):
    a = cls(shape, params, backend="numba")
    c = cls(shape, params, backend="torch").cuda()
    c.load_state_dict(a.state_dict())
    return a, c


@cuda
@pytest.mark.parametrize("m", [0.0, 1.35, 5.0])
def test_metaplastic_binary_cuda_equals_numba(m):
    a, c = _pair(MetaplasticBinary, MetaplasticBinaryParams(m=m, lr=0.01))
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        g = torch.randn(a.shape, generator=gen)
        a.effective_weight(), c.effective_weight()
        a.update(g)
        c.update(g.cuda())
    torch.testing.assert_close(c.hidden().cpu(), a.hidden(), rtol=1e-5, atol=1e-6)
    assert torch.equal(c.effective_weight().detach().cpu(), a.effective_weight().detach())


def _steps_from_same_sample(a, c, copy_sample, seed: int, n: int = 20) -> None:
    """``n`` updates of the CPU model ``a`` and the CUDA model ``c`` from the same sample and gradient."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        a.refresh(sample=True)
        c.refresh(sample=True)
        with torch.no_grad():
            copy_sample(a, c)
        g = 0.1 * torch.randn(a.shape, generator=gen)
        a.update(g)
        c.update(g.cuda())


@cuda
def test_mesu_cuda_equals_numba_from_same_sample():
    a, c = _pair(MESU, MESUParams(N=1e4))
    _steps_from_same_sample(a, c, lambda a, c: c.noise.copy_(a.noise.cuda()), seed=1)
    torch.testing.assert_close(c.mu.cpu(), a.mu, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c.sigma.cpu(), a.sigma, rtol=1e-5, atol=1e-7)


@cuda
def test_bayesbinn_cuda_equals_numba_from_same_sample():
    a, c = _pair(BayesianBinary, BayesianBinaryParams(n_data=1000.0))
    _steps_from_same_sample(a, c, lambda a, c: c.weight.copy_(a.weight.cuda()), seed=2)
    torch.testing.assert_close(c.lam.cpu(), a.lam, rtol=1e-4, atol=1e-5)
    # the drive n·g·(1 − w²)/τ cancels catastrophically where |w| → 1, so GPU and CPU tanh/log roundings
    # differ there by up to ~6e-4 relative (seen on an H200: 9 of 3,072 entries above 1e-4)
    torch.testing.assert_close(c.momentum.cpu(), a.momentum, rtol=2e-3, atol=1e-5)


@cuda
def test_spiking_mlp_cuda_matches_cpu_fast_path():
    """Same weights, same input: the CUDA network (snnTorch-style stepping) gives the CPU fast path's
    spikes (up to threshold ties) and gradients."""
    torch.manual_seed(0)
    syn = synapse_factory("metaplastic", seed=3, m=1.0)
    cpu = SpikingMLP([100, 64, 10], synapse=syn, bias=False)
    gpu = SpikingMLP([100, 64, 10], synapse=syn, bias=False).cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = (torch.rand(6, 32, 100) < 0.3).float()
    oc, og = cpu(x), gpu(x.cuda())
    agree = (oc.logits == og.logits.cpu()).float().mean().item()
    assert agree > 0.99
    tgt = torch.randint(0, 10, (32,))
    torch.nn.functional.cross_entropy(oc.logits, tgt).backward()
    torch.nn.functional.cross_entropy(og.logits, tgt.cuda()).backward()
    for (n, mc), (_, mg) in zip(cpu.named_modules(), gpu.named_modules()):
        if isinstance(mc, MetaplasticBinary):
            torch.testing.assert_close(mg.weight.grad.cpu(), mc.weight.grad, rtol=1e-3, atol=1e-4, msg=n)


@cuda
def test_runner_on_cuda_close_to_cpu(tmp_path, data_root):
    kw = dict(stream="pmnist", n_tasks=2, train_subset=500, test_subset=300, hidden=[64], num_steps=3,
              batch_size=50, eval_batch_size=300, progress=False, synapse="metaplastic",
              synapse_params={"m": 1.0}, data_root=str(data_root), checkpoint=True)
    rc = run_stream(RunConfig(**kw, out=str(tmp_path / "cpu")))
    rg = run_stream(RunConfig(**kw, device="cuda", out=str(tmp_path / "gpu")))
    assert np.abs(np.array(rg.matrix) - np.array(rc.matrix)).max() < 0.05
    # a checkpoint written on the GPU resumes on the CPU
    from metaspin_snn.networks import read_checkpoint
    ck = read_checkpoint(tmp_path / "gpu" / "checkpoint.pt")
    assert ck["next_task"] == 2


def test_device_key_validated():
    with pytest.raises(ValueError, match="'device'"):
        RunConfig(device="gpu")
    with pytest.raises(ValueError, match="'device'"):
        RunConfig(device="cuda", learner="online", num_steps=10)
    assert RunConfig(device="cuda:1").device == "cuda:1"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where no GPU exists")
def test_cuda_requested_without_gpu_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="config key 'device'.*no CUDA device"):
        run_stream(RunConfig(n_tasks=2, train_subset=50, test_subset=50, hidden=[8], device="cuda",
                             progress=False, out=str(tmp_path / "x")))


@cuda
@pytest.mark.parametrize("surr", ["atan", "fast_sigmoid", "sigmoid"])
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
def test_triton_scan_on_cuda_equals_the_torch_recursion(surr, reset):
    """On the GPU the Triton scan (the default there) gives the torch recursion's spikes, membrane and
    ∂L/∂I to the bit (no FMA, correctly rounded divisions), per-neuron β/θ included, and the CPU Numba
    kernel's spikes and membrane."""
    import snntorch as snn

    from metaspin_snn import gpu
    from metaspin_snn.networks import leaky_scan, make_leaky
    from metaspin_snn.networks.lif import scan_backend
    if not gpu.available():
        pytest.skip("Triton is not installed")
    torch.manual_seed(5)
    fn = {"atan": snn.surrogate.atan(alpha=3.0), "fast_sigmoid": snn.surrogate.fast_sigmoid(slope=10),
          "sigmoid": snn.surrogate.sigmoid(slope=5)}[surr]
    for beta, thr in ((0.8, 0.9), (torch.rand(700) * 0.6 + 0.3, torch.rand(700) + 0.5)):
        lif = make_leaky(beta, thr, reset, fn, learn_beta=True, learn_threshold=True).cuda()
        cur = (torch.randn(60, 3, 700, device="cuda") * 0.7 + 0.3).requires_grad_(True)
        w1, w2 = torch.randn_like(cur), torch.randn_like(cur)
        assert scan_backend(cur, lif.beta, lif.threshold) == "triton"
        out = []
        for be in ("auto", "torch"):
            cur.grad = None
            for p in lif.parameters():
                p.grad = None
            s, m = leaky_scan(cur, lif, backend=be)
            ((s * w1).sum() + (m * w2).sum()).backward()
            out.append((s.detach(), m.detach(), cur.grad.clone(), [p.grad.clone() for p in lif.parameters()]))
        (s1, m1, g1, p1), (s2, m2, g2, p2) = out
        assert torch.equal(s1, s2) and torch.equal(m1, m2) and torch.equal(g1, g2)
        assert 0 < float(s1.mean()) < 1
        for a, b in zip(p1, p2):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)
        if isinstance(beta, float):  # the CPU kernel: same recursion, same roundings
            lc = make_leaky(beta, thr, reset, fn)
            sc, mc = leaky_scan(cur.detach().cpu(), lc)
            assert torch.equal(sc, s1.cpu()) and torch.equal(mc, m1.cpu())


@cuda
@pytest.mark.parametrize("shrink", [False, True])
def test_mesu_triton_on_cuda_equals_the_torch_reference(shrink):
    """On the GPU MESU's default backend is the fused Triton kernel; from the same ε and gradients it
    leaves μ and σ equal to the torch reference's to the bit (one sample and three accumulated)."""
    from metaspin_snn import gpu
    if not gpu.available():
        pytest.skip("Triton is not installed")
    p = MESUParams(N=50.0, sigma_prior=0.3, shrink_only=shrink, seed=4)
    a, b = MESU((300, 257), p).cuda(), MESU((300, 257), p, backend="torch").cuda()
    gen = torch.Generator().manual_seed(1)
    for samples in (1, 3, 1):
        for _ in range(samples):
            g = (torch.randn(300, 257, generator=gen) * 3.0).cuda()
            for m in (a, b):
                m.refresh(sample=True)
            b.noise.copy_(a.noise)
            if samples > 1:
                a.accumulate(g)
                b.accumulate(g)
        assert a.use_triton(g) and not b.use_triton(g)
        for m in (a, b):
            m.update(None if samples > 1 else g)
        assert torch.equal(a.mu, b.mu) and torch.equal(a.sigma, b.sigma)


@cuda
def test_metaplastic_triton_on_cuda_close_to_the_reference():
    """On the GPU MetaplasticBinary's default backend is the fused Triton kernel; it agrees with the
    torch reference on the GPU and with the Numba kernel to float32 rounding (f_meta is formed
    without cancellation there, as in the Numba kernel)."""
    from metaspin_snn import gpu
    if not gpu.available():
        pytest.skip("Triton is not installed")
    p = MetaplasticBinaryParams(m=3.0, lr=0.01)
    a = MetaplasticBinary((300, 257), p)
    c, r = MetaplasticBinary((300, 257), p).cuda(), MetaplasticBinary((300, 257), p, backend="torch").cuda()
    gen = torch.Generator().manual_seed(2)
    for _ in range(5):
        g = torch.randn(300, 257, generator=gen)
        a.update(g)
        c.update(g.cuda())
        r.update(g.cuda())
    assert c.use_triton(g.cuda()) and not r.use_triton(g.cuda())
    for other in (r.hidden_weight.cpu(), a.hidden_weight):
        torch.testing.assert_close(c.hidden_weight.cpu(), other, rtol=1e-5, atol=1e-6)


@cuda
@pytest.mark.parametrize("lagged", [True, False])
def test_bayesbinn_triton_on_cuda_equals_the_torch_reference(lagged):
    """On the GPU BayesianBinary's default backend is the fused Triton kernel (v = 1 − μ² from torch's
    float64 tanh, as on every path); from the same samples and gradients it leaves λ, momentum and λ_μ
    equal to the eager CUDA reference to the bit (its tensor/scalar divisions are reciprocal products)."""
    from metaspin_snn import gpu
    if not gpu.available():
        pytest.skip("Triton is not installed")
    p = BayesianBinaryParams(lr=0.05, beta=0.9, tau=0.5, n_data=100.0, lambda_init=1.0, lambda_std=0.5,
                             lagged_mu=lagged, seed=6)
    a, b = BayesianBinary((300, 257), p).cuda(), BayesianBinary((300, 257), p, backend="torch").cuda()
    gen = torch.Generator().manual_seed(7)
    for t in range(5):
        for m in (a, b):
            m.train(t != 3)
            m.refresh()
        b.weight.data.copy_(a.weight.detach())
        g = (torch.randn(300, 257, generator=gen) * 0.01).cuda()
        assert a.use_triton(g) and not b.use_triton(g)
        a.update(g)
        b.update(g)
        for x, y in ((a.lam, b.lam), (a.momentum, b.momentum), (a.lam_mu, b.lam_mu)):
            assert torch.equal(x, y), t
