"""Loggers of the learner's loop: a list of objects with the plugins' hooks (each ``hook(ctx)``) and
``close()``; they observe and never change training.

* :class:`CSVLogger` — always on in ``metaspin run``: ``steps.csv`` every ``every`` steps (loss,
  mini-batch accuracy, spikes per sample per layer of that step) and ``epochs.csv`` after every epoch
  (mean loss and training accuracy of the epoch, spike rates, hidden-state statistics of every
  synapse model: mean |h|, std, fraction |h| > 1).
* :class:`TensorBoardLogger` — the same scalars to ``torch.utils.tensorboard`` (the ``tensorboard``
  extra), plus the accuracy matrix rows.
* :class:`ConsoleLogger` — one line per epoch (used when no progress bar is shown, e.g. in a log file).

A resumed run rewrites its CSV files keeping only the rows of tasks before the resume point, so the
files describe exactly the tasks the checkpoint holds plus those trained since.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable

import torch

from ..files import atomic_write_bytes
from ..synapses.base import SynapseModel
from .plugins import Callback, Context

LOGGERS = ("csv", "tensorboard", "console")


def _batch_accuracy(ctx: Context) -> float | None:
    out, batch = ctx.output, ctx.batch
    if out is None or batch is None or not hasattr(out, "logits"):
        return None
    z = out.logits.reshape(-1, out.logits.shape[-1])
    y = batch[1]
    if z.shape[0] != y.shape[0]:  # stacked Monte-Carlo samples: [S·B, C]
        y = y.repeat(z.shape[0] // y.shape[0])
    return float((z.detach().argmax(1) == y).float().mean())


def _spikes(ctx: Context) -> list[float]:
    out, batch = ctx.output, ctx.batch
    if out is None or not getattr(out, "spikes", None) or batch is None:
        return []
    b = max(int(batch[1].shape[0]), 1)
    return [float(s.detach().sum()) / b for s in out.spikes]


def hidden_stats(model: torch.nn.Module) -> dict[str, float]:
    """``<layer>.hidden_mean_abs``, ``.hidden_std``, ``.hidden_frac_gt1`` of every synapse model."""
    out: dict[str, float] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, SynapseModel):
            try:
                h = mod.hidden().detach().float()
            except NotImplementedError:
                continue
            key = name or "synapse"
            out[f"{key}.hidden_mean_abs"] = float(h.abs().mean())
            out[f"{key}.hidden_std"] = float(h.std()) if h.numel() > 1 else 0.0
            out[f"{key}.hidden_frac_gt1"] = float((h.abs() > 1).float().mean())
    return out


class _Table:
    """A CSV file written whole (atomically) at every flush; columns grow as new keys appear."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []

    def load_keep(self, keep: Callable[[dict], bool]) -> None:
        if not self.path.is_file():
            return
        with open(self.path, newline="") as f:
            r = csv.DictReader(f)
            self.columns = list(r.fieldnames or [])
            self.rows = [row for row in r if keep(row)]

    def add(self, row: dict[str, Any]) -> None:
        for k in row:
            if k not in self.columns:
                self.columns.append(k)
        self.rows.append(row)

    def flush(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, restval="")
        w.writeheader()
        for row in self.rows:
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})
        atomic_write_bytes(self.path, buf.getvalue().encode())


