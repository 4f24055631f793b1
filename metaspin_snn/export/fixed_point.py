"""Loihi 2 fixed-point quantisation for Lava's bit-accurate ``Dense`` + ``LIF`` models.

Lava's ``fixed_pt`` models (``lava/proc/dense/models.py``, ``lava/proc/lif/models.py``, lava-nc 0.10.0):

* Dense: 8-bit weight mantissa (mixed sign: clipped to [-256, 255], lowest bit dropped → even),
  ``a = (sum_j w_ij s_j) << weight_exp``, sent as int32;
* LIF: ``u = wrap24(trunc0(u (4096 - du - 1) / 4096) + (a << 6))``,
  ``v = clip24(trunc0(v (4096 - dv) / 4096) + u + bias)``, spike if ``v > vth << 6``, 12-bit du/dv,
  17-bit vth.

Mapping of a float layer (W, b, beta, theta) with per-layer scale ``s = 127 / max|[W | b]|``::

    w = 2 round(s W),  w_b = 2 round(s b),  du = 4095 (current = input),
    dv = round(4096 (1 - beta)),  vth = round(theta * 2 s * 2**e)

so that ``v / 2**(6+e) ≈ 2 s m`` tracks the float membrane ``m``. The exponent ``e`` (in [-8, 7]) is
the largest that keeps ``vth`` within 17 bits and, where possible, the largest input current within
the 24-bit range (no wrap); for a graded first layer whose worst case cannot avoid the wrap, the
smallest that keeps ``vth >= 1024`` (most headroom, see :func:`_choose_exp`).

Graded (direct-current) input (``NetworkIR.input_kind == "graded"``): the real input x is sent to
the first Dense as an integer graded-spike payload of ``input_bits`` bits (default 8)::

    q = clip(rint(x / step), q_min, q_max)
    unsigned (input_range lo >= 0):  q in [0, 2**bits - 1],            step = hi / (2**bits - 1)
    signed   (input_range lo <  0):  q in [-(2**(bits-1) - 1), 2**(bits-1) - 1],
                                     step = max(-lo, hi) / (2**(bits-1) - 1)

(``input_range`` defaults to [0, 1]: 8-bit unsigned q = rint(255 x), exact for 8-bit pixels k/255;
inputs outside the range saturate). The input gain ``g = 1 / step`` is folded into the first layer's
fixed-point scale, i.e. into its threshold and the choice of its weight exponent (which the much
larger input currents push down, typically to e = -5 .. -8)::

    a  = (sum_j w_ij q_j) << e  ≈  2 s g 2**e (W x)_i,      vth = round(theta * 2 s g 2**e)

so that ``v / 2**(6+e) ≈ 2 s g m``. A first-layer bias b becomes one more graded input column: the
bias line sends the constant payload ``q_max`` (= x_b / step with x_b = q_max step, the largest input
magnitude) through weights ``w_b = 2 round(s b / x_b)``, with ``s = 127 / max|[W | b / x_b]|``.
The current bound used for the exponent bounds |sum_j w_ij q_j + w_b q_max| over all
q in [q_min, q_max]^n (every input at full scale, rarely reached by real data: hence the fallback).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ir import (ExportError, LayerChain, LayerIR, NetworkIR, WeightShape, check_graded,
                 check_input_kind, check_spikes)
from .lava_build import graded_input_range, quantize_graded

VTH_MAX = 2 ** 17 - 1
GRADED_VTH_MIN = 2 ** 10  # graded first layer: smallest threshold mantissa the exponent fallback keeps
UV_MAX = 2 ** 23
EXP_MIN, EXP_MAX = -8, 7


@dataclass(frozen=True)
class FixedPointLayer(WeightShape):
    """Integer parameters of one Dense (+ bias Dense) + LIF layer in Lava's fixed-point formats."""

    weight: np.ndarray            # int32 [out, in], Dense weight mantissa
    bias: np.ndarray | None       # int32 [out], weights of the always-on bias line, or None
    weight_exp: int               # Dense weight exponent (shared by weight and bias)
    du: np.ndarray                # int32 [out], 12-bit
    dv: np.ndarray                # int32 [out], 12-bit
    vth: np.ndarray               # int32 [out], 17-bit threshold mantissa
    reset: str = "zero"
    scale: float = 1.0            # s: integer weight = 2 s W
    name: str = "layer"

    def __post_init__(self) -> None:
        w = np.asarray(self.weight)
        if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
            raise ExportError(f"{self.name}: fixed-point weight must be a 2-D integer array")
        n = w.shape[0]
        object.__setattr__(self, "weight", w.astype(np.int32))
        if self.bias is not None:
            b = np.asarray(self.bias)
            if b.shape != (n,) or not np.issubdtype(b.dtype, np.integer):
                raise ExportError(f"{self.name}: fixed-point bias must be an integer array [{n}]")
            object.__setattr__(self, "bias", b.astype(np.int32))
        for key, lo, hi in (("du", 0, 4095), ("dv", 0, 4095), ("vth", 0, VTH_MAX)):
            arr = np.broadcast_to(np.asarray(getattr(self, key)), (n,))
            if not np.issubdtype(arr.dtype, np.integer) or arr.min() < lo or arr.max() > hi:
                raise ExportError(f"{self.name}: {key} must be integers in [{lo}, {hi}]")
            object.__setattr__(self, key, arr.astype(np.int32).copy())
        if self.reset not in ("zero", "subtract"):
            raise ExportError(f"{self.name}: reset {self.reset!r} is not supported")


