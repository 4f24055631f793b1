"""Neutral intermediate representation (IR) of a feed-forward spiking network, and extraction.

A network is a chain of layers, each a dense synapse followed by an snnTorch ``Leaky`` neuron
(reset_delay=True, the snnTorch default), with the dynamics of snnTorch 1.0.0
(``snntorch/_neurons/leaky.py``)::

    I[t] = W s_in[t] + b
    r[t] = H(m[t-1] - theta)                       (the previous step's spike)
    zero:      m[t] = beta * (1 - r[t]) * m[t-1] + I[t]
    subtract:  m[t] = beta * m[t-1] + I[t] - theta * r[t]
    s[t] = H(m[t] - theta)                         (H(x) = 1 if x > 0)

The first layer's input ``s_in`` is either binary spikes (``input_kind="spikes"``, uint8
[T, B, n_in]) or, with ``input_kind="graded"``, a real-valued signal x[t] (the library's
``encoding="direct"``: I0[t] = W0 x[t] + b0, e.g. pixels in [0, 1] or standardised pixels). Later
layers always receive the previous layer's binary spikes.

Every exporter (Lava, fixed point, NIR, netx) consumes this IR, so that the model side (plain
``nn.Linear`` + ``snn.Leaky`` chains, or ``metaspin_snn.networks.SpikingMLP``) is read in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

RESETS = ("zero", "subtract")
INPUT_KINDS = ("spikes", "graded")


class ExportError(ValueError):
    """A model (or a layer of it) that cannot be exported as asked."""


def _vector(value: object, n: int, what: str, where: str) -> np.ndarray:
    arr = np.asarray(value.detach().cpu().double().numpy() if torch.is_tensor(value) else value,
                     dtype=np.float64)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] not in (1, n)):
        raise ExportError(f"{where}: {what} has shape {arr.shape}, expected a scalar or [{n}]")
    arr = np.broadcast_to(arr.reshape(-1) if arr.ndim else arr, (n,)).astype(np.float64).copy()
    if not np.all(np.isfinite(arr)):
        raise ExportError(f"{where}: {what} contains NaN or inf")
    return arr


class WeightShape:
    """``in_features`` / ``out_features`` read from a ``weight [out, in]`` field."""

    weight: np.ndarray

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class LayerIR(WeightShape):
    """One layer: weight [out, in], bias [out] or None, per-neuron beta and threshold [out], reset."""

    weight: np.ndarray
    bias: np.ndarray | None
    beta: np.ndarray
    threshold: np.ndarray
    reset: str = "zero"
    name: str = "layer"

    def __post_init__(self) -> None:
        w = np.asarray(self.weight, dtype=np.float64)
        if w.ndim != 2 or w.size == 0:
            raise ExportError(f"{self.name}: weight must be a non-empty 2-D array [out, in], "
                              f"got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ExportError(f"{self.name}: weight contains NaN or inf")
        n = w.shape[0]
        object.__setattr__(self, "weight", w)
        if self.bias is not None:
            b = np.asarray(self.bias, dtype=np.float64)
            if b.shape != (n,):
                raise ExportError(f"{self.name}: bias has shape {b.shape}, expected ({n},)")
            if not np.all(np.isfinite(b)):
                raise ExportError(f"{self.name}: bias contains NaN or inf")
            object.__setattr__(self, "bias", b)
        beta = _vector(self.beta, n, "beta", self.name)
        if np.any(beta < 0) or np.any(beta > 1):
            raise ExportError(f"{self.name}: beta must lie in [0, 1], got range "
                              f"[{beta.min()}, {beta.max()}]")
        thr = _vector(self.threshold, n, "threshold", self.name)
        if np.any(thr <= 0):
            raise ExportError(f"{self.name}: threshold must be > 0, got min {thr.min()}")
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "threshold", thr)
        if self.reset not in RESETS:
            raise ExportError(f"{self.name}: reset mechanism {self.reset!r} is not supported "
                              f"(supported: {', '.join(RESETS)})")


@dataclass(frozen=True)
class LayerChain:
    """A feed-forward chain of layers (each with ``weight [out, in]``); layer k+1's input size equals
    layer k's output size. Base of :class:`NetworkIR` and ``FixedPointNetwork``."""

    layers: tuple = field(default_factory=tuple)

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not layers:
            raise ExportError(f"{type(self).__name__}: no layers")
        for prev, nxt in zip(layers[:-1], layers[1:]):
            if prev.out_features != nxt.in_features:
                raise ExportError(f"{nxt.name}: expects {nxt.in_features} inputs but {prev.name} "
                                  f"has {prev.out_features} outputs")
        object.__setattr__(self, "layers", layers)

    def __iter__(self) -> Iterator:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def sizes(self) -> list[int]:
        return [self.layers[0].in_features] + [layer.out_features for layer in self.layers]


