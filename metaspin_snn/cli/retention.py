"""``metaspin retention RUN_DIR --times 1s,1h,1d,30d,1y``: accuracy per task of a trained device
network after that much idle time (thermal flips, ion relaxation; seeded), written to
``RUN_DIR/retention.json`` and ``retention.png``."""
from __future__ import annotations

import argparse

HELP = "accuracy of a trained device network after idle time (retention.json, retention.png)"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="folder of a finished `metaspin run` (its checkpoint.pt)")
    p.add_argument("--times", default="1s,1h,1d,30d,1y",
                   help="comma-separated idle times, increasing (units ns, us, ms, s, min, h, d, w, y)")
    p.add_argument("--data-root", help="dataset folder (default: the run's)")


def main(args: argparse.Namespace) -> int:
    from ..continual.retention import retention_curve, write_retention
    from ..synapses.devices import parse_duration
    labels = [t.strip() for t in args.times.split(",") if t.strip()]
    if not labels:
        raise ValueError("--times: give at least one idle time, e.g. 1s,1d,1y")
    times = [parse_duration(t) for t in labels]
    curve = retention_curve(args.run_dir, times, labels, data_root=args.data_root)
    js, png = write_retention(args.run_dir, curve)
    w = max(len(n) for n in curve["tasks"])
    print(f"{'idle':>8s}  " + "  ".join(f"{n:>{w}s}" for n in curve["tasks"]) + "    mean  flips")
    for lab, row, m, sw in zip(curve["labels"], curve["accuracy"], curve["mean"], curve["switches"]):
        print(f"{lab:>8s}  " + "  ".join(f"{100 * a:>{w}.1f}" for a in row) + f"  {100 * m:6.1f}  {sw}")
    print(f"-> {js}, {png}")
    return 0
