"""Training step (BPTT through all T steps), evaluation, optimiser construction, checkpoints."""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..synapses.optim import SynapticOptimizer

LOSSES = ("ce", "rate")
OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclasses.dataclass
class EvalResult:
    """``accuracy`` in [0, 1]; ``loss``: mean cross-entropy of the logits; ``n`` samples;
    ``spikes_per_sample``: per layer, mean number of spikes one sample causes (Σ over T and neurons)."""

    accuracy: float
    loss: float
    n: int
    spikes_per_sample: list[float]


def make_optimizer(model: nn.Module, lr: float = 1e-3, kind: str = "adam") -> SynapticOptimizer:
    """One optimiser for the whole model: each synapse model's own fused update (its rule and
    learning rate live in its params) plus ``torch.optim.<kind>(lr)`` on the ordinary parameters
    (real weights, biases, norm affine, learnable β/θ)."""
    if kind not in OPTIMIZERS:
        raise ValueError(f"make_optimizer: kind must be one of {OPTIMIZERS}, got {kind!r}")
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"make_optimizer: lr must be a positive number, got {lr!r}")
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[kind]
    return SynapticOptimizer(model, lambda ps: cls(ps, lr=lr))


def _check_targets(y: torch.Tensor, logits: torch.Tensor, where: str) -> None:
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"{where}: targets must be an integer tensor [B], got "
                        f"{y.dtype if isinstance(y, torch.Tensor) else type(y).__name__}")
    if y.shape != logits.shape[:1]:
        raise ValueError(f"{where}: targets shape {list(y.shape)} does not match batch [B] = [{logits.shape[0]}]")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
        raise ValueError(f"{where}: targets must lie in [0, {logits.shape[1]}), got range "
                         f"[{int(y.min())}, {int(y.max())}]")


def compute_loss(out, y: torch.Tensor, loss: str = "ce") -> torch.Tensor:
    """``"ce"``: cross-entropy on ``out.logits``; ``"rate"``: ``snntorch.functional.ce_rate_loss``
    (cross-entropy of the output spikes at every step, summed over T) on ``out.out_spikes``."""
    if loss == "ce":
        return F.cross_entropy(out.logits, y.long())
    if loss == "rate":
        import snntorch.functional as SF
        return SF.ce_rate_loss()(out.out_spikes, y.long())
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
               task: int | None = None, loss: str = "ce",
               extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
               tbptt: int | None = None) -> float:
    """One BPTT step: ``zero_grad``, forward over all T steps, loss (+ ``extra_loss(model)``, e.g. an
    EWC/SI penalty), backward, ``optimizer.step()``. Puts the model in train mode. A non-finite loss
    raises ``FloatingPointError`` before any state changes. Returns the loss value.

    ``tbptt=k``: truncated BPTT — the sequence is cut into chunks of k steps; each chunk continues
    from the previous chunk's (detached) membranes, its loss (on that chunk's logits) is
    back-propagated at once (memory O(k) instead of O(T)), gradients accumulate over the chunks and
    one optimiser step follows. Returns the mean chunk loss. ``tbptt >= T`` is plain BPTT."""
    if loss not in LOSSES:
        raise ValueError(f"train_step: loss must be one of {LOSSES}, got {loss!r}")
    if tbptt is not None and (not isinstance(tbptt, int) or isinstance(tbptt, bool) or tbptt < 1):
        raise ValueError(f"train_step: tbptt must be a positive int or None, got {tbptt!r}")
    model.train()
    T = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() > 0 else 1
    k = T if tbptt is None else min(tbptt, T)
    chunks = [x] if k >= T else list(torch.split(x, k, dim=0))
    values, state = [], None
    optimizer.zero_grad()
    for i, xc in enumerate(chunks):
        out = model(xc, task=task, state=state)
        state = out.state
        _check_targets(y, out.logits, "train_step")
        value = compute_loss(out, y, loss)
        if extra_loss is not None and i == len(chunks) - 1:
            extra = extra_loss(model)
            if not isinstance(extra, torch.Tensor) or extra.numel() != 1:
                raise TypeError("train_step: extra_loss(model) must return a scalar tensor")
            value = value + extra.reshape(())
        if not torch.isfinite(value):
            optimizer.zero_grad()
            raise FloatingPointError(f"train_step: loss is {float(value)} (not finite); no update made")
        (value / len(chunks)).backward()
        values.append(float(value.detach()))
    optimizer.step()
    return sum(values) / len(values)


