"""Hyper-parameter sweep of the online probabilistic-metaplasticity learner on a *validation* split.

Split MNIST, domain-IL, ``configs/split_mnist_online.toml`` (784-200-2, one pass, 2,000 samples per task)
with ``validation = N``: N samples of each task's training data are held out and the accuracy matrix is
measured on them, so the test split is never read. Grid: ``dm`` (both layers) × hidden ``err_th``.
Prints the final validation ACC of every point (mean over ``--seeds``) and the best one; then, with
``--test``, runs the best point on the test split for ``--test-seeds``.

    python bench/online_validation_sweep.py --seeds 0 --test --test-seeds 0 1 2 --out results/split-mnist-online-val
"""
from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path

import torch

from metaspin_snn.continual.config import load_config
from metaspin_snn.files import atomic_write_bytes
from metaspin_snn.continual.runner import run_stream

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "split_mnist_online.toml"


def point(dm: float, err_th: float) -> dict[str, float]:
    return {"pmp_hidden.dm": dm, "pmp_out.dm": dm, "pmp_hidden.err_th": err_th}


def run(params: dict[str, float], seed: int, out: Path, validation: int | None) -> float:
    base = load_config(CONFIG)
    cfg = base.replace(online_params={**base.online_params, **params}, seed=seed, validation=validation,
                       out=str(out), progress=False, checkpoint=False)
    return run_stream(cfg).metrics["acc"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dm", type=float, nargs="+", default=[0.01, 0.02, 0.04])
    ap.add_argument("--err-th", type=float, nargs="+", default=[2.0, 4.0, 8.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--validation", type=int, default=1000, help="held-out training samples per task")
    ap.add_argument("--test", action="store_true", help="then run the best point on the test split")
    ap.add_argument("--test-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    root = Path(a.out)
    rows = []
    for dm, th in itertools.product(a.dm, a.err_th):
        accs = [run(point(dm, th), s, root / f"val-dm{dm:g}-th{th:g}-s{s}", a.validation) for s in a.seeds]
        rows.append((dm, th, statistics.mean(accs)))
        print(f"dm {dm:g}  err_th(hidden) {th:g}  validation ACC {100 * rows[-1][2]:.1f}", flush=True)
    best = max(rows, key=lambda r: r[2])
    lines = [f"# online PMP sweep on a validation split ({a.validation} held-out training samples per task, "
             f"seeds {a.seeds})", "", "| dm | err_th (hidden) | validation ACC |", "|---|---|---|"]
    lines += [f"| {dm:g} | {th:g} | {100 * v:.1f}{' (best)' if (dm, th, v) == best else ''} |" for dm, th, v in rows]
    if a.test:
        tests = [run(point(best[0], best[1]), s, root / f"test-best-s{s}", None) for s in a.test_seeds]
        sd = statistics.stdev(tests) if len(tests) > 1 else 0.0
        lines += ["", f"best point on the test split, seeds {a.test_seeds}: "
                  f"{' / '.join(f'{100 * t:.1f}' for t in tests)} → {100 * statistics.mean(tests):.1f} ± {100 * sd:.1f} %"]
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(root / "summary.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
