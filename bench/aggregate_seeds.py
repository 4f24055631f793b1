"""Mean ± standard deviation over seeds of the runs of a preset run once per seed.

    python bench/aggregate_seeds.py results/split-mnist-replay/seed0 results/split-mnist-replay/seed1 \
        results/split-mnist-replay/seed2 --out results/split-mnist-replay/summary.md

Every ``<folder>/<learner>/results.json`` found is read; a learner appears in the table with the seeds
whose run is complete (sample standard deviation, ddof = 1; ACC/BWT/forgetting in percentage points).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from metaspin_snn.continual.sweep import fmt_mean_std
from metaspin_snn.files import atomic_write_bytes


def collect(folders: list[Path]) -> dict[str, list[dict]]:
    """Learner name → list of complete results (dicts), in the order of ``folders``."""
    out: dict[str, list[dict]] = {}
    for folder in folders:
        if not folder.is_dir():
            raise SystemExit(f"aggregate_seeds: not a directory: {folder}")
        for f in sorted(folder.glob("*/results.json")):
            d = json.loads(f.read_text())
            if d.get("complete"):
                out.setdefault(f.parent.name, []).append(d)
    return out


def table(runs: dict[str, list[dict]]) -> str:
    lines = ["| learner | synapse | plugin | seeds | ACC per seed | ACC mean ± std | BWT per seed | BWT mean ± std | "
             "forgetting mean ± std |", "|---|---|---|---|---|---|---|---|---|"]
    for name, rs in runs.items():
        c = rs[0]["config"]
        sp = "".join(f" {k}={v}" for k, v in c["synapse_params"].items())
        pp = "".join(f" {k}={v}" for k, v in c["plugin_params"].items())
        acc = [r["metrics"]["acc"] for r in rs]
        bwt = [r["metrics"]["bwt"] for r in rs]
        fgt = [r["metrics"]["forgetting"] for r in rs]
        lines.append(f"| {name} | {c['synapse']}{sp} | {c['plugin']}{pp} | {', '.join(str(r['seed']) for r in rs)} | "
                     f"{' / '.join(f'{100 * a:.1f}' for a in acc)} | {fmt_mean_std(acc)} | "
                     f"{' / '.join(f'{100 * b:.1f}' for b in bwt)} | {fmt_mean_std(bwt)} | {fmt_mean_std(fgt)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--out", type=Path, help="markdown file to write (atomic)")
    a = p.parse_args(argv)
    text = table(collect(a.folders))
    print(text)
    if a.out:
        cmd = "python bench/aggregate_seeds.py " + " ".join(str(f) for f in a.folders) + f" --out {a.out}"
        atomic_write_bytes(a.out, f"# mean ± std over seeds\n\n`{cmd}`\n\n{text}\n".encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
