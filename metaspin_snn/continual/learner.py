"""The learner: the library's one continual-learning loop (Avalanche's template pattern).

A :class:`Learner` is built from a model, a :class:`~metaspin_snn.synapses.SynapticOptimizer`, a list
of plugins and a list of loggers (:meth:`Learner.from_config` builds all four from a
:class:`~metaspin_snn.continual.RunConfig`); ``fit(stream)`` returns ``(model, Results)``::

    b_j ← accuracy of the untrained network on every task j                 (for FWT)
    for task i:
        reseed every generator from (seed, i)                                (resume-exact)
        hooks before_task; for each epoch: before_epoch
            for each mini-batch: networks.train_step (loss + Σ plugins' extra_loss; backward;
                                 after_backward hooks; optimiser step), after_step hooks
            after_epoch
        after_task hooks (EWC's Fisher, SI's Ω, replay memory, …, then the built-in SynapseBoundary:
                          every synapse model's task_boundary())
        R[i, j] ← accuracy on every task j; after_eval hooks; results.json + checkpoint.pt (atomic)
    after_training hooks; PNG/markdown reports

Every hook of every plugin and logger receives the one :class:`~metaspin_snn.continual.plugins.Context`.
Data order and rate-code noise come from generators seeded by (seed, task, epoch), and all global
generators (torch, numpy, random, Numba) are reseeded at the start of every task, so a run resumed from
the checkpoint after task i continues with exactly the numbers of an uninterrupted run.

:class:`OnlineLearner` (``learner = "online"``) is the same loop with a different task step: the
:class:`~metaspin_snn.networks.online.OnlineSNN` local rule, one sample at a time.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..networks.checkpoint import (CHECKPOINT_NAME, checkpoint_bytes, plain, read_checkpoint, rng_state,
                                   save_checkpoint, set_rng_state)
from ..networks.training import train_step
from ..files import OutputExistsError, atomic_write_many, check_out_dir
from ..seed import seed_everything
from ..synapses.base import SynapseModel
from .config import RunConfig
from .plugins import Context, Plugin, SynapseBoundary, make_plugins
from .report import write_reports
from .runner import (_ENC, _EVAL, _INIT, _TASK, _TRAIN, RESULTS, RUN_INFO, Results, _gen, build_model, build_optimizer,
                     build_stream, carry_norm_set, check_synapse_params, cosine_factor, default_out, derived_seed,
                     advance_idle, device_counters, device_energy, git_commit, hidden_histograms, loss_fn, package_version, resolve_device,
                     resolve_protocol, set_synapse_lr, versions)
from .scenarios import Scenario
from .streams import Task, encode_batch, iter_batches


# ---- data as the network sees it ---------------------------------------------------------------
@dataclass
class DataView:
    """Encoding of a run's tasks for its network: spikes or currents ``[T, B, ...]`` on the run's device
    (encoding noise drawn on the CPU from the given generator, so every device sees the same spikes)."""

    config: RunConfig
    scenario: Scenario
    device: torch.device = torch.device("cpu")
    _stats: dict = field(default_factory=dict)

    def split_stats(self, task: Task, split: str) -> tuple[float, float]:
        """Pixel mean and std of one split of a task (``input_norm = "standardize"``; mesu-pmnist's
        ``normalisation``: each split by its own statistics, unbiased std)."""
        key = (task.id, split)
        if key not in self._stats:
            x = task.inputs(split, torch.arange(task.size(split))).double()
            self._stats[key] = (float(x.mean()), float(x.std()))
        return self._stats[key]

    def encode(self, task: Task, x: torch.Tensor, gen: torch.Generator, split: str = "train") -> torch.Tensor:
        c = self.config
        s = encode_batch(task, x, num_steps=c.num_steps, encoding=c.encoding, flatten=c.network == "mlp",
                         generator=gen, gain=c.rate_gain)
        if c.input_norm == "standardize":  # direct encoding: the standardised pixels at every step
            m, sd = self.split_stats(task, split)
            s = (s - m) / sd
        return s.to(self.device)

    def targets(self, task: Task, y: torch.Tensor) -> torch.Tensor:
        return self.scenario.targets(task, y).to(self.device)

    def test_batches(self, task: Task, batch_size: int, limit: int | None = None):
        """The test split of ``task`` encoded as every evaluation of the run encodes it."""
        g = _gen(self.config.seed, _EVAL, task.id)
        for x, y in iter_batches(task, "test", batch_size, shuffle=False, limit=limit):
            yield self.encode(task, x, g, "test"), self.targets(task, y)

    def fisher_batches(self, task: Task) -> Callable[[int, int], Any]:
        """``batches(batch_size, n_samples)``: a seeded draw of the task's training split (Fisher, replay)."""
        def batches(batch_size: int, n_samples: int):
            g = _gen(self.config.seed, _TASK, task.id, 99)
            for x, y in iter_batches(task, "train", batch_size, shuffle=True, generator=g, limit=n_samples):
                yield self.encode(task, x, g), self.targets(task, y)
        return batches