def check_input_kind(kind: object, where: str) -> str:
    """``kind`` if it is one of :data:`INPUT_KINDS`, else :class:`ExportError`."""
    if not isinstance(kind, str) or kind not in INPUT_KINDS:
        raise ExportError(f"{where}: input kind must be one of {', '.join(map(repr, INPUT_KINDS))}, "
                          f"got {kind!r}")
    return kind


@dataclass(frozen=True)
class NetworkIR(LayerChain):
    """A chain of :class:`LayerIR`; layer k+1's input size equals layer k's output size.

    ``input_kind``: what the first layer reads, ``"spikes"`` (binary) or ``"graded"`` (real-valued,
    direct-current input)."""

    layers: tuple[LayerIR, ...] = field(default_factory=tuple)
    input_kind: str = "spikes"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_input_kind(self.input_kind, type(self).__name__)


# ----------------------------------------------------------------------------------- extraction
_IGNORED = (nn.Identity, nn.Dropout, nn.Flatten)


def _leaves(module: nn.Module, prefix: str) -> Iterable[tuple[str, nn.Module]]:
    children = list(module.named_children())
    if not children or _is_leaf(module):
        yield prefix or type(module).__name__, module
        return
    for name, child in children:
        yield from _leaves(child, f"{prefix}.{name}" if prefix else name)


def _is_leaf(module: nn.Module) -> bool:
    import snntorch as snn

    if isinstance(module, (nn.Linear, snn.SpikingNeuron)):  # a neuron's own sub-modules (RLeaky's
        return True                                            # recurrent Linear) belong to it
    return hasattr(module, "effective_weight") and hasattr(module, "in_features")


def _linear_params(name: str, module: nn.Module) -> tuple[np.ndarray, np.ndarray | None]:
    if hasattr(module, "effective_weight") and not isinstance(module, nn.Linear):
        w = module.effective_weight()
    else:
        w = module.weight
    bias = getattr(module, "bias", None)
    w_np = w.detach().cpu().double().numpy().copy()
    b_np = None if bias is None else bias.detach().cpu().double().numpy().copy()
    return w_np, b_np