INPUT_BITS_MAX = 24  # Loihi 2 graded-spike payload


@dataclass(frozen=True)
class FixedPointNetwork(LayerChain):
    """A chain of :class:`FixedPointLayer` (Lava ``fixed_pt`` / Loihi 2 formats).

    ``input_kind`` "spikes" (binary input) or "graded": the first layer then reads integer payloads
    ``q = clip(rint(x / input_step), q_min, q_max)`` of ``input_bits`` bits (``input_signed``:
    two's-complement range without its most negative value), see the module docstring."""

    layers: tuple[FixedPointLayer, ...] = field(default_factory=tuple)
    input_kind: str = "spikes"
    input_bits: int = 1
    input_signed: bool = False
    input_step: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        where = type(self).__name__
        check_input_kind(self.input_kind, where)
        bits, step = self.input_bits, self.input_step
        if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool):
            raise ExportError(f"{where}: input_bits must be an int, got {bits!r}")
        if self.input_kind == "spikes":
            if (int(bits), bool(self.input_signed), float(step)) != (1, False, 1.0):
                raise ExportError(f"{where}: a spike-input network has input_bits=1, "
                                  "input_signed=False, input_step=1.0")
        else:
            lo = 2 if self.input_signed else 1
            if not lo <= bits <= INPUT_BITS_MAX:
                raise ExportError(f"{where}: graded input_bits must be in [{lo}, {INPUT_BITS_MAX}], "
                                  f"got {bits}")
            if not (np.isfinite(step) and step > 0):
                raise ExportError(f"{where}: input_step must be finite and > 0, got {step!r}")
        object.__setattr__(self, "input_bits", int(bits))
        object.__setattr__(self, "input_signed", bool(self.input_signed))
        object.__setattr__(self, "input_step", float(step))

    @property
    def input_qrange(self) -> tuple[int, int]:
        """(q_min, q_max) of the first layer's integer input."""
        if self.input_kind == "spikes":
            return 0, 1
        return graded_input_range(self.input_bits, self.input_signed)

    def quantize_input(self, inputs) -> np.ndarray:
        """The first layer's integer input for ``inputs`` [T, B, in]: binary spikes → uint8,
        graded real values → int32 ``q = clip(rint(x / input_step), q_min, q_max)``."""
        n_in = self.layers[0].in_features
        if self.input_kind == "spikes":
            return check_spikes(inputs, n_in)
        x = check_graded(inputs, n_in)
        return quantize_graded(x, self.input_step, self.input_bits, self.input_signed)

    def bias_input(self, k: int) -> int:
        """Per-step value of layer ``k``'s bias line: 1, or q_max for a graded first layer."""
        return self.input_qrange[1] if k == 0 and self.input_kind == "graded" else 1

    def dequantize(self) -> NetworkIR:
        """The float network these integers represent: W = w / 2s, theta = vth / (2s 2**e),
        beta = 1 - dv / 4096 (du = 4095 maps to an instantaneous current). A graded first layer
        reads x = q step: theta = vth / (2 s g 2**e) with g = 1 / step, b = w_b x_b / 2s with
        x_b = q_max step."""
        out = []
        for k, layer in enumerate(self.layers):
            s2 = 2.0 * layer.scale
            g = 1.0 / self.input_step if k == 0 else 1.0
            xb = self.bias_input(k) * (self.input_step if k == 0 else 1.0)
            out.append(LayerIR(
                weight=layer.weight / s2,
                bias=None if layer.bias is None else layer.bias * xb / s2,
                beta=1.0 - layer.dv / 4096.0,
                threshold=layer.vth / (s2 * g * 2.0 ** layer.weight_exp),
                reset=layer.reset, name=layer.name))
        return NetworkIR(tuple(out), input_kind=self.input_kind)


