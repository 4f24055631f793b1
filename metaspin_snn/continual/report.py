"""Reports of a continual-learning run: accuracy-matrix heatmap, per-task accuracy along the stream,
histograms of the hidden/metaplastic variable after each task (PNG, matplotlib Agg canvas — no global
backend change) and a markdown summary. Every file is written to a temporary name and renamed."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..files import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    from .runner import Results


def _save(fig: Figure, path: Path) -> Path:
    import io
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_matrix(R: np.ndarray, names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Heatmap of R[i, j] (rows: after training task i; columns: tested on task j), in percent."""
    R = np.asarray(R, dtype=float)
    fig = Figure(figsize=(1.0 + 0.7 * R.shape[1], 0.8 + 0.6 * R.shape[0]))
    ax = fig.add_subplot(111)
    im = ax.imshow(100 * R, vmin=0, vmax=100, cmap="viridis")
    for i in range(R.shape[0]):
        for j in range(R.shape[1]):
            v = 100 * R[i, j]
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=8, color="w" if v < 60 else "k")
    ax.set_xticks(range(R.shape[1]))
    ax.set_yticks(range(R.shape[0]))
    ax.set_xlabel("tested on task j")
    ax.set_ylabel("after training task i")
    ax.set_title(title or "accuracy R[i, j] (%)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, Path(path))


def plot_stream(R: np.ndarray, names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Accuracy on every task j (one line each, from the step it is learned) after each training step."""
    R = np.asarray(R, dtype=float)
    fig = Figure(figsize=(6, 3.6))
    ax = fig.add_subplot(111)
    steps = np.arange(R.shape[0])
    for j in range(min(R.shape)):
        ax.plot(steps[j:], 100 * R[j:, j], marker="o", ms=3, label=names[j] if j < len(names) else str(j))
    ax.plot(steps, 100 * np.array([R[i, :i + 1].mean() for i in steps]), "k--", lw=2, label="mean (seen)")
    ax.set_xlabel("after training task")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(steps)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title or "accuracy along the stream", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, Path(path))


def plot_hidden(hists: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Histograms of the hidden variable per synapse layer after each task. ``hists[i]`` is
    ``{layer_name: {"edges": [...], "counts": [...]}}`` recorded after task i."""
    layers = list(hists[0].keys()) if hists else []
    if not layers:
        raise ValueError("plot_hidden: no hidden-variable histograms (no synapse models in the network)")
    fig = Figure(figsize=(4.2 * len(layers), 3.2))
    for li, name in enumerate(layers):
        ax = fig.add_subplot(1, len(layers), li + 1)
        for i, h in enumerate(hists):
            e = np.asarray(h[name]["edges"])
            c = np.asarray(h[name]["counts"], dtype=float)
            ax.stairs(c / max(c.sum(), 1), e, label=f"after task {i}")
        ax.set_yscale("log")
        ax.set_xlabel("hidden variable")
        ax.set_title(name, fontsize=8)
        if li == 0:
            ax.set_ylabel("fraction of synapses")
            ax.legend(fontsize=6)
    fig.suptitle(title or "hidden / metaplastic variable", fontsize=9)
    return _save(fig, Path(path))


def plot_comparison(results: Sequence["Results"], path: str | Path, title: str = "") -> Path:
    """Several runs side by side: mean accuracy over the tasks seen so far (left) and the final
    accuracy on each task (right)."""
    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.add_subplot(121), fig.add_subplot(122)
    width = 0.8 / max(len(results), 1)
    for k, r in enumerate(results):
        R = np.asarray(r.matrix, dtype=float)
        steps = np.arange(R.shape[0])
        label = r.config.get("name", f"run {k}")
        ax1.plot(steps, 100 * np.array([R[i, :i + 1].mean() for i in steps]), marker="o", ms=3, label=label)
        ax2.bar(np.arange(R.shape[1]) + (k - (len(results) - 1) / 2) * width, 100 * R[-1], width, label=label)
    ax1.set_xlabel("after training task")
    ax1.set_ylabel("mean accuracy on tasks seen (%)")
    ax1.set_ylim(0, 100)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    ax2.set_xlabel("task j")
    ax2.set_ylabel("final accuracy R[T-1, j] (%)")
    ax2.set_ylim(0, 100)
    ax2.grid(alpha=0.3, axis="y")
    fig.suptitle(title or "comparison", fontsize=9)
    return _save(fig, Path(path))


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def markdown(res: "Results") -> str:
    """Markdown: settings line, accuracy matrix (percent), metrics and per-task costs."""
    c = res.config
    names = res.task_names
    lines = [f"## {c['name']}: {c['stream']}, {res.scenario_label}, synapse={c['synapse']}"
             f"{' ' + str(c['synapse_params']) if c['synapse_params'] else ''}, plugin={c['plugin']}, seed={c['seed']}",
             ""]
    if c.get("learner") == "online":  # OnlineSNN: the synapse key is unused
        lines[0] = (f"## {c['name']}: {c['stream']}, {res.scenario_label}, learner=online (one sample at a time, "
                    f"local rule){' ' + str(c['online_params']) if c.get('online_params') else ''}, plugin={c['plugin']}, seed={c['seed']}")
    R = res.matrix
    lines.append("| after \\ on | " + " | ".join(f"T{j}" for j in range(len(names))) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    lines.append("| random init | " + " | ".join(_pct(b) for b in res.random_init) + " |")
    for i, row in enumerate(R):
        lines.append(f"| T{i} | " + " | ".join(_pct(v) for v in row) + " |")
    m = res.metrics
    if m:
        lines += ["", "| ACC | BWT | FWT | forgetting | intransigence |", "|---|---|---|---|---|",
                  f"| {_pct(m.get('acc'))} | {_pct(m.get('bwt'))} | {_pct(m.get('fwt'))} | "
                  f"{_pct(m.get('forgetting'))} | {_pct(m.get('intransigence'))} |",
                  "", f"(percentage points; intransigence reference: {res.reference_kind})"]
    lines += ["", "| task | name | train s | eval s | train loss | spikes/sample | device counters |",
              "|---|---|---|---|---|---|---|"]
    for i, t in enumerate(res.per_task):
        dev = ", ".join(f"{k}={v:.4g}" for k, v in t.get("device", {}).items()) or "—"
        lines.append(f"| {i} | {names[i]} | {t['train_time_s']:.1f} | {t['eval_time_s']:.1f} | "
                     f"{t['train_loss']:.4f} | {t['spikes_per_sample']:.1f} | {dev} |")
    if any("energy_J" in t for t in res.per_task):  # device models with an energy model
        lines += ["", "| task | write J | read J | gate J | J per training sample | read J per inference |",
                  "|---|---|---|---|---|---|"]
        for i, t in enumerate(res.per_task):
            e = t.get("energy_J") or {}
            inf = (t.get("inference_energy_J") or {}).get("read")
            lines.append(f"| {i} | {e.get('write', 0.0):.4g} | {e.get('read', 0.0):.4g} | {e.get('gate', 0.0):.4g} | "
                         f"{t.get('energy_per_sample_J', 0.0):.4g} | {'—' if inf is None else f'{inf:.4g}'} |")
    return "\n".join(lines) + "\n"


def write_reports(res: "Results", out_dir: str | Path) -> dict[str, Path]:
    """All PNGs and ``report.md`` for a (possibly partial) run into ``out_dir``; returns name → path."""
    out = Path(out_dir)
    R = np.asarray(res.matrix, dtype=float)
    if R.size == 0:
        raise ValueError("write_reports: no task finished yet")
    paths = {"matrix": plot_matrix(R, res.task_names, out / "accuracy_matrix.png", res.title),
             "stream": plot_stream(R, res.task_names, out / "accuracy_stream.png", res.title)}
    if res.hidden_hists and res.hidden_hists[0]:
        paths["hidden"] = plot_hidden(res.hidden_hists, out / "hidden_hist.png", res.title)
    atomic_write_bytes(out / "report.md", markdown(res).encode())
    paths["markdown"] = out / "report.md"
    return paths