def _progress_enabled(flag: bool | None) -> bool:
    """Progress bars only when asked for and standard error is a terminal."""
    return bool(flag) and sys.stderr.isatty()


# ---- the learner -------------------------------------------------------------------------------
class Learner:
    """One continual-learning loop over a stream of tasks.

    ``Learner(model, optimizer, config=cfg, scenario=Scenario(...), plugins=[...], loggers=[...])``
    or :meth:`from_config`. ``plugins`` run in list order, then the built-in
    :class:`~metaspin_snn.continual.plugins.SynapseBoundary`; ``loggers`` after the plugins at every
    hook. ``log`` receives one human-readable line per event (the console)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, config: RunConfig,
                 scenario: Scenario | None = None, plugins: Sequence[Plugin] = (), loggers: Sequence[Any] = (),
                 tasks: Sequence[Task] | None = None, device: torch.device | None = None,
                 log: Callable[[str], None] | None = None, progress: bool | None = None) -> None:
        for p in plugins:
            if not isinstance(p, Plugin):
                raise TypeError(f"Learner: plugins must be Plugin instances, got {type(p).__name__}")
        if config.out is None:  # a fresh folder under runs/ for this run
            config = config.replace(out=str(default_out(config)))
        self.model, self.optimizer, self.config = model, optimizer, config
        self.scenario = scenario or Scenario(config.scenario, config.task_il)
        self.plugins: list[Plugin] = [*plugins, *self.builtin_plugins()]
        self.loggers = list(loggers)
        self.tasks = None if tasks is None else list(tasks)
        self.device = device or resolve_device(config.device)
        self.log = log or (lambda s: None)
        self.progress = _progress_enabled(config.progress if progress is None else progress)
        self.protocol = resolve_protocol(config)
        self.data = DataView(config, self.scenario, self.device)
        self.ctx = Context(model=model, optimizer=optimizer, scenario=self.scenario, learner=self)

    def builtin_plugins(self) -> list[Plugin]:
        return [SynapseBoundary()]

    @classmethod
    def from_config(cls, config: RunConfig, tasks: Sequence[Task] | None = None, *,
                    plugins: Sequence[Plugin] | None = None, loggers: Sequence[Any] | None = None,
                    log: Callable[[str], None] | None = None, progress: bool | None = None) -> "Learner":
        """Model (seeded from ``config.seed``), optimiser, plugins (``config.plugin``) and loggers
        (``config.loggers``) of a config; ``tasks`` default to :func:`build_stream`. ``plugins`` /
        ``loggers`` given here replace the config's."""
        from .loggers import make_loggers
        check_synapse_params(config)
        tasks = list(build_stream(config) if tasks is None else tasks)
        _check_tasks(config, tasks)
        scenario = Scenario(config.scenario, config.task_il)
        device = resolve_device(config.device)
        seed_everything(derived_seed(config.seed, _INIT))
        model = build_model(config, tasks, scenario).to(device)
        opt = build_optimizer(config, model)
        if config.out is None:
            config = config.replace(out=str(default_out(config)))
        plugins = make_plugins(config.plugin, **config.plugin_params) if plugins is None else list(plugins)
        loggers = make_loggers(config, log) if loggers is None else list(loggers)
        klass = OnlineLearner if config.learner == "online" else cls
        return klass(model, opt, config=config, scenario=scenario, plugins=plugins, loggers=loggers, tasks=tasks,
                     device=device, log=log, progress=progress)

    # ---- hooks ---------------------------------------------------------------------------------
    def call(self, hook: str) -> None:
        """Run ``hook(ctx)`` on every plugin, then every logger."""
        for cb in (*self.plugins, *self.loggers):
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self.ctx)

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        """Σ of the plugins' ``extra_loss(ctx)`` in list order (None when none adds a term)."""
        total = None
        for p in self.plugins:
            t = p.extra_loss(self.ctx)
            if t is not None:
                total = t if total is None else total + t
        return total

    # ---- one task ------------------------------------------------------------------------------
    def train_task(self, task: Task, i: int) -> tuple[float, int]:
        """``epochs`` passes over ``task`` with :func:`~metaspin_snn.networks.train_step`; returns
        (mean task loss, number of steps)."""
        from tqdm.auto import tqdm
        c, ctx, model = self.config, self.ctx, self.model
        task_arg = self.scenario.task_arg(task)
        n_per_epoch = math.ceil(task.size("train") / c.batch_size)
        n_mc, reduction = int(self.protocol["train_samples"]), self.protocol["loss_reduction"]
        lr_base: dict[int, float] = {}
        syn = [m for m in model.modules() if isinstance(m, SynapseModel)]
        user_plugins = [p for p in self.plugins if not isinstance(p, SynapseBoundary)]
        stacked = (n_mc > 1 and (c.neuron != "lif" or getattr(model, "fast", False)) and c.norm == "none"
                   and c.network == "mlp" and bool(syn)
                   and all(s.SAMPLE_BATCH for s in syn)
                   and all(type(p).extra_loss is Plugin.extra_loss for p in user_plugins))
        # ^ all S samples in one pass (weights [S, out, in]); plugins that read single weights use the loop
        for s in syn if stacked else []:
            s.set_mc_samples(n_mc)
        total, n = 0.0, 0
        bar = tqdm(total=n_per_epoch * c.epochs, desc=f"task {i + 1} {task.name}", unit="batch",
                   disable=not self.progress, leave=True, dynamic_ncols=True)
        model.train()
        try:
            for epoch in range(c.epochs):
                if c.synapse_lr_schedule == "cosine":
                    set_synapse_lr(model, lr_base, cosine_factor(epoch + 1, c.epochs))
                ctx.epoch, ctx.batch_index = epoch, 0
                self.call("before_epoch")
                g_order = _gen(c.seed, _TRAIN, i, epoch)
                g_enc = _gen(c.seed, _ENC, i, epoch)
                for b, (x, y) in enumerate(iter_batches(task, "train", c.batch_size, shuffle=c.shuffle,
                                                        generator=g_order)):
                    xe = self.data.encode(task, x, g_enc)
                    target = self.data.targets(task, y)
                    ctx.batch_index, ctx.batch = b, (xe, target)
                    try:
                        lv, out = train_step(model, self.optimizer, xe, target, task=task_arg, reduction=reduction,
                                             samples=n_mc, stacked=stacked, extra_loss=self.extra_loss,
                                             after_backward=lambda: self.call("after_backward"), return_output=True)
                    except FloatingPointError as e:
                        raise RuntimeError(f"task {i} ({task.name}), epoch {epoch}, step {n}: {e}") from None
                    ctx.loss, ctx.output, ctx.step = lv, out, n
                    self.call("after_step")
                    total += lv
                    n += 1
                    bar.update(1)
                    if n % 20 == 0:
                        bar.set_postfix(loss=f"{total / n:.3f}")
                ctx.loss = total / max(n, 1)
                self.call("after_epoch")
        finally:
            bar.close()
            for s in syn if stacked else []:
                s.set_mc_samples(0)
            if lr_base:
                set_synapse_lr(model, lr_base, 1.0)  # the next task starts from the base lr again
        return total / max(n, 1), n

    def evaluate_task(self, task: Task) -> Any:
        """``networks.evaluate`` on the test split of ``task`` (deterministic encoding noise per task)."""
        from .. import networks as nets
        c = self.config
        was = self.model.training
        self.model.eval()
        try:
            return nets.evaluate(self.model, self.data.test_batches(task, c.eval_batch_size),
                                 task=self.scenario.task_arg(task), samples=int(self.protocol["eval_samples"]),
                                 average=self.protocol["eval_average"])
        finally:
            self.model.train(was)

    # ---- checkpoint ----------------------------------------------------------------------------
    def checkpoint_payload(self, next_task: int, results: Results) -> dict[str, Any]:
        """Everything needed to continue after task ``next_task - 1`` (and to rebuild the model for
        export)."""
        return {"spec": plain(getattr(self.model, "spec", None)), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "config": self.config.comparable(),
                "run_config": plain(self.config.to_dict()), "next_task": next_task,
                "plugins": [p.state_dict() for p in self.plugins], "rng": rng_state(),
                "results": plain(results.to_dict())}

    def save(self, path: str | Path, next_task: int, results: Results) -> Path:
        """The checkpoint alone, in the library's one format (``fit`` writes it together with
        ``results.json``)."""
        return save_checkpoint(path, self.model, self.optimizer, **{k: v for k, v in
                                                                    self.checkpoint_payload(next_task, results).items()
                                                                    if k not in ("model", "optimizer")})

    def _write(self, out: Path, next_task: int, results: Results) -> None:
        """results.json, run_info.json and checkpoint.pt, changed together: a failed write (a full disk)
        leaves all as they were, so they always describe the same number of tasks."""
        files: dict[Path, bytes] = {out / RESULTS: results.json_bytes(), out / RUN_INFO: results.info_bytes()}
        if self.config.checkpoint:
            files[out / CHECKPOINT_NAME] = checkpoint_bytes(self.checkpoint_payload(next_task, results))
        atomic_write_many(files)

    def restore(self, path: Path) -> tuple[int, Results]:
        """Load a checkpoint of the same config into this learner; returns (next task, results)."""
        ck = read_checkpoint(path)
        if ck.get("config") != self.config.comparable():
            want = self.config.comparable()
            diff = sorted(k for k in set(ck.get("config") or {}) | set(want)
                          if (ck.get("config") or {}).get(k) != want.get(k))
            raise ValueError(f"--resume: checkpoint {path} was made with a different config "
                             f"(keys differ: {', '.join(diff)})")
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        states = ck.get("plugins") or []
        if len(states) != len(self.plugins):
            raise ValueError(f"--resume: checkpoint {path} holds {len(states)} plugin states, this run has "
                             f"{len(self.plugins)} plugins")
        for p, st in zip(self.plugins, states):
            p.load_state_dict(st)
        set_rng_state(ck["rng"])
        res = Results.from_dict(ck["results"])
        res.config = self.config.to_dict()
        return int(ck["next_task"]), res

    # ---- the loop ------------------------------------------------------------------------------
    def fit(self, stream: Sequence[Task] | None = None, *, resume: bool = False, overwrite: bool = False,
            stop_after: int | None = None) -> tuple[nn.Module, Results]:
        """Train on every task of ``stream`` (default: the tasks given at construction) in turn and
        evaluate on all tasks after each one. Writes ``results.json`` and ``checkpoint.pt`` into
        ``config.out`` after every task and PNG/markdown reports at the end.

        ``resume``: continue from ``<out>/checkpoint.pt`` if it exists (the config's numeric fields
        must match). ``overwrite``: allow a non-empty ``out`` (otherwise refused). ``stop_after``:
        return after checkpointing task ``stop_after`` (a controlled stop, as if killed there)."""
        c, ctx = self.config, self.ctx
        tasks = list(self.tasks if stream is None else stream)
        if not tasks:
            raise ValueError("Learner.fit: no tasks (pass the stream, e.g. build_stream(config))")
        _check_tasks(c, tasks)
        out = check_out_dir(c.out, resume=resume, overwrite=overwrite)
        for stale in out.glob(".*.tmp"):  # temporary files of a write that a kill -9 interrupted
            stale.unlink(missing_ok=True)
        ckpt_path = out / CHECKPOINT_NAME
        t_start = time.perf_counter()
        res = Results(config=c.to_dict(), versions=versions(), seed=c.seed, task_names=[t.name for t in tasks],
                      scenario_label=self.scenario.label, reference_kind=c.reference)
        start = 0
        if resume and ckpt_path.exists():
            start, res = self.restore(ckpt_path)
            self.log(f"resumed from {ckpt_path} after task {start - 1}")
        elif resume:
            self.log(f"no checkpoint in {out}; starting from the beginning")
        res.provenance = {**res.provenance, **_provenance(res.provenance)}
        ctx.n_tasks, ctx.start_task, ctx.results, ctx.tasks = len(tasks), start, res, tasks
        self.call("before_training")

        if start == 0:
            t0 = time.perf_counter()
            res.random_init = [self.evaluate_task(t).accuracy for t in tasks]
            self.log(f"random-init accuracies b_j: {', '.join(f'{100 * b:.1f}' for b in res.random_init)} "
                     f"({time.perf_counter() - t0:.1f} s)")

        for i in range(start, len(tasks)):
            task = tasks[i]
            seed_everything(derived_seed(c.seed, _TASK, i))
            if c.norm_carry and i > 0:
                carry_norm_set(self.model, i)
            if c.reset_optimizer and i > 0:
                self.optimizer = ctx.optimizer = build_optimizer(c, self.model)
            idle = None
            if i > 0 and c.idle_s > 0:  # the devices sit idle between tasks (thermal flips, ion relaxation)
                before = device_counters(self.model)
                advance_idle(self.model, c.idle_s)
                after = device_counters(self.model)
                idle = {"seconds": c.idle_s, "device": {k: after[k] - before.get(k, 0.0) for k in after}}
            dev0, en0 = device_counters(self.model), device_energy(self.model)
            t0 = time.perf_counter()
            ctx.task, ctx.task_index, ctx.task_arg = task, i, self.scenario.task_arg(task)
            ctx.batches, ctx.loss_fn, ctx.row = self.data.fisher_batches(task), loss_fn, None
            ctx.epoch = ctx.batch_index = ctx.step = 0
            self.call("before_task")
            loss, n_steps = self.train_task(task, i)
            ctx.loss = loss
            self.call("after_task")
            t_train = time.perf_counter() - t0
            dev1, en1 = device_counters(self.model), device_energy(self.model)
            t0 = time.perf_counter()
            evals, e_inf = [], None
            for j, t in enumerate(tasks):
                e_before = device_energy(self.model) if j == i and en1 is not None else None
                evals.append(self.evaluate_task(t))
                if e_before is not None:  # read energy of one inference on this task
                    e_inf = (device_energy(self.model)["read"] - e_before["read"]) / max(evals[-1].n, 1)
            t_eval = time.perf_counter() - t0
            res.matrix.append([float(e.accuracy) for e in evals])
            res.per_task.append({
                "task": task.name, "train_time_s": t_train, "eval_time_s": t_eval, "train_loss": loss,
                "steps": n_steps, "test_loss": float(evals[i].loss),
                "spikes_per_sample": float(sum(evals[i].spikes_per_sample)),
                "spikes_per_sample_per_layer": [float(v) for v in evals[i].spikes_per_sample],
                "device": {k: dev1[k] - dev0.get(k, 0.0) for k in dev1},
            })
            if idle is not None:  # what the idle time before this task did (thermal flips, time)
                res.per_task[-1]["idle"] = idle
            if en1 is not None:  # training energy of this task [J], and per inference on it
                res.per_task[-1]["energy_J"] = {k: en1[k] - en0.get(k, 0.0) for k in en1}
                res.per_task[-1]["inference_energy_J"] = {"read": e_inf}
                res.per_task[-1]["energy_per_sample_J"] = (sum(en1.values()) - sum(en0.values())) / max(
                    task.size("train") * c.epochs, 1)
            res.hidden_hists.append(hidden_histograms(self.model, c.hist_bins))
            if c.reference == "first_task":
                res.reference = [res.matrix[0][0]] * len(tasks)
            res.compute_metrics()
            res.wall_time_s += time.perf_counter() - t_start
            t_start = time.perf_counter()
            res.provenance["finished_utc"] = _utc_now()
            ctx.row = res.matrix[-1]
            self.call("after_eval")
            self._write(out, i + 1, res)
            self.log(f"task {i + 1}/{len(tasks)} {task.name}: acc on it {100 * evals[i].accuracy:.1f}%, "
                     f"mean over seen {100 * np.mean(res.matrix[-1][:i + 1]):.1f}% "
                     f"(train {t_train:.1f} s, eval {t_eval:.1f} s)")
            if stop_after is not None and i >= stop_after and i < len(tasks) - 1:
                self._close()
                return self.model, res

        if not res.complete:
            if c.reference == "single_task":
                res.reference = self.single_task_reference(tasks)
            res.complete = True
            res.compute_metrics()
            res.wall_time_s += time.perf_counter() - t_start
            res.provenance["finished_utc"] = _utc_now()
            self._write(out, len(tasks), res)
        self.call("after_training")
        self._close()
        write_reports(res, out)
        return self.model, res

    def _close(self) -> None:
        for lg in self.loggers:
            close = getattr(lg, "close", None)
            if close is not None:
                close()

    def single_task_reference(self, tasks: Sequence[Task]) -> list[float]:
        """Accuracy of the stream's initial network (same init seed) trained on task k alone with the
        seeds task k gets in the stream, for every k (so the reference for task 0 equals R[0, 0])."""
        c = self.config
        ref = []
        for k, task in enumerate(tasks):
            seed_everything(derived_seed(c.seed, _INIT))
            model = build_model(c, tasks, self.scenario).to(self.device)
            sub = type(self)(model, build_optimizer(c, model), config=c, scenario=self.scenario, tasks=tasks,
                             device=self.device, progress=False)
            seed_everything(derived_seed(c.seed, _TASK, k))
            sub.ctx.task, sub.ctx.task_index = task, k
            sub.train_task(task, k)
            ref.append(float(sub.evaluate_task(task).accuracy))
            self.log(f"single-task reference {k}: {100 * ref[-1]:.1f}%")
        return ref