def _leaky_params(name: str, module: nn.Module, n: int) -> dict:
    import snntorch as snn

    if isinstance(module, (snn.RLeaky, snn.RSynaptic)):
        raise ExportError(f"layer {name!r}: {type(module).__name__} (recurrent) is not supported: export maps "
                          "feed-forward Linear + snntorch.Leaky chains (no recurrent connections)")
    if type(module) is not snn.Leaky:
        raise ExportError(f"layer {name!r} ({type(module).__name__}) is not supported: only "
                          "snntorch.Leaky neurons can be exported")
    reset = getattr(module, "reset_mechanism", "subtract")
    if reset not in RESETS:
        raise ExportError(f"layer {name!r} (Leaky): reset_mechanism={reset!r} is not supported "
                          f"(supported: {', '.join(RESETS)})")
    if not getattr(module, "reset_delay", True):
        raise ExportError(f"layer {name!r} (Leaky): reset_delay=False is not supported "
                          "(export follows snnTorch's default reset_delay=True)")
    if getattr(module, "inhibition", False):
        raise ExportError(f"layer {name!r} (Leaky): inhibition=True is not supported")
    if getattr(module, "state_quant", False):
        raise ExportError(f"layer {name!r} (Leaky): state_quant is not supported")
    gsf = getattr(module, "graded_spikes_factor", 1.0)
    if float(torch.as_tensor(gsf).max()) != 1.0 or float(torch.as_tensor(gsf).min()) != 1.0:
        raise ExportError(f"layer {name!r} (Leaky): graded_spikes_factor != 1 is not supported")
    beta = module.beta.detach().clamp(0, 1)  # snnTorch clamps beta to [0, 1] in the state update
    return {"beta": _vector(beta, n, "beta", name),
            "threshold": _vector(module.threshold.detach(), n, "threshold", name),
            "reset": reset}


MAX_UNROLLED = 20_000_000  # entries of a conv layer unrolled into a dense matrix


def _unroll_conv(fl, in_shape: tuple, where: str) -> tuple[np.ndarray, np.ndarray | None, int]:
    """A conv stage (stride, padding, no pooling) as the equivalent dense matrix on C-order
    flattened [C, H, W] spikes: column j = the conv of the j-th unit input (exact weights)."""
    import torch.nn.functional as F

    if fl.pool > 1:
        raise ExportError(f"layer {where!r} (conv + max-pool {fl.pool}): max-pooling of synaptic "
                          "currents has no Lava / Loihi 2 Dense + LIF equivalent; train with "
                          "pool=1 to export a conv net")
    if len(in_shape) != 3:
        raise ExportError(f"layer {where!r} (conv): input shape {in_shape} is not [C, H, W]")
    w = fl.weight.detach().cpu().double()
    n_in = int(np.prod(in_shape))
    with torch.no_grad():
        probe = F.conv2d(torch.zeros(1, *in_shape, dtype=torch.float64), w, None, fl.stride,
                         fl.padding)
    n_out = probe.numel()
    if n_in * n_out > MAX_UNROLLED:
        raise ExportError(f"layer {where!r} (conv): unrolled dense matrix {n_out}x{n_in} exceeds "
                          f"{MAX_UNROLLED} entries")
    with torch.no_grad():
        basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *in_shape)
        cols = F.conv2d(basis, w, None, fl.stride, fl.padding).reshape(n_in, n_out)
    per_channel = n_out // w.shape[0]
    b = None
    if fl.bias is not None:
        b = np.repeat(fl.bias.detach().cpu().double().numpy(), per_channel)
    return cols.T.contiguous().numpy().copy(), b, per_channel


