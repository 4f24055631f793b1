"""netx-style HDF5 writer and reader (the network-exchange format lava-dl's ``netx.hdf5.Network``
reads; layout from lava-dl ``src/lava/lib/dl/netx/hdf5.py`` and ``utils.py``)::

    /layer/{0,1,...}/type     "dense"
                    /shape    [out]
                    /weight   int [out, in]   effective integer weight  w * 2**weight_exp
                    /bias     int [out]       (optional) w_b * 2**weight_exp
                    /neuron/type "CUBA", iDecay = du + 1, vDecay = dv, vThMant = vth, refDelay = 1,
                            gradedSpike = 0

netx builds ``LIF(du=iDecay-1, dv=vDecay, vth=vThMant)`` and splits ``weight`` into an 8-bit
mantissa and exponent itself, which works for weight_exp <= 0 (|weight| <= 255), so the writer
refuses larger exponents (quantise with ``max_weight_exp=0``). netx applies ``bias`` as a neuron
bias (``bias_exp`` 6) from step 0, not through the delayed bias line used by :mod:`.lava`.
Extra datasets (``weightMant``, ``weightExp``, ``biasMant``, ``scale``, attr ``reset``) let
:func:`read_netx` rebuild the exact :class:`FixedPointNetwork`.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .fixed_point import FixedPointLayer, FixedPointNetwork, quantize
from .ir import ExportError, NetworkIR


GRADED_UNSUPPORTED = ("netx export supports binary spike inputs only: this network reads graded "
                      "(direct-current) input, which the netx file format cannot represent; "
                      "export it to Lava (.lava.npz) or NIR instead")


def write_netx(network: NetworkIR | FixedPointNetwork, path: str | Path) -> Path:
    """Write a netx HDF5 file atomically; a float IR is quantised first (weight_exp <= 0).
    Graded-input networks are refused (:class:`ExportError`): the file stores integer weights
    (weight_exp <= 0) and has no field for the input's payload width or scale, so a first layer
    with the graded input scale folded in (weight_exp around -8) cannot be written."""
    if isinstance(network, (NetworkIR, FixedPointNetwork)) and network.input_kind != "spikes":
        raise ExportError(GRADED_UNSUPPORTED)
    if isinstance(network, NetworkIR):
        network = quantize(network, max_weight_exp=0)
    if not isinstance(network, FixedPointNetwork):
        raise ExportError(f"write_netx expects a NetworkIR or FixedPointNetwork, "
                          f"got {type(network).__name__}")
    for layer in network:
        if layer.weight_exp > 0:
            raise ExportError(f"{layer.name}: weight_exp={layer.weight_exp} > 0 cannot be "
                              "expressed in netx's 8-bit weights; quantize with max_weight_exp=0")
        step = 2 ** -layer.weight_exp
        if np.any(layer.weight % step) or (layer.bias is not None and np.any(layer.bias % step)):
            raise ExportError(f"{layer.name}: weights are not multiples of 2**{-layer.weight_exp}; "
                              "netx's integer weight would lose bits")
        if np.any(layer.du != layer.du[0]) or np.any(layer.dv != layer.dv[0]):
            raise ExportError(f"{layer.name}: netx's LIF needs one du/dv per layer")
    import io

    from ..files import atomic_write_bytes
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["format"] = "netx (written by metaspin_snn.export.netx)"
        root = f.create_group("layer")
        for k, layer in enumerate(network):
            g = root.create_group(str(k))
            g.create_dataset("type", data=np.bytes_("dense"))
            g.create_dataset("shape", data=np.array([layer.out_features]))
            shift = (lambda a: a.astype(np.int64) >> -layer.weight_exp)
            g.create_dataset("weight", data=shift(layer.weight))
            g.create_dataset("weightMant", data=layer.weight)
            g.create_dataset("weightExp", data=np.int64(layer.weight_exp))
            g.create_dataset("scale", data=np.float64(layer.scale))
            if layer.bias is not None:
                g.create_dataset("bias", data=shift(layer.bias))
                g.create_dataset("biasMant", data=layer.bias)
            g.attrs["reset"] = layer.reset
            g.attrs["name"] = layer.name
            n = g.create_group("neuron")
            n.create_dataset("type", data=np.bytes_("CUBA"))
            n.create_dataset("iDecay", data=np.int64(layer.du[0]) + 1)
            n.create_dataset("vDecay", data=np.int64(layer.dv[0]))
            n.create_dataset("vThMant", data=layer.vth.astype(np.int64)
                             if np.any(layer.vth != layer.vth[0]) else np.int64(layer.vth[0]))
            n.create_dataset("refDelay", data=np.int64(1))
            n.create_dataset("gradedSpike", data=np.int64(0))
    return atomic_write_bytes(path, buf.getvalue())


def _str(ds) -> str:
    value = ds[()]
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def read_netx(path: str | Path) -> FixedPointNetwork:
    """Read a netx HDF5 file of dense CUBA layers back into a :class:`FixedPointNetwork`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"netx file not found: {path}")
    layers = []
    with h5py.File(path, "r") as f:
        if "layer" not in f:
            raise ExportError(f"{path}: no /layer group (not a netx file)")
        root = f["layer"]
        for key in sorted(root.keys(), key=int):
            g = root[key]
            where = f"{path}:/layer/{key}"
            kind = _str(g["type"])
            if kind != "dense":
                raise ExportError(f"{where}: layer type {kind!r} is not supported (dense only)")
            n = g["neuron"]
            if _str(n["type"]) not in ("CUBA", "LOIHI"):
                raise ExportError(f"{where}: neuron type {_str(n['type'])!r} is not supported")
            if "weightMant" in g:
                w, e = g["weightMant"][()], int(g["weightExp"][()])
                b = g["biasMant"][()] if "biasMant" in g else None
            else:
                w, e = g["weight"][()].astype(np.int64), 0
                b = g["bias"][()].astype(np.int64) if "bias" in g else None
            out = w.shape[0]
            layers.append(FixedPointLayer(
                weight=w, bias=b, weight_exp=e,
                du=np.full(out, int(n["iDecay"][()]) - 1), dv=np.full(out, int(n["vDecay"][()])),
                vth=np.broadcast_to(np.asarray(n["vThMant"][()], dtype=np.int64), (out,)),
                reset=str(g.attrs.get("reset", "zero")),
                scale=float(g["scale"][()]) if "scale" in g else 1.0,
                name=str(g.attrs.get("name", f"layer{key}"))))
    return FixedPointNetwork(tuple(layers))
