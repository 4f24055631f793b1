"""Tiny spiking nets learn real MNIST (2000 train / 500 test) with every layer type and synapse model."""
from __future__ import annotations

import pytest
import torch

from metaspin_snn.data.encoding import rate
from metaspin_snn.networks import SpikingConvNet, SpikingMLP, evaluate, make_optimizer, train_step
from metaspin_snn.synapses.registry import synapse_factory
from metaspin_snn.seed import seed_everything


def _fit(model, mnist_small, *, steps=30, batch=64, T=6, image=False, lr=5e-3, loss="ce"):
    xtr, ytr, xte, yte = mnist_small
    gen = torch.Generator().manual_seed(0)
    opt = make_optimizer(model, lr=lr)
    losses = []
    for s in range(steps):
        i = torch.arange(s * batch, (s + 1) * batch) % len(ytr)
        xb = rate(xtr[i], T, generator=gen)
        if image:
            xb = xb.reshape(T, batch, 1, 28, 28)
        losses.append(train_step(model, opt, xb, ytr[i], loss=loss))
    tgen = torch.Generator().manual_seed(1)

    def batches():
        for j in range(0, len(yte), 250):
            xb = rate(xte[j:j + 250], T, generator=tgen)
            yield (xb.reshape(T, -1, 1, 28, 28) if image else xb), yte[j:j + 250]

    return losses, evaluate(model, batches())


def _check_learned(losses, res, min_acc):
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first, (first, last)
    assert res.n == 500
    assert res.accuracy > min_acc, res
    assert len(res.spikes_per_sample) == 2 and res.spikes_per_sample[0] > 0


@pytest.mark.parametrize("toy", [False, True])
def test_mlp_learns_mnist(mnist_small, toy_sign, toy):
    seed_everything(0)
    model = SpikingMLP([784, 64, 10], synapse=toy_sign if toy else None, norm="batch" if toy else None)
    losses, res = _fit(model, mnist_small)
    _check_learned(losses, res, 0.4 if toy else 0.6)  # chance is 0.1 (measured here: 0.55 / 0.81)


@pytest.mark.parametrize("toy", [False, True])
def test_convnet_learns_mnist(mnist_small, toy_sign, toy):
    seed_everything(0)
    model = SpikingConvNet((1, 28, 28), 10, channels=(6,), kernel_size=5, pool=4,
                           synapse=toy_sign if toy else None, norm="batch" if toy else None)
    losses, res = _fit(model, mnist_small, image=True)
    _check_learned(losses, res, 0.4 if toy else 0.6)  # measured here: 0.57 / 0.75


def test_rate_loss_and_membrane_output_learn(mnist_small):
    seed_everything(0)
    model = SpikingMLP([784, 64, 10], output="membrane", norm="batch")
    losses, res = _fit(model, mnist_small)
    _check_learned(losses, res, 0.6)  # measured here: 0.85
    seed_everything(0)
    model = SpikingMLP([784, 64, 10])
    losses, res = _fit(model, mnist_small, loss="rate")
    _check_learned(losses, res, 0.6)  # measured here: 0.77


from metaspin_snn.synapses.registry import default_synapse_params  # noqa: E402

# Per-model settings for a 40-step CPU test (the models' defaults are tuned for long runs / devices).
SYNAPSE_TEST_PARAMS = {
    "metaplastic": {},
    "mesu": {"lr_mu": 30.0, "lr_sigma": 30.0},
    "bayesbinn": {"lr": 1e-2, "n_data": 2000.0},
    "mtj": default_synapse_params("mtj", 2000, 50),  # the runner's controller defaults
    "magnetoionic": {"lr": 100.0},
}


@pytest.mark.parametrize("name", sorted(SYNAPSE_TEST_PARAMS))
def test_each_synapse_model_learns_mnist(mnist_small, name):
    seed_everything(0)
    factory = synapse_factory(name, seed=0, **SYNAPSE_TEST_PARAMS[name])
    model = SpikingMLP([784, 64, 10], synapse=factory, norm="batch")
    losses, res = _fit(model, mnist_small)
    _check_learned(losses, res, 0.3)  # chance 0.1; measured here: 0.56 (BayesBiNN) to 0.78


def test_synapse_factory_errors():
    assert synapse_factory("real") is None
    with pytest.raises(ValueError, match="unknown synapse"):
        synapse_factory("quantum")
    with pytest.raises(ValueError, match="unknown parameter"):
        synapse_factory("metaplastic", nonsense=1)
    f = synapse_factory("metaplastic", seed=3)
    a, b = f((4, 5)), f((4, 5))
    assert not torch.equal(a.hidden(), b.hidden())  # each layer gets its own seed
