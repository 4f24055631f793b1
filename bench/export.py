"""Benchmark of the export path: bit-exact emulator vs Lava fixed_pt, export time, MNIST test set.

Ratios are measured in this run (nothing hard-coded):

1. per test sample, the way a user verifies a test set: Lava (build processes, compile + run T steps,
   read the sink, stop — one runtime per sample, timed inside the worker, interpreter start
   excluded) vs the emulator on one sample;
2. per step inside one long run (Lava: ``--long-steps`` steps after a 1-step warm-up run; emulator:
   one sample of the same length);
3. export time for a 784-1000-10 network (IR extraction, quantisation, NIR and netx files, Lava
   process build inside the worker);
4. the 10,000-sample MNIST test set through the emulator (batched), with accuracy and the float64
   snnTorch reference accuracy on a subset when ``--checkpoint`` gives a trained model.

Usage: ``python bench/export.py [--checkpoint runs/train_mnist_mlp_real_seed0.pt] [--lava-samples 5]``
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _random_net(sizes: list[int], seed: int):
    import snntorch as snn
    from torch import nn

    from metaspin_snn.export.ir import extract_ir

    torch.manual_seed(seed)
    mods = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        fc = nn.Linear(a, b)
        with torch.no_grad():
            fc.weight.mul_(4.0)
        mods += [fc, snn.Leaky(beta=0.9, threshold=1.0, init_hidden=True)]
    model = nn.Sequential(*mods)
    t0 = time.perf_counter()
    ir = extract_ir(model)
    return ir, time.perf_counter() - t0


def _mnist(n: int, T: int, seed: int):
    from metaspin_snn.data import load_mnist
    from metaspin_snn.data.encoding import rate

    ds = load_mnist(None, "test")
    n = min(n, len(ds))
    gen = torch.Generator().manual_seed(seed)
    x = rate(ds.float_images()[:n].reshape(n, -1), T, generator=gen)
    return x.numpy().astype(np.uint8), ds.labels[:n].numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="trained `metaspin train` model")
    p.add_argument("--num-steps", type=int, default=25)
    p.add_argument("--lava-samples", type=int, default=5)
    p.add_argument("--long-steps", type=int, default=1000)
    p.add_argument("--test-samples", type=int, default=10_000)
    p.add_argument("--reference-samples", type=int, default=1000,
                   help="samples for the float64 snnTorch reference accuracy")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from metaspin_snn.export.emulator import FixedPointEmulator, emulate
    from metaspin_snn.export.fixed_point import quantize
    from metaspin_snn.export.ir import extract_ir, simulate_snntorch
    from metaspin_snn.export.lava import network_arrays, run_lava
    from metaspin_snn.export.netx import write_netx
    from metaspin_snn.export.nir_io import write_nir

    T = args.num_steps
    if args.checkpoint is not None:
        from metaspin_snn.networks import load_model

        model, ck = load_model(args.checkpoint)
        ir = extract_ir(model)
        config = ck.get("train_config") or ck.get("run_config") or {}
        T = int(config.get("num_steps", T))
        print(f"model: {args.checkpoint} ({'-'.join(map(str, ir.sizes))}, T = {T})")
    else:
        ir, _ = _random_net([784, 500, 10], 0)
        print(f"model: random 784-500-10 (T = {T})")
    net = quantize(ir)
    print(f"weight_exp per layer: {[layer.weight_exp for layer in net]}")
    x, y = _mnist(max(args.test_samples, args.lava_samples), T, seed=1)

    # 1. per sample ----------------------------------------------------------------------------
    n_l = args.lava_samples
    lava = run_lava(net, x[:, :n_l], fixed_point=True, chunk=1, timeout=600)
    tm = lava.timings
    lava_per_sample = float(np.median(tm["total"]))
    emu = FixedPointEmulator(net)
    emu.run(x[:, :1])  # JIT compile / cache load
    reps = 200
    t0 = time.perf_counter()
    for i in range(reps):
        emu.run(x[:, i % n_l: i % n_l + 1])
    emu_per_sample = (time.perf_counter() - t0) / reps
    same = np.array_equal(emulate(net, x[:, :n_l])[-1], lava.output)
    print(f"[per sample, T={T}] Lava fixed_pt: {lava_per_sample * 1e3:.1f} ms median "
          f"(build {np.median(tm['build']) * 1e3:.0f}, compile+run {np.median(tm['run']) * 1e3:.0f}, "
          f"read {np.median(tm['read']) * 1e3:.0f}, stop {np.median(tm['stop']) * 1e3:.0f} ms; "
          f"{n_l} samples) | emulator: {emu_per_sample * 1e3:.3f} ms | "
          f"ratio {lava_per_sample / emu_per_sample:.0f}x | outputs identical: {same}")

    # 2. per step in one long run ------------------------------------------------------------------
    L = args.long_steps
    lr = run_lava(net, x[:, :1], fixed_point=True, steps_long=L, timeout=600)
    lava_step = float(lr.timings["per_step"])
    xl = (np.random.default_rng(0).random((L, 1, ir.layers[0].in_features)) < 0.1).astype(np.uint8)
    t0 = time.perf_counter()
    emu.run(xl)
    emu_step = (time.perf_counter() - t0) / L
    print(f"[per step, {L}-step run, 10% input] Lava fixed_pt: {lava_step * 1e6:.0f} us | emulator: "
          f"{emu_step * 1e6:.2f} us | ratio {lava_step / emu_step:.0f}x")

    # 3. export time for 784-1000-10 ---------------------------------------------------------------
    big, t_extract = _random_net([784, 1000, 10], 1)
    t0 = time.perf_counter()
    qbig = quantize(big)
    t_quant = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        network_arrays(qbig)
        t_arr = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_nir(big, Path(d) / "n.nir")
        t_nir = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_netx(big, Path(d) / "n.h5")
        t_netx = time.perf_counter() - t0
    rb = run_lava(qbig, x[:, :1], fixed_point=True, timeout=600)
    print(f"[export 784-1000-10] extract IR {t_extract * 1e3:.1f} ms, quantize {t_quant * 1e3:.1f} ms, "
          f"Lava arrays {t_arr * 1e3:.1f} ms, Lava process build {rb.timings['build'][0] * 1e3:.0f} ms, "
          f"NIR file {t_nir * 1e3:.0f} ms, netx file {t_netx * 1e3:.0f} ms")

    # 4. MNIST test set through the emulator ---------------------------------------------------------
    n = args.test_samples
    t0 = time.perf_counter()
    preds = []
    for s in range(0, n, 2000):
        preds.append(emu.run(x[:, s:s + 2000])[-1].sum(0).argmax(1))
    t_set = time.perf_counter() - t0
    acc_fx = float((np.concatenate(preds) == y[:n]).mean())
    msg = f"[MNIST test set] {n} samples through the emulator in {t_set:.2f} s " \
          f"({t_set / n * 1e3:.3f} ms/sample); fixed-point accuracy {acc_fx:.4f}"
    if args.checkpoint is not None:
        m = min(args.reference_samples, n)
        t0 = time.perf_counter()
        ref = simulate_snntorch(ir, x[:, :m])[-1].sum(0).argmax(1)
        t_ref = time.perf_counter() - t0
        acc_ref = float((ref == y[:m]).mean())
        acc_fx_m = float((np.concatenate(preds)[:m] == y[:m]).mean())
        with torch.no_grad():
            logits = model(torch.from_numpy(x[:, :m]).float()).logits
        acc_model = float((logits.argmax(1).numpy() == y[:m]).mean())
        msg += (f"\n    first {m}: float64 snnTorch {acc_ref:.4f} ({t_ref:.1f} s), model forward "
                f"(float32) {acc_model:.4f}, fixed point {acc_fx_m:.4f}, drop "
                f"{(acc_ref - acc_fx_m) * 100:+.2f} points")
    print(msg)


if __name__ == "__main__":
    main()
