"""``metaspin sweep SWEEP.toml [--out DIR]``: a grid over run-config keys × seeds through submitit
(local processes or a SLURM job array; :mod:`metaspin_snn.continual.sweep`); rerunning skips the
finished points and resumes the killed ones. ``--aggregate``: mean ± std per grid point
(``aggregate.md``, ``aggregate.json``, ``aggregate.png``)."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run a grid of runs × seeds (local or SLURM, via submitit); --aggregate: mean ± std table and plot"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep_file", help="sweep TOML: [base] run-config keys, [grid] key = [values], [executor]")
    p.add_argument("--out", help="sweep folder (default: runs/sweep-<file stem>)")
    p.add_argument("--aggregate", action="store_true", help="write the mean ± std table and plot of the "
                   "finished points instead of running")
    p.add_argument("--wait", action="store_true", help="SLURM: wait for the job array to finish")
    p.add_argument("--dry-run", action="store_true", help="list the points and their status, run nothing")


def main(args: argparse.Namespace) -> int:
    from ..continual.sweep import aggregate, load_sweep, run_sweep
    sweep = load_sweep(args.sweep_file)
    out = Path(args.out) if args.out else Path("runs") / f"sweep-{Path(args.sweep_file).stem}"
    if args.aggregate:
        table = aggregate(sweep, out)
        print(table["markdown"], end="")
        print(f"-> {out / 'aggregate.md'}, {out / 'aggregate.json'}, {out / 'aggregate.png'}")
        return 0
    if args.dry_run:
        for p in sweep.points(out):
            print(f"{p.status():8s} {p.id}")
        return 0
    s = run_sweep(sweep, out, wait=True if args.wait else None)
    waiting = len(s["submitted"]) - len(s["ran"]) - len(s["failed"])
    print(f"sweep {out}: {len(s['done'])} already done, {len(s['ran'])} ran, {len(s['failed'])} failed"
          + (f", {waiting} submitted and not waited for (rerun with --aggregate when they finish)" if waiting else ""))
    return 1 if s["failed"] else 0
