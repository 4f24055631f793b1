"""Single-task training of a spiking classifier on MNIST or N-MNIST (the library side of ``metaspin train``).

``train_classifier(...)`` loads the offline data, builds a :class:`SpikingMLP` or
:class:`SpikingConvNet` (``networks.build_model`` from a spec) with the chosen synapse model, trains it
with :func:`~metaspin_snn.networks.train_step`, evaluates on the test split and writes a JSON result
(config, seed, versions, accuracy, wall time, spike rates) and a checkpoint in the library's one format,
atomically, into a fresh run folder. Measured accuracies are in results/README.md.
"""
from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Iterator

import torch

from ..files import atomic_write_bytes, check_out_dir
from ..seed import seed_everything
from ..synapses.registry import default_synapse_params, synapse_spec
from .builder import ARCHS, build_model, model_spec
from .checkpoint import CHECKPOINT_NAME, save_checkpoint
from .training import evaluate, make_optimizer, train_step

DATASETS = ("mnist", "nmnist")
TRAIN_ENCODINGS = ("rate", "direct")


def versions() -> dict[str, str]:
    """Versions of the stack recorded with every result."""
    import importlib.metadata as md

    import metaspin_snn
    out = {"python": platform.python_version(), "metaspin-snn": str(metaspin_snn.__version__)}
    for pkg in ("torch", "snntorch", "numpy", "numba"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def default_train_out(config: dict) -> Path:
    """``runs/train-<dataset>-<arch>-<synapse>/<UTC time>-<config hash>/``."""
    import datetime
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:8]
    syn = str(config["synapse"]).replace(":", "_").replace(".", "_")
    return Path("runs") / f"train-{config['dataset']}-{config['arch']}-{syn}" / f"{stamp}-{h}"


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
                     data_root: str | Path | None = None, out: str | Path | None = None, quick: bool = False,
                     encoding: str = "rate", hidden: tuple[int, ...] = (512,), channels: tuple[int, ...] = (12, 32),
                     beta: float = 0.9, threshold: float = 1.0, reset: str = "zero", norm: str | None = "auto",
                     output: str = "count", loss: str = "ce", n_train: int | None = None,
                     n_test: int | None = None, dt_us: int | None = None, synapse_params: dict | None = None,
                     progress: bool = True, save_model: bool = True, overwrite: bool = False) -> dict:
    """Train one spiking classifier and write ``<out>/results.json`` and ``<out>/checkpoint.pt`` (the
    library's one checkpoint format: ``networks.load_model(out)`` rebuilds the network, ``metaspin export
    out`` deploys it). ``out`` default: ``runs/train-<dataset>-<arch>-<synapse>/<UTC time>-<config hash>/``;
    an existing non-empty ``out`` is refused unless ``overwrite``.

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
    if encoding not in TRAIN_ENCODINGS:
        raise ValueError(f"encoding must be 'rate' or 'direct', got {encoding!r}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("num_steps", num_steps)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    synapse_spec(synapse, synapse_params or {})  # unknown synapse / parameter names fail before any data loads
    config_key = dict(dataset=dataset, arch=arch, synapse=synapse, epochs=epochs, batch_size=batch_size,
                      num_steps=num_steps, lr=lr, seed=seed, quick=quick, encoding=encoding, hidden=list(hidden),
                      channels=list(channels), beta=beta, threshold=threshold, reset=reset, norm=norm, output=output,
                      loss=loss, n_train=n_train, n_test=n_test, dt_us=dt_us, synapse_params=synapse_params or {})
    out = Path(out) if out is not None else default_train_out(config_key)
    check_out_dir(out, overwrite=overwrite)
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
    spec = model_spec(arch, in_shape, n_classes, hidden=hidden, channels=channels, synapse=synapse,
                      synapse_params=sp, seed=seed, **net_kw)
    model = build_model(spec)
    opt = make_optimizer(model, lr=lr)
    from tqdm import tqdm
    history = []
    steps_per_epoch = -(-len(ytr) // batch_size)
    last_loss = float("nan")
    for ep in range(epochs):
        bar = tqdm(_batches(xtr, ytr, batch_size, kind, encoding, num_steps, gen, True), total=steps_per_epoch,
                   desc=f"epoch {ep + 1}/{epochs}", disable=not (progress and sys.stderr.isatty()), leave=False)
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
    result = dict(config=config, seed=seed, versions=versions(), test_accuracy=res.accuracy,
                  test_loss=res.loss, train_loss_last=last_loss, history=history,
                  wall_time_s=time.perf_counter() - t0, spikes_per_sample=res.spikes_per_sample,
                  spike_rate_per_neuron_step=[s / (n * num_steps) for s, n in zip(res.spikes_per_sample, n_neurons)])
    if save_model:
        ck = save_checkpoint(out / CHECKPOINT_NAME, model, opt, spec=spec, train_config=config, seed=seed)
        result["checkpoint"] = str(ck)
    atomic_write_bytes(out / "results.json", (json.dumps(result, indent=2) + "\n").encode())
    result["json"] = str(out / "results.json")
    return result