class CSVLogger(Callback):
    """``<out>/steps.csv`` every ``every`` steps and ``<out>/epochs.csv`` after every epoch."""

    def __init__(self, out: str | Path, every: int = 50) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"CSVLogger: every must be a positive int, got {every!r}")
        self.out, self.every = Path(out), every
        self.steps = _Table(self.out / "steps.csv")
        self.epochs = _Table(self.out / "epochs.csv")
        self._sum: dict[str, float] = {}

    def before_training(self, ctx: Context) -> None:
        keep = (lambda row: int(row["task"]) < ctx.start_task)
        self.steps.load_keep(keep)
        self.epochs.load_keep(keep)

    def before_epoch(self, ctx: Context) -> None:
        self._sum = {"n": 0, "loss": 0.0, "acc": 0.0}

    def after_step(self, ctx: Context) -> None:
        acc = _batch_accuracy(ctx)
        self._sum["n"] += 1
        self._sum["loss"] += float(ctx.loss or 0.0)
        self._sum["acc"] += acc or 0.0
        if ctx.step % self.every == 0:
            row = {"task": ctx.task_index, "epoch": ctx.epoch, "step": ctx.step, "loss": ctx.loss, "batch_accuracy": acc}
            row.update({f"spikes_layer{i}": v for i, v in enumerate(_spikes(ctx))})
            self.steps.add(row)

    def after_epoch(self, ctx: Context) -> None:
        n = max(self._sum.get("n", 0), 1)
        row: dict[str, Any] = {"task": ctx.task_index, "task_name": ctx.task.name if ctx.task else "",
                               "epoch": ctx.epoch, "loss": self._sum.get("loss", 0.0) / n,
                               "train_accuracy": self._sum.get("acc", 0.0) / n}
        row.update({f"spikes_layer{i}": v for i, v in enumerate(_spikes(ctx))})
        row.update(hidden_stats(ctx.model))
        self.epochs.add(row)
        self.epochs.flush()
        self.steps.flush()

    def after_training(self, ctx: Context) -> None:
        self.steps.flush()
        self.epochs.flush()


class TensorBoardLogger(Callback):
    """The CSV logger's scalars and the accuracy matrix rows in a TensorBoard event file
    (``<out>/tensorboard``); needs the ``tensorboard`` extra."""

    def __init__(self, out: str | Path, every: int = 50) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ValueError("logger 'tensorboard' needs the tensorboard package "
                             "(pip install 'metaspin-snn[tensorboard]')") from e
        self._make = lambda: SummaryWriter(str(Path(out) / "tensorboard"))
        self.writer: Any = None  # opened when training starts (after the output folder is checked)
        self.every = every
        self._global = 0

    def before_training(self, ctx: Context) -> None:
        self.writer = self._make()

    def after_step(self, ctx: Context) -> None:
        self._global += 1
        if ctx.step % self.every == 0:
            self.writer.add_scalar("train/loss", float(ctx.loss or 0.0), self._global)
            acc = _batch_accuracy(ctx)
            if acc is not None:
                self.writer.add_scalar("train/batch_accuracy", acc, self._global)
            for i, v in enumerate(_spikes(ctx)):
                self.writer.add_scalar(f"spikes/layer{i}", v, self._global)

    def after_epoch(self, ctx: Context) -> None:
        for k, v in hidden_stats(ctx.model).items():
            self.writer.add_scalar(f"hidden/{k}", v, self._global)

    def after_eval(self, ctx: Context) -> None:
        for j, a in enumerate(ctx.row or []):
            self.writer.add_scalar(f"accuracy/task{j}", a, ctx.task_index)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None


class ConsoleLogger(Callback):
    """One line per epoch through ``log`` (the console without progress bars)."""

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self.log = log or (lambda s: print(s, flush=True))

    def after_epoch(self, ctx: Context) -> None:
        name = ctx.task.name if ctx.task else ""
        self.log(f"task {ctx.task_index + 1} {name} epoch {ctx.epoch + 1}/{ctx.learner.config.epochs}: "
                 f"loss {float(ctx.loss or 0.0):.4f}")


def make_loggers(config: Any, log: Callable[[str], None] | None = None) -> list[Callback]:
    """The loggers a config names (``loggers``, every ``log_every`` steps); the console logger only
    when progress bars are off (not a terminal) and a ``log`` function is given."""
    import sys
    out: list[Callback] = []
    for name in config.loggers:
        if name == "csv":
            out.append(CSVLogger(config.out, config.log_every))
        elif name == "tensorboard":
            out.append(TensorBoardLogger(config.out, config.log_every))
        elif name == "console":
            if log is not None and not (config.progress and sys.stderr.isatty()):
                out.append(ConsoleLogger(log))
        else:  # validated by the config
            raise ValueError(f"config key 'loggers': unknown logger {name!r} (known: {', '.join(LOGGERS)})")
    return out
