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
the 24-bit range (no wrap).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ir import ExportError, LayerChain, LayerIR, NetworkIR, WeightShape

VTH_MAX = 2 ** 17 - 1
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


@dataclass(frozen=True)
class FixedPointNetwork(LayerChain):
    """A chain of :class:`FixedPointLayer` (Lava ``fixed_pt`` / Loihi 2 formats)."""

    layers: tuple[FixedPointLayer, ...] = field(default_factory=tuple)

    def dequantize(self) -> NetworkIR:
        """The float network these integers represent: W = w / 2s, theta = vth / (2s 2**e),
        beta = 1 - dv / 4096 (du = 4095 maps to an instantaneous current)."""
        out = []
        for layer in self.layers:
            s2 = 2.0 * layer.scale
            out.append(LayerIR(
                weight=layer.weight / s2,
                bias=None if layer.bias is None else layer.bias / s2,
                beta=1.0 - layer.dv / 4096.0,
                threshold=layer.vth / (s2 * 2.0 ** layer.weight_exp),
                reset=layer.reset, name=layer.name))
        return NetworkIR(tuple(out))


def _current_bound(w: np.ndarray, wb: np.ndarray | None) -> int:
    """Largest |sum_j w_ij s_j + w_b,i| over binary inputs s (positive or negative part of a row)."""
    w64 = w.astype(np.int64)
    pos = np.where(w64 > 0, w64, 0).sum(axis=1)
    neg = np.where(w64 < 0, -w64, 0).sum(axis=1)
    if wb is not None:
        pos = pos + np.maximum(wb, 0)
        neg = neg + np.maximum(-wb.astype(np.int64), 0)
    return int(max(pos.max(), neg.max()))


def _choose_exp(layer: LayerIR, scale: float, w: np.ndarray, wb: np.ndarray | None,
                max_exp: int = EXP_MAX) -> int:
    """Largest exponent in [EXP_MIN, EXP_MAX] with vth < 2**17 and no possible 24-bit current wrap
    (falls back to the largest exponent that fits the threshold)."""
    theta_max = float(layer.threshold.max())
    cur_max = _current_bound(w, wb)
    best = None
    for e in range(min(max_exp, EXP_MAX), EXP_MIN - 1, -1):
        if round(theta_max * 2 * scale * 2.0 ** e) > VTH_MAX:
            continue
        if best is None:
            best = e
        shifted = cur_max << e if e >= 0 else cur_max >> -e
        if shifted * 64 <= UV_MAX:
            return e
    if best is None:
        raise ExportError(f"{layer.name}: threshold/weight ratio {theta_max:.3g} too large for a "
                          f"17-bit threshold even with weight_exp={EXP_MIN}")
    return best


def quantize_layer(layer: LayerIR, weight_exp: int | None = None,
                   max_weight_exp: int = EXP_MAX) -> FixedPointLayer:
    """Quantise one float layer (see module docstring); ``weight_exp`` overrides the choice of e,
    ``max_weight_exp`` caps it (netx files need e <= 0)."""
    parts = [np.abs(layer.weight).max()]
    if layer.bias is not None:
        parts.append(np.abs(layer.bias).max())
    wmax = float(max(parts))
    if wmax == 0.0:
        raise ExportError(f"{layer.name}: all weights and biases are zero; nothing to scale")
    scale = 127.0 / wmax
    w = (2 * np.round(scale * layer.weight)).astype(np.int32)
    wb = None if layer.bias is None else (2 * np.round(scale * layer.bias)).astype(np.int32)
    if weight_exp is None:
        e = _choose_exp(layer, scale, w, wb, max_weight_exp)
    elif not (isinstance(weight_exp, (int, np.integer)) and EXP_MIN <= weight_exp <= EXP_MAX):
        raise ExportError(f"{layer.name}: weight_exp must be an int in [{EXP_MIN}, {EXP_MAX}], "
                          f"got {weight_exp!r}")
    else:
        e = int(weight_exp)
    if np.round(float(layer.threshold.max()) * 2 * scale * 2.0 ** e) > VTH_MAX:
        raise ExportError(f"{layer.name}: threshold does not fit 17 bits with weight_exp={e}")
    vth = np.round(layer.threshold * 2 * scale * 2.0 ** e).astype(np.int64)
    dv = np.round(4096 * (1.0 - layer.beta)).astype(np.int64)
    return FixedPointLayer(weight=w, bias=wb, weight_exp=int(e),
                           du=np.full(layer.out_features, 4095, np.int32),
                           dv=np.clip(dv, 0, 4095).astype(np.int32),
                           vth=vth.astype(np.int32), reset=layer.reset, scale=scale, name=layer.name)


def quantize(ir: NetworkIR, weight_exp: int | None = None,
             max_weight_exp: int = EXP_MAX) -> FixedPointNetwork:
    """Quantise every layer of ``ir`` to Lava ``fixed_pt`` / Loihi 2 integer formats
    (``weight_exp``: one exponent for all layers instead of the per-layer choice;
    ``max_weight_exp``: cap on the per-layer choice)."""
    if not isinstance(ir, NetworkIR):
        raise ExportError(f"quantize expects a NetworkIR, got {type(ir).__name__}")
    return FixedPointNetwork(tuple(quantize_layer(layer, weight_exp, max_weight_exp)
                                   for layer in ir))


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
