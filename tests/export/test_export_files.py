"""NIR / netx round trips, verify(), the export CLI, and clean-up after failing Lava runs."""
from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from metaspin_snn.cli.export import add_args as add_export_args
from metaspin_snn.cli.export import main as run_export
from metaspin_snn.export.emulator import emulate
from metaspin_snn.export.fixed_point import quantize
from metaspin_snn.export.ir import ExportError, LayerIR, NetworkIR, simulate_snntorch
from metaspin_snn.export.lava import (LavaRunError, _shm_names, orphan_shm, run_lava,
                                      session_processes)
from metaspin_snn.export.netx import read_netx, write_netx
from metaspin_snn.export.nir_io import read_nir, to_nir, write_nir
from metaspin_snn.export.verification import verify


def _ir(seed=0, beta=(0.9, 0.8), per_neuron=False):
    rng = np.random.default_rng(seed)
    b1 = rng.uniform(0.3, 0.95, 12) if per_neuron else beta[0]
    return NetworkIR((
        LayerIR(rng.normal(0, 1.0, (12, 9)), rng.normal(0, 0.3, 12), b1, 1.0, "subtract", "hid"),
        LayerIR(rng.normal(0, 1.0, (4, 12)), None, beta[1], 0.7, "zero", "out")))


def test_nir_round_trip(tmp_path):
    ir = _ir(per_neuron=True)
    graph = to_nir(ir)
    assert list(graph.nodes) == ["input", "fc0", "lif0", "fc1", "lif1", "output"]
    # NIR's LIF with dt/tau = 1 - beta and r dt / tau = 1 is snnTorch's v = beta v + I
    lif = graph.nodes["lif0"]
    np.testing.assert_allclose(1e-4 / lif.tau, 1 - ir.layers[0].beta, rtol=1e-12)
    np.testing.assert_allclose(lif.r * 1e-4 / lif.tau, 1.0, rtol=1e-12)
    path = write_nir(ir, tmp_path / "net.nir")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temporary file
    back = read_nir(path)
    for a, b in zip(ir, back):
        np.testing.assert_array_equal(a.weight, b.weight)
        assert (a.bias is None) == (b.bias is None)
        if a.bias is not None:
            np.testing.assert_array_equal(a.bias, b.bias)
        np.testing.assert_allclose(a.beta, b.beta, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(a.threshold, b.threshold)
        assert (a.reset, a.name) == (b.reset, b.name)
    x = (np.random.default_rng(1).random((30, 3, 9)) < 0.4).astype(np.uint8)
    for a, b in zip(simulate_snntorch(ir, x), simulate_snntorch(back, x)):
        np.testing.assert_array_equal(a, b)


def test_nir_file_imports_into_snntorch(tmp_path):
    import nir
    from snntorch.import_nir import import_from_nir

    write_nir(_ir(), tmp_path / "n.nir")
    net = import_from_nir(nir.read(str(tmp_path / "n.nir")))
    w = dict(net.named_parameters())["fc0.weight"].detach().double().numpy()
    np.testing.assert_allclose(w, _ir().layers[0].weight, rtol=1e-6)


def test_netx_round_trip(tmp_path):
    ir = _ir()
    fx = quantize(ir, max_weight_exp=0)
    path = write_netx(fx, tmp_path / "net.h5")
    back = read_netx(path)
    for a, b in zip(fx, back):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias if a.bias is not None else [],
                                      b.bias if b.bias is not None else [])
        assert (a.weight_exp, a.reset, a.scale, a.name) == (b.weight_exp, b.reset, b.scale, b.name)
        for key in ("du", "dv", "vth"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    import h5py
    with h5py.File(path) as f:  # the netx keys lava-dl reads
        g = f["layer/0"]
        assert g["type"][()] == b"dense" and g["neuron/type"][()] == b"CUBA"
        assert int(g["neuron/iDecay"][()]) - 1 == fx.layers[0].du[0]
        assert int(g["neuron/vDecay"][()]) == fx.layers[0].dv[0]
        np.testing.assert_array_equal(g["weight"][()],
                                      fx.layers[0].weight.astype(np.int64) >> -fx.layers[0].weight_exp)
    x = (np.random.default_rng(2).random((30, 3, 9)) < 0.4).astype(np.uint8)
    for a, b in zip(emulate(fx, x), emulate(back, x)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ExportError, match="one du/dv per layer"):
        write_netx(_ir(per_neuron=True), tmp_path / "bad.h5")
    with pytest.raises(ExportError, match="weight_exp=3"):
        write_netx(quantize(ir, weight_exp=3), tmp_path / "bad.h5")


def test_quantize_mapping_matches_formula():
    ir = _ir()
    fx = quantize(ir)
    layer, q = ir.layers[0], fx.layers[0]
    s = 127 / max(np.abs(layer.weight).max(), np.abs(layer.bias).max())
    np.testing.assert_array_equal(q.weight, 2 * np.round(s * layer.weight))
    np.testing.assert_array_equal(q.bias, 2 * np.round(s * layer.bias))
    assert np.all(q.weight % 2 == 0) and np.abs(q.weight).max() == 254
    np.testing.assert_array_equal(q.vth, np.round(layer.threshold * 2 * s * 2.0 ** q.weight_exp))
    np.testing.assert_array_equal(q.dv, np.round(4096 * (1 - layer.beta)))
    assert np.all(q.du == 4095) and q.vth.max() < 2 ** 17
    # the chosen exponent cannot make the 24-bit current wrap
    bound = max(np.where(q.weight > 0, q.weight, 0).sum(1).max() + max(q.bias.max(), 0),
                np.where(q.weight < 0, -q.weight, 0).sum(1).max() + max(-q.bias.min(), 0))
    assert bound * 2.0 ** (6 + q.weight_exp) <= 2 ** 23
    back = fx.dequantize().layers[0]
    np.testing.assert_allclose(back.weight, layer.weight, atol=0.5 / s)
    np.testing.assert_allclose(back.threshold, layer.threshold, rtol=2e-3)


def test_verify_reports_agreement_and_accuracy():
    ir = _ir(3)
    x = (np.random.default_rng(3).random((30, 16, 9)) < 0.4).astype(np.uint8)
    y = np.arange(16) % 4
    res = verify(ir, x, y, fixed_point=True, backend="emulator")
    ref = simulate_snntorch(ir, x)
    em = emulate(quantize(ir), x)
    assert res["spike_agreement"] == [float((a == b).mean()) for a, b in zip(ref, em)]
    acc = float((ref[-1].sum(0).argmax(1) == y).mean())
    assert res["accuracy_reference"] == acc
    assert res["accuracy_drop"] == pytest.approx(acc - res["accuracy_deployed"])
    with pytest.raises(ExportError, match="labels"):
        verify(ir, x, y[:3], fixed_point=True, backend="emulator")


def _session_counts(stop: threading.Event, seen: dict) -> None:
    """Poll /proc for Lava worker processes of this process and count their session members."""
    me = str(Path("/proc/self").resolve().name)
    while not stop.is_set():
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes()
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = stat[stat.rindex(")") + 2:].split()[1]
            if b"metaspin_snn.export._lava_worker" in cmd and ppid == me:
                sid = int(entry.name)
                seen[sid] = max(seen.get(sid, 0), len(session_processes(sid)))
        time.sleep(0.2)


@pytest.mark.parametrize("fail", ["hang", "stuck", "raise"])
def test_failing_lava_run_leaves_no_process(fail):
    """hang: timeout → SIGTERM → the worker stops its runtime; stuck: the worker ignores SIGTERM →
    SIGKILL of its process group + unlinking of the orphaned shared memory; raise: an exception
    after the runtime started → finally: stop()."""
    ir = _ir()
    x = (np.random.default_rng(0).random((20, 2, 9)) < 0.4).astype(np.uint8)
    stop, seen = threading.Event(), {}
    poller = threading.Thread(target=_session_counts, args=(stop, seen), daemon=True)
    poller.start()
    shm_before = _shm_names()
    try:
        with pytest.raises(LavaRunError) as info:
            run_lava(ir, x, timeout=60.0 if fail == "raise" else 5.0, term_grace=1.0, _fail=fail)
    finally:
        stop.set()
        poller.join()
    err = info.value
    expected = {"hang": "terminated by signal", "stuck": "", "raise": "requested failure"}[fail]
    assert expected in err.stderr
    assert fail == "raise" or "timed out" in str(err)
    assert err.pid in seen
    if fail != "raise":
        assert seen[err.pid] >= 2, "the Lava runtime had not started its processes"
    assert session_processes(err.pid) == []
    assert orphan_shm(shm_before) == []


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from metaspin_snn.networks import build_model, model_spec, save_checkpoint

    torch.manual_seed(0)
    config = dict(dataset="mnist", arch="mlp", synapse="real", num_steps=20, encoding="rate",
                  hidden=[24], channels=[], in_shape=[28, 28], n_classes=10, beta=0.9,
                  threshold=1.0, reset="zero", norm=None, output="count", synapse_params={})
    spec = model_spec("mlp", (28, 28), 10, hidden=(24,), beta=0.9, threshold=1.0, reset="zero")
    model = build_model(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "m.pt", model, None, spec=spec, train_config=config,
                           seed=0)


def _args(*argv):
    p = argparse.ArgumentParser()
    add_export_args(p)
    return p.parse_args([str(a) for a in argv])


def test_cli_exports_and_verifies(checkpoint, tmp_path, capsys):
    assert run_export(_args(checkpoint, "--to", "nir", "--out", tmp_path / "m.nir")) == 0
    assert read_nir(tmp_path / "m.nir").sizes == [784, 24, 10]
    assert run_export(_args(checkpoint, "--to", "netx", "--out", tmp_path / "m.h5")) == 0
    assert read_netx(tmp_path / "m.h5").sizes == [784, 24, 10]
    assert run_export(_args(checkpoint, "--to", "lava", "--fixed-point", "--verify", 6,
                            "--out", tmp_path / "m.npz")) == 0
    out = capsys.readouterr().out
    assert '"emulator_equals_lava": true' in out and '"spike_agreement"' in out
    with np.load(tmp_path / "m.npz") as f:
        assert str(f["kind"]) == "fixed" and f["L0.weight"].shape == (24, 784)
