"""The Open Neuromorphic SNN-library benchmark shape, ours against Norse (``torch.compile``) and
snnTorch, timed interleaved in one run on one device.

Shape (open-neuromorphic.org, "Spiking Neural Network (SNN) Library Benchmarks", 2023/2024): one
fully connected layer n → n and one LIF layer; input ``[T = 500, B = 16, n]``, n = 16,384; one
forward + backward pass (loss = Σ output spikes), no optimiser step. Input: uniform [0, 1) currents,
the same tensor for every variant.

* snnTorch — ``nn.Linear`` + ``snn.Leaky`` (β = 0.9, ATan surrogate) called per time step;
* Norse — ``nn.Linear`` over the whole sequence, then ``LIFBoxCell`` per step (its LIF without a
  synaptic current), the whole module under ``torch.compile`` (``--norse-compile step`` compiles only
  the cell: a fallback where compiling 500 unrolled steps takes too long);
* ours — ``nn.Linear`` over the whole sequence, then :func:`metaspin_snn.networks.leaky_scan` (on
  CUDA the Triton kernels of ``networks/triton_lif.py``), and the same with the torch recursion
  (``backend="torch"``), which is what CUDA ran before; and the library's ``SpikingMLP([n, n])``
  (plain weights, dense product), i.e. what ``metaspin`` trains.

Each variant's first two passes (compilation, autotuning) are not timed. Times: median of
``--repeat`` passes, variants round-robin; CUDA events on a GPU, ``perf_counter`` on the CPU. Float32,
with the matrix products in full float32 (``fp32``, torch's default) and then, with ``--precision
fp32,tf32``, in TF32 for every variant alike (two warm-up passes again: compiled code may recompile).
The two n×n products (forward, weight gradient: 2·2·T·B·n² flops) are the same work in every variant,
so the ratios between variants depend on how much of the time they take, hence both settings.

    python bench/open_neuromorphic.py [--device cuda] [--n 16384] [--T 500] [--B 16] [--repeat 10]
                                      [--precision fp32,tf32] [--norse-compile whole|step|none]
    python bench/open_neuromorphic.py --device cpu --n 256 --T 50 --repeat 3     # a dry run
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

from metaspin_snn.networks import SpikingMLP, leaky_scan, make_leaky
from metaspin_snn.networks.lif import scan_backend


def snntorch_variant(n: int, device: str) -> Callable[[torch.Tensor], None]:
    import snntorch as snn
    fc = nn.Linear(n, n).to(device)
    lif = snn.Leaky(beta=0.9).to(device)

    def run(x):
        mem = lif.reset_mem()
        total = 0
        for t in range(x.shape[0]):
            spk, mem = lif(fc(x[t]), mem)
            total = total + spk.sum()
        total.backward()
    return run


def norse_variant(n: int, device: str, mode: str) -> Callable[[torch.Tensor], None]:
    from norse.torch import LIFBoxCell, LIFBoxParameters

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(n, n)
            p = LIFBoxParameters(tau_mem_inv=torch.tensor(100.0), v_th=torch.tensor(1.0), v_reset=torch.tensor(0.0))
            self.cell = LIFBoxCell(p, dt=0.001)

        def forward(self, x):
            cur = self.fc(x)
            st, total = None, 0
            for t in range(x.shape[0]):
                z, st = self.cell(cur[t], st)
                total = total + z.sum()
            return total
    net = Net().to(device)
    if mode == "whole":
        fwd = torch.compile(net)
    else:
        net.cell = torch.compile(net.cell)
        fwd = net

    def run(x):
        fwd(x).backward()
    return run


def ours_scan_variant(n: int, device: str, backend: str) -> Callable[[torch.Tensor], None]:
    fc = nn.Linear(n, n).to(device)
    lif = make_leaky(0.9, 1.0, "subtract").to(device)

    def run(x):
        spk, _ = leaky_scan(fc(x), lif, backend=backend)
        spk.sum().backward()
    return run


def ours_model_variant(n: int, device: str) -> Callable[[torch.Tensor], None]:
    m = SpikingMLP([n, n], beta=0.9, threshold=1.0, reset="subtract", sparse=False).to(device)

    def run(x):
        m(x).out_spikes.sum().backward()
    return run


def timer(device: str) -> Callable[[Callable[[], None]], float]:
    """Milliseconds of one call."""
    if device.startswith("cuda"):
        def t(fn):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            return a.elapsed_time(b)
    else:
        def t(fn):
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1e3
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, default=16384)
    ap.add_argument("--T", type=int, default=500)
    ap.add_argument("--B", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--norse-compile", choices=("whole", "step", "none"), default="whole")
    ap.add_argument("--only", default="", help="comma-separated variant name prefixes")
    ap.add_argument("--precision", default="fp32", help="comma list of fp32, tf32 (matrix products)")
    args = ap.parse_args()
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    if not precisions or any(p not in ("fp32", "tf32") for p in precisions):
        ap.error(f"--precision: a comma list of fp32, tf32; got {args.precision!r}")
    dev = args.device
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.T, args.B, args.n, generator=gen).to(dev)
    name = torch.cuda.get_device_name(dev) if dev.startswith("cuda") else "CPU"
    print(f"Linear {args.n}→{args.n} + LIF, T = {args.T}, B = {args.B}, forward + backward, {name}, torch "
          f"{torch.__version__}")
    lif = make_leaky(0.9, 1.0, "subtract")
    print(f"leaky_scan backend on this device: {scan_backend(x, lif.beta, lif.threshold)}")
    makers: dict[str, Callable[[], Callable]] = {
        "snntorch loop": lambda: snntorch_variant(args.n, dev),
        f"norse LIFBoxCell, torch.compile ({args.norse_compile})": lambda: norse_variant(args.n, dev, args.norse_compile),
        "ours leaky_scan (auto backend)": lambda: ours_scan_variant(args.n, dev, "auto"),
        "ours leaky_scan (torch recursion)": lambda: ours_scan_variant(args.n, dev, "torch"),
        "ours SpikingMLP": lambda: ours_model_variant(args.n, dev),
    }
    if args.only:
        keep = [p.strip() for p in args.only.split(",") if p.strip()]
        makers = {k: v for k, v in makers.items() if any(k.startswith(p) for p in keep)}
    t = timer(dev)
    runs: dict[str, Callable] = {}
    for k, make in makers.items():
        try:
            torch.manual_seed(0)
            runs[k] = make()
        except ImportError as e:
            print(f"  {k}: skipped ({e}); pip install --no-deps -r bench/requirements-peers.txt")
    for prec in precisions:
        torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
        torch.backends.cudnn.allow_tf32 = prec == "tf32"
        print(f"\n{prec}: matrix products in {'TF32' if prec == 'tf32' else 'full float32'}")
        for k, run in runs.items():
            t0 = time.perf_counter()
            for _ in range(2):
                run(x)
            if dev.startswith("cuda"):
                torch.cuda.synchronize(dev)
            print(f"  {k}: first two passes {time.perf_counter() - t0:.1f} s")
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.repeat):
            for k, run in runs.items():  # round-robin
                times[k].append(t(lambda: run(x)))
        med = {k: statistics.median(v) for k, v in times.items()}
        norse = next((v for k, v in med.items() if k.startswith("norse")), None)
        snt = med.get("snntorch loop")
        print(f"{prec}: median ms per forward + backward (of {args.repeat}), ratio to snnTorch, ratio to Norse compiled")
        for k, v in med.items():
            a = f"{v / snt:7.3f}" if snt else "      —"
            b = f"{v / norse:7.3f}" if norse else "      —"
            print(f"  {k:50s} {v:10.2f} {a} {b}", flush=True)


if __name__ == "__main__":
    main()
