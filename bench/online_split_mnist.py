"""Split MNIST / split N-MNIST, domain-incremental, learned one sample at a time by :class:`OnlineSNN`.

Five tasks (0/1, 2/3, 4/5, 6/7, 8/9), label = digit mod 2 (two output neurons shared by all tasks),
rate-coded input, no BPTT, no replay, no task labels. After each task the network is tested on every
task's full test split; the final average accuracy is the mean of the last row of that matrix
(Zohora et al., Sci. Rep. 2024 report 81.14 ± 1.54 % for probabilistic metaplasticity, 784-200-2).

    python bench/online_split_mnist.py --per-task 2000 --seeds 0 1 2
    python bench/online_split_mnist.py --per-task 2000 --set '{"pmp_hidden": {"dm": 0}, "pmp_out": {"dm": 0}}'
    python bench/online_split_mnist.py --dataset nmnist --epochs 3     # real events, 10 ms bins

N-MNIST here is the small subset in ../shared/data (1,000 train / 100 test recordings, so ~200
training and ~20 test recordings per task: the test accuracies are coarse).

``--set`` takes a JSON object of :class:`OnlineConfig` fields; ``pmp_hidden`` / ``pmp_out`` take
fields of :class:`ProbabilisticMetaplasticity`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import torch

from metaspin_snn.data import load_mnist, load_nmnist
from metaspin_snn.networks.online import OnlineConfig, OnlineSNN


def make_config(overrides: dict, seed: int) -> OnlineConfig:
    kw = dict(overrides)
    base = OnlineConfig()
    for k in ("pmp_hidden", "pmp_out"):
        if k in kw:
            kw[k] = dataclasses.replace(getattr(base, k), **kw[k])
    return OnlineConfig(**kw, seed=seed)


def run(cfg: OnlineConfig, per_task: int, tr, te, epochs: int = 1, verbose: bool = True) -> list[list[float]]:
    """tr / te: (inputs [N, ...], digit labels [N]). Returns the accuracy matrix R[i][j]."""
    pairs = [(2 * k, 2 * k + 1) for k in range(5)]

    def task(d, k):
        m = (d[1] == pairs[k][0]) | (d[1] == pairs[k][1])
        return d[0][m], d[1][m] % 2

    net = OnlineSNN(cfg)
    g = torch.Generator().manual_seed(cfg.seed + 1000)
    tests = [task(te, k) for k in range(5)]
    R = []
    for k in range(5):
        x, y = task(tr, k)
        idx = torch.randperm(len(y), generator=g)[:per_task]
        for _ in range(epochs):
            net.fit_online(x[idx], y[idx])
            idx = idx[torch.randperm(len(idx), generator=g)]
        R.append([net.accuracy(*tests[j]) for j in range(5)])
        if verbose:
            print(f"  after task {k} ({len(idx)} train samples x {epochs}): "
                  + " ".join(f"{a:.3f}" for a in R[-1]), flush=True)
    return R


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-task", type=int, default=2000, help="training samples per task (one pass)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=1, help="passes over each task's samples")
    ap.add_argument("--dataset", choices=("mnist", "nmnist"), default="mnist")
    ap.add_argument("--dt-us", type=int, default=10000, help="N-MNIST bin width")
    ap.add_argument("--steps", type=int, default=30, help="N-MNIST bins per recording")
    ap.add_argument("--set", default="{}", help="JSON object of OnlineConfig overrides")
    args = ap.parse_args()
    torch.set_num_threads(1)
    overrides = json.loads(args.set)
    if args.dataset == "mnist":
        a, b = load_mnist(split="train"), load_mnist(split="test")
        tr, te = (a.images, a.labels), (b.images, b.labels)
    else:
        a, b = load_nmnist(split="train"), load_nmnist(split="test")
        tr = (a.frames(args.dt_us, args.steps, binary=True), a.labels)
        te = (b.frames(args.dt_us, args.steps, binary=True), b.labels)
        overrides = {"input": "spikes", "n_in": 2 * 34 * 34, "num_steps": args.steps, **overrides}
    finals = []
    t0 = time.perf_counter()
    for seed in args.seeds:
        cfg = make_config(overrides, seed)
        print(f"seed {seed}: rule={cfg.rule} {cfg.n_in}-{cfg.n_hidden}-{cfg.n_out}, T={cfg.num_steps}, "
              f"up to {args.per_task} samples/task x {args.epochs} epochs, {args.dataset}", flush=True)
        R = run(cfg, args.per_task, tr, te, args.epochs)
        finals.append(100 * sum(R[-1]) / 5)
        print(f"  final average accuracy {finals[-1]:.2f} %", flush=True)
    sd = statistics.stdev(finals) if len(finals) > 1 else 0.0
    print(f"final average accuracy over seeds {args.seeds}: {statistics.mean(finals):.2f} ± {sd:.2f} % "
          f"(paper, split MNIST: 81.14 ± 1.54 %); wall {time.perf_counter() - t0:.0f} s; overrides {overrides}")


if __name__ == "__main__":
    main()
