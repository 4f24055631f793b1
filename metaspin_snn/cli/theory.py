"""``metaspin theory memory-curve|lifetime``: memory curves of synapse models, simulated with the
library's kernels and overlaid with their closed forms (:mod:`metaspin_snn.theory`)."""
from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from ..theory.memory import SYNAPSES

HELP = "memory curves and lifetimes of synapse models (simulation + closed form)"


def add_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="theory_command", required=True)
    b = sub.add_parser("bridge", help="predict a continual run's accuracy matrix from a memory curve")
    b.add_argument("--run", type=Path, required=True, help="a metaspin run output folder (results.json)")
    b.add_argument("--curve", required=True,
                   help="'exponential' (binary synapse, MESU) or a memory_curve.json (e.g. results/theory/metaplastic-long)")
    b.add_argument("--out", type=Path, required=True, help="output folder")
    for name, help_text in (("memory-curve", "SNR(t) of one stored pattern, simulated and predicted"),
                            ("lifetime", "memory lifetime against the number of synapses N")):
        s = sub.add_parser(name, help=help_text)
        s.add_argument("--synapse", choices=SYNAPSES, required=True)
        s.add_argument("--t-max", type=int, default=None, help="largest lag (default: per model)")
        s.add_argument("--probes", type=int, default=50, help="stored patterns read per seed")
        s.add_argument("--spacing", type=int, default=10, help="steps between probes")
        s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
        s.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="model parameter (repeatable), e.g. q=0.05, depth=8, sigma=0.1, m=3")
        s.add_argument("--out", type=Path, required=True, help="output folder")
        if name == "memory-curve":
            s.add_argument("--n", type=float, default=1e4, help="number of synapses")
        else:
            s.add_argument("--n-values", type=float, nargs="+", default=[1e3, 1e4, 1e5, 1e6])
            s.add_argument("--sim-max", type=float, default=1e5, help="simulate only up to this N (theory beyond)")


_T_MAX = {"binary": 60, "cascade": 2000, "chain": 4000, "mesu": 600, "metaplastic": 2000, "mtj": 2000}


def _params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep:
            raise ValueError(f"--param expects NAME=VALUE, got {item!r}")
        out[k.strip()] = tomllib.loads(f"v = {v}")["v"]
    return out


def _plot(path: Path, curves: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]], xlabel: str, title: str) -> None:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..files import atomic_write_bytes
    fig = Figure(figsize=(5.5, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    for label, x, y, yth in curves:
        m = (x > 0) & (y > 0)
        ax.loglog(x[m], y[m], "o", ms=3, label=f"{label} (simulated)")
        if yth is not None:
            mt = (x > 0) & (yth > 0)
            ax.loglog(x[mt], yth[mt], "-", label=f"{label} (theory)")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("SNR" if xlabel.startswith("lag") else "lifetime (patterns)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def _bridge(args: argparse.Namespace) -> int:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..files import atomic_write_bytes
    from ..theory.bridge import bridge, exponential_rho, load_curve

    res_path = args.run / "results.json"
    if not res_path.is_file():
        raise FileNotFoundError(f"{args.run}: no results.json (is it a metaspin run folder?)")
    curve = args.curve
    if curve == "exponential":
        rho = exponential_rho()
    else:
        cp = Path(curve)
        rho = load_curve(cp / "memory_curve.json" if cp.is_dir() else cp)
    r = bridge(json.loads(res_path.read_text()), rho)
    r.update({"run": str(args.run), "curve": curve})
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "bridge.json", json.dumps(r, indent=1).encode())
    P, R = np.array(r["predicted"]), np.array(r["measured"])
    low = np.tril_indices(R.shape[0], -1)
    fig = Figure(figsize=(4.5, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    ax.plot(100 * R[low], 100 * P[low], "o", ms=4)
    ax.plot([0, 100], [0, 100], "k:", lw=0.8)
    ax.set_xlabel("measured R[i, k] (%)")
    ax.set_ylabel("predicted from the memory curve (%)")
    ax.set_title(f"{args.run.name}: κ = {r['kappa']:.3g}, RMSE {r['rmse_points']:.1f} pts", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(args.out / "bridge.png", buf.getvalue())
    print(f"{args.run}: κ = {r['kappa']:.3g}, RMSE {r['rmse_points']:.1f} points (bias {r['bias_points']:+.1f}) "
          f"-> {args.out / 'bridge.json'}")
    return 0


def main(args: argparse.Namespace) -> int:
    from ..files import atomic_write_bytes
    from ..theory.memory import lifetime_theory, memory_curve

    if args.theory_command == "bridge":
        return _bridge(args)
    params = _params(args.param)
    t_max = args.t_max or _T_MAX[args.synapse]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.theory_command == "memory-curve":
        n = int(args.n)
        c = memory_curve(args.synapse, n, t_max=t_max, probes=args.probes, spacing=args.spacing,
                         seeds=tuple(args.seeds), params=params)
        d = c.to_json()
        atomic_write_bytes(args.out / "memory_curve.json", json.dumps(d, indent=1).encode())
        t = np.array(c.t, dtype=float)
        _plot(args.out / "memory_curve.png", [(args.synapse, t, np.array(c.snr),
                                               None if c.snr_theory is None else np.array(c.snr_theory))],
              "lag t (patterns stored since)", f"{args.synapse}, N = {n}")
        th = "—" if c.lifetime_theory is None else f"{c.lifetime_theory:.1f}"
        print(f"{args.synapse}: N = {n}, lifetime {c.lifetime:.1f} (theory {th}) -> {args.out / 'memory_curve.json'}")
        return 0
    rows = []
    for nv in args.n_values:
        n = int(nv)
        sim = None
        if n <= args.sim_max:
            sim = memory_curve(args.synapse, n, t_max=t_max, probes=args.probes, spacing=args.spacing,
                               seeds=tuple(args.seeds), params=params).lifetime
        rows.append({"n": n, "lifetime": sim,
                     "lifetime_theory": lifetime_theory(args.synapse, n, params, seeds=tuple(args.seeds))})
        print(f"  N = {n:>8d}: lifetime {sim if sim is None else round(sim, 1)} (theory {rows[-1]['lifetime_theory']})",
              flush=True)
    atomic_write_bytes(args.out / "lifetime.json", json.dumps({"synapse": args.synapse, "params": params,
                                                               "rows": rows}, indent=1).encode())
    ns = np.array([r["n"] for r in rows], dtype=float)
    sim = np.array([np.nan if r["lifetime"] is None else r["lifetime"] for r in rows])
    th = np.array([np.nan if r["lifetime_theory"] is None else r["lifetime_theory"] for r in rows])
    _plot(args.out / "lifetime.png", [(args.synapse, ns, np.nan_to_num(sim, nan=-1),
                                       None if np.all(np.isnan(th)) else np.nan_to_num(th, nan=-1))],
          "number of synapses N", f"{args.synapse}: memory lifetime")
    print(f"-> {args.out / 'lifetime.json'}")
    return 0
