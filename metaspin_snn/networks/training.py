"""The training step (BPTT through all T steps), evaluation and optimiser construction."""
from __future__ import annotations

import dataclasses
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


REDUCTIONS = ("mean", "sum")


def compute_loss(out, y: torch.Tensor, loss: str = "ce", reduction: str = "mean") -> torch.Tensor:
    """``"ce"``: cross-entropy on ``out.logits`` (averaged or summed over the batch); ``"rate"``:
    ``snntorch.functional.ce_rate_loss`` (cross-entropy of the output spikes at every step, summed
    over T; batch mean only) on ``out.out_spikes``."""
    if loss == "ce":
        return F.cross_entropy(out.logits, y.long(), reduction=reduction)
    if loss == "rate":
        if reduction != "mean":
            raise ValueError("loss 'rate' supports reduction 'mean' only")
        import snntorch.functional as SF
        return SF.ce_rate_loss()(out.out_spikes, y.long())
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def _check_extra(extra: Any) -> torch.Tensor:
    if not isinstance(extra, torch.Tensor) or extra.numel() != 1:
        raise TypeError("train_step: extra_loss(model) must return a scalar tensor or None")
    return extra.reshape(())


def _finite(value: torch.Tensor, optimizer: torch.optim.Optimizer, where: str) -> None:
    if not torch.isfinite(value):
        optimizer.zero_grad()
        raise FloatingPointError(f"train_step: loss is {float(value)} (not finite{where}); no update made")


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
               task: int | None = None, loss: str = "ce", reduction: str = "mean", samples: int = 1,
               stacked: bool = False, extra_loss: Callable[[nn.Module], torch.Tensor | None] | None = None,
               after_backward: Callable[[], None] | None = None, tbptt: int | None = None,
               return_output: bool = False) -> float | tuple[float, Any]:
    """The library's one training step: ``zero_grad``, forward over all T steps, loss
    (+ ``extra_loss(model)``, e.g. an EWC/SI penalty or a replay term; None adds nothing), backward,
    ``after_backward()`` (plugins), ``optimizer.step()``. Puts the model in train mode. A non-finite
    loss raises ``FloatingPointError`` before any state changes. Returns the data loss (mean over
    Monte-Carlo samples and TBPTT chunks, without the extra term), and with ``return_output`` also the
    last forward pass's output.

    ``samples = S > 1``: Monte-Carlo weight samples — S forward/backward passes, each loss scaled by
    1/S (the extra term counted once), every synapse model accumulating its per-sample statistics
    (``SynapticOptimizer.accumulate_sample``/``finish_samples``); ``stacked``: the S samples in one
    pass with weights ``[S, out, in]`` (``SynapseModel.set_mc_samples(S)`` done by the caller; logits
    ``[S·B, C]``). ``reduction``: the batch reduction of the cross-entropy (``"sum"`` as MESU's code).

    ``tbptt=k``: truncated BPTT — the sequence is cut into chunks of k steps; each chunk continues
    from the previous chunk's (detached) membranes, its loss (on that chunk's logits) is
    back-propagated at once (memory O(k) instead of O(T)), gradients accumulate over the chunks and
    one optimiser step follows. ``tbptt >= T`` is plain BPTT."""
    if loss not in LOSSES:
        raise ValueError(f"train_step: loss must be one of {LOSSES}, got {loss!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"train_step: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if tbptt is not None and (not isinstance(tbptt, int) or isinstance(tbptt, bool) or tbptt < 1):
        raise ValueError(f"train_step: tbptt must be a positive int or None, got {tbptt!r}")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"train_step: samples must be a positive int, got {samples!r}")
    if (stacked or samples > 1) and tbptt is not None:
        raise ValueError("train_step: tbptt cannot be combined with Monte-Carlo samples")
    model.train()
    optimizer.zero_grad()
    values: list[float] = []
    out = None
    if stacked:  # mean over the S stacked samples of the per-sample loss
        out = model(x, task=task)
        z = out.logits.reshape(-1, out.logits.shape[-1])
        _check_targets(y.repeat(samples), z, "train_step")
        value = F.cross_entropy(z, y.long().repeat(samples), reduction=reduction) / (samples if reduction == "sum" else 1)
        extra = extra_loss(model) if extra_loss is not None else None
        total = value if extra is None else value + _check_extra(extra)
        _finite(total, optimizer, "")
        total.backward()
        values.append(float(value.detach()))
    elif samples > 1:
        for k in range(samples):  # loss/S each, statistics summed by the synapse models
            out = model(x, task=task)
            _check_targets(y, out.logits, "train_step")
            value = compute_loss(out, y, loss, reduction)
            extra = extra_loss(model) if (extra_loss is not None and k == 0) else None
            total = value if extra is None else value + _check_extra(extra) * samples
            _finite(total, optimizer, f", Monte-Carlo sample {k}")
            (total / samples).backward()
            optimizer.accumulate_sample()
            values.append(float(value.detach()))
        optimizer.finish_samples()
        values = [sum(values) / samples]
    else:
        T = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() > 0 else 1
        k = T if tbptt is None else min(tbptt, T)
        chunks = [x] if k >= T else list(torch.split(x, k, dim=0))
        state = None
        for i, xc in enumerate(chunks):
            out = model(xc, task=task, state=state)
            state = out.state
            _check_targets(y, out.logits, "train_step")
            value = compute_loss(out, y, loss, reduction)
            extra = extra_loss(model) if (extra_loss is not None and i == len(chunks) - 1) else None
            total = value if extra is None else value + _check_extra(extra)
            _finite(total, optimizer, "")
            (total / len(chunks)).backward()
            values.append(float(value.detach()))
    if after_backward is not None:
        after_backward()
    optimizer.step()
    v = sum(values) / len(values)
    return (v, out) if return_output else v


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
