"""The continual-learning runner: trains a spiking network task after task, evaluates it on every task
after each one, and keeps the accuracy matrix, costs, checkpoints and reports.

Loop (``run_stream``)::

    b_j ← accuracy of the untrained network on every task j           (for FWT)
    for task i:
        reseed every generator from (seed, i)                          (resume-exact)
        plugin.before_task
        for each epoch, mini-batch:  L = CE(net(x, task_arg), y) + plugin.extra_loss(net)
            (CE averaged or summed over the batch and, with S Monte-Carlo weight samples per step,
            averaged over S forward passes — one pass with stacked weights for non-spiking MLPs)
            backward; plugin.after_backward; optimiser.step (synapse models' own fused updates +
            torch optimiser on ordinary parameters); plugin.after_step
        plugin.after_task (e.g. EWC's Fisher); SynapseModel.task_boundary() for every synapse model
        R[i, j] ← accuracy on every task j (point estimate, or an ensemble of eval_samples synapse draws)
        costs; histograms of the hidden variable
        results.json + checkpoint.pt (atomic)

Data order and rate-code noise come from generators seeded by (seed, task, epoch), and all global
generators (torch, numpy, random, Numba) are reseeded at the start of every task, so a run resumed from
the checkpoint after task i continues with exactly the numbers of an uninterrupted run (the RNG states
are also saved and restored, for code that draws between tasks).

Intransigence (Chaudhry et al. 2018) needs a reference accuracy a*_k per task. ``reference``:
``"first_task"`` uses R[0, 0] for every k — the accuracy the same learner reaches on a task it learns
from scratch; a cheap proxy that is exact in expectation when tasks are equally hard (permuted/rotated
MNIST), not for split MNIST; ``"single_task"`` trains a fresh network (same config and seed) on each
task alone (same initial weights and per-task seeds as in the stream) and uses its accuracy (T extra
trainings; not checkpointed); ``"none"`` skips it.
"""
from __future__ import annotations

import dataclasses
import json
import math
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..seed import seed_everything
from ..synapses.base import SynapseModel
from . import metrics as M
from .config import RunConfig
from .plugins import Plugin, TaskContext, make_plugin
from .report import atomic_write_bytes, write_reports
from .scenarios import Scenario
from .streams import (Task, dataset_sequence, encode_batch, holdout_validation, iter_batches, permuted_mnist, rotated_mnist,
                      split_mnist, split_nmnist)

CHECKPOINT = "checkpoint.pt"
RESULTS = "results.json"
STREAM_DEFAULT_SUBSET = 1000  # samples per task of the streaming variant unless train_subset is set


