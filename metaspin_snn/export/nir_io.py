"""NIR export / import of a frozen network (nir 1.0.8).

Each layer becomes ``Affine`` (``Linear`` without bias) → ``LIF``, chained from ``Input`` to
``Output``. The LIF parameters follow snnTorch's own NIR export (``snntorch/export_nir.py``):
NIR's Euler-discretised ``tau dv/dt = (v_leak - v) + r I`` with step ``dt`` gives
``v = (1 - dt/tau) v + (dt/tau) r I``; with ``tau = dt / (1 - beta)``, ``r = tau / dt`` and
``v_leak = 0`` this is snnTorch's ``v = beta v + I``. NIR does not encode the reset mechanism; it is
kept in node metadata (``{"reset": "zero" | "subtract", "dt": dt}``) and NIR's ``v_reset`` is 0.
The ``Input`` node is only a shape; what it carries (``NetworkIR.input_kind``: binary "spikes" or
real-valued "graded" input) is kept in its metadata (``{"input_kind": ...}``; absent → "spikes").
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .ir import ExportError, LayerIR, NetworkIR, check_input_kind

DT = 1e-4  # the time step snnTorch uses in its NIR export


def to_nir(ir: NetworkIR, dt: float = DT):
    """Build a ``nir.NIRGraph``: input → (affine → lif) per layer → output."""
    import nir

    if not isinstance(ir, NetworkIR):
        raise ExportError(f"to_nir expects a NetworkIR, got {type(ir).__name__}")
    if not dt > 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    nodes = {"input": nir.Input(input_type={"input": np.array([ir.layers[0].in_features])},
                                metadata={"input_kind": ir.input_kind})}
    edges = []
    prev = "input"
    for k, layer in enumerate(ir):
        syn = (nir.Linear(weight=layer.weight.copy()) if layer.bias is None
               else nir.Affine(weight=layer.weight.copy(), bias=layer.bias.copy()))
        with np.errstate(divide="ignore"):
            tau = np.where(layer.beta < 1, dt / (1.0 - layer.beta), np.inf)
        lif = nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros_like(tau),
                      v_threshold=layer.threshold.copy(), v_reset=np.zeros_like(tau),
                      metadata={"reset": layer.reset, "dt": float(dt), "name": layer.name})
        nodes[f"fc{k}"], nodes[f"lif{k}"] = syn, lif
        edges += [(prev, f"fc{k}"), (f"fc{k}", f"lif{k}")]
        prev = f"lif{k}"
    nodes["output"] = nir.Output(output_type={"output": np.array([ir.layers[-1].out_features])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _meta_str(value: object, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return _meta_str(value.item(), default)
    return str(value)


def ir_from_nir(graph, dt: float | None = None) -> NetworkIR:
    """Read a chain ``Input → (Affine|Linear → LIF)* → Output`` back into a :class:`NetworkIR`.

    ``beta = 1 - dt/tau`` with ``dt`` from the node metadata (else ``dt`` or snnTorch's 1e-4);
    the input gain ``r dt / tau`` must be 1 and ``v_leak`` 0 (snnTorch's convention). The input
    kind comes from the ``Input`` node's metadata ("spikes" when absent).
    """
    import nir

    succ: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        succ.setdefault(src, []).append(dst)
    starts = [name for name, node in graph.nodes.items() if isinstance(node, nir.Input)]
    if len(starts) != 1:
        raise ExportError(f"NIR graph must have exactly one Input node, found {len(starts)}")
    input_kind = _meta_str((graph.nodes[starts[0]].metadata or {}).get("input_kind"), "spikes")
    check_input_kind(input_kind, f"NIR node {starts[0]!r}")
    layers: list[LayerIR] = []
    name, pending = starts[0], None
    seen = set()
    while True:
        nxt = succ.get(name, [])
        if len(nxt) > 1:
            raise ExportError(f"NIR node {name!r} has {len(nxt)} successors: only chains are supported")
        if not nxt:
            break
        name = nxt[0]
        if name in seen:
            raise ExportError(f"NIR node {name!r}: recurrent graphs are not supported")
        seen.add(name)
        node = graph.nodes[name]
        if isinstance(node, (nir.Affine, nir.Linear)):
            if pending is not None:
                raise ExportError(f"NIR node {name!r} follows {pending[0]!r} without a LIF between")
            w = np.asarray(node.weight, dtype=np.float64)
            b = np.asarray(node.bias, dtype=np.float64) if isinstance(node, nir.Affine) else None
            pending = (name, w, b)
        elif isinstance(node, nir.LIF):
            if pending is None:
                raise ExportError(f"NIR node {name!r} (LIF) has no preceding Affine/Linear node")
            meta = node.metadata or {}
            step = float(np.asarray(meta.get("dt", dt if dt is not None else DT)))
            tau = np.asarray(node.tau, dtype=np.float64).reshape(-1)
            r = np.asarray(node.r, dtype=np.float64).reshape(-1)
            if np.any(np.asarray(node.v_leak) != 0):
                raise ExportError(f"NIR node {name!r}: v_leak != 0 is not supported")
            finite = np.isfinite(tau)
            if not np.allclose(r[finite] * step / tau[finite], 1.0, rtol=1e-6):
                raise ExportError(f"NIR node {name!r}: input gain r*dt/tau != 1 is not supported")
            beta = np.where(finite, 1.0 - step / np.where(finite, tau, 1.0), 1.0)
            lname, w, b = pending
            layers.append(LayerIR(w, b, beta=beta, threshold=np.asarray(node.v_threshold).reshape(-1),
                                  reset=_meta_str(meta.get("reset"), "zero"),
                                  name=_meta_str(meta.get("name"), f"{lname}+{name}")))
            pending = None
        elif isinstance(node, nir.Output):
            break
        else:
            raise ExportError(f"NIR node {name!r} ({type(node).__name__}) is not supported")
    if pending is not None:
        raise ExportError(f"NIR node {pending[0]!r} is not followed by a LIF node")
    return NetworkIR(tuple(layers), input_kind=input_kind)


def write_nir(ir: NetworkIR, path: str | Path, dt: float = DT) -> Path:
    """Write ``to_nir(ir)`` to ``path`` atomically (built in memory, then the library's atomic writer)."""
    import io

    import nir

    from ..files import atomic_write_bytes
    buf = io.BytesIO()
    nir.write(buf, to_nir(ir, dt))
    return atomic_write_bytes(path, buf.getvalue())


def read_nir(path: str | Path) -> NetworkIR:
    """Read a NIR file written by :func:`write_nir` (or any chain NIR graph) into a NetworkIR."""
    import nir

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NIR file not found: {path}")
    return ir_from_nir(nir.read(str(path)))