class _OnlineBoundary(Plugin):
    """Built-in plugin of :class:`OnlineLearner`: the online network's own task boundary."""

    name = "online-boundary"

    def after_task(self, ctx: Context) -> None:
        ctx.model.task_boundary()


class OnlineLearner(Learner):
    """``learner = "online"``: the same loop and hooks; a task step is ``epochs`` passes of the
    :class:`~metaspin_snn.networks.online.OnlineSNN` local rule over the task's training split, one
    sample at a time in a seeded order per epoch (no loss, no optimiser)."""

    def builtin_plugins(self) -> list[Plugin]:
        return [_OnlineBoundary()]

    def train_task(self, task: Task, i: int) -> tuple[float, int]:
        c = self.config
        orders = [torch.randperm(task.size("train"), generator=_gen(c.seed, _TRAIN, i, epoch))
                  for epoch in range(c.epochs)]
        return self.model.train_task(task, self.scenario, orders)

    def evaluate_task(self, task: Task) -> Any:
        return self.model.evaluate(task, self.scenario, self.config.eval_batch_size)


def _check_tasks(config: RunConfig, tasks: Sequence[Task]) -> None:
    if [t.id for t in tasks] != list(range(len(tasks))):
        raise ValueError("task ids must be 0..T-1 in stream order")
    if len(tasks) != config.n_tasks:
        raise ValueError(f"config key 'n_tasks': {config.n_tasks}, but the stream has {len(tasks)} tasks")


def _utc_now() -> str:
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _provenance(previous: dict) -> dict[str, Any]:
    """Package version, git commit (in a checkout), command line and start time of this process."""
    return {"package_version": package_version(), "git_commit": git_commit(),
            "command": list(sys.argv), "started_utc": previous.get("started_utc") or _utc_now(),
            **({"resumed_utc": _utc_now()} if previous.get("started_utc") else {})}


__all__ = ["Learner", "OnlineLearner", "DataView", "check_out_dir", "OutputExistsError"]