# ---- results -----------------------------------------------------------------------------------
@dataclass
class Results:
    """Everything a run reports; ``matrix[i][j]`` = accuracy on task j after training task i."""

    config: dict
    versions: dict
    seed: int
    task_names: list[str]
    scenario_label: str
    random_init: list[float] = field(default_factory=list)
    matrix: list[list[float]] = field(default_factory=list)
    per_task: list[dict] = field(default_factory=list)
    hidden_hists: list[dict] = field(default_factory=list)
    reference: list[float] | None = None
    reference_kind: str = "none"
    metrics: dict = field(default_factory=dict)
    forgetting_per_step: list[float | None] = field(default_factory=list)
    complete: bool = False
    wall_time_s: float = 0.0

    @property
    def title(self) -> str:
        c = self.config
        sp = "".join(f" {k}={v}" for k, v in c.get("synapse_params", {}).items())
        if c.get("learner") == "online":
            sp = "".join(f" {k}={v}" for k, v in c.get("online_params", {}).items())
            return f"{c['stream']} · {self.scenario_label} · online{sp} · {c['plugin']}"
        return f"{c['stream']} · {self.scenario_label} · {c['synapse']}{sp} · {c['plugin']}"

    def compute_metrics(self) -> None:
        """Fill ``metrics`` from the finished rows (ACC/BWT/forgetting over the tasks seen so far)."""
        n = len(self.matrix)
        if n == 0:
            self.metrics = {}
            return
        R = np.asarray(self.matrix, dtype=float)[:, :n]
        ref = None if self.reference is None else self.reference[:n]
        self.metrics = M.all_metrics(R, self.random_init[:n], ref)
        self.metrics["final_accuracy_all_tasks"] = float(np.mean(self.matrix[-1]))
        self.metrics["train_time_s"] = float(sum(t["train_time_s"] for t in self.per_task))
        self.metrics["spikes_per_sample"] = float(np.mean([t["spikes_per_sample"] for t in self.per_task]))
        self.forgetting_per_step = M.forgetting_per_step(R)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Results":
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically (strict JSON: undefined metrics are ``null``)."""
        atomic_write_bytes(path, json.dumps(self.to_dict(), indent=1, allow_nan=False).encode())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Results":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _pkg_version() -> str:
    try:
        from importlib.metadata import version
        return version("metaspin-snn")
    except Exception:  # not installed as a distribution
        return "unknown"


def versions() -> dict[str, str]:
    """Library versions recorded with every result."""
    import numba
    import snntorch
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "numba": numba.__version__, "snntorch": snntorch.__version__, "metaspin_snn": _pkg_version()}


# ---- seeds ---------------------------------------------------------------------------------------
_TRAIN, _EVAL, _ENC, _TASK, _INIT = 1, 2, 3, 4, 6  # salts of derived_seed (fixed: they define the numbers)


def derived_seed(seed: int, *salt: int) -> int:
    """A 31-bit seed derived from ``seed`` and integer salts (NumPy SeedSequence hashing)."""
    return int(np.random.SeedSequence([int(seed), *map(int, salt)]).generate_state(1)[0] & 0x7FFFFFFF)


def _gen(seed: int, *salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, *salt))


def rng_state() -> dict[str, Any]:
    """States of torch's CPU generator, NumPy's, Python's and (where reachable) Numba's main-thread one."""
    st: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                          "random": random.getstate(), "numba": None}
    try:
        from numba import _helperlib
        st["numba"] = _helperlib.rnd_get_state(_helperlib.rnd_get_np_state_ptr())
    except Exception:  # private API; absent in some Numba builds
        pass
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["random"])
    if st.get("numba") is not None:
        try:
            from numba import _helperlib
            _helperlib.rnd_set_state(_helperlib.rnd_get_np_state_ptr(), st["numba"])
        except Exception:
            pass


# ---- construction --------------------------------------------------------------------------------
def build_stream(config: RunConfig) -> list[Task]:
    """The task list a config describes (deterministic in ``config.seed``); with ``validation`` set,
    every task's evaluation split is held out of its training data (:func:`holdout_validation`)."""
    tasks = _build_stream(config)
    if config.validation is None:
        return tasks
    try:
        return holdout_validation(tasks, config.validation, seed=config.seed)
    except ValueError as e:
        raise ValueError(f"config key 'validation': {e}") from e


def _build_stream(config: RunConfig) -> list[Task]:
    c = config
    kw = dict(seed=c.seed, train_subset=c.train_subset, test_subset=c.test_subset)
    if c.stream == "pmnist":
        return permuted_mnist(c.n_tasks, root=c.data_root, identity_first=c.identity_first, **kw)
    if c.stream == "stream":
        kw["train_subset"] = c.train_subset or STREAM_DEFAULT_SUBSET
        return permuted_mnist(c.n_tasks, root=c.data_root, identity_first=c.identity_first, **kw)
    if c.stream == "rotated":
        return rotated_mnist(c.n_tasks, root=c.data_root, angles=list(c.angles) or None,
                             max_angle=c.max_angle, **kw)
    if c.stream == "split-mnist":
        return split_mnist(root=c.data_root, classes_per_task=c.classes_per_task,
                           shuffle_classes=c.shuffle_classes, **kw)
    if c.stream == "split-nmnist":
        return split_nmnist(root=c.data_root, classes_per_task=c.classes_per_task,
                            shuffle_classes=c.shuffle_classes, dt_us=c.nmnist_dt_us, num_steps=c.nmnist_steps, **kw)
    if c.stream == "sequence":
        return dataset_sequence(list(c.sequence_dirs), **kw)
    raise ValueError(f"config key 'stream': unknown stream {c.stream!r}")


