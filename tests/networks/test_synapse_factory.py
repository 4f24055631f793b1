"""The shared synapse-factory code path: per-layer list values, seeds, and errors that name the key."""
import pickle

import pytest
import torch

from metaspin_snn.continual.runner import synapse_factory as config_synapse_factory
from metaspin_snn.networks import SpikingMLP
from metaspin_snn.synapses.registry import SynapseParamsError, layer_synapse_factories, synapse_factory


def test_per_layer_list_values_and_layer_seeds():
    facs = layer_synapse_factories("metaplastic", 3, seed=2, m=[0.0, 1.0, 3.0], betas=[0.8, 0.9], lr=0.01)
    ps = [f.params for f in facs]
    assert [p.m for p in ps] == [0.0, 1.0, 3.0]               # a list for a scalar field: one per layer
    assert all(p.betas == (0.8, 0.9) and p.lr == 0.01 for p in ps)  # a list for a tuple field: shared
    assert [p.seed for p in ps] == [2000, 2001, 2002]
    assert pickle.loads(pickle.dumps(facs[1])).params == ps[1]
    assert layer_synapse_factories("real", 3) is None


def test_single_factory_matches_per_layer_factories():
    """k-th call of ``synapse_factory`` = layer k of ``layer_synapse_factories`` (same seed, same values)."""
    one = synapse_factory("metaplastic", seed=4, m=[1.0, 2.0])
    per = layer_synapse_factories("metaplastic", 2, seed=4, m=[1.0, 2.0])
    for f in per:
        a, b = one((6, 5)), f((6, 5))
        assert a.params == b.params and torch.equal(a.hidden(), b.hidden())
    with pytest.raises(SynapseParamsError, match=r"synapse_params\.m: 2 per-layer values, no value for layer 2"):
        one((6, 5))
    net = SpikingMLP([8, 6, 4], synapse=synapse_factory("metaplastic", seed=0, m=[0.5, 4.0]))
    assert [lay.synapse.params.m for lay in net.layers()] == [0.5, 4.0]


@pytest.mark.parametrize("params,message", [
    ({"m": [1.0, 2.0]}, r"^synapse_params\.m: 2 per-layer values for 3 layers$"),
    ({"foo": 1.0}, r"^synapse_params\.foo: unknown parameter of MetaplasticBinaryParams \(known: lr, "),
    ({"m": [0.0, -1.0, 0.0]}, r"^synapse_params \(layer 1\): .*MetaplasticBinaryParams\.m"),
])
def test_errors_name_the_parameter(params, message):
    with pytest.raises(SynapseParamsError, match=message):
        layer_synapse_factories("metaplastic", 3, **params)
    prefixed = "^config key '" + message[1:].replace(r"synapse_params\.m:", r"synapse_params\.m':") \
        .replace(r"synapse_params\.foo:", r"synapse_params\.foo':").replace(r"synapse_params \(", r"synapse_params' \(")
    with pytest.raises(ValueError, match=prefixed):
        config_synapse_factory("metaplastic", 3, **params)


def test_name_errors():
    with pytest.raises(ValueError, match="unknown synapse 'quantum'"):
        layer_synapse_factories("quantum", 2)
    with pytest.raises(ValueError, match="^config key 'synapse': unknown synapse 'quantum'"):
        config_synapse_factory("quantum", 2)
    with pytest.raises(SynapseParamsError, match=r"^synapse_params\.m: synapse 'real' takes no parameters"):
        synapse_factory("real", m=1.0)
    with pytest.raises(ValueError, match=r"^config key 'synapse_params\.m': synapse 'real' takes no parameters"):
        config_synapse_factory("real", 2, m=1.0)
