"""Accuracy of a trained device network after idle time: thermal flips of the free layers and ion
relaxation (each synapse model's ``advance(seconds)``), evaluated on every task of the run.

``retention_curve(run_dir, times)`` restores the run's checkpoint, lets the times pass one after the
other along one device history (t₁, then t₂ − t₁, …; seeded by the models' own retention
generators, saved in the checkpoint, so the same checkpoint gives the same numbers) and evaluates
every task after each; ``write_retention`` writes ``retention.json`` and ``retention.png``.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..files import atomic_write_many
from ..networks.checkpoint import CHECKPOINT_NAME, read_checkpoint
from ..synapses.base import SynapseModel
from .config import RunConfig

RETENTION = "retention.json"
RETENTION_PNG = "retention.png"


def retention_curve(run_dir: str | Path, times: Sequence[float], labels: Sequence[str] | None = None,
                    data_root: str | None = None) -> dict[str, Any]:
    """``{"times_s", "labels", "tasks", "accuracy": [time][task], "mean", "switches", "x_mean"}``; the
    first row is the trained network (t = 0)."""
    from .learner import Learner
    run = Path(run_dir)
    ck_path = run / CHECKPOINT_NAME
    if not ck_path.is_file():
        raise ValueError(f"{run}: no {CHECKPOINT_NAME} (a run trained with checkpoint = true)")
    times = [float(t) for t in times]
    if not times or any(b < a for a, b in zip(times, times[1:])) or times[0] < 0:
        raise ValueError(f"retention: times must be >= 0 and increasing, got {times}")
    ck = read_checkpoint(ck_path)
    cfg = dict(ck.get("run_config") or {})
    if data_root is not None:
        cfg["data_root"] = data_root
    cfg.update(out=str(run), progress=False)
    config = RunConfig.from_dict(cfg, source=str(ck_path))
    learner = Learner.from_config(config, loggers=[])
    learner.model.load_state_dict(ck["model"])  # the devices' state, generators included
    devices = [m for m in learner.model.modules() if isinstance(m, SynapseModel) and callable(getattr(m, "advance", None))]
    if not devices:
        raise ValueError(f"{run}: synapse {config.synapse!r} has no device model that ages (advance); "
                         "retention needs a device synapse such as 'mtj'")
    tasks = learner.tasks

    def evaluate() -> list[float]:
        return [float(learner.evaluate_task(t).accuracy) for t in tasks]

    def stats() -> tuple[int, float]:
        sw = sum(int(d.n_switch.sum()) for d in devices if hasattr(d, "n_switch"))
        xs = [d.hidden().double().mean().item() for d in devices]
        return sw, float(np.mean(xs))

    sw0, x0 = stats()
    acc, switches, xm = [evaluate()], [0], [x0]
    prev = 0.0
    for t in times:
        for d in devices:
            d.advance(t - prev)
        prev = t
        acc.append(evaluate())
        sw, x = stats()
        switches.append(sw - sw0)
        xm.append(x)
    labels = list(labels) if labels is not None else [f"{t:g} s" for t in times]
    return {"run": str(run), "synapse": config.synapse, "preset": config.synapse_params.get("preset", ""),
            "times_s": [0.0, *times], "labels": ["0", *labels], "tasks": [t.name for t in tasks],
            "accuracy": acc, "mean": [float(np.mean(a)) for a in acc], "switches": switches, "x_mean": xm}


def plot_retention(curve: dict[str, Any], title: str = "") -> bytes:
    """PNG bytes: accuracy of each task (and the mean) vs idle time, log time axis (t = 0 drawn at the
    left edge)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    t = np.asarray(curve["times_s"], dtype=float)
    tmin = t[t > 0].min() / 10 if (t > 0).any() else 1.0
    tp = np.where(t > 0, t, tmin)
    A = 100 * np.asarray(curve["accuracy"], dtype=float)
    fig = Figure(figsize=(6.0, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    for j, name in enumerate(curve["tasks"]):
        ax.plot(tp, A[:, j], marker="o", ms=3, lw=1, label=name)
    ax.plot(tp, A.mean(1), color="k", lw=2, label="mean")
    ax.set_xscale("log")
    ax.set_xticks(tp)
    ax.set_xticklabels(curve["labels"], fontsize=7)
    ax.set_xlabel("idle time (0 = just trained)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title or f"retention: {curve['synapse']} {curve.get('preset') or ''}", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def write_retention(run_dir: str | Path, curve: dict[str, Any]) -> tuple[Path, Path]:
    """retention.json and retention.png in ``run_dir``, written together (atomic)."""
    run = Path(run_dir)
    files = {run / RETENTION: (json.dumps(curve, indent=1) + "\n").encode(), run / RETENTION_PNG: plot_retention(curve)}
    atomic_write_many(files)
    return run / RETENTION, run / RETENTION_PNG