def _extract_spiking_net(model: nn.Module, task: int | None, input_kind: str) -> NetworkIR:
    """IR of a ``metaspin_snn.networks`` SpikingMLP/SpikingConvNet via its ``fold_norm`` (eval mode:
    frozen effective weights, batch norm folded into weights and biases). Conv stages without
    pooling are unrolled into dense layers (Lava Dense computes the same sums)."""
    from ..networks import fold_norm

    name = type(model).__name__
    was_training = model.training
    model.eval()
    try:
        folded = fold_norm(model, task=task, mode="weights")
    except ValueError as e:
        raise ExportError(f"{name}: {e}") from e
    finally:
        model.train(was_training)
    layers = []
    shape = tuple(model.in_shape)
    for i, (fl, st) in enumerate(zip(folded, model.stages)):
        where = f"{name}.stages[{i}]"
        if fl.reset not in RESETS:
            raise ExportError(f"layer {where!r} (Leaky): reset mechanism {fl.reset!r} is not "
                              f"supported (supported: {', '.join(RESETS)}; output='membrane' "
                              "models have a non-resetting read-out stage)")
        if fl.kind == "conv":
            w, b, per_channel = _unroll_conv(fl, shape, where)
            out_shape = tuple(st.out_shape)
        elif fl.kind == "linear":
            w = fl.weight.detach().cpu().double().numpy().copy()
            b = fl.bias.detach().cpu().double().numpy().copy() if fl.bias is not None else None
            per_channel, out_shape = 1, (w.shape[0],)
        else:
            raise ExportError(f"layer {where!r} ({fl.kind}) is not supported")
        if b is not None and not np.any(b):
            b = None
        n = w.shape[0]
        beta, thr = (np.asarray(v.detach().cpu().double().numpy()) for v in
                     (fl.beta.clamp(0, 1), fl.threshold))
        beta, thr = (np.repeat(v.reshape(-1), per_channel) if v.size > 1 and v.size * per_channel
                     == n else v for v in (beta, thr))
        layers.append(LayerIR(w, b, _vector(beta, n, "beta", where),
                              _vector(thr, n, "threshold", where), fl.reset, name=where))
        shape = out_shape
    return NetworkIR(tuple(layers), input_kind=input_kind)


def extract_ir(model: nn.Module, task: int | None = None, input: str = "spikes") -> NetworkIR:
    """Read a frozen :class:`NetworkIR` from a spiking model.

    ``input``: ``"spikes"`` (binary input spikes, e.g. rate / latency encoding) or ``"graded"``
    (the first layer reads real-valued inputs every step, as with ``encoding="direct"``); recorded
    as ``NetworkIR.input_kind``.

    ``metaspin_snn.networks`` models (``stages`` + ``layers()``) are read through ``fold_norm``
    (``task`` picks the head / norm set). Otherwise a Sequential-like chain is accepted, in forward
    order: ``nn.Linear`` (or any module with ``effective_weight()``, e.g.
    ``SynapticLinear``, whose frozen effective weight is used) each followed by one
    ``snntorch.Leaky``; ``nn.Flatten``/``nn.Dropout``/``nn.Identity`` are skipped (eval semantics).
    Anything else raises :class:`ExportError` naming the layer.
    """
    if not isinstance(model, nn.Module):
        raise ExportError(f"extract_ir expects a torch nn.Module, got {type(model).__name__}")
    check_input_kind(input, "extract_ir")
    if hasattr(model, "stages") and hasattr(model, "layers") and callable(model.layers):
        return _extract_spiking_net(model, task, input)
    import snntorch as snn

    layers: list[LayerIR] = []
    pending: tuple[str, np.ndarray, np.ndarray | None] | None = None
    for name, module in _leaves(model, ""):
        if isinstance(module, _IGNORED):
            continue
        if isinstance(module, snn.Leaky) or isinstance(module, snn.SpikingNeuron):
            if pending is None:
                raise ExportError(f"layer {name!r} ({type(module).__name__}) has no preceding "
                                  "Linear layer")
            lname, w, b = pending
            params = _leaky_params(name, module, w.shape[0])
            layers.append(LayerIR(w, b, name=f"{lname}+{name}", **params))
            pending = None
        elif isinstance(module, nn.Linear) or (hasattr(module, "effective_weight")
                                               and hasattr(module, "in_features")):
            if pending is not None:
                raise ExportError(f"layer {name!r} ({type(module).__name__}) follows "
                                  f"{pending[0]!r} without a Leaky neuron in between")
            w, b = _linear_params(name, module)
            pending = (name, w, b)
        else:
            raise ExportError(f"layer {name!r} ({type(module).__name__}) is not supported: "
                              "export handles Linear/SynapticLinear + snntorch.Leaky chains")
    if pending is not None:
        raise ExportError(f"layer {pending[0]!r} (Linear) is not followed by a Leaky neuron: "
                          "the output layer must be spiking")
    if not layers:
        raise ExportError(f"{type(model).__name__}: no Linear + Leaky layers found")
    return NetworkIR(tuple(layers), input_kind=input)


