"""Continual-learning algorithms as plugins on the learner's loop (Avalanche's pattern: one loop,
a list of plugins, a list of loggers, every hook receiving one :class:`Context`).

Hooks (all optional, each ``hook(ctx)``): ``before_training``, ``before_task``, ``before_epoch``,
``extra_loss(ctx) -> Tensor | None`` (added to the task loss), ``after_backward``, ``after_step``,
``after_epoch``, ``after_task`` (training of the task done, before the synapses' task boundary and the
evaluation), ``after_eval`` (the task's row of the accuracy matrix is known), ``after_training``; and
``state_dict()/load_state_dict()`` for checkpoints. Plugins compose: ``plugins=[Replay(), SI()]``
sums their extra losses in list order and calls every hook of each in list order.

The regularised tensors θ are the network's trainable parameters plus, for every synapse model, its
effective weight leaf (``SynapseModel.weight``: the gradient of a penalty on it reaches the synapse
model's own update rule). For real-valued synapses this is the usual parameter vector.

* :class:`Naive` — plain fine-tuning.
* :class:`EWC` — Kirkpatrick et al. 2017: L = L_t + λ/2 Σ_{k<t} Σ_i F_{k,i} (θ_i − θ*_{k,i})², with the
  empirical diagonal Fisher F_i = E[(∂ log p(y|x)/∂θ_i)²] over training samples of task k (true
  labels; mini-batches of ``fisher_batch`` samples, exact per-sample Fisher for ``fisher_batch=1``).
* :class:`OnlineEWC` — Schwarz et al. 2018 (progress & compress): one running F̃ ← γ F̃ + F_t and one
  anchor θ* = θ_t; penalty λ/2 Σ F̃ (θ − θ*)².
* :class:`SI` — Zenke et al. 2017 (synaptic intelligence): per step ω_i −= g_i Δθ_i (g = gradient of the
  total loss used by that step); at task end Ω_i += ω_i / ((θ_i(end) − θ_i(start))² + ξ), ω ← 0;
  penalty c Σ Ω_i (θ_i − θ*_i)².
* :class:`Replay` — experience replay (ER) with a tiny episodic memory (Chaudhry et al. 2019; Rolnick
  et al. 2019): ``mem_per_task`` encoded training samples of every finished task are kept, and each
  step adds ``weight`` · L(memory batch of ``replay_batch`` samples drawn uniformly).
* :class:`SynapseBoundary` — built in, always last: every synapse model's ``task_boundary()`` after a
  task (e.g. MESU/BayesBiNN prior ← posterior).

:func:`make_plugins` builds the list a config names: ``"si"``, ``"replay+si"`` (``"replay-si"`` is the
same pair), or a user class ``"package.module:ClassName"``.
"""
from __future__ import annotations

import inspect
import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

import torch
from torch import nn
import torch.nn.functional as F

from ..synapses.base import SynapseModel
from .streams import Task

if TYPE_CHECKING:  # pragma: no cover
    from .scenarios import Scenario

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def regularised_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Name → tensor for every trainable parameter and every synapse model's effective weight."""
    out: dict[str, torch.Tensor] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, SynapseModel):
            out[f"{name}.<w_eff>" if name else "<w_eff>"] = mod.effective_weight()
    for name, p in model.named_parameters():
        if p.requires_grad:
            out[name] = p
    return out


