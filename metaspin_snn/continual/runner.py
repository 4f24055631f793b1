"""Building a continual-learning run from its config: the stream, the network (through
``networks.build_model`` and a spec stored in every checkpoint), the optimiser, the training protocol,
seeds, measurements, and the :class:`Results` every run reports. ``run_stream(config)`` is the thin
entry point: ``Learner.from_config(config).fit()`` (see :mod:`metaspin_snn.continual.learner` for the
loop, its hooks and resume-exactness).

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
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..files import atomic_write_many
from ..networks.builder import model_spec
from ..synapses.base import SynapseModel
from ..synapses.registry import REAL, config_synapse_factories, default_synapse_params, get_synapse
from . import metrics as M
from .config import RunConfig
from .scenarios import Scenario
from .streams import (EVENT_STREAMS, Task, dataset_sequence, holdout_validation, permuted_mnist, rotated_mnist, split_mnist,
                      split_events, split_nmnist)

CHECKPOINT = "checkpoint.pt"
RESULTS = "results.json"
RUN_INFO = "run_info.json"
RESULTS_SCHEMA = 3
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
    schema_version: int = RESULTS_SCHEMA
    provenance: dict = field(default_factory=dict)  # package_version, git_commit, command, started/finished UTC

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
        """Everything, timings and provenance included (the checkpoint's copy)."""
        return dataclasses.asdict(self)

    #: what differs between two runs of one config: wall-clock times and provenance (run_info.json)
    TIMINGS = ("train_time_s", "eval_time_s")

    def record(self) -> dict:
        """The run's numbers: :meth:`to_dict` without wall-clock times and provenance. A run and a
        killed-and-resumed run of the same config give byte-identical ``results.json`` files."""
        d = self.to_dict()
        for k in ("wall_time_s", "provenance"):
            d.pop(k)
        d["metrics"] = {k: v for k, v in d["metrics"].items() if k not in self.TIMINGS}
        d["per_task"] = [{k: v for k, v in t.items() if k not in self.TIMINGS} for t in d["per_task"]]
        return d

    def run_info(self) -> dict:
        """What :meth:`record` leaves out: provenance (package version, git commit, command, UTC start
        and end) and wall-clock times, total and per task."""
        return {"schema_version": self.schema_version, "provenance": self.provenance,
                "wall_time_s": self.wall_time_s, "train_time_s": self.metrics.get("train_time_s"),
                "per_task": [{"task": t.get("task"), **{k: t[k] for k in self.TIMINGS if k in t}}
                             for t in self.per_task]}

    @classmethod
    def from_dict(cls, d: dict, info: dict | None = None) -> "Results":
        """From :meth:`to_dict`, or from :meth:`record` and :meth:`run_info` (the two files)."""
        known = {f.name for f in dataclasses.fields(cls)}
        d = dict(d)
        if info:
            d["provenance"] = info.get("provenance", {})
            d["wall_time_s"] = info.get("wall_time_s", 0.0)
            if info.get("train_time_s") is not None:
                d["metrics"] = {**d.get("metrics", {}), "train_time_s": info["train_time_s"]}
            times = info.get("per_task") or []
            d["per_task"] = [{**t, **{k: v for k, v in (times[i] if i < len(times) else {}).items() if k != "task"}}
                             for i, t in enumerate(d.get("per_task", []))]
        return cls(**{k: v for k, v in d.items() if k in known})

    def json_bytes(self) -> bytes:
        """``results.json``: :meth:`record` as strict JSON (undefined metrics are ``null``; a NaN/inf is
        an error, not a file)."""
        return json.dumps(self.record(), indent=1, allow_nan=False).encode()

    def info_bytes(self) -> bytes:
        """``run_info.json``: :meth:`run_info` as JSON."""
        return json.dumps(self.run_info(), indent=1, allow_nan=False).encode()

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (results.json) and ``run_info.json`` beside it, atomically together."""
        path = Path(path)
        atomic_write_many({path: self.json_bytes(), path.parent / RUN_INFO: self.info_bytes()})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Results":
        """``results.json``, with the times and provenance of ``run_info.json`` beside it when present."""
        path = Path(path)
        info_path = path.parent / RUN_INFO
        info = json.loads(info_path.read_text()) if info_path.is_file() else None
        return cls.from_dict(json.loads(path.read_text()), info)


def package_version() -> str:
    """``metaspin_snn.__version__``."""
    import metaspin_snn
    return str(getattr(metaspin_snn, "__version__", "unknown"))


def git_commit() -> str | None:
    """The commit of the checkout the package is imported from (None outside a git checkout)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    return r.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def versions() -> dict[str, str]:
    """Library versions recorded with every result."""
    import numba
    import snntorch
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "numba": numba.__version__, "snntorch": snntorch.__version__, "metaspin_snn": package_version()}


