"""``metaspin devices [NAME…] [--family F] [--json]``: the device presets — every value with its
source (paper, figure/table or abstract) or marked as an assumption — and quantities derived from
them with the model's closed forms (retention time, switching probability, energies, gate time)."""
from __future__ import annotations

import argparse
import json
import math

HELP = "device presets with their sources and derived physical quantities"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", help="presets to show (default: all)")
    p.add_argument("--family", choices=("mtj", "magnetoionic"), help="only this device family")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--markdown", action="store_true", help="one markdown table per preset (the docs' tables)")


def derived(name: str) -> dict[str, float]:
    """Closed-form quantities of a preset's nominal device at its temperature."""
    from ..synapses.devices import PRESETS
    pr = PRESETS[name]
    if pr.family != "mtj":
        return {}
    import torch

    from ..synapses.mtj import MTJParams, barrier, switch_probability
    p = MTJParams(**pr.values)
    out: dict[str, float] = {}
    for lab, x in (("x0", 0.0), ("x1", 1.0)):
        d = float(barrier(x, p))
        out[f"retention_s_{lab}"] = p.tau0_ns * 1e-9 * math.exp(d)
        out[f"p_switch_vmax_{lab}"] = float(switch_probability(torch.tensor(d, dtype=torch.float64),
                                                                torch.tensor(p.v_max, dtype=torch.float64), p.v_c, p))
    out["write_energy_pj_vmax_P"] = p.v_max ** 2 / p.r_p_ohm * p.t_pulse_ns * 1e3
    out["gate_rate_hz"] = p.gate_rate()
    out["gate_energy_pj"] = p.gate_cap_f * p.gate_v ** 2 * 1e12
    out["read_energy_pj_P"] = p.v_read ** 2 / p.r_p_ohm * p.t_read_ns * 1e3
    return out


def markdown(names: list[str]) -> str:
    """The presets as markdown: per preset a table of parameter, value and source (docs/devices-*.md)."""
    from ..synapses.devices import PRESETS
    out = []
    for n in names:
        p = PRESETS[n]
        out += [f"### `{n}`", "", p.title + ".", "", "| parameter | value | source |", "|---|---|---|"]
        for k in dict.fromkeys([*p.values, *p.sources]):
            v = p.values.get(k, "default")
            out.append(f"| `{k}` | {v} | {p.sources.get(k, '')} |")
        out += ["", "References: " + "; ".join(p.references) + ".", ""]
    return "\n".join(out)


def _fmt_s(t: float) -> str:
    for u, f in (("y", 3.156e7), ("d", 86400.0), ("h", 3600.0), ("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if t >= f:
            return f"{t / f:.3g} {u}"
    return f"{t:.3g} s"


def main(args: argparse.Namespace) -> int:
    from ..synapses.devices import PRESETS
    names = args.names or [n for n, p in PRESETS.items() if args.family in (None, p.family)]
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise ValueError(f"unknown preset {unknown[0]!r} (known: {', '.join(PRESETS)})")
    rows = []
    for n in names:
        p = PRESETS[n]
        rows.append({"name": n, "family": p.family, "title": p.title, "values": p.values, "sources": p.sources,
                     "references": list(p.references), "derived": derived(n)})
    if args.json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return 0
    if args.markdown:
        print(markdown(names))
        return 0
    for r in rows:
        print(f"{r['name']}  [{r['family']}]  {r['title']}")
        print(f"  use: --synapse {r['family']} --set synapse_params.preset={r['name']}")
        keys = list(dict.fromkeys([*r["values"], *r["sources"]]))
        for k in keys:
            v = r["values"].get(k, "(default)")
            print(f"  {k:16s} {v!s:>10s}  {r['sources'].get(k, '')}")
        d = r["derived"]
        if d:
            print(f"  derived: retention τ₀e^Δ {_fmt_s(d['retention_s_x0'])} (x=0) / {_fmt_s(d['retention_s_x1'])} (x=1); "
                  f"P_sw(V_max) {d['p_switch_vmax_x0']:.3g} / {d['p_switch_vmax_x1']:.3g}; "
                  f"write {d['write_energy_pj_vmax_P']:.3g} pJ/pulse; read {d['read_energy_pj_P']:.3g} pJ; "
                  f"gate {d['gate_energy_pj']:.3g} pJ/event, k = {d['gate_rate_hz']:.3g} /s")
        for ref in r["references"]:
            print(f"  ref: {ref}")
        print()
    return 0
