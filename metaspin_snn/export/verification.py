"""Check a deployment: the float64 snnTorch run of the frozen network against Lava (float or
fixed point) or the bit-exact emulator, on the same inputs (binary spikes, or real values for a
graded-input network)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .emulator import emulate
from .fixed_point import FixedPointNetwork, quantize
from .ir import ExportError, NetworkIR, check_input_kind, check_inputs, extract_ir, simulate_snntorch

BACKENDS = ("lava", "emulator", "both")


def _predict(out_spikes: np.ndarray) -> np.ndarray:
    """Class = argmax of output spike counts Σ_t s[t] (first index on ties)."""
    return out_spikes.sum(axis=0).argmax(axis=1)


def default_input_range(x: np.ndarray) -> tuple[float, float]:
    """Quantisation range for graded inputs ``x``: [0, 1] when they lie in it (pixels), else
    [min(0, x_min), max(0, x_max)] (signed when negatives occur; symmetric if x <= 0)."""
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    lo, hi = min(0.0, lo), max(0.0, hi)
    return (lo, hi) if hi > 0 else (lo, -lo)


def verify(model_or_ir: nn.Module | NetworkIR, inputs: np.ndarray | torch.Tensor,
           labels: np.ndarray | torch.Tensor, fixed_point: bool = False, *,
           backend: str = "lava", network: FixedPointNetwork | None = None,
           timeout: float = 600.0, task: int | None = None, input: str | None = None,
           input_range: tuple[float, float] | None = None, input_bits: int | None = None) -> dict:
    """Run ``inputs`` [T, B, in] through the float64 snnTorch reference and the deployed network;
    return spike agreement per layer (fraction of identical (t, b, neuron) bins), accuracy of each
    (argmax of output spike counts vs ``labels`` [B]) and the drop.

    ``inputs`` are binary spikes, or real values when the network's input kind is "graded" (an
    IR's ``input_kind``; for a model, ``input`` = "spikes" (default) | "graded" is passed to
    :func:`extract_ir`). Real values for a spike-input network raise :class:`ExportError`.
    ``fixed_point``: deploy ``quantize(ir)`` (or ``network``) in Lava ``fixed_pt`` / the emulator,
    else the float network in Lava ``floating_pt`` (``backend`` must then be "lava"). Graded inputs
    are quantised to ``input_bits`` (default 8) over ``input_range`` (default
    :func:`default_input_range` of ``inputs``). ``backend="both"`` (fixed point) runs Lava and the
    emulator and reports whether they are bit-identical. The report states ``input_kind`` (and for
    graded fixed point the input quantisation and the fraction of clipped inputs).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(model_or_ir, NetworkIR):
        ir = model_or_ir
        if input is not None and check_input_kind(input, "verify") != ir.input_kind:
            raise ExportError(f"verify: input={input!r} but the IR's input kind is "
                              f"{ir.input_kind!r}")
    else:
        ir = extract_ir(model_or_ir, task, input="spikes" if input is None else input)
    if network is not None and network.input_kind != ir.input_kind:
        raise ExportError(f"verify: the fixed-point network reads {network.input_kind!r} input but "
                          f"the IR reads {ir.input_kind!r}")
    x = check_inputs(inputs, ir.layers[0].in_features, ir.input_kind, "inputs")
    y = labels.detach().cpu().numpy() if torch.is_tensor(labels) else np.asarray(labels)
    if y.shape != (x.shape[1],):
        raise ExportError(f"labels: expected shape ({x.shape[1]},), got {y.shape}")
    ref = simulate_snntorch(ir, x)
    result: dict = {"n_samples": int(x.shape[1]), "num_steps": int(x.shape[0]),
                    "fixed_point": bool(fixed_point), "backend": backend,
                    "input_kind": ir.input_kind}
    if fixed_point:
        if network is not None:
            net = network
        elif ir.input_kind == "graded":
            net = quantize(ir, input_range=input_range or default_input_range(x),
                           input_bits=input_bits)
        else:
            net = quantize(ir)
        result["weight_exp"] = [layer.weight_exp for layer in net]
        x_deq = x
        if net.input_kind == "graded":
            qmin, qmax = net.input_qrange
            q = net.quantize_input(x)
            x_deq = q * net.input_step
            result.update(input_bits=net.input_bits, input_signed=net.input_signed,
                          input_step=net.input_step,
                          input_range=[qmin * net.input_step, qmax * net.input_step],
                          input_clipped_fraction=float(np.mean((x < qmin * net.input_step) |
                                                               (x > qmax * net.input_step))))
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
        deq = simulate_snntorch(net.dequantize(), x_deq)  # graded: on the dequantised inputs q step
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
