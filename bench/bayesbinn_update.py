"""BayesianBinary's whole update step (what a training step runs), one thread: the model's numba path
against its torch path, eager and under ``torch.compile``, and the part of it that computes the
code's 1 − μ² (float64 tanh of λ_μ, :func:`code_variance` / :func:`code_variance_fused`).

``bench/synapses.py`` times the kernel alone, with 1 − μ² precomputed for both sides; here it is
included, as in the model. Best of ``--repeat`` after a warm-up, in ms.

    python bench/bayesbinn_update.py [--n 10000000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import time

import torch

from metaspin_snn.synapses import BayesianBinary
from metaspin_snn.synapses.bayesbinn import code_variance, code_variance_fused


def best_ms(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    fused = BayesianBinary((args.n,), backend="numba")
    ref = BayesianBinary((args.n,), backend="torch")
    fused.effective_weight(), ref.effective_weight()  # a relaxed sample, as in training
    g = torch.randn(args.n, generator=torch.Generator().manual_seed(0)) * 1e-6
    compiled = torch.compile(lambda: ref._update_torch(g))
    rows = {
        "numba model update": best_ms(lambda: fused.update(g), args.repeat),
        "torch eager update": best_ms(lambda: ref._update_torch(g), args.repeat),
        "torch.compile(torch update)": best_ms(compiled, args.repeat),
        "1 - mu^2, torch expression": best_ms(lambda: code_variance(fused.lam_mu), args.repeat),
        "1 - mu^2, code_variance_fused": best_ms(lambda: code_variance_fused(fused.lam_mu), args.repeat),
    }
    print(f"BayesianBinary, {args.n} synapses, one thread, best of {args.repeat} (ms)")
    for k, v in rows.items():
        print(f"  {k:32s} {v:9.2f}")
    print(f"torch.compile / numba: {rows['torch.compile(torch update)'] / rows['numba model update']:.2f}")


if __name__ == "__main__":
    main()
