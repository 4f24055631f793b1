"""Graded (direct-current) input: the first layer reads real values x[t] (``encoding="direct"``).

Float Lava ≡ the float64 snnTorch reference on every layer; fixed point: the Numba emulator ≡ Lava
``fixed_pt`` bit for bit, close to the float reference; NIR keeps the input kind; netx refuses it;
the ``.lava.npz`` arrays carry it and rebuild in the Lava worker.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from metaspin_snn.export.emulator import emulate
from metaspin_snn.export.fixed_point import quantize
from metaspin_snn.export.ir import ExportError, LayerIR, NetworkIR, extract_ir, simulate_snntorch
from metaspin_snn.export.lava import network_arrays, run_lava
from metaspin_snn.export.lava_build import input_kind_of
from metaspin_snn.export.netx import write_netx
from metaspin_snn.export.nir_io import ir_from_nir, read_nir, to_nir, write_nir
from metaspin_snn.export.verification import verify
from metaspin_snn.networks import SpikingMLP

T = 4


def _metaplastic(seed: int = 0):
    from metaspin_snn.synapses.registry import synapse_factory
    return synapse_factory("metaplastic", seed=seed)


def _mlp(synapse: str, seed: int = 0) -> SpikingMLP:
    """The continual run's network family (bias=False, no norm, count output, zero reset, beta 0.9,
    threshold 1), small; ``gain`` only lifts the spike rates of the tiny layers."""
    torch.manual_seed(seed)
    factory, gain = (_metaplastic(seed), 0.5) if synapse == "metaplastic" else (None, 4.0)
    model = SpikingMLP([20, 16, 10], synapse=factory, bias=False, norm=None, output="count",
                       reset="zero", beta=0.9, threshold=1.0, gain=gain)
    return model.double().eval()


def _pixels(B: int, n: int, seed: int, levels: bool = False) -> np.ndarray:
    """Inputs in [0, 1] presented unchanged at each of the T steps (direct encoding); ``levels``:
    8-bit pixel values k / 255 (tie-prone sums with binary weights)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (1, B, n)) / 255.0 if levels else rng.random((1, B, n))
    return np.repeat(x, T, axis=0)


def _signed_ir(seed: int = 4) -> NetworkIR:
    """A graded network for standardised (signed) inputs, with a first-layer bias and a subtract
    reset layer."""
    rng = np.random.default_rng(seed)
    return NetworkIR((
        LayerIR(rng.normal(0, 0.5, (24, 12)), rng.normal(0, 0.3, 24), 0.9, 1.0, "zero", "hid"),
        LayerIR(rng.normal(0, 0.8, (6, 24)), None, 0.8, 0.7, "subtract", "out")),
        input_kind="graded")


def _signed_inputs(B: int, n: int, seed: int) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).normal(0, 1, (T, B, n)), -3, 3)


def _rates_ok(layers, first_step: bool = True) -> None:
    for k, a in enumerate(layers):
        assert 0.01 < a.mean() < 0.9, f"layer {k}: degenerate spike rate {a.mean()}"
    if first_step:  # spikes at t = 0: input delivered one step late would change the rasters
        assert layers[0][0].any(), "no layer-0 spike at t = 0"


# ------------------------------------------------------------------------------------------ IR
def test_graded_ir_equals_model_forward_and_validates_inputs():
    model = _mlp("real")
    ir = extract_ir(model, input="graded")
    assert ir.input_kind == "graded" and extract_ir(model).input_kind == "spikes"
    x = _pixels(8, 20, 0)
    with torch.no_grad():
        out = model(torch.from_numpy(x)).out_spikes.numpy().astype(np.uint8)
    ref = simulate_snntorch(ir, x)
    np.testing.assert_array_equal(ref[-1], out)  # same dynamics as the library's direct encoding
    _rates_ok(ref)
    # the graded reference really uses the values: binarised inputs give other spikes
    assert not all(np.array_equal(a, b) for a, b in
                   zip(ref, simulate_snntorch(ir, (x > 0.5).astype(np.float64))))
    with pytest.raises(ExportError, match="binary.*input='graded'"):
        simulate_snntorch(extract_ir(model), x)  # a spike IR refuses real-valued input
    bad = x.copy()
    bad[1, 0, 3] = np.nan
    with pytest.raises(ExportError, match="NaN"):
        simulate_snntorch(ir, bad)
    with pytest.raises(ExportError, match=r"shape \[T, B, 20\]"):
        simulate_snntorch(ir, x[:, :, :19])
    with pytest.raises(ExportError, match="input kind"):
        extract_ir(model, input="analog")
    with pytest.raises(ExportError, match="input kind"):
        NetworkIR(ir.layers, input_kind="current")


