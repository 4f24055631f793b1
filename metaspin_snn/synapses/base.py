"""The synapse-model interface every layer and optimiser relies on.

A synapse model owns a tensor of synapses (shape of a layer's weight). It keeps its hidden variables
as registered buffers (so ``state_dict`` carries them) and exposes

* ``weight`` — a leaf tensor (``requires_grad=True``, *not* an ``nn.Parameter``) holding the
  **effective weight** the forward pass uses. ``refresh()`` rewrites it in place from the state:
  sign of a hidden weight, a Gaussian / Bernoulli sample, a device read with noise. After
  ``loss.backward()`` its ``.grad`` is ∂L/∂w_eff.
* ``update(grad)`` — one optimisation step from ∂L/∂w_eff, run by the fused Numba kernel on
  contiguous float32 CPU tensors (zero-copy numpy views, in place) or by the torch reference on any
  device, or — for models with a Triton kernel (``TRITON = True``) — by that kernel on a CUDA tensor.
  ``backend`` selects: ``"auto"`` (Numba on CPU, Triton on CUDA where the model has a kernel and
  Triton is installed, else torch), ``"numba"``, ``"triton"`` (also on the CPU under Triton's
  interpreter, for tests), ``"torch"``.
* ``hidden()`` — the metaplastic/importance variable, for histograms and importance maps.
* ``task_boundary()`` — called by continual-learning runners between tasks (e.g. prior ← posterior).
* ``accumulate(grad)`` — Monte-Carlo steps over S weight samples: after the backward pass of each
  sample (its loss scaled by 1/S, so ordinary parameters see the sample mean too), ``accumulate()``
  adds the model's per-sample statistics (``_sample_stats``: ∂L/∂w for deterministic models, ∂L/∂w·ε
  for MESU's σ, BayesBiNN's rescaled gradient) to running sums, clears ``weight.grad`` and marks the
  weight stale so the next forward pass draws a fresh sample; ``update()`` without a gradient then
  steps on the sums (``_update_stats``) — the estimator the authors' codes form over their samples.

Subclasses implement ``_compute_weight(sample)``, ``_update_torch(grad)``, ``_update_numba(grad)`` and
``hidden()``; the base class does validation (shape, dtype, NaN → ``ValueError``, state untouched),
backend dispatch and the stale-weight bookkeeping.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from torch import nn

from .. import gpu

Backend = Literal["auto", "numba", "triton", "torch"]
BACKENDS = ("auto", "numba", "triton", "torch")


def all_finite(t: torch.Tensor) -> bool:
    """No NaN or ±inf in ``t``: one reduction when it is finite (a NaN/inf makes the sum non-finite),
    the elementwise test only when the sum is not (a finite tensor whose sum overflows)."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def check_range(obj: Any, name: str, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False, allow_inf: bool = False) -> None:
    """Raise ``ValueError`` naming ``type(obj).name`` when its field ``name`` is out of range. ±inf is
    out of every range unless ``allow_inf`` (a parameter whose ``inf`` means "none", e.g. a time
    constant) and the bounds admit it."""
    v = getattr(obj, name)
    bad = not isinstance(v, (int, float)) or isinstance(v, bool) or v != v
    if not bad and not allow_inf and v in (float("inf"), float("-inf")):
        bad = True
    if not bad and lo is not None:
        bad = v <= lo if lo_open else v < lo
    if not bad and hi is not None:
        bad = v >= hi if hi_open else v > hi
    if bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        rng = f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
        raise ValueError(f"{type(obj).__name__}.{name} must be a number in {rng}, got {v!r}")


