"""Run configuration: a frozen, validated dataclass loadable from TOML.

Every key is checked when the config is built — unknown keys, wrong types and impossible values raise
``ValueError`` naming the key — so a bad config fails before any data is loaded or any training starts.
TOML layout: top-level keys are the fields of :class:`RunConfig`; the tables ``[synapse_params]`` and
``[plugin_params]`` hold keyword arguments of the synapse model's parameter dataclass and of the
plugin (see :mod:`metaspin_snn.continual.plugins`).
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.encoding import ENCODINGS
from ..networks.builder import ARCHS
from ..networks.models import NET_RESETS, NEURONS, OUTPUTS
from ..networks.models import NORMS as _NET_NORMS
from ..networks.training import EVAL_AVERAGES, OPTIMIZERS, REDUCTIONS
from ..synapses.registry import BUILTIN_SYNAPSES, check_synapse_name
from .loggers import LOGGERS
from .plugins import PLUGINS, make_plugins
from .scenarios import SCENARIOS, TASK_IL_MODES
from .streams import EVENT_STREAMS, STREAM_CLASSES

STREAMS = ("pmnist", "split-mnist", "sequence", "rotated", "stream", "split-nmnist", "split-dvsgesture", "split-shd")
EVENT_STREAM_NAMES = tuple(EVENT_STREAMS)
# Keys renamed since; configs and checkpoints that use the old names still load.
RENAMED_KEYS = {"nmnist_dt_us": "event_dt_us", "nmnist_steps": "event_steps"}
SYNAPSES = BUILTIN_SYNAPSES  # plus registered names and 'package.module:Class' (synapses.registry)
NORMS = ("none", *(n for n in _NET_NORMS if n is not None))
LEARNERS = ("bptt", "online")
REFERENCES = ("first_task", "single_task", "none")


@dataclass(frozen=True)
class RunConfig:
    """Everything one continual-learning run needs (see ``configs/*.toml`` for examples)."""

    name: str = "run"
    # stream
    stream: str = "pmnist"             # pmnist | split-mnist | sequence | rotated | stream | split-nmnist |
    #                                    split-dvsgesture | split-shd
    n_tasks: int = 5
    data_root: str | None = None
    dataset: str = "mnist"             # pmnist | rotated | split-mnist: mnist, fashion-mnist, kmnist or an IDX directory
    sequence_dirs: tuple[str, ...] = ()
    identity_first: bool = True        # permuted MNIST: task 0 = unpermuted MNIST
    angles: tuple[float, ...] = ()
    max_angle: float = 180.0
    classes_per_task: int = 2
    shuffle_classes: bool = False
    train_subset: int | None = None    # seeded subset of training samples per task (None: all)
    test_subset: int | None = None
    validation: int | None = None      # hold out this many training samples per task and evaluate on them
    #                                    instead of the test split (hyper-parameter selection)
    event_dt_us: int | None = None     # event streams: bin width, µs (None: the dataset's default,
    event_steps: int | None = None     # data.events.EVENT_DATASETS); number of bins T (None: default)
    event_spatial_factor: float | None = None  # tonic Downsample factor (None: default, ¼ for DVS Gesture)
    # scenario
    scenario: str = "domain"           # task | domain | class (van de Ven & Tolias 2019)
    task_il: str = "heads"             # task-IL via per-task output heads, or per-task "norm" sets
    # network
    network: str = "mlp"
    hidden: tuple[int, ...] = (512, 512)
    channels: tuple[int, ...] = (12, 32)
    beta: float = 0.9
    threshold: float = 1.0
    reset: str = "zero"
    norm: str = "none"
    output: str = "count"
    gain: float | None = None          # fixed layer gain (None: RMS-matched to PyTorch's default init)
    bias: bool = True
    neuron: str = "lif"                # lif (spiking) | relu | sign (non-spiking published settings, T = num_steps)
    norm_params: dict = field(default_factory=dict)  # nn.BatchNorm: affine, eps, momentum, track_running_stats
    norm_carry: bool = False           # task_il = "norm": a task's norm set starts from the previous task's
    #                                    (Laborieux et al.'s code trains one BN and keeps a copy per task)
    input_norm: str = "none"           # none | standardize (each split by its own pixel mean/std, as mesu-pmnist)
    encoding: str = "direct"           # direct (current) | rate | latency; event streams use their frames
    num_steps: int = 8
    rate_gain: float = 1.0
    # learner
    synapse: str = "real"
    synapse_params: dict = field(default_factory=dict)  # fields of the synapse's params dataclass; a
    #                                                     list for a scalar field = one value per layer
    plugin: str = "naive"
    plugin_params: dict = field(default_factory=dict)
    learner: str = "bptt"              # bptt (network + optimiser) | online (OnlineSNN, local rule, one sample at a time)
    online_params: dict = field(default_factory=dict)  # OnlineConfig fields; "pmp_hidden.<f>"/"pmp_out.<f>" for the rule
    # training
    epochs: int = 1
    idle_s: float = 0.0                # simulated idle time of the devices before each task after the first, s
    batch_size: int = 100
    eval_batch_size: int = 1000
    lr: float = 1e-3                   # torch optimiser on ordinary parameters (synapse models use their own lr)
    optimizer: str = "adam"
    reset_optimizer: bool = False
    shuffle: bool = True               # shuffle training data every epoch (False: file order, mesu-pmnist)
    loss_reduction: str = "auto"       # mean | sum over the minibatch | auto: the synapse model's PROTOCOL
    train_samples: int | None = None   # Monte-Carlo weight samples per step (None: the synapse model's PROTOCOL)
    eval_samples: int | None = None    # Monte-Carlo evaluation ensemble (0: point estimate; None: PROTOCOL)
    eval_average: str = "auto"         # logits | log_softmax | auto: the synapse model's PROTOCOL
    synapse_lr_schedule: str = "constant"  # constant | cosine: synapse lr × ½(1 + cos(π e/E)) set at the start
    #                                        of epoch e = 1..E of every task (BayesBiNN's CosineAnnealingLR)
    seed: int = 0
    device: str = "cpu"                # cpu | cuda | cuda:N | auto (cuda when available); not part of resume checks
    # bookkeeping
    out: str | None = None             # output folder (None: runs/<name>/<UTC time>-<config hash>/)
    loggers: tuple[str, ...] = ("csv", "console")  # csv | tensorboard | console (one line per epoch off a terminal)
    log_every: int = 50                # steps between rows of steps.csv
    reference: str = "first_task"      # intransigence reference: first_task | single_task | none
    checkpoint: bool = True
    hist_bins: int = 60
    progress: bool = True

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name]))
        _check_values(self)

    # ---- conversions ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "RunConfig":
        if not isinstance(d, dict):
            raise ValueError(f"{source}: expected a table of keys, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        d = {RENAMED_KEYS.get(k, k): v for k, v in d.items()}
        for k in d:
            if k not in known:
                hint = _closest(k, known)
                raise ValueError(f"{source}: unknown key {k!r}" + (f" (did you mean {hint!r}?)" if hint else ""))
        return cls(**d)

    def replace(self, **changes: Any) -> "RunConfig":
        return self.from_dict({**self.to_dict(), **changes})

    def comparable(self) -> dict[str, Any]:
        """The fields that define the numbers of a run (for resume checks): all but output/UI ones."""
        d = self.to_dict()
        for k in ("out", "progress", "checkpoint", "name", "device", "loggers", "log_every"):
            d.pop(k)
        return d


def set_dotted(d: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Set ``d[key] = value``; a dotted key ``table.sub`` sets one entry of table ``table``
    (``synapse_params.m``; deeper dots stay in the entry's name: ``synapse_params.nonideal.d2d``)."""
    if "." in key:
        table, sub = key.split(".", 1)
        d.setdefault(table, {})[sub] = value
    else:
        d[key] = value
    return d


def load_config(path: str | Path, **overrides: Any) -> RunConfig:
    """Read a TOML file into a :class:`RunConfig`; ``overrides`` (not None) replace file values.
    Relative ``data_root`` and ``sequence_dirs`` are taken relative to the TOML file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML ({e})") from e
    base = path.resolve().parent
    if isinstance(data.get("data_root"), str) and not Path(data["data_root"]).is_absolute():
        data["data_root"] = str(base / data["data_root"])
    if isinstance(data.get("sequence_dirs"), list):
        data["sequence_dirs"] = [str(base / d) if isinstance(d, str) and not Path(d).is_absolute() else d
                                 for d in data["sequence_dirs"]]
    data.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig.from_dict(data, source=str(path))


# ---- validation ------------------------------------------------------------------------------
def _closest(k: str, known: set[str]) -> str | None:
    import difflib
    m = difflib.get_close_matches(k, sorted(known), n=1)
    return m[0] if m else None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _coerce(key: str, v: Any, tp: Any) -> Any:
    """Check ``v`` against the annotation ``tp`` (int, float, str, bool, X | None, tuple[X, ...], dict)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if v is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(key, v, inner)
    if tp is bool:
        if not isinstance(v, bool):
            raise ValueError(f"config key {key!r}: expected true/false, got {v!r}")
        return v
    if tp is int:
        if not _is_int(v):
            raise ValueError(f"config key {key!r}: expected an integer, got {v!r}")
        return v
    if tp is float:
        if not (_is_int(v) or isinstance(v, float)):
            raise ValueError(f"config key {key!r}: expected a number, got {v!r}")
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"config key {key!r}: must be finite, got {v!r}")
        return float(v)
    if tp is str:
        if not isinstance(v, str):
            raise ValueError(f"config key {key!r}: expected a string, got {v!r}")
        return v
    if origin is tuple:
        (inner, _) = typing.get_args(tp)
        if not isinstance(v, (list, tuple)):
            raise ValueError(f"config key {key!r}: expected a list, got {v!r}")
        return tuple(_coerce(f"{key}[{i}]", x, inner) for i, x in enumerate(v))
    if tp is dict or origin is dict:
        if not isinstance(v, dict):
            raise ValueError(f"config key {key!r}: expected a table, got {v!r}")
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise ValueError(f"config key {key!r}: keys must be strings, got {k!r}")
            if isinstance(x, dict):  # a sub-table, e.g. [synapse_params.nonideal]: flattened to dotted keys
                for k2, x2 in _coerce(f"{key}.{k}", x, dict).items():
                    out[f"{k}.{k2}"] = x2
                continue
            if isinstance(x, (list, tuple)):
                if not all(isinstance(e, (int, float, str)) for e in x):
                    raise ValueError(f"config key '{key}.{k}': lists may only hold numbers or strings, got {x!r}")
                x = list(x)
            elif not isinstance(x, (int, float, str, bool)):
                raise ValueError(f"config key '{key}.{k}': expected a number, string, bool or list, got {x!r}")
            out[k] = x
        return out
    raise TypeError(f"unsupported annotation {tp!r} for {key!r}")  # programming error


def _choice(c: RunConfig, key: str, options: tuple[str, ...]) -> None:
    if getattr(c, key) not in options:
        raise ValueError(f"config key {key!r}: must be one of {', '.join(options)}; got {getattr(c, key)!r}")


def _positive(c: RunConfig, key: str, allow_none: bool = False) -> None:
    v = getattr(c, key)
    if v is None and allow_none:
        return
    if v is None or v <= 0:
        raise ValueError(f"config key {key!r}: must be > 0, got {v!r}")


def _check_values(c: RunConfig) -> None:
    _choice(c, "stream", STREAMS)
    _choice(c, "scenario", SCENARIOS)
    _choice(c, "task_il", TASK_IL_MODES)
    _choice(c, "network", ARCHS)
    _choice(c, "reset", NET_RESETS)
    _choice(c, "norm", NORMS)
    _choice(c, "output", OUTPUTS)
    _choice(c, "encoding", ENCODINGS)
    try:
        check_synapse_name(c.synapse)
    except (ValueError, ImportError) as e:
        raise ValueError(f"config key 'synapse': {e}") from e
    _choice(c, "optimizer", OPTIMIZERS)
    _choice(c, "reference", REFERENCES)
    _choice(c, "neuron", NEURONS)
    _choice(c, "input_norm", ("none", "standardize"))
    _choice(c, "loss_reduction", ("auto", *REDUCTIONS))
    for lg in c.loggers:
        if lg not in LOGGERS:
            raise ValueError(f"config key 'loggers': {lg!r} is not one of {', '.join(LOGGERS)}")
    _positive(c, "log_every")
    _choice(c, "eval_average", ("auto", *EVAL_AVERAGES))
    _choice(c, "synapse_lr_schedule", ("constant", "cosine"))
    _positive(c, "train_samples", allow_none=True)
    if c.eval_samples is not None and c.eval_samples < 0:
        raise ValueError(f"config key 'eval_samples': must be >= 0, got {c.eval_samples}")
    from ..networks.models import check_norm_params
    try:
        check_norm_params(c.norm_params, c.norm)
    except ValueError as e:
        key, _, rest = str(e).partition(": ")
        raise ValueError(f"config key '{key}': {rest}") from e
    if c.norm_carry and not (c.scenario == "task" and c.task_il == "norm"):
        raise ValueError("config key 'norm_carry': needs scenario = 'task' with task_il = 'norm' (per-task norm sets)")
    if c.input_norm == "standardize" and (c.encoding != "direct" or c.stream in EVENT_STREAM_NAMES):
        raise ValueError("config key 'input_norm': 'standardize' applies to image streams with encoding = 'direct' "
                         "(spike encodings need inputs in [0, 1])")
    if c.neuron != "lif" and c.learner == "online":
        raise ValueError("config key 'neuron': learner 'online' is spiking (neuron = 'lif')")
    for key in ("n_tasks", "classes_per_task", "num_steps", "epochs",
                "batch_size", "eval_batch_size", "lr", "hist_bins"):
        _positive(c, key)
    for key in ("train_subset", "test_subset", "gain", "validation", "event_dt_us", "event_steps"):
        _positive(c, key, allow_none=True)
    if c.seed < 0:
        raise ValueError(f"config key 'seed': must be >= 0, got {c.seed}")
    from ..data.idx import IMAGE_DATASETS
    if c.dataset != "mnist":
        if c.stream not in ("pmnist", "stream", "rotated", "split-mnist"):
            raise ValueError(f"config key 'dataset': {c.dataset!r} applies to the image streams pmnist, rotated and "
                             f"split-mnist, not to stream {c.stream!r}")
        if c.dataset not in IMAGE_DATASETS and not ("/" in c.dataset or c.dataset.startswith(".")):
            raise ValueError(f"config key 'dataset': must be one of {', '.join(IMAGE_DATASETS)} or a directory "
                             f"path of IDX files, got {c.dataset!r}")
    if c.idle_s < 0:
        raise ValueError(f"config key 'idle_s': must be >= 0 seconds, got {c.idle_s}")
    if not c.hidden or any(h <= 0 for h in c.hidden):
        raise ValueError(f"config key 'hidden': must be a non-empty list of positive layer sizes, got {list(c.hidden)}")
    if not c.channels or any(ch <= 0 for ch in c.channels):
        raise ValueError(f"config key 'channels': must be a non-empty list of positive channel counts, got {list(c.channels)}")
    if not 0.0 <= c.beta <= 1.0:
        raise ValueError(f"config key 'beta': membrane decay must be in [0, 1], got {c.beta}")
    if c.threshold <= 0:
        raise ValueError(f"config key 'threshold': must be > 0, got {c.threshold}")
    if c.rate_gain < 0:
        raise ValueError(f"config key 'rate_gain': must be >= 0, got {c.rate_gain}")
    if c.stream in STREAM_CLASSES:
        n_cl = STREAM_CLASSES[c.stream]
        if n_cl % c.classes_per_task:
            raise ValueError(f"config key 'classes_per_task': must divide {n_cl} ({c.stream}), got {c.classes_per_task}")
        if c.n_tasks != n_cl // c.classes_per_task:
            raise ValueError(f"config key 'n_tasks': {c.stream} with classes_per_task={c.classes_per_task} "
                             f"has {n_cl // c.classes_per_task} tasks, got {c.n_tasks}")
    if c.stream not in EVENT_STREAM_NAMES:
        for key in ("event_dt_us", "event_steps", "event_spatial_factor"):
            if getattr(c, key) is not None:
                raise ValueError(f"config key '{key}': only used by the event streams "
                                 f"({', '.join(EVENT_STREAM_NAMES)}), not {c.stream!r}")
    if c.event_spatial_factor is not None and not 0 < c.event_spatial_factor <= 1:
        raise ValueError(f"config key 'event_spatial_factor': must be in (0, 1], got {c.event_spatial_factor}")
    if c.stream == "split-shd" and c.network != "mlp":
        raise ValueError("config key 'network': split-shd has 1-D inputs (700 channels); use network = 'mlp'")
    if c.stream == "sequence":
        if not c.sequence_dirs:
            raise ValueError("config key 'sequence_dirs': the 'sequence' stream needs at least one MNIST-format directory")
        if c.n_tasks != len(c.sequence_dirs):
            raise ValueError(f"config key 'n_tasks': {len(c.sequence_dirs)} sequence_dirs given, n_tasks={c.n_tasks}")
        for d in c.sequence_dirs:
            if not Path(d).is_dir():
                raise ValueError(f"config key 'sequence_dirs': not a directory: {d}")
    elif c.sequence_dirs:
        raise ValueError(f"config key 'sequence_dirs': only used by stream 'sequence', not {c.stream!r}")
    if c.stream == "rotated" and c.angles and len(c.angles) != c.n_tasks:
        raise ValueError(f"config key 'angles': {len(c.angles)} angles for n_tasks={c.n_tasks}")
    if c.angles and c.stream != "rotated":
        raise ValueError(f"config key 'angles': only used by stream 'rotated', not {c.stream!r}")
    if c.stream == "stream" and c.epochs != 1:
        raise ValueError(f"config key 'epochs': the streaming variant makes one pass per task, got {c.epochs}")
    if c.scenario == "task" and c.task_il == "norm" and c.norm == "none":
        raise ValueError("config key 'task_il': 'norm' (per-task normalisation sets) needs norm = 'batch' or 'layer'")
    if c.data_root is not None and not Path(c.data_root).is_dir():
        raise ValueError(f"config key 'data_root': not a directory: {c.data_root}")
    builtin = all(n.strip() in PLUGINS or n.strip() == "replay-si" for n in c.plugin.split("+"))
    for k, v in c.plugin_params.items():
        if builtin and (isinstance(v, (bool, str, list)) or v < 0):
            raise ValueError(f"config key 'plugin_params.{k}': expected a non-negative number, got {v!r}")
    try:  # names, parameters and the plugins' own range checks (e.g. replay's mem_per_task > 0)
        make_plugins(c.plugin, **c.plugin_params)
    except (ValueError, TypeError) as e:
        key, sep, rest = str(e).partition(": ")
        if not (sep and key.startswith("plugin_params")):
            key, rest = "plugin_params", str(e)
        raise ValueError(f"config key '{key}': {rest}") from e
    _choice(c, "learner", LEARNERS)
    if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", c.device):
        raise ValueError(f"config key 'device': must be cpu, cuda, cuda:N or auto; got {c.device!r}")
    if c.learner == "online" and c.device not in ("cpu", "auto"):
        raise ValueError(f"config key 'device': learner 'online' runs on the CPU (Numba event engine), got {c.device!r}")
    if c.learner == "online":
        if c.plugin != "naive":
            raise ValueError(f"config key 'plugin': learner 'online' supports only 'naive' (its consolidation "
                             f"is the synapses' metaplasticity), got {c.plugin!r}")
        if c.scenario == "task":
            raise ValueError("config key 'scenario': learner 'online' has one shared output layer and no task "
                             "input; use 'domain' or 'class'")
        from .online import check_online_params
        check_online_params(c.online_params, c.num_steps, c.rate_gain, c.seed)
    elif c.online_params:
        raise ValueError(f"config key 'online_params.{sorted(c.online_params)[0]}': only used with learner = 'online'")