# -------------------------------------------------------------------------------- float Lava
FLOAT_CASES = ["real", "metaplastic-pixels", "signed-bias-subtract"]


def _float_case(name: str):
    if name == "real":
        return extract_ir(_mlp("real"), input="graded"), _pixels(8, 20, 1)
    if name == "metaplastic-pixels":
        return extract_ir(_mlp("metaplastic", 1), input="graded"), _pixels(8, 20, 2, levels=True)
    return _signed_ir(), _signed_inputs(8, 12, 3)   # varies over time, negative values


@pytest.mark.parametrize("case", FLOAT_CASES)
def test_float_lava_graded_spike_exact(case):
    ir, x = _float_case(case)
    ref = simulate_snntorch(ir, x)
    _rates_ok(ref)
    got = run_lava(ir, x, fixed_point=False, record_all=True, timeout=120).layers
    assert len(got) == len(ref)
    for k, (a, b) in enumerate(zip(ref, got)):
        assert b.shape == a.shape
        np.testing.assert_array_equal(b, a, err_msg=f"{case} layer {k}: Lava float != snnTorch")


# ------------------------------------------------------------------------------- fixed point
def test_fixed_point_graded_unsigned_8bit_bit_exact():
    ir = extract_ir(_mlp("metaplastic", 2), input="graded")
    x = np.concatenate([_pixels(12, 20, 5, levels=True), _pixels(12, 20, 6)], axis=1)
    fx = quantize(ir)
    # 8-bit unsigned payload q = rint(255 x): exact for pixel levels k / 255
    assert (fx.input_kind, fx.input_bits, fx.input_signed) == ("graded", 8, False)
    assert fx.input_step == pytest.approx(1 / 255) and fx.input_qrange == (0, 255)
    q = fx.quantize_input(x)
    assert q.dtype == np.int32
    np.testing.assert_array_equal(q, np.rint(x * 255))
    assert len(np.unique(q)) > 100
    # the input gain 255 is folded into layer 0's threshold / exponent, not into later layers
    l0, q0 = ir.layers[0], fx.layers[0]
    s = 127 / np.abs(l0.weight).max()
    np.testing.assert_array_equal(q0.weight, 2 * np.round(s * l0.weight))
    np.testing.assert_array_equal(q0.vth, np.round(l0.threshold * 2 * s * 255 * 2.0 ** q0.weight_exp))
    assert quantize(NetworkIR(ir.layers)).layers[0].weight_exp > q0.weight_exp  # spikes: no gain
    l1, q1 = ir.layers[1], fx.layers[1]
    s1 = 127 / np.abs(l1.weight).max()
    np.testing.assert_array_equal(q1.vth, np.round(l1.threshold * 2 * s1 * 2.0 ** q1.weight_exp))
    np.testing.assert_allclose(fx.dequantize().layers[0].threshold, l0.threshold, rtol=1e-3)

    em = emulate(fx, x)
    lava = run_lava(fx, x, fixed_point=True, record_all=True, chunk=8, timeout=120).layers
    for k, (a, b) in enumerate(zip(em, lava)):
        np.testing.assert_array_equal(a, b, err_msg=f"layer {k}: emulator != Lava fixed_pt")
    ref = simulate_snntorch(ir, x)
    _rates_ok(ref)
    deq = simulate_snntorch(fx.dequantize(), q * fx.input_step)
    for k, (r, d, e) in enumerate(zip(ref, deq, em)):
        assert (e == r).mean() >= 0.97, f"layer {k}: fixed point vs float {(e == r).mean()}"
        assert (e == d).mean() >= 0.99, f"layer {k}: fixed point vs dequantised {(e == d).mean()}"