def _grad_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Current gradients, read *before* anything refreshes a synapse model (which clears its grad)."""
    out: dict[str, torch.Tensor] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, SynapseModel):
            g = mod.weight.grad
            out[f"{name}.<w_eff>" if name else "<w_eff>"] = (torch.zeros_like(mod.weight) if g is None
                                                            else g.detach().clone())
    for name, p in model.named_parameters():
        if p.requires_grad:
            out[name] = torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
    return out


def _values(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in regularised_tensors(model).items()}


@dataclass
class Context:
    """What every hook of a plugin or logger receives (one object per run, updated in place).

    ``model``, ``optimizer``, ``scenario``, ``learner``; the current ``task`` (a :class:`Task`),
    ``task_index`` (its position in the stream), ``n_tasks``, ``epoch``, ``batch_index`` (within the
    epoch), ``step`` (within the task), ``loss`` (the last step's loss value), ``output`` (the last
    training forward pass: logits and spikes per layer), ``batch`` (``(x, targets)`` of that step);
    ``task_arg`` (the network's task argument: head / norm set, or None), ``batches(batch_size,
    n_samples)`` (seeded mini-batches ``(x[T, B, ...], targets)`` of the task's training split, for
    Fisher estimates and replay memories), ``loss_fn(logits, targets)``; after evaluation ``row`` (the
    accuracies on every task) and ``results``; ``start_task`` (the first task this process trains:
    > 0 after a resume)."""

    model: nn.Module
    optimizer: Any = None
    scenario: "Scenario | None" = None
    learner: Any = None
    task: Task | None = None
    task_index: int = 0
    n_tasks: int = 0
    epoch: int = 0
    batch_index: int = 0
    step: int = 0
    loss: float | None = None
    output: Any = None
    batch: Any = None
    task_arg: int | None = None
    batches: Callable[[int, int], Batches] | None = None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
    row: list[float] | None = None
    results: Any = None
    start_task: int = 0
    extra: dict = field(default_factory=dict)


#: The hooks the loop calls (plugins and loggers), in the order of one task.
HOOKS = ("before_training", "before_task", "before_epoch", "after_backward", "after_step", "after_epoch",
         "after_task", "after_eval", "after_training")


class Callback:
    """No-op hooks shared by plugins and loggers."""

    def before_training(self, ctx: Context) -> None:
        pass

    def before_task(self, ctx: Context) -> None:
        pass

    def before_epoch(self, ctx: Context) -> None:
        pass

    def after_backward(self, ctx: Context) -> None:
        pass

    def after_step(self, ctx: Context) -> None:
        pass

    def after_epoch(self, ctx: Context) -> None:
        pass

    def after_task(self, ctx: Context) -> None:
        pass

    def after_eval(self, ctx: Context) -> None:
        pass

    def after_training(self, ctx: Context) -> None:
        pass


class Plugin(Callback):
    """Base plugin: every hook is a no-op (naive fine-tuning); ``extra_loss`` adds a term to the loss."""

    name = "naive"

    def extra_loss(self, ctx: Context) -> torch.Tensor | None:
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Naive(Plugin):
    """Fine-tuning: no protection of earlier tasks."""

    name = "naive"


def _quadratic(model: nn.Module, weights: dict[str, torch.Tensor], anchors: dict[str, torch.Tensor]) -> torch.Tensor:
    cur = regularised_tensors(model)
    missing = set(weights) - set(cur)
    if missing:
        raise RuntimeError(f"regulariser: model lost tensors {sorted(missing)[:3]} since the anchor was taken")
    total = None
    for k, w in weights.items():
        term = (w * (cur[k] - anchors[k]) ** 2).sum()
        total = term if total is None else total + term
    return total if total is not None else torch.zeros(())


def empirical_fisher(model: nn.Module, ctx: Context, n_samples: int, batch_size: int) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher: mean over mini-batches of (∂ mean_batch log p(y|x)/∂θ)², computed
    with the network in eval mode (deterministic synapses, running normalisation statistics)."""
    was_training = model.training
    model.eval()
    acc = {k: torch.zeros_like(v) for k, v in regularised_tensors(model).items()}
    n_batches = 0
    for x, y in ctx.batches(batch_size, n_samples):
        for k, v in regularised_tensors(model).items():
            v.grad = None
        out = model(x, task=ctx.task_arg)
        loss = ctx.loss_fn(out.logits, y)
        loss.backward()
        for k, g in _grad_of(model).items():
            acc[k] += g ** 2
        n_batches += 1
    for v in regularised_tensors(model).values():
        v.grad = None
    model.train(was_training)
    if n_batches == 0:
        raise RuntimeError(f"EWC: no batches to estimate the Fisher of task {ctx.task.name!r}")
    return {k: v / n_batches for k, v in acc.items()}