def _current_bound(w: np.ndarray, wb: np.ndarray | None, qrange: tuple[int, int] = (0, 1)) -> int:
    """Bound on |sum_j w_ij q_j + w_b,i q_b| over inputs q in [q_min, q_max] (binary: [0, 1]) with
    the bias line at q_b = q_max: the largest positive or negative part of a row, the bias counted
    on its own side."""
    qmin, qmax = (int(v) for v in qrange)
    w64 = w.astype(np.int64)
    pos = np.maximum(np.maximum(w64 * qmax, w64 * qmin), 0).sum(axis=1)
    neg = np.maximum(np.maximum(-w64 * qmax, -w64 * qmin), 0).sum(axis=1)
    if wb is not None:
        b64 = wb.astype(np.int64) * qmax
        pos = pos + np.maximum(b64, 0)
        neg = neg + np.maximum(-b64, 0)
    return int(max(pos.max(), neg.max()))


def _choose_exp(layer: LayerIR, scale: float, w: np.ndarray, wb: np.ndarray | None,
                max_exp: int = EXP_MAX, gain: float = 1.0,
                qrange: tuple[int, int] = (0, 1)) -> int:
    """Largest exponent in [EXP_MIN, EXP_MAX] with vth < 2**17 and no possible 24-bit current wrap.
    Fallback: the largest exponent that fits the threshold (binary input), or for a graded layer
    (``gain`` != 1, whose worst-case bound, every input at full scale, is rarely reachable) the
    smallest exponent keeping ``vth >= GRADED_VTH_MIN``: the most current headroom
    (2**17 / vth thresholds per step before the wrap) at a threshold resolution of 1 / 1024."""
    theta_max = float(layer.threshold.max())
    cur_max = _current_bound(w, wb, qrange)
    best = None
    for e in range(min(max_exp, EXP_MAX), EXP_MIN - 1, -1):
        if round(theta_max * 2 * scale * gain * 2.0 ** e) > VTH_MAX:
            continue
        if best is None:
            best = e
        shifted = cur_max << e if e >= 0 else cur_max >> -e
        if shifted * 64 <= UV_MAX:
            return e
    if best is None:
        raise ExportError(f"{layer.name}: threshold/weight ratio {theta_max:.3g} too large for a "
                          f"17-bit threshold even with weight_exp={EXP_MIN}")
    if gain != 1.0:
        theta_min = float(layer.threshold.min())
        for e in range(EXP_MIN, best):
            if round(theta_min * 2 * scale * gain * 2.0 ** e) >= GRADED_VTH_MIN:
                return e
    return best


def quantize_layer(layer: LayerIR, weight_exp: int | None = None,
                   max_weight_exp: int = EXP_MAX, *, input_step: float | None = None,
                   input_qrange: tuple[int, int] = (0, 1)) -> FixedPointLayer:
    """Quantise one float layer (see module docstring); ``weight_exp`` overrides the choice of e,
    ``max_weight_exp`` caps it (netx files need e <= 0). ``input_step`` (graded first layer): the
    float value of one unit of the integer input q in ``input_qrange``; its gain 1 / step is folded
    into vth and the exponent, and the bias is scaled for a bias line at q_max."""
    graded = input_step is not None
    gain = 1.0 / input_step if graded else 1.0
    bias_x = input_qrange[1] * input_step if graded else 1.0  # float value of the bias line
    bias_w = None if layer.bias is None else layer.bias / bias_x
    parts = [np.abs(layer.weight).max()]
    if bias_w is not None:
        parts.append(np.abs(bias_w).max())
    wmax = float(max(parts))
    if wmax == 0.0:
        raise ExportError(f"{layer.name}: all weights and biases are zero; nothing to scale")
    scale = 127.0 / wmax
    w = (2 * np.round(scale * layer.weight)).astype(np.int32)
    wb = None if bias_w is None else (2 * np.round(scale * bias_w)).astype(np.int32)
    if weight_exp is None:
        e = _choose_exp(layer, scale, w, wb, max_weight_exp, gain, input_qrange)
    elif not (isinstance(weight_exp, (int, np.integer)) and EXP_MIN <= weight_exp <= EXP_MAX):
        raise ExportError(f"{layer.name}: weight_exp must be an int in [{EXP_MIN}, {EXP_MAX}], "
                          f"got {weight_exp!r}")
    else:
        e = int(weight_exp)
    if np.round(float(layer.threshold.max()) * 2 * scale * gain * 2.0 ** e) > VTH_MAX:
        raise ExportError(f"{layer.name}: threshold does not fit 17 bits with weight_exp={e}")
    vth = np.round(layer.threshold * 2 * scale * gain * 2.0 ** e).astype(np.int64)
    dv = np.round(4096 * (1.0 - layer.beta)).astype(np.int64)
    return FixedPointLayer(weight=w, bias=wb, weight_exp=int(e),
                           du=np.full(layer.out_features, 4095, np.int32),
                           dv=np.clip(dv, 0, 4095).astype(np.int32),
                           vth=vth.astype(np.int32), reset=layer.reset, scale=scale, name=layer.name)


