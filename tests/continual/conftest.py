"""Shared fixtures for the continual-learning tests.

Until ``metaspin_snn.networks`` provides ``SpikingMLP``/``evaluate``/``make_optimizer`` (written in
parallel), a minimal stand-in with the same API is patched in; once the real one exists it is used."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn


def _standin():
    from metaspin_snn.networks.layers import SynapticLinear
    from metaspin_snn.networks.lif import leaky_scan, make_leaky
    from metaspin_snn.synapses.optim import SynapticOptimizer

    @dataclass
    class NetOutput:
        logits: torch.Tensor
        spikes: list
        membrane: torch.Tensor

    @dataclass
    class EvalResult:
        accuracy: float
        loss: float
        n: int
        spikes_per_sample: list

    class SpikingMLP(nn.Module):
        def __init__(self, sizes, *, beta=0.9, threshold=1.0, reset="zero", synapse=None, norm=None,
                     n_norm_sets=1, heads=1, output="count", fast=True, gain=None):
            super().__init__()
            n = len(sizes) - 1
            syn = synapse if isinstance(synapse, list) else [synapse] * n
            self.layers = nn.ModuleList([SynapticLinear(sizes[i], sizes[i + 1], synapse=syn[i], gain=gain)
                                         for i in range(n - 1)])
            self.heads = nn.ModuleList([SynapticLinear(sizes[-2], sizes[-1], synapse=syn[-1], gain=gain)
                                        for _ in range(heads)])
            self.norms = (nn.ModuleList([nn.ModuleList([nn.BatchNorm1d(sizes[i + 1]) for _ in range(n_norm_sets)])
                                         for i in range(n - 1)]) if norm == "batch" else None)
            self.lifs = nn.ModuleList([make_leaky(beta, threshold, reset) for _ in range(n)])
            self.output = output

        def forward(self, x, task=None):
            T, B = x.shape[:2]
            spikes, h = [], x
            for i, lay in enumerate(self.layers):
                cur = lay(h.reshape(T * B, -1))
                if self.norms is not None:
                    cur = self.norms[i][task or 0](cur)
                s, _ = leaky_scan(cur.reshape(T, B, -1), self.lifs[i])
                spikes.append(s.sum(0))
                h = s
            head = self.heads[task or 0] if len(self.heads) > 1 else self.heads[0]
            s, m = leaky_scan(head(h.reshape(T * B, -1)).reshape(T, B, -1), self.lifs[-1])
            spikes.append(s.sum(0))
            return NetOutput(s.sum(0) if self.output == "count" else m[-1], spikes, m)

    def make_optimizer(model, lr=1e-3, kind="adam"):
        return SynapticOptimizer(model, lambda ps: torch.optim.Adam(ps, lr=lr) if kind == "adam"
                                 else torch.optim.SGD(ps, lr=lr))

    @torch.no_grad()
    def evaluate(model, batches, *, task=None):
        c = n = 0
        tl, sp = 0.0, None
        for x, y in batches:
            o = model(x, task=task)
            c += int((o.logits.argmax(1) == y).sum())
            n += len(y)
            tl += float(F.cross_entropy(o.logits, y, reduction="sum"))
            s = [float(t.sum()) for t in o.spikes]
            sp = s if sp is None else [a + b for a, b in zip(sp, s)]
        return EvalResult(c / n, tl / n, n, [v / n for v in sp])

    return dict(SpikingMLP=SpikingMLP, NetOutput=NetOutput, EvalResult=EvalResult, evaluate=evaluate,
                make_optimizer=make_optimizer)


@pytest.fixture(autouse=True)
def networks_api(monkeypatch):
    import metaspin_snn.networks as nets
    if not hasattr(nets, "SpikingMLP"):
        for k, v in _standin().items():
            monkeypatch.setattr(nets, k, v, raising=False)
    yield nets
