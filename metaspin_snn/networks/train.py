"""Single-task training of a spiking classifier on MNIST or N-MNIST (the ``metaspin train`` command).

``train_classifier(...)`` loads the offline data, builds a :class:`SpikingMLP` or
:class:`SpikingConvNet` with the chosen synapse model, trains it by BPTT with a tqdm progress bar,
evaluates on the test split and writes a small JSON result (config, seed, versions, accuracy, wall
time, spike rates) atomically, plus a checkpoint that :func:`build_model` + ``load_checkpoint``
restore. ``add_train_args`` / ``run_train`` are the CLI hooks (wired in ``metaspin_snn/cli.py``).

Benchmark runs (seed 0, one CPU thread of a shared 2-core machine; wall time includes data loading):

* ``metaspin train --synapse real --encoding direct --num-steps 10 --hidden 512 --epochs 8``
  → 97.77 % MNIST test accuracy (784-512-10, 366 s);
* ``metaspin train --synapse metaplastic --encoding direct --num-steps 10 --hidden 512 --epochs 8``
  → 96.31 % (norm auto = batch, MetaplasticBinary defaults, 230 s);
* ``metaspin train --dataset nmnist --arch conv --num-steps 25 --epochs 15 --batch-size 32 --lr 2e-3
  --norm batch`` → 93.0 % on the 100 N-MNIST-small test recordings (1,000 train; 451 s).
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from ..seed import seed_everything
from ..synapses.base import SynapseModel
from .models import SpikingConvNet, SpikingMLP
from .training import evaluate, make_optimizer, save_checkpoint, train_step

SYNAPSES = ("real", "metaplastic", "mesu", "bayesbinn", "mtj", "magnetoionic")
DATASETS = ("mnist", "nmnist")
ARCHS = ("mlp", "conv")


def synapse_classes(name: str) -> tuple[type, type]:
    """(model class, parameter dataclass) for a synapse name other than ``"real"``; the synapse module
    is imported only here, so a missing model gives a clear ImportError."""
    if name not in SYNAPSES or name == "real":
        raise ValueError(f"unknown synapse model {name!r}; choose one of {SYNAPSES[1:]}")
    module, cls_name, params_name = {
        "metaplastic": ("metaplastic", "MetaplasticBinary", "MetaplasticBinaryParams"),
        "mesu": ("mesu", "MESU", "MESUParams"),
        "bayesbinn": ("bayesbinn", "BayesianBinary", "BayesianBinaryParams"),
        "mtj": ("mtj", "MetaplasticMTJ", "MTJParams"),
        "magnetoionic": ("magnetoionic", "MagnetoIonicPair", "MagnetoIonicParams"),
    }[name]
    import importlib
    try:
        mod = importlib.import_module(f"metaspin_snn.synapses.{module}")
        return getattr(mod, cls_name), getattr(mod, params_name)
    except (ImportError, AttributeError) as e:
        raise ImportError(f"synapse {name!r} needs metaspin_snn.synapses.{module}.{cls_name}, "
                          f"which is not available: {e}") from e


class SynapseParamsError(ValueError):
    """A bad ``synapse_params`` entry: ``key`` names it (``"synapse_params.m"``, or ``"synapse_params"``
    when the parameter dataclass rejects a layer's settings), ``layer`` the layer (or None)."""

    def __init__(self, key: str, detail: str, layer: int | None = None) -> None:
        self.key, self.detail, self.layer = key, detail, layer
        super().__init__(f"{key}{self.where}: {detail}")

    @property
    def where(self) -> str:
        """``" (layer i)"`` or ``""``."""
        return "" if self.layer is None else f" (layer {self.layer})"


@dataclasses.dataclass(frozen=True)
class LayerSynapseFactory:
    """``shape → cls(shape, params)`` for one layer with fixed (validated) parameters; picklable."""
    cls: type
    params: Any

    def __call__(self, shape: tuple[int, ...]) -> SynapseModel:
        return self.cls(shape, self.params)


@dataclasses.dataclass(frozen=True)
class _SynapseSpec:
    """Resolved synapse settings: the model class, its parameter dataclass, values shared by all
    layers and per-layer value lists (a list given for a field whose default is not a tuple)."""
    cls: type
    params_cls: type
    shared: dict[str, Any]
    per_layer: dict[str, list[Any]]

    def layer_params(self, layer: int, seed: int) -> Any:
        """The parameter dataclass of layer ``layer``; its ``seed`` is ``seed·1000 + layer`` unless given."""
        for k, v in self.per_layer.items():
            if layer >= len(v):
                raise SynapseParamsError(f"synapse_params.{k}", f"{len(v)} per-layer values, no value for layer {layer}")
        kw = {**self.shared, **{k: v[layer] for k, v in self.per_layer.items()}}
        if "seed" in {f.name for f in dataclasses.fields(self.params_cls)} and "seed" not in kw:
            kw["seed"] = int(seed) * 1000 + layer
        try:
            return self.params_cls(**kw)
        except (ValueError, TypeError) as e:
            raise SynapseParamsError("synapse_params", str(e), layer) from e


def _synapse_spec(name: str, params: dict[str, Any]) -> _SynapseSpec | None:
    """Check ``name`` and the parameter names (None for ``"real"``); split list values into per-layer
    lists (scalar fields) or tuples (tuple fields such as ``betas``)."""
    if name not in SYNAPSES:
        raise ValueError(f"unknown synapse {name!r}; choose one of {SYNAPSES}")
    if name == "real":
        if params:
            raise SynapseParamsError(f"synapse_params.{sorted(params)[0]}",
                                     f"synapse 'real' takes no parameters, got {sorted(params)}")
        return None
    cls, params_cls = synapse_classes(name)
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    shared: dict[str, Any] = {}
    per_layer: dict[str, list[Any]] = {}
    for k, v in params.items():
        if k not in fields:
            raise SynapseParamsError(f"synapse_params.{k}", f"unknown parameter of {params_cls.__name__} "
                                     f"(known: {', '.join(fields)})")
        if isinstance(v, list) and not isinstance(fields[k].default, tuple):
            per_layer[k] = list(v)
        else:
            shared[k] = tuple(v) if isinstance(v, list) else v
    return _SynapseSpec(cls, params_cls, shared, per_layer)


def layer_synapse_factories(name: str, n_layers: int, *, seed: int = 0,
                            **params: Any) -> list[Callable[[tuple[int, ...]], SynapseModel]] | None:
    """One factory ``shape → SynapseModel`` per synapse layer (``"real"`` → None: plain weights).

    ``params`` are fields of the model's parameter dataclass; a list for a scalar field gives one
    value per layer (e.g. ``m=[1, 3, 3]``). Layer ``i`` gets ``seed = seed·1000 + i``. Every layer's
    parameters are validated here; a bad one raises :class:`SynapseParamsError` naming the key."""
    spec = _synapse_spec(name, params)
    if spec is None:
        return None
    for k, v in spec.per_layer.items():
        if len(v) != n_layers:
            raise SynapseParamsError(f"synapse_params.{k}", f"{len(v)} per-layer values for {n_layers} layers")
    return [LayerSynapseFactory(spec.cls, spec.layer_params(li, seed)) for li in range(n_layers)]


def synapse_factory(name: str, *, seed: int = 0,
                    **overrides: Any) -> Callable[[tuple[int, ...]], SynapseModel] | None:
    """One factory ``shape → SynapseModel`` for all layers of a network (``"real"`` → None).

    The k-th call builds layer k with seed ``seed·1000 + k`` (so layers do not share an initial
    pattern) and ``overrides`` as fields of the model's parameter dataclass; a list for a scalar field
    gives layer k its k-th value (as in :func:`layer_synapse_factories`). Parameter names are checked
    here, values when a layer is built. The synapse module is imported only here (clear ImportError)."""
    spec = _synapse_spec(name, overrides)
    if spec is None:
        return None
    counter = itertools.count()

    def make(shape: tuple[int, ...]) -> SynapseModel:
        return spec.cls(shape, spec.layer_params(next(counter), seed))

    return make


def default_synapse_params(name: str, n_train: int, batch_size: int) -> dict[str, Any]:
    """Per-model settings that depend on the data or on this library's spiking networks, applied
    unless a config sets them: BayesBiNN's N = training-set size (its ``train_set_size``); pulse
    scales of the device models for a mean-reduced cross-entropy through a batch-normalised spiking
    MLP, chosen by a 20-step sweep on 2,000 MNIST digits (T = 10, 784-128-10, norm="batch";
    magneto-ionic lr ∈ {1e2, 1e3, 1e4} pulses/|g| → 1e2; MTJ volt_per_grad ∈ {1e3, 1e4, 1e5} V/|g| →
    1e3, κ = 0.05·volt_per_grad). MESU and BayesBiNN otherwise keep their authors' defaults (MESU's
    lr 1 with the summed loss of its ``PROTOCOL``)."""
    if name == "bayesbinn":
        return {"n_data": float(n_train)}
    if name == "mtj":
        return {"volt_per_grad": 1e3, "kappa": 50.0}
    if name == "magnetoionic":
        return {"lr": 100.0}
    return {}


def build_model(arch: str, in_shape: tuple[int, ...], n_classes: int, *, hidden: tuple[int, ...] = (512,),
                channels: tuple[int, ...] = (12, 32), synapse: str = "real", seed: int = 0,
                synapse_params: dict | None = None, **net: Any) -> torch.nn.Module:
    """The network of a ``train_classifier`` run, rebuilt from its JSON ``config`` (for checkpoints)."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    factory = synapse_factory(synapse, seed=seed, **(synapse_params or {}))
    if arch == "mlp":
        n_in = 1
        for s in in_shape:
            n_in *= int(s)
        return SpikingMLP([n_in, *hidden, n_classes], synapse=factory, **net)
    return SpikingConvNet(tuple(in_shape), n_classes, channels=tuple(channels), synapse=factory, **net)


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for pkg in ("metaspin-snn", "torch", "snntorch", "numpy", "numba"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _atomic_json(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _load_data(dataset: str, data_root, arch: str, quick: bool, n_train: int | None, n_test: int | None,
               num_steps: int, dt_us: int):
    """Returns (xtr, ytr, xte, yte, in_shape, kind): images [N, ...] in [0, 1] (kind 'static') or
    event frames [N, T, 2, 34, 34] (kind 'frames')."""
    if quick:
        n_train = n_train or 2000
        n_test = n_test or 500
    if dataset == "mnist":
        from ..data import load_mnist
        tr, te = load_mnist(data_root, "train"), load_mnist(data_root, "test")
        ntr = min(n_train or len(tr), len(tr))
        nte = min(n_test or len(te), len(te))
        xtr = tr.images[:ntr].float().div_(255.0).unsqueeze(1)
        xte = te.images[:nte].float().div_(255.0).unsqueeze(1)
        return xtr, tr.labels[:ntr].clone(), xte, te.labels[:nte].clone(), (1, 28, 28), "static"
    if dataset == "nmnist":
        from ..data import load_nmnist
        tr, te = load_nmnist(data_root, "train"), load_nmnist(data_root, "test")
        ntr = min(n_train or len(tr), len(tr))
        nte = min(n_test or len(te), len(te))
        xtr = tr.frames(dt_us, num_steps, binary=True, indices=list(range(ntr)))
        xte = te.frames(dt_us, num_steps, binary=True, indices=list(range(nte)))
        return xtr, tr.labels[:ntr].clone(), xte, te.labels[:nte].clone(), (2, 34, 34), "frames"
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, kind: str, encoding: str, num_steps: int,
             gen: torch.Generator, shuffle: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    from ..data.encoding import encode
    idx = torch.randperm(len(y), generator=gen) if shuffle else torch.arange(len(y))
    for i in range(0, len(y), batch_size):
        j = idx[i:i + batch_size]
        if kind == "frames":
            xb = x[j].transpose(0, 1).contiguous()  # [T, B, 2, 34, 34]
        else:
            xb = encode(x[j], num_steps, encoding, generator=gen)
        yield xb, y[j]


def train_classifier(dataset: str = "mnist", *, arch: str = "mlp", synapse: str = "real", epochs: int = 1,
                     batch_size: int = 128, num_steps: int = 25, lr: float = 1e-3, seed: int = 0,
                     data_root: str | Path | None = None, out_dir: str | Path = "runs", quick: bool = False,
                     encoding: str = "rate", hidden: tuple[int, ...] = (512,), channels: tuple[int, ...] = (12, 32),
                     beta: float = 0.9, threshold: float = 1.0, reset: str = "zero", norm: str | None = "auto",
                     output: str = "count", loss: str = "ce", n_train: int | None = None,
                     n_test: int | None = None, dt_us: int | None = None, synapse_params: dict | None = None,
                     progress: bool = True, save_model: bool = True) -> dict:
    """Train one spiking classifier and write ``<out_dir>/<name>.json`` (+ ``.pt`` checkpoint).

    ``quick``: 2,000 train / 500 test samples (unless n_train/n_test say otherwise). ``encoding``
    (MNIST only): ``"rate"`` Bernoulli spikes or ``"direct"`` constant current. N-MNIST events are
    binned into ``num_steps`` frames of ``dt_us`` µs (default: 300 ms / num_steps). ``norm="auto"``:
    batch norm for synapse models (binary / device weights train poorly without it), none for real
    weights. Returns the result dict that is written.
    """
    if norm == "auto":
        norm = None if synapse == "real" else "batch"
    if norm == "none":
        norm = None
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if encoding not in ("rate", "direct"):
        raise ValueError(f"encoding must be 'rate' or 'direct', got {encoding!r}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("num_steps", num_steps)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    t0 = time.perf_counter()
    gen = seed_everything(seed)
    dt = dt_us or max(1, 300_000 // num_steps)
    xtr, ytr, xte, yte, in_shape, kind = _load_data(dataset, data_root, arch, quick, n_train, n_test,
                                                    num_steps, dt)
    n_classes = int(max(int(ytr.max()), int(yte.max())) + 1)
    sp = {**default_synapse_params(synapse, len(ytr), batch_size), **(synapse_params or {})}
    net_kw = dict(beta=beta, threshold=threshold, reset=reset, norm=norm, output=output)
    config = dict(dataset=dataset, arch=arch, synapse=synapse, epochs=epochs, batch_size=batch_size,
                  num_steps=num_steps, lr=lr, encoding=encoding if kind == "static" else "events",
                  hidden=list(hidden), channels=list(channels), loss=loss, n_train=len(ytr), n_test=len(yte),
                  dt_us=dt if kind == "frames" else None, synapse_params=sp, in_shape=list(in_shape),
                  n_classes=n_classes, quick=quick, **net_kw)
    model = build_model(arch, in_shape, n_classes, hidden=tuple(hidden), channels=tuple(channels),
                        synapse=synapse, seed=seed, synapse_params=sp, **net_kw)
    opt = make_optimizer(model, lr=lr)
    from tqdm import tqdm
    history = []
    steps_per_epoch = -(-len(ytr) // batch_size)
    last_loss = float("nan")
    for ep in range(epochs):
        bar = tqdm(_batches(xtr, ytr, batch_size, kind, encoding, num_steps, gen, True), total=steps_per_epoch,
                   desc=f"epoch {ep + 1}/{epochs}", disable=not progress, leave=False)
        losses = []
        for xb, yb in bar:
            last_loss = train_step(model, opt, xb, yb, loss=loss)
            losses.append(last_loss)
            bar.set_postfix(loss=f"{last_loss:.3f}")
        test_gen = torch.Generator().manual_seed(seed + 12345)
        res = evaluate(model, _batches(xte, yte, 256, kind, encoding, num_steps, test_gen, False))
        history.append(dict(epoch=ep + 1, train_loss=sum(losses) / len(losses), test_accuracy=res.accuracy,
                            test_loss=res.loss))
        print(f"epoch {ep + 1}/{epochs}: train loss {history[-1]['train_loss']:.4f}, "
              f"test accuracy {res.accuracy:.4f}", flush=True)
    sizes = [st.out_shape for st in model.stages]
    n_neurons = [int(torch.tensor(s).prod()) for s in sizes]
    result = dict(config=config, seed=seed, versions=_versions(), test_accuracy=res.accuracy,
                  test_loss=res.loss, train_loss_last=last_loss, history=history,
                  wall_time_s=time.perf_counter() - t0, spikes_per_sample=res.spikes_per_sample,
                  spike_rate_per_neuron_step=[s / (n * num_steps) for s, n in zip(res.spikes_per_sample, n_neurons)])
    out_dir = Path(out_dir)
    stem = f"train_{dataset}_{arch}_{synapse}_seed{seed}{'_quick' if quick else ''}"
    if save_model:
        ck = save_checkpoint(out_dir / f"{stem}.pt", model, opt, config=config, seed=seed)
        result["checkpoint"] = str(ck)
    _atomic_json(result, out_dir / f"{stem}.json")
    result["json"] = str(out_dir / f"{stem}.json")
    return result


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``metaspin train``."""
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--arch", choices=ARCHS, default="mlp")
    parser.add_argument("--synapse", choices=SYNAPSES, default="real")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-steps", type=int, default=25, help="time steps T per sample")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam lr for ordinary parameters")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None, help="default: $METASPIN_DATA or ../shared/data")
    parser.add_argument("--out-dir", type=Path, default=Path("runs"))
    parser.add_argument("--quick", action="store_true", help="2000 train / 500 test samples")
    parser.add_argument("--encoding", choices=("rate", "direct"), default="rate", help="MNIST input code")
    parser.add_argument("--hidden", type=int, nargs="+", default=[512], help="MLP hidden sizes")
    parser.add_argument("--channels", type=int, nargs="+", default=[12, 32], help="conv channels")
    parser.add_argument("--beta", type=float, default=0.9)
    parser.add_argument("--threshold", type=float, default=1.0)
    parser.add_argument("--reset", choices=("zero", "subtract"), default="zero")
    parser.add_argument("--norm", choices=("auto", "none", "batch", "layer"), default="auto",
                        help="auto: batch norm for synapse models, none for real weights")
    parser.add_argument("--output", choices=("count", "membrane"), default="count")
    parser.add_argument("--loss", choices=("ce", "rate"), default="ce")
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--dt-us", type=int, default=None, help="N-MNIST bin width (default 300 ms / T)")
    parser.add_argument("--synapse-param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a synapse parameter (repeatable), e.g. lr=0.005")
    parser.add_argument("--no-progress", action="store_true")


def _parse_value(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def run_train(args: argparse.Namespace) -> int:
    """``metaspin train``: run :func:`train_classifier` from parsed arguments; prints the JSON path."""
    sp = {}
    for item in args.synapse_param:
        if "=" not in item:
            raise SystemExit(f"metaspin train: --synapse-param expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        sp[k.strip()] = _parse_value(v.strip())
    res = train_classifier(args.dataset, arch=args.arch, synapse=args.synapse, epochs=args.epochs,
                           batch_size=args.batch_size, num_steps=args.num_steps, lr=args.lr, seed=args.seed,
                           data_root=args.data_root, out_dir=args.out_dir, quick=args.quick,
                           encoding=args.encoding, hidden=tuple(args.hidden), channels=tuple(args.channels),
                           beta=args.beta, threshold=args.threshold, reset=args.reset, norm=args.norm,
                           output=args.output, loss=args.loss, n_train=args.n_train, n_test=args.n_test,
                           dt_us=args.dt_us, synapse_params=sp or None, progress=not args.no_progress)
    print(f"test accuracy {res['test_accuracy']:.4f}  ({res['wall_time_s']:.1f} s)  -> {res['json']}")
    return 0