def synapse_factory(name: str, n_layers: int, seed: int = 0,
                    **params: Any) -> list[Callable[[tuple[int, ...]], SynapseModel]] | None:
    """Per-layer factories ``shape -> SynapseModel`` for synapse ``name`` (``"real"`` → None: ordinary
    parameters trained by the torch optimiser): :func:`metaspin_snn.networks.train.layer_synapse_factories`
    (a list for a scalar field gives one value per layer, e.g. ``m = [1, 3, 3]``; layer seed
    ``seed·1000 + layer``), with errors naming the config key (``'synapse'``, ``'synapse_params.<k>'``)."""
    from ..networks.train import SynapseParamsError, layer_synapse_factories
    try:
        return layer_synapse_factories(name, n_layers, seed=seed, **params)
    except SynapseParamsError as e:
        raise ValueError(f"config key '{e.key}'{e.where}: {e.detail}") from e
    except ValueError as e:  # unknown synapse name
        raise ValueError(f"config key 'synapse': {e}") from e


def _n_synapse_layers(config: RunConfig) -> int:
    return (len(config.hidden) if config.network == "mlp" else len(config.channels)) + 1


def check_synapse_params(config: RunConfig) -> None:
    """Build the synapse factories (and one tiny synapse per layer) so bad ``synapse_params`` fail
    before any data is loaded."""
    facs = synapse_factory(config.synapse, _n_synapse_layers(config), config.seed, **config.synapse_params)
    for f in facs or []:
        f((2, 2))


def data_synapse_params(config: RunConfig, tasks: Sequence[Task]) -> dict[str, Any]:
    """Synapse settings that depend on the data, unless the config sets them: BayesBiNN's
    ``n_data`` = training samples per task and the device models' pulse scales
    (``networks.train.default_synapse_params``)."""
    try:
        from ..networks.train import default_synapse_params
    except ImportError:  # networks' single-task trainer not available
        return {}
    n_train = min(t.size("train") for t in tasks)
    return default_synapse_params(config.synapse, n_train, config.batch_size)


def build_model(config: RunConfig, tasks: Sequence[Task], scenario: Scenario) -> nn.Module:
    """A :class:`~metaspin_snn.networks.SpikingMLP` (``network="mlp"``: flattened per-step input,
    ``hidden`` layers) or :class:`~metaspin_snn.networks.SpikingConvNet` (``"conv"``: ``channels``)
    for the stream; outputs/heads/normalisation sets from the scenario."""
    if config.learner == "online":  # OnlineSNN: local rule, one sample at a time (continual/online.py)
        from .online import OnlineLearner
        return OnlineLearner.build(config, list(tasks), scenario)
    from .. import networks as nets
    shapes = {t.input_shape for t in tasks}
    if len(shapes) != 1:
        raise ValueError(f"all tasks must share one input shape, got {sorted(shapes)}")
    in_shape = next(iter(shapes))
    params = {**data_synapse_params(config, tasks), **config.synapse_params}
    syn = synapse_factory(config.synapse, _n_synapse_layers(config), config.seed, **params)
    common = dict(beta=config.beta, threshold=config.threshold, reset=config.reset, synapse=syn,
                  norm=None if config.norm == "none" else config.norm, n_norm_sets=scenario.n_norm_sets(tasks),
                  heads=scenario.heads(tasks), output=config.output, gain=config.gain, bias=config.bias,
                  neuron=config.neuron, norm_params=dict(config.norm_params) or None)
    if config.network == "conv":
        return nets.SpikingConvNet(tuple(int(v) for v in in_shape), scenario.n_outputs(tasks),
                                   channels=tuple(config.channels), **common)
    sizes = [int(np.prod(in_shape)), *config.hidden, scenario.n_outputs(tasks)]
    return nets.SpikingMLP(sizes, **common)


def build_optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.learner == "online":  # placeholder: the online learner has no gradient-trained parameters
        return torch.optim.SGD([nn.Parameter(torch.zeros(0))], lr=0.0)
    from .. import networks as nets
    return nets.make_optimizer(model, lr=config.lr, kind=config.optimizer)


def carry_norm_set(model: nn.Module, i: int) -> None:
    """Norm set ``i`` ← norm set ``i − 1`` in every stage (``norm_carry``): a task's normalisation starts
    where the previous task's ended, as one BatchNorm trained through the sequence with a saved copy per
    task (Laborieux et al., main.py ``save_bn_states``/``load_bn_states``)."""
    for st in getattr(model, "stages", []):
        if st.norms is not None and len(st.norms) > i:
            st.norms[i].load_state_dict(st.norms[i - 1].state_dict())


