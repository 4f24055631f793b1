"""Numba building blocks shared by the fused synapse kernels.

* :func:`np_view` — zero-copy, flat numpy view of a contiguous float32 CPU tensor (writes go to the
  tensor's storage).
* :func:`fast_tanh` — rational tanh, vectorisable (no libm call); max abs. error 2.4e-7 on float32
  inputs (odd degree-13 / even degree-6 rational in x, evaluated in float64, clamped at |x| = 7.905;
  the classic Padé-type minimax form used by e.g. Eigen's ``ptanh``).
* :func:`fast_exp` — float32 ``exp`` by Cody–Waite range reduction ``x = n·ln2 + r``, a degree-7
  Taylor polynomial for ``e^r`` (|r| ≤ ln2/2; measured rel. error < 1e-7) and ``2^n`` built from the exponent
  bits; input clamped to [-87, 88] (normal range). Vectorisable.
* :func:`sech2` — ``1 - tanh²(x) = 4e/(1+e)²`` with ``e = exp(-2|x|)``: no cancellation, relative
  error < 3e-7 for |x| < 43 (beyond, e is clamped at exp(-87) and the result is ~1e-38).

LLVM has no vector math library on these machines (no SVML), so ``math.tanh``/``math.exp`` are scalar
calls that block vectorisation; these inline helpers keep a fused loop SIMD.
"""
from __future__ import annotations

import numpy as np
import torch
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

NJIT = dict(cache=True, error_model="numpy", fastmath={"contract"})


def np_view(t: torch.Tensor, name: str = "tensor") -> np.ndarray:
    """Flat zero-copy numpy view of a contiguous float32 CPU tensor (in-place writes are seen by
    ``t``). Raises ``ValueError`` otherwise."""
    if t.device.type != "cpu" or t.dtype != torch.float32 or not t.is_contiguous():
        raise ValueError(f"np_view({name}): need a contiguous float32 CPU tensor, "
                         f"got {t.dtype} on {t.device}, contiguous={t.is_contiguous()}")
    return t.detach().reshape(-1).numpy()


@intrinsic
def _int_bits_as_f32(typingctx, x):
    """Reinterpret the low 32 bits of an integer as a float32 (LLVM ``bitcast``)."""
    if not isinstance(x, types.Integer):
        return None
    sig = types.float32(x)

    def codegen(context, builder, signature, args):
        v = args[0]
        if x.bitwidth != 32:
            v = builder.trunc(v, ir.IntType(32)) if x.bitwidth > 32 else builder.sext(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return sig, codegen


# float32 constants (module globals are frozen into the compiled code)
_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_F4 = np.float32(4.0)
_HALF = np.float32(0.5)
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)          # exactly representable, 8 significant bits
_LN2_LO = np.float32(-2.12194440e-4)       # ln2 - _LN2_HI
_EXP_LO = np.float32(-87.0)
_EXP_HI = np.float32(88.0)
_TANH_CLAMP = np.float32(7.90531110763549805)

# tanh(x) ≈ x·P(x²)/Q(x²)
_A1, _A3, _A5, _A7 = 4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08
_A9, _A11, _A13 = -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16
_B0, _B2, _B4, _B6 = 4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06


@njit(inline="always", **NJIT)
def fast_tanh(x):
    """Rational tanh of a float32, returned as float32 (abs. error ≤ 2.4e-7)."""
    xc = min(max(x, -_TANH_CLAMP), _TANH_CLAMP)
    xd = np.float64(xc)
    x2 = xd * xd
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * xd
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    return np.float32(p / q)


@njit(inline="always", **NJIT)
def fast_exp(x):
    """float32 exp, rel. error ≈ 1e-7, input clamped to [-87, 88]."""
    xc = min(max(x, _EXP_LO), _EXP_HI)
    n = np.floor(xc * _LOG2E + _HALF)
    r = xc - n * _LN2_HI - n * _LN2_LO
    p = np.float32(1.0 / 5040.0)
    p = p * r + np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + _HALF
    p = p * r + _F1
    p = p * r + _F1
    scale = _int_bits_as_f32((np.int32(n) + np.int32(127)) << np.int32(23))
    return p * scale


@njit(inline="always", **NJIT)
def sech2(x):
    """1 - tanh²(x) = 4e/(1+e)², e = exp(-2|x|), for a float32 x."""
    e = fast_exp(np.float32(-2.0) * abs(x))
    d = _F1 + e
    return _F4 * e / (d * d)


@njit(**NJIT)
def _tanh_array(x, out):  # test hook: fast_tanh over an array
    for i in range(x.size):
        out[i] = fast_tanh(x[i])


@njit(**NJIT)
def _exp_array(x, out):  # test hook
    for i in range(x.size):
        out[i] = fast_exp(x[i])


@njit(**NJIT)
def _sech2_array(x, out):  # test hook
    for i in range(x.size):
        out[i] = sech2(x[i])