def test_fixed_point_graded_signed_with_bias_bit_exact():
    ir = _signed_ir()
    x = _signed_inputs(10, 12, 7)
    with pytest.raises(ExportError, match="graded-input networks"):
        quantize(NetworkIR(ir.layers), input_range=(-3, 3))
    fx = quantize(ir, input_range=(-3.0, 3.0))
    assert (fx.input_bits, fx.input_signed, fx.input_qrange) == (8, True, (-127, 127))
    assert fx.input_step == pytest.approx(3 / 127)
    q = fx.quantize_input(x)
    assert q.min() < -100 and q.max() > 100
    np.testing.assert_array_equal(q, np.clip(np.rint(x / (3 / 127)), -127, 127))
    # first-layer bias = one more graded input column at q_max: w_b = 2 round(s b / 3)
    l0, q0 = ir.layers[0], fx.layers[0]
    s = 127 / max(np.abs(l0.weight).max(), np.abs(l0.bias).max() / 3)
    np.testing.assert_array_equal(q0.bias, 2 * np.round(s * l0.bias / 3))
    np.testing.assert_allclose(fx.dequantize().layers[0].bias, l0.bias, atol=3 / s)
    em = emulate(fx, x)
    lava = run_lava(fx, x, fixed_point=True, record_all=True, timeout=120).layers
    for k, (a, b) in enumerate(zip(em, lava)):
        np.testing.assert_array_equal(a, b, err_msg=f"layer {k}: emulator != Lava fixed_pt")
    ref = simulate_snntorch(ir, x)
    _rates_ok(ref)
    for k, (r, e) in enumerate(zip(ref, em)):
        assert (e == r).mean() >= 0.95, f"layer {k}: fixed point vs float {(e == r).mean()}"
    # a 4-bit input is coarser: still bit-exact in the emulator's model, but further from float
    fx4 = quantize(ir, input_range=(-3.0, 3.0), input_bits=4)
    assert fx4.input_qrange == (-7, 7)
    em4 = emulate(fx4, x)
    assert sum((e == r).mean() for r, e in zip(ref, em4)) < sum((e == r).mean()
                                                                for r, e in zip(ref, em))


def test_graded_exponent_keeps_current_headroom():
    """Direct currents of several thresholds per step: when no exponent avoids the worst-case
    24-bit wrap, the graded layer takes the smallest exponent with vth >= 1024 (headroom 2**17 / vth
    thresholds) instead of the largest that fits vth (headroom ~1 threshold: currents wrap)."""
    from metaspin_snn.export.fixed_point import FixedPointNetwork, quantize_layer

    rng = np.random.default_rng(12)
    p = np.linspace(0.45, 0.85, 30)[:, None]                      # excitatory fraction per row
    w = np.where(rng.random((30, 600)) < p, 1.0, -1.0) / 60.0    # binary ±c
    ir = NetworkIR((LayerIR(w, None, 0.9, 1.0, "zero", "l0"),), input_kind="graded")
    x = _pixels(16, 600, 13, levels=True)
    ref = simulate_snntorch(ir, x)
    assert (w @ x[0].T).max() > 2.5 and 0.1 < ref[0].mean() < 0.9  # > 2 thresholds in one step
    fx = quantize(ir)
    q0, e = fx.layers[0], fx.layers[0].weight_exp
    assert q0.vth.max() >= 1024
    if e > -8:                                                     # the smallest such exponent
        lower = quantize_layer(ir.layers[0], e - 1, input_step=fx.input_step, input_qrange=(0, 255))
        assert lower.vth.max() < 1024
    largest = max(k for k in range(-8, 8) if round(2 * 127 * 60 * 255 * 2.0 ** k) < 2 ** 17)
    assert e < largest
    tight = FixedPointNetwork((quantize_layer(ir.layers[0], largest, input_step=fx.input_step,
                                              input_qrange=(0, 255)),),
                              input_kind="graded", input_bits=8, input_step=fx.input_step)
    good, bad = (float((emulate(n, x)[0] == ref[0]).mean()) for n in (fx, tight))
    assert good >= 0.99 and bad < good - 0.05, (good, bad)


# ------------------------------------------------------------------------------ files / verify
def test_nir_round_trip_keeps_input_kind(tmp_path):
    ir = _signed_ir()
    graph = to_nir(ir)
    assert graph.nodes["input"].metadata["input_kind"] == "graded"
    back = read_nir(write_nir(ir, tmp_path / "g.nir"))
    assert back.input_kind == "graded"
    for a, b in zip(ir, back):
        np.testing.assert_array_equal(a.weight, b.weight)
    x = _signed_inputs(3, 12, 8)
    for a, b in zip(simulate_snntorch(ir, x), simulate_snntorch(back, x)):
        np.testing.assert_array_equal(a, b)
    spikes = NetworkIR(ir.layers)
    assert read_nir(write_nir(spikes, tmp_path / "s.nir")).input_kind == "spikes"
    old = to_nir(spikes)
    old.nodes["input"].metadata = {}  # a file without the key (written before): spikes
    assert ir_from_nir(old).input_kind == "spikes"


