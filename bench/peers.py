"""Training step of a 784-1000-10 spiking MLP (batch 128, T = 25, one thread): ours against the peer
frameworks, all timed interleaved in one run, as ratios to the plain snnTorch loop.

Every variant is forward + backward (cross-entropy on output spike counts) + Adam on the same input
batches: rate-coded real MNIST digits (density ≈ 0.13) and uniform Bernoulli spikes at densities
0.02 / 0.05 / 0.13 / 0.3.

* snnTorch loop — ``nn.Linear`` + ``snn.Leaky`` per time step (bench/networks.py ``PlainSnnTorch``);
* ``torch.compile`` of that module (inductor, CPU; compiled before timing);
* SpikingJelly multi-step — ``layer.Linear`` + ``neuron.LIFNode(step_mode="m")`` (τ = 10, no input
  decay, hard reset to 0: β = 0.9), torch backend, ``functional.reset_net`` after each step;
* Norse — ``nn.Linear`` hoisted over T·B, then ``LIFBoxCell`` per step (its leaky LIF box model);
* ours — ``SpikingMLP`` (fused LIF scan) with the default product policy (fixed thresholds), the
  ``"calibrated"`` policy (the machine's cost model, measured before timing), forced dense, forced
  event product; the same four with ``MetaplasticBinary`` synapses (the synapse kernel in the step).

Peers are an optional, pinned install, never a runtime dependency:
``.venv/bin/pip install --no-deps -r bench/requirements-peers.txt`` (``--no-deps``: their own pins
would replace the project's torch); a missing peer is skipped with a line.

The process keeps freed heap memory (:func:`metaspin_snn.networks.keep_freed_memory`, as the
``metaspin`` command does) for every variant alike; ``--allocator default`` leaves glibc's defaults.

    python bench/peers.py [--repeat 9] [--warmup 2] [--densities mnist,0.02,0.03,0.05,0.13,0.3]
                          [--no-compile] [--allocator kept|default]
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from networks import PlainSnnTorch, mnist_batches  # noqa: E402  (bench/networks.py)

from metaspin_snn.networks import SpikingMLP, keep_freed_memory, make_optimizer, train_step  # noqa: E402
from metaspin_snn.networks.sparse import product_costs  # noqa: E402
from metaspin_snn.synapses.registry import synapse_factory  # noqa: E402

T, B, SIZES = 25, 128, (784, 1000, 10)


def _adam_step(model: nn.Module, forward):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        opt.zero_grad()
        F.cross_entropy(forward(x), y).backward()
        opt.step()
    return step


def spikingjelly_variant():
    from spikingjelly.activation_based import functional, layer, neuron

    net = nn.Sequential(layer.Linear(784, 1000, step_mode="m"),
                        neuron.LIFNode(tau=10.0, decay_input=False, v_reset=0.0, step_mode="m"),
                        layer.Linear(1000, 10, step_mode="m"),
                        neuron.LIFNode(tau=10.0, decay_input=False, v_reset=0.0, step_mode="m"))

    def fwd(x):
        out = net(x).sum(0)
        return out
    step = _adam_step(net, fwd)

    def run(x, y):
        step(x, y)
        functional.reset_net(net)
    return run


def norse_variant():
    from norse.torch import LIFBoxCell, LIFBoxParameters

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(784, 1000), nn.Linear(1000, 10)
            p = LIFBoxParameters(tau_mem_inv=torch.tensor(100.0), v_th=torch.tensor(1.0), v_reset=torch.tensor(0.0))
            self.l1, self.l2 = LIFBoxCell(p, dt=0.001), LIFBoxCell(p, dt=0.001)

        def forward(self, x):
            cur = self.fc1(x)  # hoisted over T·B
            s1, st = [], None
            for t in range(x.shape[0]):
                z, st = self.l1(cur[t], st)
                s1.append(z)
            cur2 = self.fc2(torch.stack(s1))
            count, st2 = 0, None
            for t in range(x.shape[0]):
                z, st2 = self.l2(cur2[t], st2)
                count = count + z
            return count
    net = Net()
    return _adam_step(net, net)


def ours_variant(sparse, synapse: str | None):
    fac = synapse_factory(synapse, seed=0) if synapse else None
    m = SpikingMLP(SIZES, beta=0.9, sparse=sparse, synapse=fac)
    opt = make_optimizer(m, lr=1e-3)

    def step(x, y):
        train_step(m, opt, x, y)
    return step


def build_variants(compile_: bool, example):
    out = {}
    torch.manual_seed(0)
    plain = PlainSnnTorch()
    out["snntorch loop"] = _adam_step(plain, plain)
    if compile_:
        torch.manual_seed(0)
        plain_c = PlainSnnTorch()
        comp = torch.compile(plain_c)
        step = _adam_step(plain_c, comp)
        t0 = time.perf_counter()
        step(*example)
        step(*example)
        print(f"  (torch.compile: first two steps {time.perf_counter() - t0:.0f} s)")
        out["torch.compile(snntorch loop)"] = step
    for name, fn in (("spikingjelly multi-step", spikingjelly_variant), ("norse LIFBoxCell", norse_variant)):
        try:
            torch.manual_seed(0)
            out[name] = fn()
        except ImportError as e:
            print(f"  {name}: skipped ({e}); pip install --no-deps -r bench/requirements-peers.txt")
    for syn in (None, "metaplastic"):
        for label, sparse in (("default", "auto"), ("calibrated", "calibrated"), ("dense", False), ("event", True)):
            torch.manual_seed(0)
            out[f"ours {label}" + (" + MetaplasticBinary" if syn else "")] = ours_variant(sparse, syn)
    return out


def uniform_batches(density: float, labels: torch.Tensor, n: int, gen: torch.Generator):
    """``n`` batches of uniform Bernoulli spikes ``[T, B, 784]`` of the given density (with MNIST labels)."""
    return [((torch.rand(T, B, 784, generator=gen) < density).float(), labels[i * B:(i + 1) * B]) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--densities", default="mnist,0.02,0.03,0.05,0.13,0.3")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--allocator", choices=("kept", "default"), default="kept",
                    help="kept: keep_freed_memory() for the whole process (default); default: glibc's settings")
    args = ap.parse_args()
    kept = keep_freed_memory() if args.allocator == "kept" else False
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    nb = args.repeat + args.warmup
    kinds = [k.strip() for k in args.densities.split(",") if k.strip()]
    _, labels, mnist = mnist_batches(nb, gen)
    data = {k: mnist if k == "mnist" else uniform_batches(float(k), labels, nb, gen) for k in kinds}
    print(f"784-1000-10 spiking MLP, B = {B}, T = {T}, torch {torch.__version__}, threads = {torch.get_num_threads()}, "
          f"allocator: {'freed memory kept' if kept else 'glibc defaults'}")
    costs = product_costs()  # calibrated (or read from the cache) before anything is timed
    print(f"product cost model: {costs}; event product below density {costs.max_density(SIZES[1]):.3f} "
          f"for {SIZES[1]} outputs")
    variants = build_variants(not args.no_compile, data[kinds[0]][0])
    med: dict[str, dict[str, float]] = {}
    for kind in kinds:
        times = {k: [] for k in variants}
        for i, (x, y) in enumerate(data[kind]):
            for k, step in variants.items():  # interleaved: every variant on the same batch, round-robin
                t0 = time.perf_counter()
                step(x, y)
                if i >= args.warmup:
                    times[k].append(time.perf_counter() - t0)
        med[kind] = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        dens = float(data[kind][0][0].mean())
        print(f"\n{kind} (measured density {dens:.3f}): median ms per step (of {args.repeat}), ratio to the "
              "snnTorch loop, ratio to torch.compile")
        ref = med[kind]["snntorch loop"]
        comp = med[kind].get("torch.compile(snntorch loop)")
        for k, v in med[kind].items():
            c = f"{v / comp:7.2f}" if comp else "      —"
            print(f"  {k:38s} {v:8.1f} {v / ref:7.2f} {c}")
    print("\nratio table (to the snnTorch loop):")
    print("| variant | " + " | ".join(kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for k in variants:
        print(f"| {k} | " + " | ".join(f"{med[d][k] / med[d]['snntorch loop']:.2f}" for d in kinds) + " |")


if __name__ == "__main__":
    main()