# ------------------------------------------------------------------------------- float reference
def check_spikes(spikes: np.ndarray | torch.Tensor, n_in: int, where: str = "input") -> np.ndarray:
    """Validate a binary spike array [T, B, n_in] and return it as uint8."""
    x = spikes.detach().cpu().numpy() if torch.is_tensor(spikes) else np.asarray(spikes)
    if x.ndim != 3 or x.shape[2] != n_in or x.shape[0] == 0 or x.shape[1] == 0:
        raise ExportError(f"{where}: expected spikes of shape [T, B, {n_in}], got {x.shape}")
    if not np.all((x == 0) | (x == 1)):
        raise ExportError(f"{where}: spikes must be binary (0/1); this network reads spike inputs "
                          "(for real-valued inputs extract the IR with input='graded')")
    return x.astype(np.uint8)


def check_graded(values: np.ndarray | torch.Tensor, n_in: int, where: str = "input") -> np.ndarray:
    """Validate a real-valued (graded) input array [T, B, n_in]: finite numbers; returns float64."""
    x = values.detach().cpu().numpy() if torch.is_tensor(values) else np.asarray(values)
    if x.ndim != 3 or x.shape[2] != n_in or x.shape[0] == 0 or x.shape[1] == 0:
        raise ExportError(f"{where}: expected graded inputs of shape [T, B, {n_in}], got {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
        raise ExportError(f"{where}: graded inputs must be real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ExportError(f"{where}: graded inputs contain NaN or inf")
    return x


def check_inputs(inputs: np.ndarray | torch.Tensor, n_in: int, input_kind: str,
                 where: str = "input") -> np.ndarray:
    """Validate the first layer's inputs [T, B, n_in] for ``input_kind``: binary spikes → uint8
    (:func:`check_spikes`), graded → float64 (:func:`check_graded`)."""
    if check_input_kind(input_kind, where) == "graded":
        return check_graded(inputs, n_in, where)
    return check_spikes(inputs, n_in, where)


def simulate_snntorch(ir: NetworkIR, spikes: np.ndarray | torch.Tensor) -> list[np.ndarray]:
    """Run the IR with real ``snntorch.Leaky`` neurons in float64; each layer's spikes [T, B, out].

    ``spikes`` [T, B, in]: binary spikes, or real values when ``ir.input_kind == "graded"``
    (then I0[t] = W0 x[t] + b0)."""
    import snntorch as snn

    if not isinstance(ir, NetworkIR):
        raise ExportError(f"simulate_snntorch expects a NetworkIR, got {type(ir).__name__}")
    x = torch.from_numpy(check_inputs(spikes, ir.layers[0].in_features, ir.input_kind)
                         .astype(np.float64))
    fcs, neurons = [], []
    for layer in ir:
        fc = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                       dtype=torch.float64)
        with torch.no_grad():
            fc.weight.copy_(torch.from_numpy(layer.weight))
            if layer.bias is not None:
                fc.bias.copy_(torch.from_numpy(layer.bias))
        lif = snn.Leaky(beta=torch.from_numpy(layer.beta), threshold=torch.from_numpy(layer.threshold),
                        reset_mechanism=layer.reset)
        fcs.append(fc)
        neurons.append(lif)
    out: list[list[torch.Tensor]] = [[] for _ in ir.layers]
    mems = [lif.init_leaky() for lif in neurons]
    with torch.no_grad():
        for t in range(x.shape[0]):
            s = x[t]
            for k, (fc, lif) in enumerate(zip(fcs, neurons)):
                s, mems[k] = lif(fc(s), mems[k])
                s = s.to(torch.float64)  # snnTorch's Heaviside returns float32 spikes
                out[k].append(s)
    return [torch.stack(o).numpy().astype(np.uint8) for o in out]