class EWC(Plugin):
    """Elastic weight consolidation with one Fisher and anchor per finished task."""

    name = "ewc"

    def __init__(self, lam: float = 1000.0, fisher_samples: int = 500, fisher_batch: int = 1) -> None:
        if not lam >= 0:
            raise ValueError(f"EWC: lambda must be >= 0, got {lam}")
        if fisher_samples < 1 or fisher_batch < 1:
            raise ValueError("EWC: fisher_samples and fisher_batch must be >= 1")
        self.lam, self.fisher_samples, self.fisher_batch = float(lam), int(fisher_samples), int(fisher_batch)
        self.fishers: list[dict[str, torch.Tensor]] = []
        self.anchors: list[dict[str, torch.Tensor]] = []

    def extra_loss(self, ctx: Context) -> torch.Tensor | None:
        if not self.fishers or self.lam == 0:
            return None
        return 0.5 * self.lam * sum(_quadratic(ctx.model, f, a) for f, a in zip(self.fishers, self.anchors))

    def after_task(self, ctx: Context) -> None:
        self.fishers.append(empirical_fisher(ctx.model, ctx, self.fisher_samples, self.fisher_batch))
        self.anchors.append(_values(ctx.model))

    def state_dict(self) -> dict:
        return {"fishers": self.fishers, "anchors": self.anchors}

    def load_state_dict(self, state: dict) -> None:
        self.fishers, self.anchors = list(state["fishers"]), list(state["anchors"])


class OnlineEWC(EWC):
    """Online EWC: F̃ ← γ F̃ + F_t, θ* ← θ_t (Schwarz et al. 2018)."""

    name = "online-ewc"

    def __init__(self, lam: float = 1000.0, gamma: float = 1.0, fisher_samples: int = 500,
                 fisher_batch: int = 1) -> None:
        super().__init__(lam, fisher_samples, fisher_batch)
        if not 0 <= gamma <= 1:
            raise ValueError(f"OnlineEWC: gamma must be in [0, 1], got {gamma}")
        self.gamma = float(gamma)

    def after_task(self, ctx: Context) -> None:
        f = empirical_fisher(ctx.model, ctx, self.fisher_samples, self.fisher_batch)
        if self.fishers:
            f = {k: self.gamma * self.fishers[0][k] + v for k, v in f.items()}
        self.fishers = [f]
        self.anchors = [_values(ctx.model)]


class SI(Plugin):
    """Synaptic intelligence (path-integral importance)."""

    name = "si"

    def __init__(self, c: float = 1.0, xi: float = 0.1) -> None:
        if not c >= 0 or not xi > 0:
            raise ValueError(f"SI: need c >= 0 and xi > 0, got c={c}, xi={xi}")
        self.c, self.xi = float(c), float(xi)
        self.omega: dict[str, torch.Tensor] = {}   # running path integral of the current task
        self.big_omega: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}  # θ at the end of the previous task
        self.start: dict[str, torch.Tensor] = {}   # θ at the start of the current task
        self.prev: dict[str, torch.Tensor] = {}    # θ before the last step

    def before_task(self, ctx: Context) -> None:
        self.start = _values(ctx.model)
        self.prev = {k: v.clone() for k, v in self.start.items()}
        self.omega = {k: torch.zeros_like(v) for k, v in self.start.items()}

    def extra_loss(self, ctx: Context) -> torch.Tensor | None:
        if not self.big_omega or self.c == 0:
            return None
        return self.c * _quadratic(ctx.model, self.big_omega, self.anchor)

    def after_step(self, ctx: Context) -> None:
        grads = _grad_of(ctx.model)      # before _values(): refreshing a synapse model clears its grad
        cur = _values(ctx.model)
        for k, v in cur.items():
            self.omega[k] -= grads[k] * (v - self.prev[k])
        self.prev = cur

    def after_task(self, ctx: Context) -> None:
        end = _values(ctx.model)
        for k, v in end.items():
            upd = self.omega[k] / ((v - self.start[k]) ** 2 + self.xi)
            self.big_omega[k] = self.big_omega.get(k, torch.zeros_like(v)) + upd
        self.anchor = end

    def state_dict(self) -> dict:
        return {"big_omega": self.big_omega, "anchor": self.anchor}

    def load_state_dict(self, state: dict) -> None:
        self.big_omega, self.anchor = dict(state["big_omega"]), dict(state["anchor"])


