"""Sweeps: a grid over run-config keys × seeds, one :func:`~metaspin_snn.continual.runner.run_stream`
per grid point in its own folder, run through submitit (local processes, or a SLURM job array).

Sweep file (TOML)::

    [base]                       # any RunConfig keys (configs/*.toml)
    stream = "pmnist"
    n_tasks = 2
    synapse = "metaplastic"

    [grid]                       # key = list of values; dotted keys quoted
    "synapse_params.m" = [0.0, 3.0]
    seed = [0, 1, 2]

    [executor]
    kind = "local"               # local: max_parallel runs at once, `threads` torch threads each
    max_parallel = 2
    # kind = "slurm": partition, time_min, gpus_per_node, cpus_per_task, mem_gb, array_parallelism,
    # account, qos, constraint, setup (shell lines run before each job), additional (more #SBATCH
    # options), wait (block until the array finishes)

A point's folder is ``<out>/runs/<values>-<config hash>``; ``<out>/sweep.json`` lists the points.
Rerunning skips points whose ``results.json`` is complete and resumes the others from their last
checkpoint (a killed job loses at most the task it was training). ``aggregate`` groups the points
by their grid values other than ``seed``: mean ± sample std (ddof = 1) of ACC, BWT and forgetting.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import re
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import RunConfig, set_dotted

EXECUTORS = ("local", "slurm")
LOCAL_OPTIONS = ("max_parallel", "threads", "timeout_min")
SLURM_OPTIONS = ("partition", "time_min", "gpus_per_node", "cpus_per_task", "mem_gb", "array_parallelism",
                 "account", "qos", "constraint", "setup", "additional", "wait", "threads")
METRICS = ("acc", "bwt", "forgetting")
SWEEP_FILE = "sweep.json"


@dataclass(frozen=True)
class Point:
    """One grid point: its values (grid key → value), its config (``out`` = its folder)."""

    id: str
    values: dict[str, Any]
    config: RunConfig

    @property
    def folder(self) -> Path:
        return Path(self.config.out or ".")

    def group(self) -> tuple[tuple[str, str], ...]:
        """The grid values other than the seed (the points averaged together)."""
        return tuple((k, json.dumps(v)) for k, v in self.values.items() if k != "seed")

    def status(self) -> str:
        """``done`` (complete results.json), ``partial`` (a checkpoint to resume) or ``new``."""
        res = self.folder / "results.json"
        if res.is_file():
            try:
                if json.loads(res.read_text()).get("complete"):
                    return "done"
            except (OSError, ValueError):
                pass
        return "partial" if (self.folder / "checkpoint.pt").is_file() else "new"


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file (see the module docstring)."""

    base: dict[str, Any]
    grid: dict[str, list[Any]]
    executor: dict[str, Any]
    source: str

    @property
    def kind(self) -> str:
        return str(self.executor.get("kind", "local"))

    def points(self, out: str | Path) -> list[Point]:
        """Every grid point (the grid's product in file order), each validated as a RunConfig."""
        from .runner import config_hash
        keys = list(self.grid)
        pts = []
        for combo in itertools.product(*(self.grid[k] for k in keys)):
            values = dict(zip(keys, combo))
            d = json.loads(json.dumps(self.base))                    # a deep copy of plain data
            for k, v in values.items():
                set_dotted(d, k, v)
            label = ",".join(f"{k}={_fmt_value(v)}" for k, v in values.items())
            where = f"{self.source} [grid {label}]"
            try:
                cfg = RunConfig.from_dict({"progress": False, **d}, source=where)
            except (ValueError, TypeError) as e:
                raise ValueError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None
            pid = f"{_slug(label) or 'base'}-{config_hash(cfg)}"
            pts.append(Point(pid, values, cfg.replace(out=str(Path(out) / "runs" / pid), name=pid)))
        if len({p.id for p in pts}) != len(pts):
            raise ValueError(f"{self.source}: [grid] has repeated points")
        return pts


