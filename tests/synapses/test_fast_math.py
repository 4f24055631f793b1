"""The vectorisable math helpers used inside the fused kernels, against float64 numpy."""
import numpy as np

from metaspin_snn.synapses import _kernels as k


def test_fast_tanh_error_below_3e7():
    x = np.linspace(-20, 20, 400_001).astype(np.float32)
    out = np.empty_like(x)
    k._tanh_array(x, out)
    err = np.abs(out.astype(np.float64) - np.tanh(x.astype(np.float64)))
    assert err.max() < 3e-7
    assert out[200_000] == 0.0 and np.all(np.sign(out) == np.sign(x))


def test_fast_exp_relative_error():
    x = np.linspace(-87, 88, 400_001).astype(np.float32)
    out = np.empty_like(x)
    k._exp_array(x, out)
    ref = np.exp(x.astype(np.float64))
    assert (np.abs(out - ref) / ref).max() < 2e-7


def test_sech2_relative_error_without_cancellation():
    x = np.linspace(-43, 43, 400_001).astype(np.float32)
    out = np.empty_like(x)
    k._sech2_array(x, out)
    ref = 1.0 / np.cosh(x.astype(np.float64)) ** 2
    assert (np.abs(out - ref) / ref).max() < 5e-7
    # where 1 - tanh² in float32 cancels to 0, sech2 still carries the value
    assert out[np.abs(x) > 10].min() > 0.0