def _model_device(model: nn.Module) -> torch.device:
    """Device of the first parameter or buffer of ``model`` (CPU for a model with neither)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device("cpu")


def _count_param(name: str, v: int | float) -> int:
    """A positive integer plugin parameter given as an int (TOML, ``--set``) or an integral float."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v) or v < 1:
        raise ValueError(f"plugin_params.{name}: Replay needs a positive integer, got {v!r}")
    return int(v)


class Replay(Plugin):
    """Experience replay with a tiny episodic memory (ER; Chaudhry et al. 2019, "On Tiny Episodic
    Memories in Continual Learning", arXiv:1902.10486; Rolnick et al. 2019, "Experience Replay for
    Continual Learning", NeurIPS).

    After task k, ``mem_per_task`` of its training samples are stored as the network sees them
    (encoded ``x[T, n, ...]``, scenario targets, the task argument): a seeded random draw, class
    balanced (⌊mem/C⌋ per target class, the rest filled in draw order). While training task t > k each
    step minimises

        L = L_t(B_t) + weight · L(B_M),   B_M = ``replay_batch`` samples drawn i.i.d. uniformly from M,

    (ER's loss on the current batch plus a memory batch; Chaudhry et al. use one concatenated batch,
    i.e. weight = |B_M|/|B_t| up to the normalisation). Samples whose task argument differs (task-IL
    heads) go through the network in one forward per task argument; the memory loss is then the
    sample-weighted mean of the groups' losses. Indices come from the global torch RNG, which the
    runner reseeds per task and checkpoints, so a resumed run replays the same samples. The memory
    stays on the CPU (and in ``state_dict``); each memory batch is moved to the model's device.
    """

    name = "replay"

    def __init__(self, mem_per_task: int = 200, replay_batch: int = 50, weight: float = 1.0) -> None:
        self.mem_per_task = _count_param("mem_per_task", mem_per_task)
        self.replay_batch = _count_param("replay_batch", replay_batch)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"plugin_params.weight: Replay needs a finite weight > 0, got {weight!r}")
        self.weight = float(weight)
        self.loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
        self.mem_x: torch.Tensor | None = None   # [T, N, ...] encoded inputs
        self.mem_y: torch.Tensor | None = None   # [N] targets
        self.mem_task: torch.Tensor | None = None  # [N] stream task id
        self.mem_arg: torch.Tensor | None = None   # [N] task argument of the network (-1 = None)

    @property
    def size(self) -> int:
        return 0 if self.mem_y is None else int(self.mem_y.shape[0])

    def _select(self, ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
        """Class-balanced memory of one task from the seeded draw ``ctx.batches``."""
        mem, n_cls = self.mem_per_task, max(ctx.task.n_classes, 1)
        quota = mem // n_cls
        counts: dict[int, int] = {}
        kept: list[tuple[torch.Tensor, torch.Tensor]] = []
        spare: list[tuple[torch.Tensor, torch.Tensor]] = []
        n_kept = n_spare = 0
        for x, y in ctx.batches(100, ctx.task.size("train")):
            if x.dim() < 2 or x.shape[1] != y.shape[0]:
                raise ValueError(f"Replay: task {ctx.task.name!r} batches must be (x[T, B, ...], y[B]), "
                                 f"got x {tuple(x.shape)}, y {tuple(y.shape)}")
            take, rest = [], []
            for i, c in enumerate(y.tolist()):
                if counts.get(c, 0) < quota:
                    counts[c] = counts.get(c, 0) + 1
                    take.append(i)
                elif n_spare + len(rest) < mem:
                    rest.append(i)
            if take:
                kept.append((x[:, take], y[take]))
                n_kept += len(take)
            if rest:
                spare.append((x[:, rest], y[rest]))
                n_spare += len(rest)
            if n_kept >= quota * n_cls and n_kept + n_spare >= mem:
                break
        parts = kept + spare
        if not parts:
            raise RuntimeError(f"Replay: no training samples of task {ctx.task.name!r} to store")
        x = torch.cat([p[0] for p in parts], dim=1)[:, :mem]
        y = torch.cat([p[1] for p in parts])[:mem]
        return x.detach().cpu().clone(), y.detach().cpu().clone()

    def after_task(self, ctx: Context) -> None:
        self.loss_fn = ctx.loss_fn
        x, y = self._select(ctx)
        n = y.shape[0]
        tid = torch.full((n,), int(ctx.task.id), dtype=torch.int64)
        arg = torch.full((n,), -1 if ctx.task_arg is None else int(ctx.task_arg), dtype=torch.int64)
        if self.mem_x is None:
            self.mem_x, self.mem_y, self.mem_task, self.mem_arg = x, y, tid, arg
            return
        if x.shape[0] != self.mem_x.shape[0] or x.shape[2:] != self.mem_x.shape[2:]:
            raise ValueError(f"Replay: task {ctx.task.name!r} inputs have shape {tuple(x.shape)}, the memory "
                             f"holds {tuple(self.mem_x.shape)} (time steps and per-step shape must match)")
        self.mem_x = torch.cat([self.mem_x, x], dim=1)
        self.mem_y = torch.cat([self.mem_y, y])
        self.mem_task = torch.cat([self.mem_task, tid])
        self.mem_arg = torch.cat([self.mem_arg, arg])

    def extra_loss(self, ctx: Context) -> torch.Tensor | None:
        if self.mem_y is None:
            return None
        model = ctx.model
        idx = torch.randint(self.size, (self.replay_batch,))
        dev = _model_device(model)
        x, y, args = self.mem_x[:, idx].to(dev), self.mem_y[idx].to(dev), self.mem_arg[idx]
        groups = torch.unique(args).tolist()
        if len(groups) == 1:
            a = None if groups[0] < 0 else int(groups[0])
            return self.weight * self.loss_fn(model(x, task=a).logits, y)
        total = None
        for g in groups:
            sel = (args == g).nonzero().flatten().to(dev)
            a = None if g < 0 else int(g)
            term = self.loss_fn(model(x[:, sel], task=a).logits, y[sel]) * (sel.numel() / self.replay_batch)
            total = term if total is None else total + term
        return self.weight * total

    def state_dict(self) -> dict:
        return {"mem_x": self.mem_x, "mem_y": self.mem_y, "mem_task": self.mem_task, "mem_arg": self.mem_arg}

    def load_state_dict(self, state: dict) -> None:
        self.mem_x, self.mem_y = state["mem_x"], state["mem_y"]
        self.mem_task, self.mem_arg = state["mem_task"], state["mem_arg"]


class SynapseBoundary(Plugin):
    """Built-in plugin, always last in a learner's list: every synapse model's ``task_boundary()``
    after a task's training (MESU / BayesBiNN: prior ← posterior; Laborieux's fresh optimiser state)."""

    name = "synapse-boundary"

    def after_task(self, ctx: Context) -> None:
        for s in (m for m in ctx.model.modules() if isinstance(m, SynapseModel)):
            s.task_boundary()


PLUGINS: dict[str, type[Plugin]] = {"naive": Naive, "ewc": EWC, "online-ewc": OnlineEWC, "si": SI, "replay": Replay}
#: Names that stand for several plugins (kept so that earlier result tables reproduce by name).
ALIASES: dict[str, tuple[str, ...]] = {"replay-si": ("replay", "si")}


def plugin_params_of(cls: type) -> tuple[str, ...]:
    """The keyword parameters of a plugin class's ``__init__``."""
    sig = inspect.signature(cls.__init__)
    return tuple(n for n, p in list(sig.parameters.items())[1:]
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


#: name → parameter names of every built-in plugin (and alias).
PLUGIN_PARAMS: dict[str, tuple[str, ...]] = {n: plugin_params_of(c) for n, c in PLUGINS.items()}
PLUGIN_PARAMS.update({a: tuple(dict.fromkeys(p for n in ns for p in PLUGIN_PARAMS[n])) for a, ns in ALIASES.items()})


def plugin_names(spec: str) -> list[str]:
    """The plugin names of a config value: ``"si"`` → ``["si"]``, ``"replay+si"`` / ``"replay-si"`` →
    ``["replay", "si"]``, ``"pkg.mod:Class"`` → itself. Raises ``ValueError`` for an unknown name."""
    from ..synapses.registry import is_import_path
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"plugin must be a non-empty string, got {spec!r}")
    out: list[str] = []
    for part in (p.strip() for p in spec.split("+")):
        if part in ALIASES:
            out += list(ALIASES[part])
        elif part in PLUGINS or is_import_path(part):
            out.append(part)
        else:
            raise ValueError(f"plugin {part!r}: choose from {', '.join([*PLUGINS, *ALIASES])}, join several "
                             "with '+' (e.g. 'replay+si'), or name your own class as 'package.module:ClassName'")
    if len(set(out)) != len(out):
        raise ValueError(f"plugin {spec!r}: a plugin is named twice")
    return out


def plugin_class(name: str) -> type[Plugin]:
    """A built-in plugin class, or a user class named ``"package.module:ClassName"``."""
    if name in PLUGINS:
        return PLUGINS[name]
    from ..synapses.registry import import_object
    cls = import_object(name, "plugin")
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise ValueError(f"plugin {name!r}: not a subclass of metaspin_snn.continual.plugins.Plugin")
    return cls


def make_plugins(spec: str, **params: Any) -> list[Plugin]:
    """The plugins a config names, each given the ``params`` its ``__init__`` accepts. A parameter two
    of them accept must be written ``"<plugin>.<name>"`` (e.g. ``"si.c"``); an unknown one is an
    error naming ``plugin_params.<key>``."""
    names = plugin_names(spec)
    classes = [plugin_class(n) for n in names]
    accepted = [plugin_params_of(c) for c in classes]
    kw: list[dict[str, Any]] = [{} for _ in names]
    for key, value in params.items():
        head, dot, sub = key.partition(".")
        if dot:
            if head not in names:
                raise ValueError(f"plugin_params.{key}: {head!r} is not one of this run's plugins ({', '.join(names)})")
            i = names.index(head)
            if sub not in accepted[i]:
                raise ValueError(f"plugin_params.{key}: unknown parameter for plugin {head!r} "
                                 f"(known: {', '.join(accepted[i]) or 'none'})")
            kw[i][sub] = value
            continue
        owners = [i for i, a in enumerate(accepted) if key in a]
        if not owners:
            known = sorted({p for a in accepted for p in a})
            raise ValueError(f"plugin_params.{key}: unknown parameter for plugin {spec!r} "
                             f"(known: {', '.join(known) or 'none'})")
        if len(owners) > 1:
            raise ValueError(f"plugin_params.{key}: accepted by several plugins ({', '.join(names[i] for i in owners)}); "
                             f"write it as '<plugin>.{key}'")
        kw[owners[0]][key] = value
    return [c(**k) for c, k in zip(classes, kw)]


def make_plugin(name: str, **params: Any) -> Plugin:
    """One plugin by name (``naive``, ``ewc``, ``online-ewc``, ``si``, ``replay`` or ``"pkg.mod:Class"``)."""
    plugins = make_plugins(name, **params)
    if len(plugins) != 1:
        raise ValueError(f"make_plugin: {name!r} names {len(plugins)} plugins; use make_plugins")
    return plugins[0]