DEFAULT_INPUT_BITS = 8
DEFAULT_INPUT_RANGE = (0.0, 1.0)


def input_quantization(input_range: tuple[float, float] | None = None,
                       input_bits: int | None = None) -> tuple[int, bool, float]:
    """(bits, signed, step) of a graded input covering ``input_range`` (default [0, 1]) with
    ``input_bits`` bits (default 8): unsigned when lo >= 0, else signed (module docstring)."""
    bits = DEFAULT_INPUT_BITS if input_bits is None else input_bits
    lo, hi = DEFAULT_INPUT_RANGE if input_range is None else input_range
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi and hi > 0):
        raise ExportError(f"input_range must be finite with lo < hi and hi > 0, got {input_range!r}")
    signed = lo < 0
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or \
            not (2 if signed else 1) <= bits <= INPUT_BITS_MAX:
        raise ExportError(f"input_bits must be an int in [{2 if signed else 1}, {INPUT_BITS_MAX}] "
                          f"({'signed' if signed else 'unsigned'} input), got {bits!r}")
    qmax = graded_input_range(int(bits), signed)[1]
    return int(bits), signed, (max(-lo, hi) if signed else hi) / qmax


def quantize(ir: NetworkIR, weight_exp: int | None = None,
             max_weight_exp: int = EXP_MAX, *, input_range: tuple[float, float] | None = None,
             input_bits: int | None = None) -> FixedPointNetwork:
    """Quantise every layer of ``ir`` to Lava ``fixed_pt`` / Loihi 2 integer formats
    (``weight_exp``: one exponent for all layers instead of the per-layer choice;
    ``max_weight_exp``: cap on the per-layer choice).

    Graded-input IRs: the input is quantised to ``input_bits`` (default 8) bits over
    ``input_range`` (default [0, 1]; a negative lower bound gives a signed input), see the module
    docstring; both are refused for a spike-input IR."""
    if not isinstance(ir, NetworkIR):
        raise ExportError(f"quantize expects a NetworkIR, got {type(ir).__name__}")
    if ir.input_kind == "spikes":
        if input_range is not None or input_bits is not None:
            raise ExportError("quantize: input_range / input_bits apply to graded-input networks; "
                              "this network reads binary spikes")
        return FixedPointNetwork(tuple(quantize_layer(layer, weight_exp, max_weight_exp)
                                       for layer in ir))
    bits, signed, step = input_quantization(input_range, input_bits)
    qrange = graded_input_range(bits, signed)
    layers = [quantize_layer(ir.layers[0], weight_exp, max_weight_exp, input_step=step,
                             input_qrange=qrange)]
    layers += [quantize_layer(layer, weight_exp, max_weight_exp) for layer in ir.layers[1:]]
    return FixedPointNetwork(tuple(layers), input_kind="graded", input_bits=bits,
                             input_signed=signed, input_step=step)


def lava_dense_weights(weight: np.ndarray) -> np.ndarray:
    """The weights Lava's bit-accurate Dense actually uses (``clip_weights`` then
    ``truncate_weights`` with 8 bits and the sign mode inferred from the matrix, as in
    ``lava/utils/weightutils.py``)."""
    w = np.asarray(weight).astype(np.int64)
    if w.min() >= 0:          # excitatory
        return np.clip(w, 0, 255).astype(np.int32)
    if w.max() <= 0:          # inhibitory
        return (-np.clip(-w, 0, 255)).astype(np.int32)
    w = np.clip(w, -256, 255)  # mixed: 8-bit magnitude + sign, lowest bit truncated
    return ((w >> 1) << 1).astype(np.int32)
