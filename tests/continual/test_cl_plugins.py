"""EWC, online EWC and SI against their formulas on tiny models."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metaspin_snn.continual import plugins as P
from metaspin_snn.continual.streams import Task
from metaspin_snn.networks.layers import SynapticLinear
from metaspin_snn.synapses.metaplastic import MetaplasticBinary, MetaplasticBinaryParams



def _on(model, ctx=None):
    """The hook context of ``model`` (a fresh one, or ``ctx`` pointed at ``model``)."""
    ctx = ctx if ctx is not None else P.Context(model=model)
    ctx.model = model
    return ctx

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 2)

    def forward(self, x, task=None):
        return SimpleNamespace(logits=self.lin(x))


def _ctx(xs, ys):
    task = Task(0, "t", torch.zeros(len(ys), 2, 2, dtype=torch.uint8), ys, torch.zeros(1, 2, 2, dtype=torch.uint8),
                ys[:1], (0, 1), (0, 1))

    def batches(bs, n):
        for i in range(0, min(n, len(ys)), bs):
            yield xs[i:i + bs], ys[i:i + bs]
    return P.Context(model=None, task=task, task_arg=None, batches=batches, loss_fn=F.cross_entropy)


def test_empirical_fisher_per_sample():
    m = Tiny()
    xs, ys = torch.randn(6, 3), torch.tensor([0, 1, 1, 0, 1, 0])
    fis = P.empirical_fisher(m, _ctx(xs, ys), n_samples=6, batch_size=1)
    ref_w = torch.zeros(2, 3)
    for i in range(6):
        m.zero_grad()
        F.cross_entropy(m.lin(xs[i:i + 1]), ys[i:i + 1]).backward()
        ref_w += m.lin.weight.grad ** 2
    assert torch.allclose(fis["lin.weight"], ref_w / 6, atol=1e-7)


def test_ewc_penalty_formula_and_online_update():
    m = Tiny()
    xs, ys = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    ewc = P.EWC(lam=10.0, fisher_samples=4, fisher_batch=2)
    assert ewc.extra_loss(_on(m)) is None
    ewc.after_task(_on(m, _ctx(xs, ys)))
    f, a = ewc.fishers[0], ewc.anchors[0]
    with torch.no_grad():
        m.lin.weight.add_(0.3)
    expect = 0.5 * 10.0 * sum((f[k] * (dict(m.named_parameters())[k].detach() - a[k]) ** 2).sum() for k in f)
    assert float(ewc.extra_loss(_on(m)).detach()) == pytest.approx(float(expect), rel=1e-6)
    assert float(expect) > 0
    # online EWC: F~ = gamma F~ + F_t, one anchor = latest parameters
    on = P.OnlineEWC(lam=1.0, gamma=0.5, fisher_samples=4, fisher_batch=2)
    on.after_task(_on(m, _ctx(xs, ys)))
    f1 = {k: v.clone() for k, v in on.fishers[0].items()}
    with torch.no_grad():
        m.lin.bias.add_(1.0)
    f2 = P.empirical_fisher(m, _ctx(xs, ys), 4, 2)
    on.after_task(_on(m, _ctx(xs, ys)))
    assert len(on.fishers) == 1 and len(on.anchors) == 1
    assert torch.allclose(on.fishers[0]["lin.bias"], 0.5 * f1["lin.bias"] + f2["lin.bias"])
    assert torch.equal(on.anchors[0]["lin.bias"], m.lin.bias.detach())


def test_si_path_integral_and_importance():
    m = Tiny()
    si = P.SI(c=2.0, xi=0.5)
    si.before_task(_on(m))
    w0 = m.lin.weight.detach().clone()
    steps = [(torch.full((2, 3), 1.0), torch.full((2, 3), -0.1)), (torch.full((2, 3), -2.0), torch.full((2, 3), 0.3))]
    omega = torch.zeros(2, 3)
    for g, d in steps:
        m.lin.weight.grad = g.clone()
        m.lin.bias.grad = torch.zeros(2)
        with torch.no_grad():
            m.lin.weight.add_(d)
        si.after_step(_on(m))
        omega -= g * d
    assert torch.allclose(si.omega["lin.weight"], omega)
    si.after_task(_on(m))
    delta = m.lin.weight.detach() - w0
    big = omega / (delta ** 2 + 0.5)
    assert torch.allclose(si.big_omega["lin.weight"], big)
    with torch.no_grad():
        m.lin.weight.add_(0.2)
    expect = 2.0 * (big * 0.2 ** 2).sum()
    assert float(si.extra_loss(_on(m)).detach()) == pytest.approx(float(expect), rel=1e-5)
    st = si.state_dict()
    si2 = P.SI(c=2.0, xi=0.5)
    si2.load_state_dict(st)
    assert float(si2.extra_loss(_on(m)).detach()) == pytest.approx(float(expect), rel=1e-5)


def test_synapse_effective_weights_are_regularised():
    lay = SynapticLinear(4, 3, synapse=lambda s: MetaplasticBinary(s, MetaplasticBinaryParams(m=1.0)))
    names = set(P.regularised_tensors(lay))
    assert "synapse.<w_eff>" in names and "bias" in names
    ewc = P.EWC(lam=1.0)
    ewc.fishers = [{k: torch.ones_like(v) for k, v in P.regularised_tensors(lay).items()}]
    ewc.anchors = [{k: torch.zeros_like(v) for k, v in P.regularised_tensors(lay).items()}]
    loss = ewc.extra_loss(_on(lay))
    loss.backward()
    w = lay.synapse.weight
    assert torch.allclose(w.grad, w.detach())   # d/dw (1/2 w^2) = w reaches the synapse's leaf


def test_make_plugin_rejects_unknown():
    assert isinstance(P.make_plugin("si", c=0.5), P.SI)
    with pytest.raises(ValueError, match="plugin_params.lambda"):
        P.make_plugin("ewc", **{"lambda": 1.0})
    with pytest.raises(ValueError, match="plugin .gem.: choose from"):
        P.make_plugin("gem")