# ---- measurements ----------------------------------------------------------------------------------
def device_counters(model: nn.Module) -> dict[str, float]:
    """Sum over synapse models of every ``total_<name>()`` counter they expose (pulses, switches,
    refreshes, energy_pj, …); empty for models without device counters."""
    out: dict[str, float] = {}
    for s in (m for m in model.modules() if isinstance(m, SynapseModel)):
        for attr in dir(type(s)):
            if attr.startswith("total_") and callable(getattr(s, attr)):
                out[attr[len("total_"):]] = out.get(attr[len("total_"):], 0.0) + float(getattr(s, attr)())
    return out


def hidden_histograms(model: nn.Module, bins: int) -> dict[str, dict]:
    """Histogram of ``hidden()`` for every synapse model, keyed by module path."""
    if callable(getattr(model, "hidden_histograms", None)):  # learner "online": its metaplastic m
        return model.hidden_histograms(bins)
    out: dict[str, dict] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, SynapseModel):
            try:
                h = mod.hidden()
            except NotImplementedError:
                continue
            v = h.detach().float().flatten().cpu().numpy()
            counts, edges = np.histogram(v, bins=bins)
            out[name or "synapse"] = {"edges": edges.tolist(), "counts": counts.tolist(),
                                      "mean_abs": float(np.abs(v).mean()), "std": float(v.std())}
    return out