# ---- seeds ---------------------------------------------------------------------------------------
_TRAIN, _EVAL, _ENC, _TASK, _INIT = 1, 2, 3, 4, 6  # salts of derived_seed (fixed: they define the numbers)


def derived_seed(seed: int, *salt: int) -> int:
    """A 31-bit seed derived from ``seed`` and integer salts (NumPy SeedSequence hashing)."""
    return int(np.random.SeedSequence([int(seed), *map(int, salt)]).generate_state(1)[0] & 0x7FFFFFFF)


def _gen(seed: int, *salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, *salt))


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
        return permuted_mnist(c.n_tasks, root=c.data_root, identity_first=c.identity_first, dataset=c.dataset, **kw)
    if c.stream == "stream":
        kw["train_subset"] = c.train_subset or STREAM_DEFAULT_SUBSET
        return permuted_mnist(c.n_tasks, root=c.data_root, identity_first=c.identity_first, dataset=c.dataset, **kw)
    if c.stream == "rotated":
        return rotated_mnist(c.n_tasks, root=c.data_root, dataset=c.dataset, angles=list(c.angles) or None,
                             max_angle=c.max_angle, **kw)
    if c.stream == "split-mnist":
        return split_mnist(root=c.data_root, dataset=c.dataset, classes_per_task=c.classes_per_task,
                           shuffle_classes=c.shuffle_classes, **kw)
    if c.stream in EVENT_STREAMS:
        ev = dict(root=c.data_root, classes_per_task=c.classes_per_task, shuffle_classes=c.shuffle_classes,
                  dt_us=c.event_dt_us, num_steps=c.event_steps, spatial_factor=c.event_spatial_factor, **kw)
        return split_nmnist(**ev) if c.stream == "split-nmnist" else split_events(c.stream, **ev)
    if c.stream == "sequence":
        return dataset_sequence(list(c.sequence_dirs), **kw)
    raise ValueError(f"config key 'stream': unknown stream {c.stream!r}")


def synapse_factory(name: str, n_layers: int, seed: int = 0,
                    **params: Any) -> list[Callable[[tuple[int, ...]], SynapseModel]] | None:
    """Per-layer factories ``shape -> SynapseModel`` for synapse ``name`` (``"real"`` → None):
    :func:`metaspin_snn.synapses.registry.config_synapse_factories` (errors name the config key)."""
    return config_synapse_factories(name, n_layers, seed, **params)


def _n_synapse_layers(config: RunConfig) -> int:
    return (len(config.hidden) if config.network == "mlp" else len(config.channels)) + 1


def check_synapse_params(config: RunConfig) -> None:
    """Build the synapse factories (and one tiny synapse per layer) so bad ``synapse_params`` fail
    before any data is loaded."""
    if config.learner == "online":
        return
    facs = synapse_factory(config.synapse, _n_synapse_layers(config), config.seed, **config.synapse_params)
    for f in facs or []:
        f((2, 2))


def data_synapse_params(config: RunConfig, tasks: Sequence[Task]) -> dict[str, Any]:
    """Synapse settings that depend on the data, unless the config sets them (BayesBiNN's ``n_data`` =
    training samples per task, the device models' pulse scales):
    :func:`metaspin_snn.synapses.registry.default_synapse_params`."""
    n_train = min(t.size("train") for t in tasks)
    return default_synapse_params(config.synapse, n_train, config.batch_size)


