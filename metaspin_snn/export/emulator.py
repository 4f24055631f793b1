"""Bit-exact Numba emulator of Lava's fixed-point ``Dense`` + ``LIF`` chain (lava-nc 0.10.0).

Emulates, integer for integer, ``PyDenseModelBitAcc`` (``lava/proc/dense/models.py``) and
``PyLifModelBitAcc`` (``lava/proc/lif/models.py``), including int32 wrap-around of the Dense
output channel, the single 24-bit wrap of the current and the 24-bit clip of the voltage::

    a   = int32((sum_j w_ij s_j) << e) + int32(w_b,i << e)           (Dense, bias Dense)
    u   = wrap24(int32(trunc0(u (4096 - du - 1) >> 12) + (a << 6)))
    v   = clip24(trunc0(v (4096 - dv) >> 12) + u [- (vth << 6) s_prev  for subtract reset])
    s   = v > vth << 6;   zero reset: v = 0 where s

trunc0(x) = sign(x) (|x| >> 12). A graded first layer (``input_kind="graded"``) reads integer
payloads q (``FixedPointNetwork.quantize_input``) through Lava's graded Dense path (``weights.dot``
in int32, then the shift), its bias line carrying the payload q_b = q_max::

    a   = int32(int32(sum_j w_ij q_j) << e) + int32(int32(w_b,i q_b) << e)

Time is aligned with snnTorch (Lava adds one step of delay per
Dense layer; :func:`metaspin_snn.export.lava.run_lava` removes it). Samples of a batch are
independent (Lava runs them as a block-diagonal network).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .fixed_point import FixedPointNetwork, lava_dense_weights
from .ir import ExportError

_M = 2 ** 23


@njit(cache=True, inline="always")
def _wrap32(x: np.int64) -> np.int64:
    return ((x + 2147483648) & 4294967295) - 2147483648


@njit(cache=True, inline="always")
def _shift(x: np.int64, e: np.int64) -> np.int64:
    return x << e if e >= 0 else x >> (-e)


@njit(cache=True, inline="always")
def _trunc_decay(x: np.int64, keep: np.int64) -> np.int64:
    p = x * keep
    return (p >> 12) if p >= 0 else -((-p) >> 12)


@njit(inline="always", cache=True, error_model="numpy")
def _lif_neuron(i, a, u, v, sprev, du, dv, vth, subtract, out, t, b):  # pragma: no cover - numba
    """Loihi-2 fixed-point LIF of neuron ``i`` for one step from its Dense output ``a`` (24-bit
    current u, voltage v, threshold vth·2⁶), in place; writes the spike to ``out[t, b, i]``."""
    cu = _wrap32(_trunc_decay(u[i], 4095 - np.int64(du[i])) + _wrap32(a << 6))
    if cu > _M:
        cu -= 2 * _M
    elif cu <= -_M:
        cu += 2 * _M
    u[i] = cu
    vv = _wrap32(_trunc_decay(v[i], 4096 - np.int64(dv[i])) + cu)
    th = np.int64(vth[i]) << 6
    if subtract and sprev[i] != 0:
        vv = _wrap32(vv - th)
    if vv > _M - 1:
        vv = _M - 1
    elif vv < -_M + 1:
        vv = -_M + 1
    s = vv > th
    if s and not subtract:
        vv = 0
    v[i] = vv
    sprev[i] = 1 if s else 0
    out[t, b, i] = 1 if s else 0


@njit(cache=True, error_model="numpy")
def _run_layer(x, wT, bias, e, du, dv, vth, subtract, out):  # pragma: no cover - numba
    """x uint8 [T, B, in] -> out uint8 [T, B, out] for one fixed-point Dense + LIF layer."""
    T, B, n_in = x.shape
    n_out = wT.shape[1]
    acc = np.zeros(n_out, np.int64)
    u = np.zeros(n_out, np.int64)
    v = np.zeros(n_out, np.int64)
    sprev = np.zeros(n_out, np.uint8)
    bias_a = np.zeros(n_out, np.int64)
    for i in range(n_out):
        bias_a[i] = _wrap32(_shift(np.int64(bias[i]), e))
    for b in range(B):
        u[:] = 0
        v[:] = 0
        sprev[:] = 0
        for t in range(T):
            acc[:] = 0
            for j in range(n_in):
                if x[t, b, j] != 0:
                    for i in range(n_out):
                        acc[i] += wT[j, i]
            for i in range(n_out):
                a = _wrap32(_wrap32(_shift(acc[i], e)) + bias_a[i])
                _lif_neuron(i, a, u, v, sprev, du, dv, vth, subtract, out, t, b)


@njit(cache=True, error_model="numpy")
def _run_graded_layer(q, wT, bias_a, e, du, dv, vth, subtract, out):  # pragma: no cover - numba
    """q int32 [T, B, in] (graded payloads) -> out uint8 [T, B, out]: Lava's graded Dense path
    (int32 ``weights.dot(q)`` then the shift) + the same LIF as :func:`_run_layer`; ``bias_a``
    is the bias Dense's int32 output."""
    T, B, n_in = q.shape
    n_out = wT.shape[1]
    acc = np.zeros(n_out, np.int64)
    u = np.zeros(n_out, np.int64)
    v = np.zeros(n_out, np.int64)
    sprev = np.zeros(n_out, np.uint8)
    for b in range(B):
        u[:] = 0
        v[:] = 0
        sprev[:] = 0
        for t in range(T):
            acc[:] = 0
            for j in range(n_in):
                qj = np.int64(q[t, b, j])
                if qj != 0:
                    for i in range(n_out):
                        acc[i] += np.int64(wT[j, i]) * qj
            for i in range(n_out):
                a = _wrap32(_wrap32(_shift(_wrap32(acc[i]), e)) + bias_a[i])
                _lif_neuron(i, a, u, v, sprev, du, dv, vth, subtract, out, t, b)