class SynapseModel(nn.Module):
    """Base class: a tensor of synapses with hidden state, an effective weight and a fused update."""

    params: Any  # a frozen, validated dataclass
    #: Training/evaluation protocol of the model's source code, used by the continual runner where its
    #: config leaves the key at None/"auto": Monte-Carlo weight samples per training step, samples in
    #: a Monte-Carlo evaluation (0 = the deterministic evaluation weight), how their outputs are
    #: averaged ("logits" | "log_softmax"), and the minibatch loss reduction ("mean" | "sum").
    PROTOCOL: dict[str, Any] = {"train_samples": 1, "eval_samples": 0, "eval_average": "logits",
                                "loss_reduction": "mean"}

    def __init__(self, shape: tuple[int, ...] | torch.Size, params: Any,
                 backend: Backend = "auto") -> None:
        super().__init__()
        if not dataclasses.is_dataclass(params):
            raise TypeError(f"{type(self).__name__}: params must be a parameter dataclass, got {type(params).__name__}")
        shape = tuple(int(s) for s in shape)
        if len(shape) == 0 or any(s <= 0 for s in shape):
            raise ValueError(f"{type(self).__name__}: shape must be non-empty positive ints, got {shape}")
        if backend not in BACKENDS:
            raise ValueError(f"{type(self).__name__}: backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "triton" and not self.TRITON:
            raise ValueError(f"{type(self).__name__}: has no Triton kernel (backend='triton'); use 'auto' or 'torch'")
        self.shape = shape
        self.params = params
        self.backend: Backend = backend
        # Effective weight: a leaf that the forward pass reads; never in the optimiser's param list.
        self.register_buffer("weight", torch.zeros(shape, requires_grad=True), persistent=False)
        self._stale = True
        self._acc: list[torch.Tensor] | None = None  # running sums of _sample_stats over MC samples
        self._n_acc = 0
        self._grad_sum: torch.Tensor | None = None  # Σ ∂L/∂w over the accumulated samples
        self.mc_samples = 0  # > 0: training refreshes draw that many samples at once, weight [S, *shape]

    # ---- to implement -------------------------------------------------------------------------
    def _compute_weight(self, sample: bool) -> torch.Tensor:
        """Effective weight from the state. ``sample=True`` in training (stochastic models draw)."""
        raise NotImplementedError

    def _update_torch(self, grad: torch.Tensor) -> None:
        raise NotImplementedError

    def _update_numba(self, grad: torch.Tensor) -> None:
        raise NotImplementedError

    #: True when the model has a Triton kernel (``_update_triton``) for CUDA tensors.
    TRITON = False

    def _update_triton(self, grad: torch.Tensor) -> None:
        raise NotImplementedError

    def hidden(self) -> torch.Tensor:
        """The hidden / metaplastic variable (same shape as the weight), for analysis."""
        raise NotImplementedError

    def task_boundary(self) -> None:
        """Hook between tasks; no-op unless the model keeps a prior."""

    def _sample_stats(self, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-sample statistics that ``_update_stats`` needs, from ∂L/∂w of the current sample
        (default: the gradient itself; summed over samples it is the mean gradient)."""
        return (grad,)

    def _update_stats(self, stats: tuple[torch.Tensor, ...]) -> None:
        """One step from the summed ``_sample_stats`` of the accumulated samples (default: the
        ordinary update on the summed gradient)."""
        self._update_grad(stats[0])

    def _update_grad(self, grad: torch.Tensor) -> None:
        """The backend dispatch of one step from ∂L/∂w: the fused kernel or the torch reference."""
        if self.use_numba(grad):
            self._update_numba(grad.contiguous())
        elif self.use_triton(grad):
            self._update_triton(grad.contiguous())
        else:
            self._update_torch(grad)

    # ---- shared machinery ---------------------------------------------------------------------
    #: True when ``_compute_weight`` can draw ``mc_samples`` samples at once (weight ``[S, *shape]``).
    SAMPLE_BATCH = False

    def set_mc_samples(self, n: int) -> None:
        """``n`` ≥ 2: training refreshes return ``n`` stacked samples (``weight`` ``[n, *shape]``) for a
        layer that multiplies each sample with its own slice of the input (``SynapticLinear``); the
        update then sums ``_sample_stats`` over the leading dimension (with the loss averaged over
        samples: the same step as ``n`` accumulated samples). 0 or 1: one weight."""
        if n >= 2 and not self.SAMPLE_BATCH:
            raise ValueError(f"{type(self).__name__}: cannot draw a batch of samples")
        self.mc_samples = int(n) if n >= 2 else 0
        self._stale = True

    def refresh(self, sample: bool | None = None) -> torch.Tensor:
        """Rewrite ``weight`` in place from the state and clear its gradient. ``sample`` defaults to
        ``self.training``. Returns ``weight``."""
        sample = self.training if sample is None else sample
        with torch.no_grad():
            w = self._compute_weight(sample)
            if self.weight.device != w.device or self.weight.dtype != w.dtype or self.weight.shape != w.shape:
                self.weight = w.detach().clone().requires_grad_(True)
            else:
                self.weight.copy_(w)
        self.weight.grad = None
        self._stale = False
        return self.weight

    def backward_read(self, scale: float | torch.Tensor = 1.0):
        """A callable giving the (scaled) weight that the layer's *input* gradient uses in the backward
        pass, or None (the default) when it is the forward weight. Devices whose read noise enters only
        the backward pass (``MagnetoIonicPair``, as kellian-cottart/magnetoionic-simulations'
        ``NoisyDoubleLinear``) return one; the layer then calls ``backward_read_linear``/``_conv2d``."""
        return None

    def programmed_weight(self) -> torch.Tensor:
        """The weight a deployed copy of the trained synapses holds (export): the evaluation weight,
        without read noise for device models (they override this)."""
        with torch.no_grad():
            return self._compute_weight(False)

    def draw_eval_sample(self) -> torch.Tensor:
        """Refresh ``weight`` with one draw of the synapse for a Monte-Carlo evaluation (runner key
        ``eval_samples``); deterministic models return their evaluation weight."""
        return self.refresh(sample=False)

    def effective_weight(self) -> torch.Tensor:
        """The weight for this forward pass (refreshed once after each update / mode change)."""
        if self._stale:
            self.refresh()
        return self.weight

    def train(self, mode: bool = True) -> "SynapseModel":
        if mode != self.training:
            self._stale = True
        return super().train(mode)

    def _apply(self, fn, recurse=True):  # keep the effective-weight leaf a leaf after .to()/.cuda()
        out = super()._apply(fn, recurse)
        self.weight = self.weight.detach().requires_grad_(True)
        self._stale = True
        return out

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._stale = True

    def _kernel_tensors(self, grad: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """(name, tensor) of what a fused kernel reads and writes: the gradient and every floating-point
        state buffer with at least one dimension (0-dim buffers are bookkeeping outside the kernel)."""
        return [("grad", grad)] + [(n, b) for n, b in self.named_buffers(recurse=False)
                                   if b.is_floating_point() and b.dim() > 0]

    def use_numba(self, grad: torch.Tensor) -> bool:
        """True when the fused kernel can run: the gradient and every floating-point state buffer are
        float32 CPU tensors (0-dim buffers — float64 totals such as a device's simulated time or read
        energy — are bookkeeping outside the kernel and may be anything). With ``backend="numba"``
        anything else raises ``ValueError``."""
        if self.backend in ("torch", "triton"):
            return False
        bad = [(n, t) for n, t in self._kernel_tensors(grad) if t.device.type != "cpu" or t.dtype != torch.float32]
        if bad and self.backend == "numba":
            n, t = bad[0]
            raise ValueError(f"{type(self).__name__}: backend='numba' needs float32 state on the CPU "
                             f"(float32 CPU tensors); {n} is {t.dtype} on {t.device} — move the model "
                             "to CPU float32 or use backend='torch'")
        return not bad

    def use_triton(self, grad: torch.Tensor) -> bool:
        """True when the model's Triton kernel runs: ``TRITON``, backend "auto" or "triton", and the
        gradient and every floating-point state buffer float32 on one CUDA device (or, with backend
        "triton", on the CPU under Triton's interpreter) with Triton installed. With
        ``backend="triton"`` anything else raises ``ValueError``."""
        if not self.TRITON or self.backend not in ("auto", "triton"):
            return False
        ok = gpu.usable(*(t for _, t in self._kernel_tensors(grad)), dtypes=(torch.float32,))
        if self.backend == "auto":
            return ok and grad.device.type == "cuda"
        if not ok:
            raise ValueError(f"{type(self).__name__}: backend='triton' needs Triton and float32 state on one CUDA "
                             f"device (or TRITON_INTERPRET=1 on the CPU); the gradient is {grad.dtype} on {grad.device}")
        return True

    def _checked_grad(self, grad: torch.Tensor | None, who: str) -> torch.Tensor:
        if grad is None:
            grad = self.weight.grad
            if grad is None:
                raise RuntimeError(f"{type(self).__name__}.{who}: weight has no gradient; "
                                   "run loss.backward() through effective_weight() first")
        batched = self.mc_samples >= 2 and tuple(grad.shape) == (self.mc_samples, *self.shape)
        if tuple(grad.shape) != self.shape and not batched:
            raise ValueError(f"{type(self).__name__}.{who}: grad shape {tuple(grad.shape)} "
                             f"!= synapse shape {self.shape}")
        grad = grad.detach()
        if not all_finite(grad):
            raise ValueError(f"{type(self).__name__}.{who}: gradient contains NaN or inf; state left untouched")
        return grad

    def accumulated_grad(self) -> torch.Tensor | None:
        """Σ ∂L/∂w over the samples accumulated since the last update (the mean gradient when each
        sample's loss was scaled by 1/S), or None."""
        return self._grad_sum

    @property
    def n_accumulated(self) -> int:
        """Monte-Carlo samples accumulated since the last ``update()``."""
        return self._n_acc

    def accumulate(self, grad: torch.Tensor | None = None) -> None:
        """Add one Monte-Carlo sample (default gradient: ``self.weight.grad``) to the running sums of
        ``_sample_stats``; clears ``weight.grad`` and makes the next forward pass draw a new sample."""
        grad = self._checked_grad(grad, "accumulate")
        with torch.no_grad():
            stats = self._sample_stats(grad)
            if self._acc is None:
                self._acc = [t.detach().clone() for t in stats]
                self._grad_sum = grad.clone()
            else:
                for a, t in zip(self._acc, stats):
                    a.add_(t)
                self._grad_sum.add_(grad)
        self._n_acc += 1
        self.weight.grad = None
        self._stale = True

    def update(self, grad: torch.Tensor | None = None) -> None:
        """One optimisation step from ∂L/∂w_eff (default: ``self.weight.grad``), in place; after
        ``accumulate()`` calls and with no ``grad``, one step on the accumulated sample statistics."""
        if grad is None and self._n_acc > 0:  # weight.grad, if set, is the summed gradient (for plugins)
            stats = tuple(self._acc or ())
            self._acc, self._n_acc, self._grad_sum = None, 0, None
        else:
            grad = self._checked_grad(grad, "update")
            stacked = grad.dim() == len(self.shape) + 1  # a stacked batch of mc_samples samples
            stats = tuple(t.sum(0) for t in self._sample_stats(grad)) if stacked else None
        with torch.no_grad():
            if stats is None:
                self._update_grad(grad)
            else:
                self._update_stats(stats)
        self._stale = True

    def extra_repr(self) -> str:
        return f"shape={self.shape}, params={self.params}, backend={self.backend!r}"


def synapse_models(module: nn.Module) -> list[SynapseModel]:
    """All synapse models inside ``module`` (depth-first order, each once)."""
    return [m for m in module.modules() if isinstance(m, SynapseModel)]
