"""The one checkpoint format of the library (``metaspin train``, ``metaspin run`` and the API).

A file is ``torch.save`` of a small envelope::

    {"format": "metaspin-snn checkpoint", "schema_version": 2,
     "sha256": hex digest of the payload bytes, "payload": uint8 tensor}

and the payload is ``torch.save`` of ``{"schema_version", "spec", "model", "optimizer", …}``: the
network's :func:`~metaspin_snn.networks.builder.model_spec` (enough to rebuild it), its
``state_dict`` (synapse hidden state included), the optimiser's state, and whatever a trainer adds
(plugin state, RNG states, results, config). Everything is tensors or plain Python data, so both
levels load with ``torch.load(weights_only=True)``; the digest catches truncation and flipped bits.
Writes are atomic (temporary file beside the target, then ``os.replace``).
"""
from __future__ import annotations

import hashlib
import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..files import atomic_write_bytes
from .builder import build_model

FORMAT = "metaspin-snn checkpoint"
SCHEMA_VERSION = 2
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A file that is not a readable, intact metaspin-snn checkpoint (the message names the file)."""


def plain(obj: Any) -> Any:
    """JSON-able data (tuples → lists, NumPy scalars → Python numbers), for payload entries such as
    results and configs that must load with ``weights_only=True``."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


# ---- RNG states as tensors / lists ------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """States of torch's CPU generator, NumPy's, Python's and (where reachable) Numba's main-thread
    generator, as tensors and plain lists."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, rstate, rgauss = random.getstate()
    st: dict[str, Any] = {"torch": torch.get_rng_state(),
                          "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                                    "has_gauss": int(has_gauss), "gauss": float(gauss)},
                          "random": {"version": version, "state": list(rstate), "gauss": rgauss},
                          "numba": None}
    try:
        from numba import _helperlib
        idx, ints = _helperlib.rnd_get_state(_helperlib.rnd_get_np_state_ptr())
        st["numba"] = [int(idx), [int(v) for v in ints]]
    except Exception:  # private API; absent in some Numba builds
        pass
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    r = st["random"]
    random.setstate((r["version"], tuple(r["state"]), r["gauss"]))
    if st.get("numba") is not None:
        try:
            from numba import _helperlib
            _helperlib.rnd_set_state(_helperlib.rnd_get_np_state_ptr(), (st["numba"][0], list(st["numba"][1])))
        except Exception:
            pass


# ---- save / read -----------------------------------------------------------------------------------
def checkpoint_bytes(payload: dict[str, Any]) -> bytes:
    """The file content for ``payload`` (envelope with digest)."""
    buf = io.BytesIO()
    torch.save({"schema_version": SCHEMA_VERSION, **payload}, buf)
    data = buf.getvalue()
    out = io.BytesIO()
    torch.save({"format": FORMAT, "schema_version": SCHEMA_VERSION, "sha256": hashlib.sha256(data).hexdigest(),
                "payload": torch.frombuffer(bytearray(data), dtype=torch.uint8)}, out)
    return out.getvalue()


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: Any = None, *, spec: dict | None = None,
                    **extra: Any) -> Path:
    """Write ``model`` (its ``state_dict``), ``optimizer`` (its ``state_dict``, or None), the model
    ``spec`` that rebuilds it (default: ``model.spec`` as set by :func:`build_model` callers) and
    ``extra`` entries (tensors or plain data) atomically to ``path``."""
    spec = spec if spec is not None else getattr(model, "spec", None)
    payload = {"spec": plain(spec) if spec is not None else None, "model": model.state_dict(),
               "optimizer": optimizer.state_dict() if optimizer is not None else None, **extra}
    return atomic_write_bytes(path, checkpoint_bytes(payload))


def resolve_checkpoint(path: str | Path) -> Path:
    """``path`` itself, or ``path/checkpoint.pt`` for a run folder."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
        if not p.is_file():
            raise FileNotFoundError(f"{path}: a folder without {CHECKPOINT_NAME} (is it a run's output folder?)")
    elif not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    return p


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The verified payload of a checkpoint file (or of ``DIR/checkpoint.pt``). Raises
    :class:`CheckpointError` naming the file when it is not a metaspin checkpoint, is damaged
    (digest mismatch, truncated) or has an unknown schema."""
    p = resolve_checkpoint(path)
    try:
        env = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{p}: not a readable metaspin-snn checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None
    if not isinstance(env, dict) or env.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a metaspin-snn checkpoint (written by another program or an older "
                              "version of this library)")
    if env.get("schema_version") != SCHEMA_VERSION:
        raise CheckpointError(f"{p}: checkpoint schema {env.get('schema_version')!r}, this version reads "
                              f"{SCHEMA_VERSION}")
    data = env["payload"].numpy().tobytes() if isinstance(env.get("payload"), torch.Tensor) else b""
    if hashlib.sha256(data).hexdigest() != env.get("sha256"):
        raise CheckpointError(f"{p}: checkpoint is damaged (sha256 of its payload does not match)")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # pragma: no cover - a payload with a valid digest that does not load
        raise CheckpointError(f"{p}: checkpoint payload does not load ({type(e).__name__})") from None
    return payload


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: Any = None) -> dict[str, Any]:
    """Load a checkpoint's weights (and optimiser state) into an existing ``model`` (a hand-built
    network without a spec); returns the payload (its extra entries, e.g. ``payload["seed"]``)."""
    ck = read_checkpoint(path)
    model.load_state_dict(ck["model"])
    if optimizer is not None and ck.get("optimizer") is not None:
        optimizer.load_state_dict(ck["optimizer"])
    return ck


def load_model(path: str | Path, *, eval_mode: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild and load the network of a checkpoint (a file or a run folder); returns
    ``(model, payload)``. The model is in eval mode unless ``eval_mode=False``."""
    ck = read_checkpoint(path)
    spec = ck.get("spec")
    if not isinstance(spec, dict):
        raise CheckpointError(f"{resolve_checkpoint(path)}: checkpoint holds no model spec (an online-learner run, "
                              "whose network is not a SpikingMLP/SpikingConvNet?)")
    model = build_model(spec)
    model.spec = spec
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{resolve_checkpoint(path)}: weights do not fit the rebuilt network "
                              f"({str(e).splitlines()[0]})") from None
    if eval_mode:
        model.eval()
    return model, ck