def _wrap32_np(x: np.ndarray) -> np.ndarray:
    return ((np.asarray(x, np.int64) + 2 ** 31) % 2 ** 32) - 2 ** 31


class FixedPointEmulator:
    """Prepared integer arrays of a :class:`FixedPointNetwork` (the weights Lava's Dense really uses,
    transposed to [in, out] int16 for event-driven accumulation); call :meth:`run` many times."""

    def __init__(self, network: FixedPointNetwork) -> None:
        if not isinstance(network, FixedPointNetwork):
            raise ExportError(f"expected a FixedPointNetwork, got {type(network).__name__}")
        self.network = network
        self.graded = network.input_kind == "graded"
        self._layers = []
        for k, layer in enumerate(network):
            wT = np.ascontiguousarray(lava_dense_weights(layer.weight).T.astype(np.int16))
            bias = (np.zeros(layer.out_features, np.int64) if layer.bias is None
                    else lava_dense_weights(layer.bias[:, None])[:, 0].astype(np.int64))
            if self.graded and k == 0:  # graded bias line: int32 w_b q_b, shifted, as int32
                e = int(layer.weight_exp)
                prod = _wrap32_np(bias * network.bias_input(0))
                bias = _wrap32_np(prod << e if e >= 0 else prod >> -e)
            self._layers.append((wT, bias, np.int64(layer.weight_exp), layer.du.astype(np.int64),
                                 layer.dv.astype(np.int64), layer.vth.astype(np.int64),
                                 layer.reset == "subtract"))

    def run(self, spikes: np.ndarray) -> list[np.ndarray]:
        """Each layer's spikes [T, B, out] (uint8) for ``spikes`` [T, B, in]: binary spikes, or the
        real-valued inputs of a graded network (quantised with ``network.quantize_input``)."""
        x = np.ascontiguousarray(self.network.quantize_input(spikes))
        outs = []
        for k, (wT, bias, e, du, dv, vth, subtract) in enumerate(self._layers):
            out = np.zeros((x.shape[0], x.shape[1], wT.shape[1]), np.uint8)
            if self.graded and k == 0:
                _run_graded_layer(x, wT, bias, e, du, dv, vth, subtract, out)
            else:
                _run_layer(x, wT, bias, e, du, dv, vth, subtract, out)
            outs.append(out)
            x = out
        return outs


def emulate(network: FixedPointNetwork, spikes: np.ndarray) -> list[np.ndarray]:
    """Run ``network`` on ``spikes`` [T, B, in] (binary spikes, or real values for a graded network);
    return each layer's spikes [T, B, out] (uint8).

    Bit-identical to Lava ``fixed_pt`` (Loihi2SimCfg) with the one-step-per-layer delay removed.
    For many calls on one network, build a :class:`FixedPointEmulator` once.
    """
    return FixedPointEmulator(network).run(spikes)