def loss_fn(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy on the network's logits (spike counts or membrane, per ``output``) — the
    ``"ce"`` loss of ``networks.compute_loss`` — averaged (``"mean"``) or summed over the batch."""
    return F.cross_entropy(logits, target, reduction=reduction)


def resolve_protocol(config: RunConfig) -> dict[str, Any]:
    """``train_samples``, ``eval_samples``, ``eval_average`` and ``loss_reduction`` of a run: the
    config's values, and where it leaves them at None/"auto" the synapse model's ``PROTOCOL`` (the
    settings of the authors' code it follows, e.g. MESU: 10 + 10 samples, summed loss)."""
    proto = dict(SynapseModel.PROTOCOL)
    if config.synapse != "real" and config.learner == "bptt":
        from ..networks.train import synapse_classes
        proto.update(synapse_classes(config.synapse)[0].PROTOCOL)
    given = {"train_samples": config.train_samples, "eval_samples": config.eval_samples,
             "eval_average": None if config.eval_average == "auto" else config.eval_average,
             "loss_reduction": None if config.loss_reduction == "auto" else config.loss_reduction}
    return {k: (proto[k] if v is None else v) for k, v in given.items()}


def cosine_factor(epoch: int, epochs: int) -> float:
    """½(1 + cos(π·e/E)) for epoch e = 1..E: ``CosineAnnealingLR(T_max=E, eta_min≈0)`` stepped at the
    start of every epoch, as BayesBiNN's ``train_model_cl`` does (so the last epoch has lr ≈ 0)."""
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def set_synapse_lr(model: nn.Module, base: dict[int, float], factor: float) -> None:
    """lr of every synapse model whose params have an ``lr`` field ← base lr × ``factor``."""
    for s in (m for m in model.modules() if isinstance(m, SynapseModel)):
        if hasattr(s.params, "lr"):
            base.setdefault(id(s), float(s.params.lr))
            s.params = dataclasses.replace(s.params, lr=base[id(s)] * factor)


# ---- one task ---------------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    """The torch device of config key ``device`` (``auto``: CUDA when available, else CPU); a CUDA
    device that is not there is an error naming the key."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"config key 'device': {name!r} requested but torch sees no CUDA device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"config key 'device': {name!r} requested but only "
                             f"{torch.cuda.device_count()} CUDA device(s) exist")
    return dev


@dataclass
class _Ctx:
    config: RunConfig
    scenario: Scenario
    progress: bool
    device: torch.device = torch.device("cpu")
    protocol: dict = field(default_factory=dict)
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
        """Encoded input on the run's device (encoding noise drawn on the CPU, so every device sees
        the same spikes for a seed)."""
        c = self.config
        s = encode_batch(task, x, num_steps=c.num_steps, encoding=c.encoding, flatten=c.network == "mlp",
                         generator=gen, gain=c.rate_gain)
        if c.input_norm == "standardize":  # direct encoding: the standardised pixels at every step
            m, sd = self.split_stats(task, split)
            s = (s - m) / sd
        return s.to(self.device)

    def targets(self, task: Task, y: torch.Tensor) -> torch.Tensor:
        return self.scenario.targets(task, y).to(self.device)


def train_task(model: nn.Module, opt: torch.optim.Optimizer, plugin: Plugin, task: Task, step_id: int,
               ctx: _Ctx) -> tuple[float, int]:
    """Train ``epochs`` passes over ``task``; returns (mean task loss, number of steps)."""
    from tqdm.auto import tqdm
    c = ctx.config
    if c.learner == "online":  # one sample at a time in a seeded order per epoch; no loss, no optimiser
        orders = [torch.randperm(task.size("train"), generator=_gen(c.seed, _TRAIN, step_id, epoch))
                  for epoch in range(c.epochs)]
        return model.train_task(task, ctx.scenario, orders)
    model.train()
    task_arg = ctx.scenario.task_arg(task)
    n_per_epoch = math.ceil(task.size("train") / c.batch_size)
    proto = ctx.protocol or resolve_protocol(c)
    n_mc, reduction = int(proto["train_samples"]), proto["loss_reduction"]
    lr_base: dict[int, float] = {}
    syn = [m for m in model.modules() if isinstance(m, SynapseModel)]
    stacked = (n_mc > 1 and c.neuron != "lif" and c.norm == "none" and c.network == "mlp" and bool(syn)
               and c.plugin == "naive" and all(s.SAMPLE_BATCH for s in syn))
    # ^ all S samples in one pass (weights [S, out, in]); plugins read single weights, so they use the loop
    for s in syn if stacked else []:
        s.set_mc_samples(n_mc)
    total, n = 0.0, 0
    bar = tqdm(total=n_per_epoch * c.epochs, desc=f"task {step_id + 1} {task.name}", unit="batch",
               disable=not ctx.progress, leave=True, dynamic_ncols=True)
    try:
        for epoch in range(c.epochs):
            if c.synapse_lr_schedule == "cosine":
                set_synapse_lr(model, lr_base, cosine_factor(epoch + 1, c.epochs))
            g_order = _gen(c.seed, _TRAIN, step_id, epoch)
            g_enc = _gen(c.seed, _ENC, step_id, epoch)
            for x, y in iter_batches(task, "train", c.batch_size, shuffle=c.shuffle, generator=g_order):
                xe = ctx.encode(task, x, g_enc)
                target = ctx.targets(task, y)
                opt.zero_grad()
                lv = 0.0
                if stacked:  # mean over samples of the per-sample loss
                    out = model(xe, task=task_arg)
                    z = out.logits.reshape(-1, out.logits.shape[-1])
                    loss = loss_fn(z, target.repeat(n_mc), reduction) / (n_mc if reduction == "sum" else 1)
                    extra = plugin.extra_loss(model)
                    (loss if extra is None else loss + extra).backward()
                    lv = float(loss.detach())
                for k in range(0 if stacked else n_mc):  # Monte-Carlo samples: loss/S each, statistics summed
                    out = model(xe, task=task_arg)
                    loss = loss_fn(out.logits, target, reduction)
                    extra = plugin.extra_loss(model) if k == 0 else None
                    ((loss if extra is None else loss + extra * n_mc) / n_mc).backward()
                    if n_mc > 1:
                        opt.accumulate_sample()
                    lv += float(loss.detach()) / n_mc
                if n_mc > 1 and not stacked:
                    opt.finish_samples()
                if not math.isfinite(lv):
                    raise RuntimeError(f"task {step_id} ({task.name}), epoch {epoch}, step {n}: loss is {lv}")
                plugin.after_backward(model)
                opt.step()
                plugin.after_step(model)
                total += lv
                n += 1
                bar.update(1)
                if n % 20 == 0:
                    bar.set_postfix(loss=f"{total / n:.3f}")
    finally:
        bar.close()
        for s in syn if stacked else []:
            s.set_mc_samples(0)
        if lr_base:
            set_synapse_lr(model, lr_base, 1.0)  # the next task starts from the base lr again
    return total / max(n, 1), n


def evaluate_task(model: nn.Module, task: Task, ctx: _Ctx) -> Any:
    """``networks.evaluate`` on the test split of ``task`` (deterministic encoding noise per task)."""
    from .. import networks as nets
    c = ctx.config
    if c.learner == "online":
        return model.evaluate(task, ctx.scenario, c.eval_batch_size)
    g = _gen(c.seed, _EVAL, task.id)
    batches = ((ctx.encode(task, x, g, "test"), ctx.targets(task, y))
               for x, y in iter_batches(task, "test", c.eval_batch_size, shuffle=False))
    proto = ctx.protocol or resolve_protocol(c)
    was = model.training
    model.eval()
    try:
        return nets.evaluate(model, batches, task=ctx.scenario.task_arg(task), samples=int(proto["eval_samples"]),
                             average=proto["eval_average"])
    finally:
        model.train(was)


def _fisher_batches(task: Task, ctx: _Ctx) -> Callable[[int, int], Any]:
    def batches(batch_size: int, n_samples: int):
        g = _gen(ctx.config.seed, _TASK, task.id, 99)
        for x, y in iter_batches(task, "train", batch_size, shuffle=True, generator=g, limit=n_samples):
            yield ctx.encode(task, x, g), ctx.targets(task, y)
    return batches


# ---- checkpoint ------------------------------------------------------------------------------------
def save_checkpoint(path: Path, *, config: RunConfig, next_task: int, model: nn.Module,
                    opt: torch.optim.Optimizer, plugin: Plugin, results: Results) -> None:
    """Everything needed to continue after task ``next_task - 1``, written atomically."""
    import io
    buf = io.BytesIO()
    torch.save({"format": 1, "config": config.comparable(), "next_task": next_task,
                "model": model.state_dict(), "optimizer": opt.state_dict(), "plugin": plugin.state_dict(),
                "rng": rng_state(), "results": results.to_dict()}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError(f"cannot read checkpoint {path}: {e}") from e


# ---- the run ----------------------------------------------------------------------------------------
def run_stream(config: RunConfig, *, resume: bool = False, tasks: Sequence[Task] | None = None,
               stop_after: int | None = None, progress: bool | None = None,
               log: Callable[[str], None] | None = None) -> Results:
    """Train on every task of the stream in turn and evaluate on all tasks after each one.

    ``resume``: continue from ``<out>/checkpoint.pt`` if it exists (the config's numeric fields must
    match). ``tasks``: a pre-built stream (default: :func:`build_stream`). ``stop_after``: return after
    checkpointing task ``stop_after`` (a controlled stop, as if killed there). Writes
    ``results.json`` after every task and PNG/markdown reports at the end."""
    log = log or (lambda s: None)
    progress = config.progress if progress is None else progress
    check_synapse_params(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT
    t_start = time.perf_counter()

    tasks = list(build_stream(config) if tasks is None else tasks)
    if [t.id for t in tasks] != list(range(len(tasks))):
        raise ValueError("task ids must be 0..T-1 in stream order")
    if len(tasks) != config.n_tasks:
        raise ValueError(f"config key 'n_tasks': {config.n_tasks}, but the stream has {len(tasks)} tasks")
    scenario = Scenario(config.scenario, config.task_il)
    device = resolve_device(config.device)
    ctx = _Ctx(config, scenario, progress, device, protocol=resolve_protocol(config))

    seed_everything(derived_seed(config.seed, _INIT))
    model = build_model(config, tasks, scenario).to(device)
    opt = build_optimizer(config, model)
    plugin = make_plugin(config.plugin, **config.plugin_params)
    res = Results(config=config.to_dict(), versions=versions(), seed=config.seed,
                  task_names=[t.name for t in tasks], scenario_label=scenario.label,
                  reference_kind=config.reference)
    start = 0
    if resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        if ck.get("config") != config.comparable():
            diff = sorted(k for k in set(ck.get("config", {})) | set(config.comparable())
                          if ck.get("config", {}).get(k) != config.comparable().get(k))
            raise ValueError(f"--resume: checkpoint {ckpt_path} was made with a different config "
                             f"(keys differ: {', '.join(diff)})")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        plugin.load_state_dict(ck["plugin"])
        set_rng_state(ck["rng"])
        res = Results.from_dict(ck["results"])
        res.config = config.to_dict()
        start = int(ck["next_task"])
        log(f"resumed from {ckpt_path} after task {start - 1}")
    elif resume:
        log(f"no checkpoint in {out}; starting from the beginning")

    if start == 0:
        t0 = time.perf_counter()
        res.random_init = [evaluate_task(model, t, ctx).accuracy for t in tasks]
        log(f"random-init accuracies b_j: {', '.join(f'{100 * b:.1f}' for b in res.random_init)} "
            f"({time.perf_counter() - t0:.1f} s)")

    for i in range(start, len(tasks)):
        task = tasks[i]
        seed_everything(derived_seed(config.seed, _TASK, i))
        if config.norm_carry and i > 0:
            carry_norm_set(model, i)
        if config.reset_optimizer and i > 0:
            opt = build_optimizer(config, model)
        dev0 = device_counters(model)
        t0 = time.perf_counter()
        plugin.before_task(model, task)
        loss, n_steps = train_task(model, opt, plugin, task, i, ctx)
        plugin.after_task(model, TaskContext(task, scenario.task_arg(task), _fisher_batches(task, ctx), loss_fn))
        for s in (m for m in model.modules() if isinstance(m, SynapseModel)):
            s.task_boundary()
        if config.learner == "online":
            model.task_boundary()
        t_train = time.perf_counter() - t0
        dev1 = device_counters(model)
        t0 = time.perf_counter()
        evals = [evaluate_task(model, t, ctx) for t in tasks]
        t_eval = time.perf_counter() - t0
        res.matrix.append([float(e.accuracy) for e in evals])
        res.per_task.append({
            "task": task.name, "train_time_s": t_train, "eval_time_s": t_eval, "train_loss": loss,
            "steps": n_steps, "test_loss": float(evals[i].loss),
            "spikes_per_sample": float(sum(evals[i].spikes_per_sample)),
            "spikes_per_sample_per_layer": [float(v) for v in evals[i].spikes_per_sample],
            "device": {k: dev1[k] - dev0.get(k, 0.0) for k in dev1},
        })
        res.hidden_hists.append(hidden_histograms(model, config.hist_bins))
        if config.reference == "first_task":
            res.reference = [res.matrix[0][0]] * len(tasks)
        res.compute_metrics()
        res.wall_time_s += time.perf_counter() - t_start
        t_start = time.perf_counter()
        res.save(out / RESULTS)
        if config.checkpoint:
            save_checkpoint(ckpt_path, config=config, next_task=i + 1, model=model, opt=opt, plugin=plugin,
                            results=res)
        log(f"task {i + 1}/{len(tasks)} {task.name}: acc on it {100 * evals[i].accuracy:.1f}%, "
            f"mean over seen {100 * np.mean(res.matrix[-1][:i + 1]):.1f}% "
            f"(train {t_train:.1f} s, eval {t_eval:.1f} s)")
        if stop_after is not None and i >= stop_after and i < len(tasks) - 1:
            return res

    if not res.complete:
        if config.reference == "single_task":
            res.reference = single_task_reference(config, tasks, scenario, ctx, log)
        res.complete = True
        res.compute_metrics()
        res.wall_time_s += time.perf_counter() - t_start
        res.save(out / RESULTS)
        if config.checkpoint:
            save_checkpoint(ckpt_path, config=config, next_task=len(tasks), model=model, opt=opt,
                            plugin=plugin, results=res)
    write_reports(res, out)
    return res


def single_task_reference(config: RunConfig, tasks: Sequence[Task], scenario: Scenario, ctx: _Ctx,
                          log: Callable[[str], None]) -> list[float]:
    """Accuracy of the stream's initial network (same init seed) trained on task k alone with the
    seeds task k gets in the stream, for every k (so the reference for task 0 equals R[0, 0])."""
    ref = []
    for k, task in enumerate(tasks):
        seed_everything(derived_seed(config.seed, _INIT))
        model = build_model(config, tasks, scenario).to(ctx.device)
        opt = build_optimizer(config, model)
        seed_everything(derived_seed(config.seed, _TASK, k))
        train_task(model, opt, Plugin(), task, k, ctx)
        ref.append(float(evaluate_task(model, task, ctx).accuracy))
        log(f"single-task reference {k}: {100 * ref[-1]:.1f}%")
    return ref
