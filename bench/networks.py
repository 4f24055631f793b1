"""Training-step time (forward + backward + optimiser step) of a 784-1000-10 spiking MLP, batch 128,
T = 25, one thread, on rate-encoded real MNIST digits:

(a) the plain snnTorch loop: ``nn.Linear`` + ``snn.Leaky`` called per time step, ``torch.optim.Adam``;
(b) ``SpikingMLP(fast=True)`` + Adam (event-driven product where the policy picks it);
(b-dense) the same with ``sparse=False`` (hoisted dense GEMM only);
(c) (b) with ``MetaplasticBinary`` synapses; (d) (b) with ``MetaplasticMTJ`` synapses.

All variants are timed interleaved (round-robin); the median and the minimum of ``--repeat`` steps
are reported (the minimum is the less contention-sensitive estimate on a shared machine), with the
ratios b/a (target ≤ 0.8) and c/b (target ≤ 1.05) measured in this run. A second table
times the layer-1 product alone (forward + weight gradient) dense vs event-driven at several input
densities, to show where the event-driven product stops paying off.

    python bench/networks.py [--repeat 15] [--warmup 3]
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import statistics  # noqa: E402
import time  # noqa: E402

import snntorch as snn  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from metaspin_snn.data import load_mnist  # noqa: E402
from metaspin_snn.data.encoding import rate  # noqa: E402
from metaspin_snn.networks import SpikingMLP, make_optimizer, train_step  # noqa: E402
from metaspin_snn.networks.sparse import SparseLinearFn  # noqa: E402
from metaspin_snn.synapses.registry import synapse_factory  # noqa: E402

T, B, SIZES = 25, 128, (784, 1000, 10)


class PlainSnnTorch(nn.Module):
    """The canonical snnTorch tutorial network (reset to zero, β = 0.9, θ = 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 1000), nn.Linear(1000, 10)
        self.lif1 = snn.Leaky(beta=0.9, reset_mechanism="zero")
        self.lif2 = snn.Leaky(beta=0.9, reset_mechanism="zero")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m1, m2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        count = 0
        for t in range(x.shape[0]):
            s1, m1 = self.lif1(self.fc1(x[t]), m1)
            s2, m2 = self.lif2(self.fc2(s1), m2)
            count = count + s2
        return count


def mnist_batches(n: int, gen: torch.Generator):
    """``n`` batches of B real MNIST training digits: pixels in [0, 1], flattened ``[n·B, 784]``, and
    their labels, with the rate code ``[T, B, 784]`` of each batch drawn from ``gen``."""
    tr = load_mnist(None, "train")
    imgs = tr.images[: n * B].reshape(n * B, -1).float() / 255.0
    return imgs, tr.labels, [(rate(imgs[i * B:(i + 1) * B], T, generator=gen), tr.labels[i * B:(i + 1) * B])
                             for i in range(n)]


def make_variants(batches):
    torch.manual_seed(0)
    plain = PlainSnnTorch()
    plain_opt = torch.optim.Adam(plain.parameters(), lr=1e-3)

    def step_plain(x, y):
        plain_opt.zero_grad()
        F.cross_entropy(plain(x), y).backward()
        plain_opt.step()

    def ours(model, opt):
        def step(x, y):  # the library's one training step
            _, out = train_step(model, opt, x, y, return_output=True)
            step.rates = [float(s.detach().mean()) / T for s in out.spikes]
        step.rates = []
        return step

    variants = {"a snntorch loop": step_plain}
    torch.manual_seed(0)
    m = SpikingMLP(SIZES, beta=0.9)
    variants["b fast"] = ours(m, make_optimizer(m, lr=1e-3))
    torch.manual_seed(0)
    m = SpikingMLP(SIZES, beta=0.9, sparse=False)
    variants["b fast dense-only"] = ours(m, make_optimizer(m, lr=1e-3))
    for key, name in (("c fast + MetaplasticBinary", "metaplastic"), ("d fast + MetaplasticMTJ", "mtj")):
        try:
            fac = synapse_factory(name, seed=0)
        except ImportError as e:
            print(f"{key}: skipped ({e})")
            continue
        torch.manual_seed(0)
        m = SpikingMLP(SIZES, beta=0.9, synapse=fac)
        variants[key] = ours(m, make_optimizer(m, lr=1e-3))
    return variants


def product_table(repeat: int) -> None:
    print("\nlayer-1 product alone (784→1000, T·B = 3200 rows): forward + weight gradient, median ms")
    print(f"{'density':>8s} {'dense':>8s} {'event':>8s} {'event/dense':>12s}")
    w = (torch.randn(1000, 784) * 0.03).requires_grad_(True)
    b = torch.zeros(1000, requires_grad=True)
    g = torch.randn(T * B, 1000)
    for dens in (0.02, 0.05, 0.1, 0.13, 0.2, 0.3, 0.5):
        x = (torch.rand(T * B, 784) < dens).float()
        times = {"dense": [], "event": []}
        for _ in range(repeat):
            for k in times:
                t0 = time.perf_counter()
                y = F.linear(x, w, b) if k == "dense" else SparseLinearFn.apply(x, w, b)
                y.backward(g)
                times[k].append(time.perf_counter() - t0)
                w.grad = b.grad = None
        d, e = statistics.median(times["dense"]) * 1e3, statistics.median(times["event"]) * 1e3
        print(f"{dens:8.2f} {d:8.1f} {e:8.1f} {e / d:12.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--product-repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    _, _, batches = mnist_batches(args.repeat + args.warmup, torch.Generator().manual_seed(0))
    print(f"784-1000-10 spiking MLP, B = {B}, T = {T}, torch threads = {torch.get_num_threads()}, "
          f"input spike density {float(batches[0][0].mean()):.3f}")
    variants = make_variants(batches)
    times = {k: [] for k in variants}
    for i, (x, y) in enumerate(batches):
        for k, step in variants.items():
            t0 = time.perf_counter()
            step(x, y)
            if i >= args.warmup:
                times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    best = {k: min(v) * 1e3 for k, v in times.items()}
    for k, v in med.items():
        rates = getattr(variants[k], "rates", [])
        r = ", spike rates " + "/".join(f"{x:.3f}" for x in rates) if rates else ""
        print(f"{k:28s} {v:8.1f} ms/step median, {best[k]:8.1f} min (of {len(times[k])}){r}")
    print("\nratios            median     min")
    for label, num, den, target in (("(b)/(a)", "b fast", "a snntorch loop", "target <= 0.8"),
                                    ("(b-dense)/(a)", "b fast dense-only", "a snntorch loop", ""),
                                    ("(c)/(b)", "c fast + MetaplasticBinary", "b fast", "target <= 1.05"),
                                    ("(d)/(b)", "d fast + MetaplasticMTJ", "b fast", "")):
        if num in med:
            print(f"{label:14s} {med[num] / med[den]:9.3f} {best[num] / best[den]:7.3f}   {target}")
    product_table(args.product_repeat)


if __name__ == "__main__":
    main()
