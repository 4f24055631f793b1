"""Check a deployment: the float64 snnTorch run of the frozen network against Lava (float or
fixed point) or the bit-exact emulator, on the same input spikes."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .emulator import emulate
from .fixed_point import FixedPointNetwork, quantize
from .ir import ExportError, NetworkIR, check_spikes, extract_ir, simulate_snntorch

BACKENDS = ("lava", "emulator", "both")


def _predict(out_spikes: np.ndarray) -> np.ndarray:
    """Class = argmax of output spike counts Σ_t s[t] (first index on ties)."""
    return out_spikes.sum(axis=0).argmax(axis=1)


def verify(model_or_ir: nn.Module | NetworkIR, inputs: np.ndarray | torch.Tensor,
           labels: np.ndarray | torch.Tensor, fixed_point: bool = False, *,
           backend: str = "lava", network: FixedPointNetwork | None = None,
           timeout: float = 600.0, task: int | None = None) -> dict:
    """Run ``inputs`` [T, B, in] (binary spikes) through the float64 snnTorch reference and the
    deployed network; return spike agreement per layer (fraction of identical (t, b, neuron)
    bins), accuracy of each (argmax of output spike counts vs ``labels`` [B]) and the drop.

    ``fixed_point``: deploy ``quantize(ir)`` (or ``network``) in Lava ``fixed_pt`` / the emulator,
    else the float network in Lava ``floating_pt`` (``backend`` must then be "lava").
    ``backend="both"`` (fixed point) runs Lava and the emulator and reports whether they are
    bit-identical.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    ir = model_or_ir if isinstance(model_or_ir, NetworkIR) else extract_ir(model_or_ir, task)
    x = check_spikes(inputs, ir.layers[0].in_features)
    y = labels.detach().cpu().numpy() if torch.is_tensor(labels) else np.asarray(labels)
    if y.shape != (x.shape[1],):
        raise ExportError(f"labels: expected shape ({x.shape[1]},), got {y.shape}")
    ref = simulate_snntorch(ir, x)
    result: dict = {"n_samples": int(x.shape[1]), "num_steps": int(x.shape[0]),
                    "fixed_point": bool(fixed_point), "backend": backend}
    if fixed_point:
        net = network if network is not None else quantize(ir)
        result["weight_exp"] = [layer.weight_exp for layer in net]
        runs = {}
        if backend in ("emulator", "both"):
            runs["emulator"] = emulate(net, x)
        if backend in ("lava", "both"):
            from .lava import run_lava
            runs["lava"] = run_lava(net, x, fixed_point=True, record_all=True, timeout=timeout).layers
        if backend == "both":
            result["emulator_equals_lava"] = all(
                np.array_equal(a, b) for a, b in zip(runs["emulator"], runs["lava"]))
        got = runs["lava"] if "lava" in runs else runs["emulator"]
        # how much of the gap is weight rounding alone: float snnTorch with the dequantised network
        deq = simulate_snntorch(net.dequantize(), x)
        result["spike_agreement_vs_dequantized"] = [float((a == b).mean()) for a, b in zip(deq, got)]
    else:
        if backend != "lava":
            raise ValueError("float export runs in Lava only (backend='lava'); the emulator is "
                             "fixed point")
        from .lava import run_lava
        got = run_lava(ir, x, fixed_point=False, record_all=True, timeout=timeout).layers
    result["spike_agreement"] = [float((a == b).mean()) for a, b in zip(ref, got)]
    result["rate_reference"] = [float(a.mean()) for a in ref]
    result["rate_deployed"] = [float(b.mean()) for b in got]
    p_ref, p_dep = _predict(ref[-1]), _predict(got[-1])
    result["accuracy_reference"] = float((p_ref == y).mean())
    result["accuracy_deployed"] = float((p_dep == y).mean())
    result["accuracy_drop"] = result["accuracy_reference"] - result["accuracy_deployed"]
    result["prediction_agreement"] = float((p_ref == p_dep).mean())
    return result