def spec_for(config: RunConfig, tasks: Sequence[Task], scenario: Scenario) -> dict[str, Any]:
    """The :func:`~metaspin_snn.networks.model_spec` of a run's network: input shape from the
    tasks, outputs / heads / normalisation sets from the scenario, the rest from the config."""
    shapes = {t.input_shape for t in tasks}
    if len(shapes) != 1:
        raise ValueError(f"all tasks must share one input shape, got {sorted(shapes)}")
    in_shape = next(iter(shapes))
    params = {**data_synapse_params(config, tasks), **config.synapse_params}
    return model_spec(config.network, in_shape, scenario.n_outputs(tasks), hidden=config.hidden,
                      channels=config.channels, synapse=config.synapse, synapse_params=params, seed=config.seed,
                      beta=config.beta, threshold=config.threshold, reset=config.reset,
                      norm=None if config.norm == "none" else config.norm, n_norm_sets=scenario.n_norm_sets(tasks),
                      heads=scenario.heads(tasks), output=config.output, gain=config.gain, bias=config.bias,
                      neuron=config.neuron, norm_params=dict(config.norm_params))


def build_model(config: RunConfig, tasks: Sequence[Task], scenario: Scenario) -> nn.Module:
    """The run's network: ``networks.build_model(spec_for(...))`` (a SpikingMLP for ``network="mlp"``,
    a SpikingConvNet for ``"conv"``), with ``model.spec`` set for checkpoints; for ``learner =
    "online"`` the :class:`~metaspin_snn.continual.online.OnlineLearner` wrapper."""
    if config.learner == "online":  # OnlineSNN: local rule, one sample at a time (continual/online.py)
        from .online import OnlineLearner
        return OnlineLearner.build(config, list(tasks), scenario)
    from ..networks.builder import build_model as build_from_spec
    spec = spec_for(config, tasks, scenario)
    model = build_from_spec(spec)
    model.spec = spec
    return model


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


def device_energy(model: nn.Module) -> dict[str, float] | None:
    """Σ over synapse models of ``energy_j()`` (``{"write", "read", "gate"}`` in joules), None when no
    synapse model of ``model`` has an energy model."""
    out: dict[str, float] | None = None
    for s in (m for m in model.modules() if isinstance(m, SynapseModel)):
        fn = getattr(s, "energy_j", None)
        if callable(fn):
            out = out or {}
            for k, v in fn().items():
                out[k] = out.get(k, 0.0) + float(v)
    return out


def advance_idle(model: nn.Module, seconds: float) -> int:
    """Let ``seconds`` of idle time pass on every synapse model that simulates time (``advance``);
    returns how many did."""
    n = 0
    for s in (m for m in model.modules() if isinstance(m, SynapseModel)):
        fn = getattr(s, "advance", None)
        if callable(fn):
            fn(float(seconds))
            n += 1
    return n


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
    if config.synapse != REAL and config.learner == "bptt":
        proto.update(get_synapse(config.synapse)[0].PROTOCOL)
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


def config_hash(config: RunConfig) -> str:
    """First 8 hex digits of the sha256 of the config's numeric fields (:meth:`RunConfig.comparable`)."""
    import hashlib
    return hashlib.sha256(json.dumps(config.comparable(), sort_keys=True).encode()).hexdigest()[:8]


def default_out(config: RunConfig) -> Path:
    """``runs/<name>/<UTC time>-<config hash>/`` (git-ignored; a new folder for every run)."""
    import datetime
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / config.name / f"{stamp}-{config_hash(config)}"


def run_stream(config: RunConfig, *, resume: bool = False, tasks: Sequence[Task] | None = None,
               stop_after: int | None = None, progress: bool | None = None, overwrite: bool = False,
               log: Callable[[str], None] | None = None, plugins: Sequence[Any] | None = None,
               loggers: Sequence[Any] | None = None) -> Results:
    """``Learner.from_config(config, tasks, …).fit(resume=…, overwrite=…, stop_after=…)``; returns the
    :class:`Results` (the trained model is the learner's; use the :class:`~metaspin_snn.continual.Learner`
    to keep it)."""
    from .learner import Learner
    learner = Learner.from_config(config, tasks, plugins=plugins, loggers=loggers, log=log, progress=progress)
    return learner.fit(resume=resume, overwrite=overwrite, stop_after=stop_after)[1]