def test_netx_refuses_graded_input(tmp_path):
    ir = _signed_ir()
    for net in (ir, quantize(ir, input_range=(-3, 3))):
        with pytest.raises(ExportError, match="netx export supports binary spike inputs only") as e:
            write_netx(net, tmp_path / "g.h5")
        assert "\n" not in str(e.value) and "graded" in str(e.value)
    assert not list(tmp_path.iterdir())
    write_netx(NetworkIR(ir.layers), tmp_path / "s.h5")  # the same layers with spike input: fine


def _run_worker(arrays: dict, inputs: np.ndarray, tmp_path) -> list[np.ndarray]:
    """The Lava worker on arrays loaded from a saved file (process group killed afterwards)."""
    req, res = tmp_path / "req.npz", tmp_path / "res.npz"
    np.savez(req, spikes=inputs, record_all=np.asarray(1), chunk=np.asarray(inputs.shape[1]),
             steps_long=np.asarray(0), fail=np.asarray(""), **arrays)
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "metaspin_snn.export._lava_worker", str(req),
                             str(res)], env=env, start_new_session=True, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    with np.load(res) as f:
        return [f[f"layer{k}"] for k in range(int(arrays["n_layers"]))]


def test_lava_npz_carries_input_kind_and_rebuilds(tmp_path):
    ir = _signed_ir()
    x = _signed_inputs(4, 12, 9)
    fx = quantize(ir, input_range=(-3, 3))
    np.savez(tmp_path / "f.lava.npz", **network_arrays(ir))
    np.savez(tmp_path / "q.lava.npz", **network_arrays(fx))
    with np.load(tmp_path / "f.lava.npz") as f:
        floats = {k: f[k] for k in f.files}
    with np.load(tmp_path / "q.lava.npz") as f:
        fixed = {k: f[k] for k in f.files}
    assert str(floats["input_kind"]) == "graded" and "input_bits" not in floats
    assert str(fixed["input_kind"]) == "graded" and int(fixed["input_bits"]) == 8
    assert int(fixed["input_signed"]) == 1 and float(fixed["input_step"]) == fx.input_step
    assert int(fixed["L0.bias_input"]) == 127
    assert str(network_arrays(NetworkIR(ir.layers))["input_kind"]) == "spikes"
    assert input_kind_of({"kind": np.asarray("float")}) == "spikes"  # files written before
    got = _run_worker(floats, x, tmp_path)
    for a, b in zip(simulate_snntorch(ir, x), got):
        np.testing.assert_array_equal(b, a)
    got = _run_worker(fixed, fx.quantize_input(x), tmp_path)
    for a, b in zip(emulate(fx, x), got):
        np.testing.assert_array_equal(b, a)


def test_verify_graded_reports_input_kind():
    model = _mlp("metaplastic", 3)
    x = _pixels(16, 20, 10, levels=True)
    y = np.arange(16) % 10
    res = verify(model, x, y, fixed_point=True, backend="both", input="graded", timeout=120)
    assert res["input_kind"] == "graded" and res["emulator_equals_lava"] is True
    assert (res["input_bits"], res["input_signed"], res["input_range"]) == (8, False, [0.0, 1.0])
    assert res["input_clipped_fraction"] == 0.0
    assert min(res["spike_agreement"]) >= 0.97 and min(res["spike_agreement_vs_dequantized"]) >= 0.99
    ir = extract_ir(model, input="graded")
    res = verify(ir, x, y, backend="lava", timeout=120)
    assert res["input_kind"] == "graded" and res["spike_agreement"] == [1.0, 1.0]
    signed = verify(_signed_ir(), _signed_inputs(6, 12, 11), np.zeros(6, int), fixed_point=True,
                    backend="emulator")
    assert signed["input_signed"] is True and signed["input_range"][0] < -2.5
    with pytest.raises(ExportError, match="binary"):
        verify(extract_ir(model), x, y, fixed_point=True, backend="emulator")
    with pytest.raises(ExportError, match="input kind"):
        verify(ir, x, y, fixed_point=True, backend="emulator", input="spikes")
    bad = x.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(ExportError, match="NaN or inf"):
        verify(ir, bad, y, fixed_point=True, backend="emulator")