def _fmt_value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", text)
    return s[:80]


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; errors name the file and the table or key."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid TOML ({e})") from None
    extra = set(data) - {"base", "grid", "executor"}
    if extra:
        raise ValueError(f"{path}: unknown table or key {sorted(extra)[0]!r} (a sweep file has [base], [grid], "
                         "[executor])")
    base, grid, ex = data.get("base", {}), data.get("grid", {}), data.get("executor", {})
    for name, t in (("base", base), ("grid", grid), ("executor", ex)):
        if not isinstance(t, dict):
            raise ValueError(f"{path}: [{name}] must be a table")
    if not grid:
        raise ValueError(f"{path}: [grid] is empty; give at least one key = [values]")
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise ValueError(f"{path}: [grid] {k!r} must be a non-empty list of values, got {v!r}")
    if "out" in base or "out" in grid:
        raise ValueError(f"{path}: 'out' is set per point by the sweep (use --out for the sweep folder)")
    kind = ex.get("kind", "local")
    if kind not in EXECUTORS:
        raise ValueError(f"{path}: [executor] kind must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    allowed = LOCAL_OPTIONS if kind == "local" else SLURM_OPTIONS
    for k in ex:
        if k != "kind" and k not in allowed:
            raise ValueError(f"{path}: [executor] {k!r} is not an option of the {kind} executor "
                             f"({', '.join(allowed)})")
    for k in ("max_parallel", "threads", "timeout_min", "time_min", "gpus_per_node", "cpus_per_task",
              "array_parallelism"):
        if k in ex and (not isinstance(ex[k], int) or isinstance(ex[k], bool) or ex[k] < (0 if k == "gpus_per_node" else 1)):
            raise ValueError(f"{path}: [executor] {k} must be a positive integer, got {ex[k]!r}")
    sweep = Sweep(base, grid, ex, str(path))
    sweep.points("<check>")  # every point must be a valid config before anything runs
    return sweep


def run_point(config: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """The job of one point (runs in the submitit worker): train, resuming from the folder's
    checkpoint if there is one; returns the run's metrics."""
    import torch

    from ..networks import keep_freed_memory
    from .runner import run_stream
    keep_freed_memory()  # as the metaspin command: a step's buffers reused by the next
    torch.set_num_threads(int(threads))
    cfg = RunConfig.from_dict(config, source="sweep point")
    res = run_stream(cfg, resume=True, progress=False, log=lambda s: None)
    return {"out": cfg.out, "complete": res.complete, "metrics": {k: res.metrics.get(k) for k in METRICS}}


def run_sweep(sweep: Sweep, out: str | Path, *, wait: bool | None = None,
              log: Callable[[str], None] = print, poll_s: float = 0.5) -> dict[str, Any]:
    """Run the points of ``sweep`` that are not done; returns ``{"done", "ran", "failed", "submitted"}``
    (point ids). Local: at most ``max_parallel`` jobs at once, waits for all. SLURM: one job array;
    waits when ``wait`` (argument, else ``[executor] wait``, default False)."""
    import submitit

    from ..files import atomic_write_bytes
    out = Path(out)
    pts = sweep.points(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / SWEEP_FILE, (json.dumps(
        {"source": sweep.source, "base": sweep.base, "grid": sweep.grid, "executor": sweep.executor,
         "points": [{"id": p.id, "values": p.values} for p in pts]}, indent=1, sort_keys=True) + "\n").encode())
    status = {p.id: p.status() for p in pts}
    todo = [p for p in pts if status[p.id] != "done"]
    summary: dict[str, Any] = {"done": [p.id for p in pts if status[p.id] == "done"], "ran": [], "failed": [],
                               "submitted": []}
    log(f"sweep {sweep.source}: {len(pts)} points, {len(summary['done'])} done, "
        f"{sum(status[p.id] == 'partial' for p in todo)} to resume, {sum(status[p.id] == 'new' for p in todo)} new")
    if not todo:
        return summary
    ex = sweep.executor
    threads = int(ex.get("threads", 1))
    folder = out / "submitit"
    if sweep.kind == "local":
        executor = submitit.LocalExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=int(ex.get("timeout_min", 7 * 24 * 60)))
        n_par = int(ex.get("max_parallel", os.cpu_count() or 1))
        pending, running = list(todo), []
        while pending or running:
            while pending and len(running) < n_par:
                p = pending.pop(0)
                running.append((p, executor.submit(run_point, p.config.to_dict(), threads)))
                summary["submitted"].append(p.id)
            time.sleep(poll_s)
            for item in [r for r in running if r[1].done()]:
                running.remove(item)
                _collect(*item, summary, log)
        return summary
    _quiet_sacct(log)
    executor = submitit.SlurmExecutor(folder=str(folder))
    executor.update_parameters(**_slurm_parameters(ex, len(todo)))
    jobs = executor.map_array(run_point, [p.config.to_dict() for p in todo], [threads] * len(todo))
    summary["submitted"] = [p.id for p in todo]
    log(f"submitted SLURM job array {jobs[0].job_id.split('_')[0]} ({len(jobs)} tasks); logs in {folder}")
    if wait if wait is not None else bool(ex.get("wait", False)):
        for p, j in zip(todo, jobs):
            while not j.done():
                time.sleep(poll_s)
            _collect(p, j, summary, log)
    return summary


class _SacctOnce:
    """Logging filter: the first "Bypassing sacct error" of submitit becomes one line of ours."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log, self.said = log, False

    def filter(self, record: Any) -> bool:
        if "Bypassing sacct error" not in record.getMessage():
            return True
        if not self.said:
            self.said = True
            self.log("  (sacct is unavailable here: submitit reads the job states from its result files)")
        return False


def _quiet_sacct(log: Callable[[str], None]) -> None:
    """On a cluster without an accounting database ``sacct`` fails at every poll and submitit warns each
    time (it then reads the job states from the result files): say it once instead."""
    import logging
    lg = logging.getLogger("submitit")
    for f in [f for f in lg.filters if isinstance(f, _SacctOnce)]:
        lg.removeFilter(f)
    lg.addFilter(_SacctOnce(log))


def _slurm_parameters(ex: dict[str, Any], n: int) -> dict[str, Any]:
    """[executor] options → submitit.SlurmExecutor parameters."""
    par: dict[str, Any] = {"job_name": "metaspin-sweep", "array_parallelism": int(ex.get("array_parallelism", n)),
                           "cpus_per_task": int(ex.get("cpus_per_task", ex.get("threads", 1))),
                           "time": int(ex.get("time_min", 60))}
    for k in ("partition", "account", "qos", "constraint"):
        if k in ex:
            par[k] = str(ex[k])
    if "gpus_per_node" in ex:
        par["gpus_per_node"] = int(ex["gpus_per_node"])
    if "mem_gb" in ex:
        par["mem"] = f"{ex['mem_gb']}GB"
    if "setup" in ex:
        par["setup"] = [str(s) for s in ex["setup"]]
    if "additional" in ex:
        par["additional_parameters"] = dict(ex["additional"])
    return par


def _collect(p: Point, job: Any, summary: dict[str, Any], log: Callable[[str], None]) -> None:
    try:
        r = job.result()
    except Exception as e:  # noqa: BLE001 — a failed job is reported, the others go on
        summary["failed"].append(p.id)
        last = str(e).strip().splitlines()
        log(f"  FAILED {p.id}: {last[-1] if last else type(e).__name__} (log: {job.paths.stderr})")
        return
    summary["ran"].append(p.id)
    acc = r["metrics"].get("acc")
    log(f"  done {p.id}: ACC {100 * acc:.1f}%" if acc is not None else f"  done {p.id}")


# ---- aggregation ---------------------------------------------------------------------------------
def mean_std(vals: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for one value)."""
    n = len(vals)
    m = sum(vals) / n
    return m, (math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0)


def fmt_mean_std(vals: list[float], scale: float = 100.0) -> str:
    """``"m ± s"`` of ``scale``·vals (one decimal; just ``"m"`` for one value)."""
    m, s = mean_std([scale * v for v in vals])
    return f"{m:.1f} ± {s:.1f}" if len(vals) > 1 else f"{m:.1f}"


def aggregate(sweep: Sweep, out: str | Path) -> dict[str, Any]:
    """Group the complete points by grid values other than ``seed``; write ``aggregate.md``,
    ``aggregate.json`` and ``aggregate.png`` into ``out`` (atomically); returns the JSON table."""
    from ..files import atomic_write_bytes
    out = Path(out)
    pts = sweep.points(out)
    groups: dict[tuple, list[tuple[Point, dict]]] = {}
    missing = []
    for p in pts:
        if p.status() != "done":
            missing.append(p.id)
            continue
        r = json.loads((p.folder / "results.json").read_text())
        groups.setdefault(p.group(), []).append((p, r))
    keys = [k for k in sweep.grid if k != "seed"]
    rows = []
    for g, items in groups.items():
        row: dict[str, Any] = {"values": {k: json.loads(v) for k, v in g},
                               "seeds": [r["seed"] for _, r in items], "n": len(items)}
        for m in METRICS:
            vals = [r["metrics"][m] for _, r in items if r["metrics"].get(m) is not None]
            if vals:
                mu, sd = mean_std(vals)
                row[m] = {"mean": mu, "std": sd, "values": vals}
            else:
                row[m] = None
        rows.append(row)
    table = {"source": sweep.source, "grid": sweep.grid, "rows": rows, "missing": missing}
    lines = ["| " + " | ".join([*keys, "seeds", "ACC (%)", "BWT (pp)", "forgetting (pp)"]) + " |",
             "|" + "---|" * (len(keys) + 4)]
    for row in rows:
        cells = [_fmt_value(row["values"][k]) for k in keys]
        cells.append(", ".join(map(str, row["seeds"])))
        for m in METRICS:
            cells.append("—" if row[m] is None else fmt_mean_std(row[m]["values"]))
        lines.append("| " + " | ".join(cells) + " |")
    md = (f"# Sweep {Path(sweep.source).name}\n\nmean ± std over seeds (sample std, ddof = 1); "
          f"{sum(r['n'] for r in rows)} of {len(pts)} points complete"
          + (f"; not complete: {', '.join(missing)}" if missing else "") + ".\n\n" + "\n".join(lines) + "\n")
    atomic_write_bytes(out / "aggregate.md", md.encode())
    atomic_write_bytes(out / "aggregate.json", (json.dumps(table, indent=1) + "\n").encode())
    _plot(rows, keys, out / "aggregate.png")
    table["markdown"] = md
    return table


def _plot(rows: list[dict], keys: list[str], path: Path) -> None:
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import atomic_write_bytes
    rows = [r for r in rows if r["acc"] is not None]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(rows) + 2), 3.2))
    labels = [", ".join(f"{k.split('.')[-1]}={_fmt_value(r['values'][k])}" for k in keys) or "base" for r in rows]
    ax.bar(range(len(rows)), [100 * r["acc"]["mean"] for r in rows], yerr=[100 * r["acc"]["std"] for r in rows],
           capsize=4, color="#4c72b0")
    ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("ACC (%)")
    ax.set_title("mean ± std over seeds")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


__all__ = ["EXECUTORS", "Point", "Sweep", "aggregate", "fmt_mean_std", "load_sweep", "mean_std", "run_point",
           "run_sweep"]
