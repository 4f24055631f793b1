"""Build a Lava process graph (RingBuffer source → Dense + LIF per layer → RingBuffer sinks).

Imports only numpy and Lava (it runs inside the isolated Lava worker). The network comes as a plain
dict of arrays (see :func:`metaspin_snn.export.lava.network_arrays`)::

    kind: "float" | "fixed";  n_layers;  per layer k:
    L{k}.weight [out, in], L{k}.bias [out] (absent: no bias), L{k}.beta, L{k}.dv, L{k}.du, L{k}.vth
    [out], L{k}.subtract (0/1), L{k}.weight_exp (fixed only)
    input_kind: "spikes" | "graded" (absent: "spikes", files written before graded input);
    graded fixed point only: input_bits, input_signed (0/1), input_step (x ≈ q input_step),
    L0.bias_input (the bias line's per-step payload, q_max)

Input: binary spikes, or with ``input_kind="graded"`` real values x (float) / integer payloads q
(fixed point, ``q = clip(rint(x / input_step), q_min, q_max)``, :func:`quantize_graded`). Graded
input goes out of the source RingBuffer as graded spikes into a first Dense with
``num_message_bits`` > 0 (float: 24; fixed: ``input_bits``), whose models then compute
``W · s_in`` (``lava/proc/dense/models.py``; fixed point: ``(w · q) << weight_exp`` in int32); the
timing is the same as for spikes. A graded fixed-point first layer's bias line is graded too: it
sends ``L0.bias_input`` each step.

Timing (Lava sources, lava-nc 0.10.0): a Dense sends at step n what it received at step n-1, so
layer k (1-based) at 0-based Lava step i computes snnTorch step t = i - k; the network runs T + K
steps and layer k's raster is the sink columns k .. k+T-1. Biases are not LIF ``bias_mant`` (that
acts from step 0, before the delayed input arrives) but weights of a bias Dense fed by an
always-on line that switches on at step k - 1, so they arrive with the same delay as the input.
A batch of B samples runs as one block-diagonal network (neuron index = b * n + j).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LavaNetwork:
    """The connected processes of one exported network (for a batch of ``batch`` samples)."""

    source: object
    denses: list
    bias_sources: list
    bias_denses: list
    neurons: list
    sinks: list               # one per recorded layer (all layers, or only the last)
    recorded: list[int]       # layer index of each sink
    num_steps: int            # T + K
    batch: int
    sizes: list[int]
    kind: str
    info: dict = field(default_factory=dict)
    input_kind: str = "spikes"


INPUT_KINDS = ("spikes", "graded")
FLOAT_MESSAGE_BITS = 24  # graded payload width declared for float inputs (Loihi 2's maximum)


def graded_input_range(bits: int, signed: bool) -> tuple[int, int]:
    """(q_min, q_max) of a ``bits``-bit graded input: [0, 2**bits - 1] unsigned, or the symmetric
    [-(2**(bits-1) - 1), 2**(bits-1) - 1] signed."""
    bits = int(bits)
    if signed:
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


def quantize_graded(x: np.ndarray, step: float, bits: int, signed: bool) -> np.ndarray:
    """Integer graded input ``q = clip(rint(x / step), q_min, q_max)`` (int32; rint rounds half to
    even; out-of-range values saturate)."""
    qmin, qmax = graded_input_range(bits, signed)
    q = np.rint(np.asarray(x, dtype=np.float64) / float(step))
    return np.clip(q, qmin, qmax).astype(np.int32)


def input_kind_of(arrays) -> str:
    """The ``input_kind`` of a network-array dict ("spikes" when absent)."""
    kind = str(arrays["input_kind"]) if "input_kind" in arrays else "spikes"
    if kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {kind!r}")
    return kind


def _check_input(arrays, inputs: np.ndarray, kind: str, input_kind: str) -> np.ndarray:
    """The source data [T, B, in] in the dtype of the Lava run (float64 or int32)."""
    x = np.asarray(inputs)
    if x.ndim != 3:
        raise ValueError(f"inputs must be [T, B, in], got shape {x.shape}")
    if input_kind == "spikes":
        if not np.all((x == 0) | (x == 1)):
            raise ValueError("this network reads binary spikes (0/1)")
        return x.astype(float if kind == "float" else np.int32)
    if kind == "float":
        x = x.astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("graded inputs contain NaN or inf")
        return x
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"a fixed-point graded network reads integer payloads q, got dtype "
                         f"{x.dtype} (quantise with quantize_graded)")
    qmin, qmax = graded_input_range(int(arrays["input_bits"]), bool(int(arrays["input_signed"])))
    if x.size and (x.min() < qmin or x.max() > qmax):
        raise ValueError(f"graded payloads must lie in [{qmin}, {qmax}], got "
                         f"[{x.min()}, {x.max()}]")
    return x.astype(np.int32)


def _uniform(a: np.ndarray) -> bool:
    return bool(np.all(a == a.flat[0]))


def _block(w: np.ndarray, batch: int) -> np.ndarray:
    return np.kron(np.eye(batch, dtype=w.dtype), w) if batch > 1 else w.copy()


def build(arrays: dict, spikes: np.ndarray, record_all: bool = False) -> LavaNetwork:
    """Create and connect the Lava processes for ``spikes`` [T, B, in] (not yet run): binary
    spikes, or for a graded network real values (float) / integer payloads q (fixed point)."""
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF

    from .lava_procs.snn_lif import SnnLIF

    kind = str(arrays["kind"])
    if kind not in ("float", "fixed"):
        raise ValueError(f"network kind must be 'float' or 'fixed', got {kind!r}")
    n_layers = int(arrays["n_layers"])
    input_kind = input_kind_of(arrays)
    graded = input_kind == "graded"
    x = _check_input(arrays, spikes, kind, input_kind)
    T, B, n_in = x.shape
    steps = T + n_layers
    dtype = float if kind == "float" else np.int32
    data = np.zeros((B * n_in, steps), dtype)
    data[:, :T] = x.transpose(1, 2, 0).reshape(B * n_in, T)
    source = Source(data=data)
    prev_port = source.s_out
    denses, bias_sources, bias_denses, neurons, sinks, recorded = [], [], [], [], [], []
    sizes = [n_in]
    stock = 0
    for k in range(n_layers):
        p = f"L{k}."
        w = np.asarray(arrays[p + "weight"])
        n_out = w.shape[0]
        sizes.append(n_out)
        kw = {} if kind == "float" else {"weight_exp": int(arrays[p + "weight_exp"])}
        msg = {}
        if graded and k == 0:  # graded spikes: Dense computes W · s_in instead of summing columns
            bits = FLOAT_MESSAGE_BITS if kind == "float" else int(arrays["input_bits"])
            msg = {"num_message_bits": bits}
        dense = Dense(weights=_block(w.astype(dtype), B), name=f"dense{k}", **kw, **msg)
        prev_port.connect(dense.s_in)
        denses.append(dense)
        subtract = bool(int(arrays[p + "subtract"]))
        du, dv, vth = (np.asarray(arrays[p + key]) for key in ("du", "dv", "vth"))
        beta = np.asarray(arrays[p + "beta"], dtype=float)
        use_stock = (not subtract and _uniform(du) and _uniform(dv) and _uniform(vth)
                     and (kind == "fixed" or (_uniform(beta) and 1 - float(dv[0]) == beta[0])))
        shape = (B * n_out,)
        if use_stock:
            stock += 1
            if kind == "float":
                lif = LIF(shape=shape, du=float(du[0]), dv=float(dv[0]), vth=float(vth[0]),
                          bias_mant=0.0, name=f"lif{k}")
            else:
                lif = LIF(shape=shape, du=int(du[0]), dv=int(dv[0]), vth=int(vth[0]),
                          bias_mant=0, bias_exp=0, name=f"lif{k}")
        else:
            tile = (lambda a, t: np.tile(np.asarray(a, dtype=t), B))
            lif = SnnLIF(shape=shape, du=tile(du, dtype), dv=tile(dv, dtype), vth=tile(vth, dtype),
                         beta=tile(beta, float), subtract=subtract, name=f"snnlif{k}")
        dense.a_out.connect(lif.a_in)
        if p + "bias" in arrays:
            gate = np.zeros((1, steps), dtype)
            on = int(arrays[p + "bias_input"]) if p + "bias_input" in arrays else 1
            gate[0, k:] = on  # layer k+1 (1-based) needs the bias from Lava step k+1 (0-based)
            bsrc = Source(data=gate)
            bw = np.tile(np.asarray(arrays[p + "bias"]).astype(dtype), B)[:, None]
            bmsg = {"num_message_bits": int(arrays["input_bits"])} if on != 1 else {}
            bdense = Dense(weights=bw, name=f"bias_dense{k}", **kw, **bmsg)
            bsrc.s_out.connect(bdense.s_in)
            bdense.a_out.connect(lif.a_in)
            bias_sources.append(bsrc)
            bias_denses.append(bdense)
        neurons.append(lif)
        if record_all or k == n_layers - 1:
            sink = Sink(shape=shape, buffer=steps)
            lif.s_out.connect(sink.a_in)
            sinks.append(sink)
            recorded.append(k)
        prev_port = lif.s_out
    return LavaNetwork(source, denses, bias_sources, bias_denses, neurons, sinks, recorded, steps,
                       B, sizes, kind, {"stock_lif_layers": stock}, input_kind)


def read_spikes(net: LavaNetwork, T: int) -> list[np.ndarray]:
    """Read the sinks after a run; layer spikes aligned to snnTorch time, each [T, B, out] uint8."""
    out = []
    for sink, k in zip(net.sinks, net.recorded):
        data = np.asarray(sink.data.get())  # [B*out, T+K]
        n = net.sizes[k + 1]
        raster = data[:, k + 1: k + 1 + T]
        out.append((raster.reshape(net.batch, n, T).transpose(2, 0, 1) != 0).astype(np.uint8))
    return out


def run_config(kind: str):
    """Loihi2SimCfg selecting Lava's float or bit-accurate fixed-point models."""
    from lava.magma.core.run_configs import Loihi2SimCfg

    return Loihi2SimCfg(select_tag="floating_pt" if kind == "float" else "fixed_pt")
