"""Tests that a deliberately wrong version of the code fails (issue 14's list). Each formula is written
out here independently of the library."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metaspin_snn.networks import SpikingMLP, SynapticConv2d, make_optimizer, train_step
from metaspin_snn.seed import seed_everything


def test_synaptic_conv2d_is_the_convolution_of_its_effective_weight():
    """Catches e.g. a SynapticConv2d that returns 2× its output."""
    torch.manual_seed(0)
    conv = SynapticConv2d(2, 3, 3, padding=1)
    x = torch.randn(4, 2, 6, 6)
    w = conv.raw_weight().detach() * float(conv.gain)
    want = F.conv2d(x, w, None if conv.bias is None else conv.bias.detach(), padding=1)
    torch.testing.assert_close(conv(x).detach(), want)


def test_truncated_bptt_carries_the_membrane_between_chunks():
    """Forward over chunks with the returned state equals one forward over the whole sequence, and
    the TBPTT step's loss is the mean of the chunks' losses on that carried state (catches a TBPTT
    that drops the membrane between chunks)."""
    torch.manual_seed(1)
    model = SpikingMLP([5, 7, 3], beta=0.8, threshold=0.6, output="membrane")
    x = (torch.rand(8, 4, 5) < 0.5).float()
    y = torch.tensor([0, 1, 2, 1])
    model.eval()
    with torch.no_grad():
        a = model(x[:4])
        b = model(x[4:], state=a.state)
        fresh = model(x[4:])
    assert not torch.allclose(b.logits, fresh.logits)          # the state matters here
    m = SpikingMLP([5, 7, 3], beta=0.8, threshold=0.6, output="membrane")
    m.load_state_dict(model.state_dict())
    loss = train_step(m, make_optimizer(m, lr=1e-9), x, y, tbptt=4)
    want = 0.5 * (float(F.cross_entropy(a.logits, y)) + float(F.cross_entropy(b.logits, y)))
    assert loss == pytest.approx(want, rel=1e-5)


def test_si_accumulates_omega_over_tasks():
    """Ω after two tasks = Ω₁ + Ω₂ with Ω_k = ω_k / (Δθ_k² + ξ) (catches an SI that overwrites Ω)."""
    from metaspin_snn.continual.plugins import SI, Context
    lin = torch.nn.Linear(3, 1, bias=False)
    si = SI(c=1.0, xi=0.1)
    omegas = []
    for k in range(2):
        ctx = Context(model=lin)
        si.before_task(ctx)
        start = lin.weight.detach().clone()
        step = torch.tensor([[0.1, -0.2, 0.3]]) * (k + 1)
        grad = -torch.tensor([[1.0, 2.0, 0.5]])
        with torch.no_grad():
            lin.weight.add_(step)
        lin.weight.grad = grad.clone()
        si.after_step(ctx)
        si.after_task(ctx)
        omega = -grad * step                                    # ω = −g Δθ summed over the task's one step
        omegas.append(omega / ((lin.weight.detach() - start) ** 2 + 0.1))
    (key,) = [k for k in si.big_omega]
    torch.testing.assert_close(si.big_omega[key], omegas[0] + omegas[1])


def test_synaptic_optimizer_state_round_trips():
    """load_state_dict restores the inner optimiser's moments (catches a load that does nothing)."""
    torch.manual_seed(2)
    model = SpikingMLP([4, 6, 2], bias=True, norm="batch")
    opt = make_optimizer(model, lr=1e-2)
    for _ in range(3):
        train_step(model, opt, (torch.rand(3, 5, 4) < 0.5).float(), torch.randint(0, 2, (5,)))
    fresh = make_optimizer(model, lr=1e-2)
    fresh.load_state_dict(opt.state_dict())
    a, b = opt.inner.state_dict()["state"], fresh.inner.state_dict()["state"]
    assert a and a.keys() == b.keys()
    for k in a:
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(a[k][name], b[k][name]) and float(a[k][name].abs().sum()) > 0


def test_seed_everything_uses_its_argument():
    """Two seeds give different draws in every stream, the same seed the same ones."""
    def draws(seed):
        g = seed_everything(seed)
        return (random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.rand(1, generator=g)))
    a, b, c = draws(3), draws(4), draws(3)
    assert a == c and all(x != y for x, y in zip(a, b))