EVAL_AVERAGES = ("logits", "log_softmax")


def _mc_forward(model: nn.Module, x: torch.Tensor, task: int | None, samples: int, average: str):
    """``samples`` forward passes, each with a fresh draw of every synapse model
    (``SynapseModel.draw_eval_sample``); logits = the mean of the outputs (``"logits"``, BayesBiNN's
    ``softmax_predictive_accuracy``) or of their log-softmax (``"log_softmax"``, MESU's
    ``compute_accuracy``). Spike counts are averaged too."""
    from ..synapses.base import synapse_models
    syn = synapse_models(model)
    acc_logits, acc_spikes, out = None, None, None
    for _ in range(samples):
        for s in syn:
            s.draw_eval_sample()
        out = model(x, task=task)
        z = out.logits if average == "logits" else F.log_softmax(out.logits, dim=1)
        acc_logits = z if acc_logits is None else acc_logits + z
        acc_spikes = list(out.spikes) if acc_spikes is None else [a + b for a, b in zip(acc_spikes, out.spikes)]
    for s in syn:
        s._stale = True  # the next pass rebuilds its weight in the usual way
    out.logits = acc_logits / samples
    out.spikes = [a / samples for a in acc_spikes]
    return out


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *,
             task: int | None = None, samples: int = 0, average: str = "logits") -> EvalResult:
    """Accuracy, mean cross-entropy and spikes per sample per layer over ``batches`` of
    ``(x [T, B, ...], y [B])``, in eval mode (the previous mode is restored). ``samples`` = 0: the
    synapses' evaluation weights (μ, sign λ, …); ``samples`` = S ≥ 1: a Monte-Carlo ensemble of S
    synapse draws per batch, combined by ``average`` (see :func:`_mc_forward`)."""
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 0:
        raise ValueError(f"evaluate: samples must be an int >= 0, got {samples!r}")
    if average not in EVAL_AVERAGES:
        raise ValueError(f"evaluate: average must be one of {EVAL_AVERAGES}, got {average!r}")
    was_training = model.training
    model.eval()
    try:
        correct = 0
        n = 0
        loss_sum = 0.0
        spikes: list[float] | None = None
        for x, y in batches:
            out = model(x, task=task) if samples == 0 else _mc_forward(model, x, task, samples, average)
            _check_targets(y, out.logits, "evaluate")
            correct += int((out.logits.argmax(1) == y.long()).sum())
            loss_sum += float(F.cross_entropy(out.logits, y.long(), reduction="sum"))
            n += int(y.shape[0])
            s = [float(c.sum()) for c in out.spikes]
            spikes = s if spikes is None else [a + b for a, b in zip(spikes, s)]
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("evaluate: no samples in batches")
    return EvalResult(accuracy=correct / n, loss=loss_sum / n, n=n,
                      spikes_per_sample=[v / n for v in (spikes or [])])


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then ``os.replace`` (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    **meta: Any) -> Path:
    """Save the model's state (synapse hidden state included: it is in ``state_dict``), the
    optimiser's inner state and ``meta`` atomically."""
    return atomic_torch_save({"model": model.state_dict(),
                              "optimizer": optimizer.state_dict() if optimizer is not None else None,
                              "meta": meta}, path)


def load_checkpoint(path: str | Path, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Load a :func:`save_checkpoint` file into ``model`` (and ``optimizer``); returns its ``meta``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_checkpoint: no checkpoint at {path}")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ck, dict) or "model" not in ck:
        raise ValueError(f"load_checkpoint: {path} is not a metaspin checkpoint")
    model.load_state_dict(ck["model"])
    if optimizer is not None and ck.get("optimizer") is not None:
        optimizer.load_state_dict(ck["optimizer"])
    return ck.get("meta", {})
