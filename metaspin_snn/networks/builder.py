"""``build_model(spec)``: the one builder of the library's spiking networks from a plain, JSON-able
spec, so that a checkpoint can rebuild the network it was saved from.

A spec is a dict (see :func:`model_spec`)::

    {"arch": "mlp" | "conv", "in_shape": [C, H, W] or [n], "n_outputs": int,
     "hidden": [...], "channels": [...],              # MLP hidden sizes / conv channels
     "synapse": name, "synapse_params": {...}, "seed": int,   # synapses.registry; layer seed = seed·1000 + i
     "net": {beta, threshold, reset, norm, n_norm_sets, heads, output, gain, bias, neuron, norm_params}}

``arch = "mlp"`` builds :class:`~metaspin_snn.networks.SpikingMLP` on the flattened input
``[prod(in_shape), *hidden, n_outputs]``; ``"conv"`` builds :class:`~metaspin_snn.networks.SpikingConvNet`.
"""
from __future__ import annotations

import json
import math
from typing import Any, Sequence

from torch import nn

from ..synapses.registry import config_synapse_factories
from .models import SpikingConvNet, SpikingMLP

ARCHS = ("mlp", "conv")
SPEC_KEYS = ("arch", "in_shape", "n_outputs", "hidden", "channels", "synapse", "synapse_params", "seed", "net")
NET_KEYS = ("beta", "threshold", "reset", "norm", "n_norm_sets", "heads", "output", "gain", "bias", "neuron",
            "norm_params")


def model_spec(arch: str, in_shape: Sequence[int], n_outputs: int, *, hidden: Sequence[int] = (512,),
               channels: Sequence[int] = (12, 32), synapse: str = "real", synapse_params: dict | None = None,
               seed: int = 0, **net: Any) -> dict[str, Any]:
    """A checked, JSON-able spec (``net``: keyword arguments of the network class, ``NET_KEYS``)."""
    bad = set(net) - set(NET_KEYS)
    if bad:
        raise ValueError(f"model_spec: unknown network option {sorted(bad)[0]!r} (known: {', '.join(NET_KEYS)})")
    spec = {"arch": arch, "in_shape": [int(s) for s in in_shape], "n_outputs": int(n_outputs),
            "hidden": [int(h) for h in hidden], "channels": [int(c) for c in channels], "synapse": synapse,
            "synapse_params": dict(synapse_params or {}), "seed": int(seed), "net": dict(net)}
    json.dumps(spec)  # must be plain data (it is stored in checkpoints)
    return spec


def n_synapse_layers(spec: dict[str, Any]) -> int:
    """Number of weight layers: hidden (or conv) layers + the readout."""
    return len(spec["hidden"] if spec["arch"] == "mlp" else spec["channels"]) + 1


def build_model(spec: dict[str, Any]) -> nn.Module:
    """The network a :func:`model_spec` describes (its synapse models built by
    :func:`~metaspin_snn.synapses.registry.layer_synapse_factories`). Errors name the spec key."""
    if not isinstance(spec, dict):
        raise ValueError(f"build_model: spec must be a dict, got {type(spec).__name__}")
    missing = [k for k in SPEC_KEYS if k not in spec]
    if missing:
        raise ValueError(f"build_model: spec lacks {', '.join(missing)}")
    if spec["arch"] not in ARCHS:
        raise ValueError(f"build_model: arch must be one of {ARCHS}, got {spec['arch']!r}")
    net = dict(spec["net"])
    if net.get("norm_params") == {}:
        net["norm_params"] = None
    syn = config_synapse_factories(spec["synapse"], n_synapse_layers(spec), int(spec["seed"]), **spec["synapse_params"])
    in_shape = tuple(int(s) for s in spec["in_shape"])
    if spec["arch"] == "conv":
        return SpikingConvNet(in_shape, int(spec["n_outputs"]), channels=tuple(spec["channels"]), synapse=syn,
                              **net)
    return SpikingMLP([math.prod(in_shape), *spec["hidden"], int(spec["n_outputs"])], synapse=syn, **net)
