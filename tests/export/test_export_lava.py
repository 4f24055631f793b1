"""Lava export: float spike-exactness vs snnTorch, and the bit-exact emulator vs Lava fixed_pt."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import snntorch as snn
from snntorch import utils as snn_utils
import torch
from torch import nn

from metaspin_snn.export.emulator import emulate
from metaspin_snn.export.fixed_point import FixedPointLayer, FixedPointNetwork, quantize
from metaspin_snn.export.ir import ExportError, LayerIR, NetworkIR, extract_ir, simulate_snntorch
from metaspin_snn.export.lava import run_lava


def _model(sizes, beta, threshold, reset, seed, binary_scale=None, bias=True):
    torch.manual_seed(seed)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        fc = nn.Linear(n_in, n_out, bias=bias)
        with torch.no_grad():
            fc.weight.mul_(3.0)
            if binary_scale is not None:  # binary (±1 · scale) synapses
                fc.weight.copy_(torch.sign(fc.weight) * binary_scale)
        layers += [fc, snn.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset,
                                 init_hidden=True)]
    return nn.Sequential(*layers).double()


def _run_model(model, x):
    """The snnTorch model's own modules in float64, each Leaky's spikes [T, B, out] (layer by
    layer: snnTorch's Heaviside returns float32 spikes, so a double Sequential cannot chain)."""
    snn_utils.reset(model)
    out = {i: [] for i, m in enumerate(model) if isinstance(m, snn.Leaky)}
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = torch.from_numpy(x[t]).double()
            for i, m in enumerate(model):
                h = m(h).double()
                if i in out:
                    out[i].append(h)
    return [torch.stack(v).numpy().astype(np.uint8) for v in out.values()]


def _spikes(T, B, n, p, seed):
    return (np.random.default_rng(seed).random((T, B, n)) < p).astype(np.uint8)


CASES = [  # sizes, beta, threshold, reset, seed, binary scale (None: real weights)
    ([30, 40, 10], 0.9, 1.0, "zero", 0, None),          # stock Lava LIF path
    ([20, 30, 25, 8], 0.95, 1.5, "zero", 2, None),      # 3 layers
    ([30, 40, 10], 0.3, 0.5, "zero", 3, 0.25),          # binary (±1·scale) synapses, tie-prone
    ([30, 40, 10], 0.9, 1.0, "subtract", 6, None),      # SnnLIF process (subtract reset)
    ([20, 30, 25, 8], 0.6, 0.8, "subtract", 7, 0.25),
]


@pytest.mark.parametrize("sizes,beta,threshold,reset,seed,binary", CASES)
def test_float_export_spike_exact(sizes, beta, threshold, reset, seed, binary):
    model = _model(sizes, beta, threshold, reset, seed, binary)
    ir = extract_ir(model)
    x = _spikes(40, 6, sizes[0], 0.35, seed)
    ref = _run_model(model, x)
    sim = simulate_snntorch(ir, x)
    lava = run_lava(ir, x, fixed_point=False, record_all=True, timeout=120)
    assert len(lava.layers) == len(ref) == len(sizes) - 1
    for k, (a, b, c) in enumerate(zip(ref, sim, lava.layers)):
        assert a.shape == c.shape == (40, 6, sizes[k + 1])
        np.testing.assert_array_equal(a, b)
        assert 0.01 < a.mean() < 0.9, f"layer {k}: degenerate spike rate {a.mean()}"
        np.testing.assert_array_equal(c, a, err_msg=f"layer {k}: Lava float raster != snnTorch")


def test_per_neuron_parameters_and_no_bias_float_exact():
    rng = np.random.default_rng(11)
    ir = NetworkIR((
        LayerIR(rng.normal(0, 1.5, (24, 16)), None, rng.uniform(0.2, 0.99, 24),
                rng.uniform(0.5, 1.5, 24), "zero", "l0"),
        LayerIR(rng.normal(0, 1.5, (6, 24)), rng.normal(0, 0.5, 6), 0.85,
                rng.uniform(0.5, 1.5, 6), "subtract", "l1")))
    x = _spikes(40, 5, 16, 0.4, 12)
    ref = simulate_snntorch(ir, x)
    got = run_lava(ir, x, record_all=True, timeout=120).layers
    for a, b in zip(ref, got):
        assert 0.01 < a.mean() < 0.9
        np.testing.assert_array_equal(b, a)


def _check_fixed(net: FixedPointNetwork, x: np.ndarray, chunk=None):
    em = emulate(net, x)
    lava = run_lava(net, x, fixed_point=True, record_all=True, chunk=chunk, timeout=120)
    for k, (a, b) in enumerate(zip(em, lava.layers)):
        np.testing.assert_array_equal(a, b, err_msg=f"layer {k}: emulator != Lava fixed_pt")
    return em


def test_emulator_bit_exact_vs_lava_quantized():
    """A quantised 3-layer network with zero / subtract / zero reset layers."""
    model = _model([30, 40, 25, 10], 0.85, 1.0, "zero", 0)
    ir = extract_ir(model)
    ir = NetworkIR(tuple(dataclasses.replace(layer, reset=r)
                         for layer, r in zip(ir.layers, ("zero", "subtract", "zero"))))
    net = quantize(ir)
    x = _spikes(40, 6, 30, 0.35, 0)
    em = _check_fixed(net, x, chunk=4)   # two runtimes: chunking must not change anything
    assert all(0.01 < e.mean() < 0.9 for e in em)


def _layer(rng, n_out, n_in, lo, hi, e, dv, vth, reset="zero", bias=True, du=4095):
    return FixedPointLayer(
        weight=rng.integers(lo, hi, (n_out, n_in)), weight_exp=e,
        bias=rng.integers(lo, hi, n_out) if bias else None,
        du=np.full(n_out, du), dv=dv if np.ndim(dv) else np.full(n_out, dv),
        vth=vth if np.ndim(vth) else np.full(n_out, vth), reset=reset)


def test_emulator_bit_exact_saturating_cases():
    """Wrapping current (e = 7), clipped voltage, odd weights (truncated), excitatory-only and
    inhibitory-only matrices, slow current decay, dv = 0, per-neuron vth/dv, subtract reset."""
    rng = np.random.default_rng(5)
    net = FixedPointNetwork((
        _layer(rng, 20, 12, -255, 256, 7, 300, 60000),                      # u wraps
        _layer(rng, 16, 20, 0, 256, 3, 0, rng.integers(1000, 90000, 16)),   # excitatory, v clips
        _layer(rng, 12, 16, -255, 200, 5, rng.integers(0, 4096, 12), 20000, "subtract", du=3000),
        _layer(rng, 8, 12, -255, 1, 2, 100, 500, bias=True),                # inhibitory + bias
    ))
    x = _spikes(30, 4, 12, 0.5, 6)
    em = _check_fixed(net, x)
    assert em[0].mean() > 0.01 and em[1].mean() > 0.01


def test_fixed_point_close_to_float():
    """Quantisation changes few spikes (the gap is 8-bit weight rounding)."""
    model = _model([40, 60, 10], 0.9, 1.0, "zero", 3)
    ir = extract_ir(model)
    x = _spikes(50, 20, 40, 0.3, 3)
    ref = simulate_snntorch(ir, x)
    em = emulate(quantize(ir), x)
    deq = simulate_snntorch(quantize(ir).dequantize(), x)
    assert (em[0] == ref[0]).mean() > 0.97
    assert (em[0] == deq[0]).mean() > 0.99


def test_unsupported_layer_and_reset_errors_name_the_layer():
    bad = nn.Sequential(nn.Linear(4, 5), snn.Leaky(beta=0.9, init_hidden=True),
                        nn.Conv1d(1, 1, 3))
    with pytest.raises(ExportError, match=r"'2' \(Conv1d\)"):
        extract_ir(bad)
    none_reset = nn.Sequential(nn.Linear(4, 5),
                               snn.Leaky(beta=0.9, reset_mechanism="none", init_hidden=True))
    with pytest.raises(ExportError, match=r"'1' \(Leaky\).*reset_mechanism='none'"):
        extract_ir(none_reset)
    syn = nn.Sequential(nn.Linear(4, 5), snn.Synaptic(alpha=0.5, beta=0.9, init_hidden=True))
    with pytest.raises(ExportError, match=r"'1' \(Synaptic\)"):
        extract_ir(syn)
    with pytest.raises(ExportError, match=r"'0'.*not followed"):
        extract_ir(nn.Sequential(nn.Linear(4, 5)))
    with pytest.raises(ExportError, match="reset mechanism 'bogus'"):
        LayerIR(np.ones((2, 2)), None, 0.9, 1.0, "bogus", "mylayer")
    with pytest.raises(ExportError, match="binary"):
        simulate_snntorch(extract_ir(_model([4, 3], 0.9, 1.0, "zero", 0)), np.full((2, 1, 4), 0.5))


def test_spiking_mlp_binary_synapses_float_exact():
    """A metaspin SpikingMLP with metaplastic binary synapses (frozen to ±scale) and batch norm
    folded into weights: Lava float ≡ the model's own forward pass (float64)."""
    from metaspin_snn.networks import build_model, model_spec

    torch.manual_seed(1)
    model = build_model(model_spec("mlp", (24,), 6, hidden=(32,), synapse="metaplastic", beta=0.9,
                                   threshold=1.0, reset="subtract", norm="batch"))
    model.train()
    with torch.no_grad():  # populate batch-norm running statistics
        model((torch.rand(20, 64, 24) < 0.5).float())
    model = model.double().eval()
    ir = extract_ir(model)
    x = _spikes(30, 6, 24, 0.5, 1)
    with torch.no_grad():
        out = model(torch.from_numpy(x).double()).out_spikes.numpy().astype(np.uint8)
    ref = simulate_snntorch(ir, x)
    np.testing.assert_array_equal(ref[-1], out)
    got = run_lava(ir, x, record_all=True, timeout=120).layers
    for a, b in zip(ref, got):
        assert 0.01 < a.mean() < 0.9
        np.testing.assert_array_equal(b, a)


def test_conv_net_without_pooling_exports_spike_exact():
    """SpikingConvNet (pool=1, batch norm folded): conv stages unrolled into Dense; Lava float ≡
    the model's forward pass. With max-pooling export is refused, naming the stage."""
    from metaspin_snn.networks import SpikingConvNet

    torch.manual_seed(0)
    model = SpikingConvNet((1, 8, 8), 4, channels=[3, 4], kernel_size=3, pool=1, norm="batch",
                           threshold=0.5)
    with torch.no_grad():
        model((torch.rand(10, 32, 1, 8, 8) < 0.5).float())
    model = model.double().eval()
    ir = extract_ir(model)
    assert ir.sizes == [64, 3 * 64, 4 * 64, 4]
    x = _spikes(20, 4, 64, 0.5, 2)
    with torch.no_grad():
        out = model(torch.from_numpy(x).double().reshape(20, 4, 1, 8, 8)).out_spikes.numpy()
    ref = simulate_snntorch(ir, x)
    np.testing.assert_array_equal(ref[-1], out.astype(np.uint8))
    got = run_lava(ir, x, record_all=True, timeout=120).layers
    for a, b in zip(ref, got):
        assert 0.01 < a.mean() < 0.9
        np.testing.assert_array_equal(b, a)
    with pytest.raises(ExportError, match=r"stages\[0\]' \(conv \+ max-pool 2\)"):
        extract_ir(SpikingConvNet((1, 8, 8), 4, channels=[3]))
