"""Feed-forward spiking networks of snnTorch ``Leaky`` neurons with synapse-backed layers.

Each stage is ``layer → [max-pool] → [norm] → Leaky``; the input is a spike (or current) sequence
``x[T, B, ...]`` and the hidden state starts at m = 0 on every call (no state kept between batches),
unless ``state=`` (a previous call's ``NetOutput.state``) continues a sequence (truncated BPTT).

Two numerically identical execution paths:

* ``fast=False`` — the plain snnTorch loop: for t in 0..T−1, for each stage,
  ``spk, mem = lif(layer(h[t]), mem)`` with ``snn.Leaky`` called once per step.
* ``fast=True`` — each layer is applied once to all T·B inputs of the stage (one GEMM / one
  convolution, or the event-driven product of :mod:`.sparse` for sparse inputs), then the LIF
  recursion runs over T in :func:`.lif.leaky_scan` with the same floating-point operations as
  ``snn.Leaky`` and a hand-written BPTT backward. Spikes equal the plain path bitwise when the dense
  product is used (tests/networks hold this); the event-driven product sums in another order, so
  there the currents agree to rounding.

Options: ``reset="zero"`` (default; maps spike-for-spike to Lava's LIF) or ``"subtract"``; ``norm``
``"batch"`` (statistics over all T·B currents of a stage, as in tdBN, Zheng et al. AAAI 2021) or
``"layer"`` (with batch norm and ``fast=False`` the stages run layer by layer, since the statistics
need all T steps; ``snn.Leaky`` still steps through time); ``n_norm_sets`` task-specific norm modules (statistics and affine parameters) chosen by
the ``task`` argument; ``heads`` task-specific output layers (task-incremental learning);
``output="count"`` (logits = output spike counts Σ_t s[t]) or ``"membrane"`` (the output stage does
not reset, logits = mean_t m[t]). ``neuron="relu"`` or ``"sign"`` (sign with a straight-through
gradient, Laborieux et al. 2021) builds the same layers and synapse models without LIF dynamics — the
published non-spiking settings; logits = the output layer's current averaged over T. ``norm_params``
(batch norm only): ``affine``, ``eps``, ``momentum``, ``track_running_stats`` of ``nn.BatchNorm``
(False = batch statistics at evaluation too, as Laborieux et al.'s code). ``record=True`` keeps membrane traces in :class:`NetOutput`.

Export: :func:`fold_norm` folds eval-mode batch norm into weights and biases (or thresholds).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..synapses.base import all_finite
from .layers import SynapseFactory, SynapticConv2d, SynapticLinear
from .lif import RESETS, leaky_scan, make_leaky

NORMS = (None, "batch", "layer")
NET_RESETS = RESETS[:2]  # the networks' resets ("none" exists for the bare neuron only)
OUTPUTS = ("count", "membrane")
NEURONS = ("lif", "relu", "sign")
NORM_PARAM_KEYS = ("affine", "eps", "momentum", "track_running_stats")


class SignSTE(torch.autograd.Function):
    """sign(x) forward (sign(0) = 0, ``torch.sign``); straight-through gradient zeroed where |x| > 1
    — the ``SignActivation`` of Laborieux et al. 2021 (SynapticMetaplasticityBNN, models_utils.py)."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.sign()

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


def _activation(neuron: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return F.relu if neuron == "relu" else SignSTE.apply


@dataclasses.dataclass
class NetOutput:
    """``logits [B, C]``: output spike counts or mean membrane (per the model's ``output``);
    ``spikes``: per stage, spike counts summed over T, ``[B, n_l]`` (differentiable);
    ``membrane``: per stage ``[T, B, n_l]`` traces when ``model.record`` else None;
    ``out_spikes``: the output stage's spike train ``[T, B, C]`` (for rate losses);
    ``state``: per stage, the final membrane ``[B, ...]`` (detached), to continue a sequence
    (``model(x_next, state=out.state)``, truncated BPTT)."""

    logits: torch.Tensor
    spikes: list[torch.Tensor]
    membrane: list[torch.Tensor] | None = None
    out_spikes: torch.Tensor | None = None
    state: list[torch.Tensor] | None = None


class _Stage(nn.Module):
    """One layer of the network: ``heads`` alternative synaptic layers (one unless it is a multi-head
    output), optional max-pool, ``n_norm_sets`` alternative norm modules, one ``snn.Leaky``."""

    def __init__(self, layers: list[nn.Module], norms: list[nn.Module] | None, lif: nn.Module,
                 pool: int, kind: str, out_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norms = nn.ModuleList(norms) if norms else None
        self.lif = lif
        self.pool = pool
        self.kind = kind  # "linear" | "conv"
        self.out_shape = out_shape  # per-sample output shape (n,) or (C, H, W)

    def current(self, h: torch.Tensor, head: int, nset: int, sparse: bool | str | None) -> torch.Tensor:
        """Synaptic current for a batch of per-sample inputs ``h [N, ...]`` → ``[N, *out_shape]``."""
        layer = self.layers[head]
        cur = layer(h, sparse=sparse) if self.kind == "linear" else layer(h)
        if self.pool > 1:
            cur = F.max_pool2d(cur, self.pool)
        if self.norms is not None:
            cur = self.norms[nset](cur)
        return cur


def _check_factories(synapse, n: int, who: str) -> list[SynapseFactory | None]:
    if synapse is None or callable(synapse):
        return [synapse] * n
    if isinstance(synapse, (list, tuple)):
        if len(synapse) != n:
            raise ValueError(f"{who}: synapse list has {len(synapse)} entries, need one per layer ({n})")
        for i, s in enumerate(synapse):
            if s is not None and not callable(s):
                raise TypeError(f"{who}: synapse[{i}] must be a factory or None, got {type(s).__name__}")
        return list(synapse)
    raise TypeError(f"{who}: synapse must be None, a factory or a list of factories, got {type(synapse).__name__}")


def check_norm_params(norm_params: dict | None, norm: str | None, where: str = "norm_params") -> None:
    """Keys and values of ``norm_params`` (``nn.BatchNorm`` keyword arguments, so ``norm`` must be
    batch norm); ``ValueError`` naming ``where`` or ``where.<key>``."""
    if norm_params and norm != "batch":
        raise ValueError(f"{where}: applies to norm = 'batch' only, not {norm!r}")
    for k, v in (norm_params or {}).items():
        if k not in NORM_PARAM_KEYS:
            raise ValueError(f"{where}.{k}: unknown key (allowed: {', '.join(NORM_PARAM_KEYS)})")
        if k in ("affine", "track_running_stats") and not isinstance(v, bool):
            raise ValueError(f"{where}.{k}: must be a bool, got {v!r}")
        if k == "eps" and not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1):
            raise ValueError(f"{where}.eps: must be a number in (0, 1), got {v!r}")
        if k == "momentum" and not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1):
            raise ValueError(f"{where}.momentum: must be a number in (0, 1], got {v!r}")


def _check_common(who: str, reset: str, norm, n_norm_sets: int, heads: int, output: str,
                  beta, threshold, neuron: str = "lif", norm_params: dict | None = None) -> None:
    if neuron not in NEURONS:
        raise ValueError(f"{who}: neuron must be one of {NEURONS}, got {neuron!r}")
    check_norm_params(norm_params, norm, f"{who}: norm_params")
    if reset not in NET_RESETS:
        raise ValueError(f"{who}: reset must be one of {NET_RESETS}, got {reset!r}")
    if norm not in NORMS:
        raise ValueError(f"{who}: norm must be None, 'batch' or 'layer', got {norm!r}")
    if output not in OUTPUTS:
        raise ValueError(f"{who}: output must be 'count' or 'membrane', got {output!r}")
    for name, v in (("n_norm_sets", n_norm_sets), ("heads", heads)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{who}: {name} must be an int >= 1, got {v!r}")
    if n_norm_sets > 1 and norm is None:
        raise ValueError(f"{who}: n_norm_sets={n_norm_sets} needs norm='batch' or 'layer'")
    if not isinstance(beta, (int, float)) or not 0.0 <= beta <= 1.0:
        raise ValueError(f"{who}: beta must be a number in [0, 1], got {beta!r}")
    if not isinstance(threshold, (int, float)) or not (threshold > 0 and math.isfinite(threshold)):
        raise ValueError(f"{who}: threshold must be a positive finite number, got {threshold!r}")


class _SpikingNet(nn.Module):
    """Shared forward machinery for :class:`SpikingMLP` and :class:`SpikingConvNet`."""

    stages: nn.ModuleList
    in_shape: tuple[int, ...]

    def _setup(self, beta, threshold, reset, surrogate, norm, n_norm_sets, heads, output, fast,
               learn_beta, learn_threshold, sparse, neuron: str = "lif", norm_params: dict | None = None) -> None:
        self.neuron = neuron
        self.norm_params = dict(norm_params or {})
        self.beta, self.threshold, self.reset = float(beta), float(threshold), reset
        self.norm, self.n_norm_sets, self.heads, self.output = norm, n_norm_sets, heads, output
        self.fast = bool(fast)
        self.sparse = sparse
        self.record = False
        self._surrogate = surrogate
        self._learn = (learn_beta, learn_threshold)

    def _lif(self, last: bool) -> nn.Module:
        reset = "none" if (last and self.output == "membrane") else self.reset
        return make_leaky(self.beta, self.threshold, reset, self._surrogate, *self._learn)

    def _norms(self, kind: str, shape: tuple[int, ...]) -> list[nn.Module] | None:
        if self.norm is None:
            return None
        out: list[nn.Module] = []
        for _ in range(self.n_norm_sets):
            if self.norm == "batch":
                kw = self.norm_params
                out.append(nn.BatchNorm1d(shape[0], **kw) if kind == "linear" else nn.BatchNorm2d(shape[0], **kw))
            else:
                out.append(nn.LayerNorm(shape[0]) if kind == "linear" else nn.GroupNorm(1, shape[0]))
        return out

    def _select(self, task: int | None, n: int, what: str) -> int:
        if n == 1:
            if task is not None and (not isinstance(task, int) or task < 0):
                raise ValueError(f"{type(self).__name__}: task must be a non-negative int or None, got {task!r}")
            return 0
        if task is None:
            raise ValueError(f"{type(self).__name__}: has {n} {what}; pass task=<0..{n - 1}>")
        if not isinstance(task, int) or isinstance(task, bool) or not 0 <= task < n:
            raise ValueError(f"{type(self).__name__}: task must be an int in [0, {n}) for its {n} {what}, got {task!r}")
        return task

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _param_dtype(self) -> torch.dtype:
        return self.stages[0].layers[0].gain.dtype

    def forward(self, x: torch.Tensor, task: int | None = None,
                state: list[torch.Tensor] | None = None) -> NetOutput:
        """Run the network on ``x [T, B, ...]`` from a zero state (or from ``state``, the
        ``NetOutput.state`` of the previous chunk of the same sequence); see the module docstring."""
        x = self._check_input(x)
        head = self._select(task, self.heads, "output heads")
        nset = self._select(task, self.n_norm_sets, "norm sets") if self.norm is not None else 0
        T, B = x.shape[0], x.shape[1]
        if state is not None:
            if len(state) != len(self.stages):
                raise ValueError(f"{type(self).__name__}: state has {len(state)} entries, need {len(self.stages)}")
            for i, (m, st) in enumerate(zip(state, self.stages)):
                if tuple(m.shape) != (B, *st.out_shape):
                    raise ValueError(f"{type(self).__name__}: state[{i}] has shape {list(m.shape)}, "
                                     f"expected {[B, *st.out_shape]}")
            state = [m.detach().to(x.dtype) for m in state]
        else:
            state = [None] * len(self.stages)
        if self.neuron != "lif":
            return self._forward_static(x, head, nset, T, B)
        if self.fast:
            return self._forward_layerwise(x, head, nset, T, B, state, sparse=self.sparse, scan=True)
        if self.norm == "batch":  # statistics over all T·B currents: layer by layer, Leaky per step
            return self._forward_layerwise(x, head, nset, T, B, state, sparse=False, scan=False)
        return self._forward_steps(x, head, nset, T, B, state)

    def _stage_input(self, st: _Stage, h: torch.Tensor) -> torch.Tensor:
        """Reshape a per-sample activation batch ``[N, ...]`` for ``st``'s layer."""
        return h.reshape(h.shape[0], -1) if st.kind == "linear" else h

    def _stacked_samples(self, head: int) -> int:
        """S when synapse models hold S stacked weight samples (``SynapseModel.set_mc_samples``), else 0."""
        n_st = len(self.stages)
        ws = [st.layers[head if i == n_st - 1 else 0].raw_weight() for i, st in enumerate(self.stages)]
        return max((int(w.shape[0]) for w in ws if w.dim() == 3), default=0)

    def _check_stackable(self) -> None:
        """Stacked samples need S separate networks: no normalisation (its statistics would mix them),
        linear stages only."""
        if self.norm is not None or any(st.kind != "linear" for st in self.stages):
            raise ValueError(f"{type(self).__name__}: stacked synapse samples need a linear network "
                             "without normalisation")

    def _forward_layerwise(self, x, head, nset, T, B, state, sparse, scan: bool) -> NetOutput:
        S = self._stacked_samples(head)
        if S:
            return self._forward_stacked(x, head, T, B, S, state)
        h = x.reshape(T * B, *x.shape[2:])
        counts, mems, final = [], [], []
        spk = None
        n_st = len(self.stages)
        for i, st in enumerate(self.stages):
            hd = head if i == n_st - 1 else 0
            cur = st.current(self._stage_input(st, h), hd, nset, sparse if st.kind == "linear" else None)
            cur = cur.reshape(T, B, *cur.shape[1:])
            if scan:
                spk, mem = leaky_scan(cur, st.lif, state[i])
            else:  # snn.Leaky per step on pre-computed currents (plain path with batch statistics)
                mem_t = st.lif.reset_mem() if state[i] is None else state[i]
                sl, ml = [], []
                for t in range(T):
                    s_t, mem_t = st.lif(cur[t], mem_t)
                    sl.append(s_t.to(cur.dtype))
                    ml.append(mem_t)
                st.lif.mem = torch.zeros(0, device=cur.device)
                spk, mem = torch.stack(sl), torch.stack(ml)
            counts.append(spk.sum(0).reshape(B, -1))
            final.append(mem[-1].detach())
            if self.record:
                mems.append(mem.reshape(T, B, -1))
            if i == n_st - 1:
                last_mem = mem
            h = spk.reshape(T * B, *spk.shape[2:])
        return self._output(counts, mems, spk.reshape(T, B, -1), last_mem.reshape(T, B, -1), final)

    def _forward_stacked(self, x, head, T, B, S, state) -> NetOutput:
        """S networks at once, one per stacked synapse sample (weights ``[S, out, in]``): currents
        ``[S, T·B, n]`` by one batched product, the LIF scan over a batch of S·B sequences (sample-major:
        row s·B + b is sample s of input b). Logits ``[S, B, C]``; ``spikes``/``membrane``/``state`` carry
        the S·B rows. Each sample's network is the one an unstacked pass with that weight computes."""
        self._check_stackable()
        if any(m is not None for m in state):
            raise ValueError(f"{type(self).__name__}: stacked synapse samples start from a zero state")
        n_st = len(self.stages)
        h = x.reshape(T * B, -1)  # [T·B, in], shared by the S samples of the first layer
        counts, mems, final = [], [], []
        for i, st in enumerate(self.stages):
            cur = st.current(h, head if i == n_st - 1 else 0, 0, False)
            cur = cur.expand(S, *cur.shape) if cur.dim() == 2 else cur  # an unsampled (real) layer
            n = cur.shape[-1]
            cur = cur.reshape(S, T, B, n).transpose(0, 1).reshape(T, S * B, n)
            spk, mem = leaky_scan(cur, st.lif, None)
            counts.append(spk.sum(0))
            final.append(mem[-1].detach())
            if self.record:
                mems.append(mem)
            h = spk.reshape(T, S, B, n).transpose(0, 1).reshape(S, T * B, n)
        out = self._output(counts, mems, spk, mem, final)
        out.logits = out.logits.reshape(S, B, -1)
        return out

    def _forward_static(self, x, head, nset, T, B) -> NetOutput:
        """Non-spiking network (``neuron`` "relu" or "sign"): each stage ``act(norm(layer(h)))`` on
        all T·B inputs, the output stage without activation; logits = output averaged over T (T = 1
        is the published setting). ``spikes`` holds each stage's activity Σ_t act (not spikes). With
        S stacked synapse samples (``SynapseModel.set_mc_samples``) activations are ``[S, T·B, n]``
        and logits ``[S, B, C]``, one network per sample."""
        act = _activation(self.neuron)
        n_st = len(self.stages)
        if self._stacked_samples(head):
            self._check_stackable()
        h = x.reshape(T * B, *x.shape[2:])
        counts = []
        for i, st in enumerate(self.stages):
            hd = head if i == n_st - 1 else 0
            hin = h if h.dim() == 3 else self._stage_input(st, h)
            cur = st.current(hin, hd, nset, False if st.kind == "linear" else None)
            shape = (cur.shape[0], T, B, -1) if cur.dim() == 3 else (T, B, -1)
            z = act(cur) if i < n_st - 1 else cur
            counts.append(z.reshape(shape).sum(-3).mean(0) if cur.dim() == 3 else z.reshape(shape).sum(0))
            h = z
        out = h.reshape(shape)
        final = [torch.zeros(B, *st.out_shape, dtype=x.dtype, device=x.device) for st in self.stages]
        return NetOutput(logits=out.mean(-3), spikes=counts, membrane=None, out_spikes=None, state=final)

    def _forward_steps(self, x, head, nset, T, B, state) -> NetOutput:
        n_st = len(self.stages)
        mem = [st.lif.reset_mem() if m0 is None else m0 for st, m0 in zip(self.stages, state)]
        spk_rec: list[list[torch.Tensor]] = [[] for _ in range(n_st)]
        mem_rec: list[list[torch.Tensor]] = [[] for _ in range(n_st)]
        for t in range(T):
            h = x[t]
            for i, st in enumerate(self.stages):
                hd = head if i == n_st - 1 else 0
                cur = st.current(self._stage_input(st, h), hd, nset, False if st.kind == "linear" else None)
                s, mem[i] = st.lif(cur, mem[i])
                s = s.to(cur.dtype)
                spk_rec[i].append(s)
                mem_rec[i].append(mem[i])
                h = s
        for st in self.stages:
            st.lif.mem = torch.zeros(0, device=x.device)  # drop snnTorch's reference to the graph
        spikes = [torch.stack(r) for r in spk_rec]
        counts = [s.sum(0).reshape(B, -1) for s in spikes]
        mems = [torch.stack(r).reshape(T, B, -1) for r in mem_rec] if self.record else []
        last_mem = torch.stack(mem_rec[-1]).reshape(T, B, -1)
        final = [r[-1].detach() for r in mem_rec]
        return self._output(counts, mems, spikes[-1].reshape(T, B, -1), last_mem, final)

    def _output(self, counts, mems, out_spk, last_mem, final) -> NetOutput:
        logits = counts[-1] if self.output == "count" else last_mem.mean(0)
        return NetOutput(logits=logits, spikes=counts, membrane=mems if self.record else None,
                         out_spikes=out_spk, state=final)

    def _validate_x(self, x: torch.Tensor, expected: str) -> torch.Tensor:
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: input must be a torch.Tensor {expected}, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name}: input must be a floating-point tensor (spikes as 0./1.), got {x.dtype}; "
                            "use x.float()")
        if x.dim() < 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name}: expected input {expected}, got shape {list(x.shape)}")
        if not all_finite(x):
            raise ValueError(f"{name}: input contains NaN or inf")
        dt = self._param_dtype()
        return x.to(dt) if x.dtype != dt else x

    def layers(self, task: int | None = None) -> list[nn.Module]:
        """The synaptic layers in order (the output layer of head ``task``)."""
        head = self._select(task, self.heads, "output heads")
        return [st.layers[head if i == len(self.stages) - 1 else 0] for i, st in enumerate(self.stages)]


class SpikingMLP(_SpikingNet):
    """Fully connected spiking network ``sizes[0] → … → sizes[-1]`` of ``snn.Leaky`` neurons.

    ``x [T, B, sizes[0]]`` (or ``[T, B, *dims]`` with ∏dims = sizes[0], flattened) is an already
    encoded spike / current sequence. ``synapse``: None (real weights), a factory ``shape →
    SynapseModel`` for all layers, or a list with one factory (or None) per layer. ``gain`` is passed
    to every :class:`SynapticLinear`. ``sparse``: event-driven product policy for the fast path.
    """

    def __init__(self, sizes: Sequence[int], *, beta: float = 0.9, threshold: float = 1.0,
                 reset: str = "zero", surrogate: Callable | None = None, synapse=None,
                 norm: str | None = None, n_norm_sets: int = 1, heads: int = 1, output: str = "count",
                 fast: bool = True, learn_beta: bool = False, learn_threshold: bool = False,
                 gain: float | None = None, bias: bool = True, sparse: bool | str = "auto",
                 neuron: str = "lif", norm_params: dict | None = None) -> None:
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2 or any(not isinstance(s, int) or isinstance(s, bool) or s <= 0 for s in sizes):
            raise ValueError(f"SpikingMLP: sizes must be >= 2 positive ints, got {sizes!r}")
        _check_common("SpikingMLP", reset, norm, n_norm_sets, heads, output, beta, threshold, neuron, norm_params)
        self._setup(beta, threshold, reset, surrogate, norm, n_norm_sets, heads, output, fast,
                    learn_beta, learn_threshold, sparse, neuron, norm_params)
        self.sizes = sizes
        self.in_shape = (sizes[0],)
        factories = _check_factories(synapse, len(sizes) - 1, "SpikingMLP")
        stages = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = i == len(sizes) - 2
            n_heads = heads if last else 1
            layers = [SynapticLinear(a, b, bias, factories[i], gain=gain, sparse=sparse) for _ in range(n_heads)]
            stages.append(_Stage(layers, self._norms("linear", (b,)), self._lif(last), 1, "linear", (b,)))
        self.stages = nn.ModuleList(stages)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        expected = f"[T, B, features] = [T, B, {self.sizes[0]}]"
        x = self._validate_x(x, expected)
        if x.dim() == 3 and x.shape[2] == self.sizes[0]:
            return x
        if x.dim() > 3 and math.prod(x.shape[2:]) == self.sizes[0]:
            return x.reshape(x.shape[0], x.shape[1], -1)
        raise ValueError(f"SpikingMLP: expected input {expected}, got shape {list(x.shape)}")


class SpikingConvNet(_SpikingNet):
    """Small spiking conv net for ``[T, B, C, H, W]`` frames (MNIST 1×28×28, N-MNIST 2×34×34):
    per entry of ``channels`` a stage ``conv k×k ('same' padding) → max-pool(pool) → [norm] → Leaky``,
    then a fully connected output stage to ``n_classes``. ``synapse``: None, one factory, or a list of
    ``len(channels) + 1`` factories."""

    def __init__(self, in_shape: Sequence[int] = (1, 28, 28), n_classes: int = 10, *,
                 channels: Sequence[int] = (12, 32), kernel_size: int = 5, pool: int = 2,
                 beta: float = 0.9, threshold: float = 1.0, reset: str = "zero",
                 surrogate: Callable | None = None, synapse=None, norm: str | None = None,
                 n_norm_sets: int = 1, heads: int = 1, output: str = "count", fast: bool = True,
                 learn_beta: bool = False, learn_threshold: bool = False, gain: float | None = None,
                 bias: bool = True, neuron: str = "lif", norm_params: dict | None = None) -> None:
        super().__init__()
        in_shape = tuple(in_shape)
        if len(in_shape) != 3 or any(not isinstance(s, int) or s <= 0 for s in in_shape):
            raise ValueError(f"SpikingConvNet: in_shape must be (C, H, W) positive ints, got {in_shape!r}")
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"SpikingConvNet: n_classes must be an int >= 2, got {n_classes!r}")
        channels = list(channels)
        if not channels or any(not isinstance(c, int) or c <= 0 for c in channels):
            raise ValueError(f"SpikingConvNet: channels must be a non-empty list of positive ints, got {channels!r}")
        if not isinstance(pool, int) or pool < 1:
            raise ValueError(f"SpikingConvNet: pool must be an int >= 1, got {pool!r}")
        _check_common("SpikingConvNet", reset, norm, n_norm_sets, heads, output, beta, threshold, neuron,
                      norm_params)
        self._setup(beta, threshold, reset, surrogate, norm, n_norm_sets, heads, output, fast,
                    learn_beta, learn_threshold, False, neuron, norm_params)
        self.in_shape = in_shape
        self.n_classes = n_classes
        factories = _check_factories(synapse, len(channels) + 1, "SpikingConvNet")
        stages = []
        c, h, w = in_shape
        for i, co in enumerate(channels):
            conv = SynapticConv2d(c, co, kernel_size, 1, kernel_size // 2, bias, factories[i], gain=gain)
            h, w = conv.out_hw(h, w)
            h, w = h // pool, w // pool
            if h < 1 or w < 1:
                raise ValueError(f"SpikingConvNet: input {in_shape} too small for {len(channels)} conv/pool stages")
            stages.append(_Stage([conv], self._norms("conv", (co, h, w)), self._lif(False), pool, "conv", (co, h, w)))
            c = co
        flat = c * h * w
        layers = [SynapticLinear(flat, n_classes, bias, factories[-1], gain=gain, sparse=False) for _ in range(heads)]
        stages.append(_Stage(layers, self._norms("linear", (n_classes,)), self._lif(True), 1, "linear", (n_classes,)))
        self.stages = nn.ModuleList(stages)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        expected = f"[T, B, C, H, W] = [T, B, {', '.join(map(str, self.in_shape))}]"
        x = self._validate_x(x, expected)
        if x.dim() == 5 and tuple(x.shape[2:]) == self.in_shape:
            return x
        if x.dim() == 4 and self.in_shape[0] == 1 and tuple(x.shape[2:]) == self.in_shape[1:]:
            return x.unsqueeze(2)
        raise ValueError(f"SpikingConvNet: expected input {expected}, got shape {list(x.shape)}")


@dataclasses.dataclass
class FoldedLayer:
    """One stage with normalisation folded in, as an exporter needs it:
    current ``I = weight ⋆ s + bias`` (linear or conv with ``stride``/``padding``, then ``pool``),
    LIF with ``beta``, per-neuron ``threshold`` (shape ``[n]`` / ``[C]`` or scalar) and ``reset``."""

    kind: str
    weight: torch.Tensor
    bias: torch.Tensor
    beta: torch.Tensor
    threshold: torch.Tensor
    reset: str
    stride: int = 1
    padding: int = 0
    pool: int = 1


def fold_norm(model: _SpikingNet, task: int | None = None, mode: str = "weights") -> list[FoldedLayer]:
    """Fold each stage's eval-mode batch norm into its synapses for export (model in eval mode).

    Batch norm computes ``I = k·(W s + b − μ) + β_bn`` with ``k = γ / √(σ² + ε)`` (per output
    neuron / channel). ``mode="weights"``: ``W' = k·W``, ``b' = k·(b − μ) + β_bn``, θ unchanged
    (exact; binary weights become per-neuron scaled). ``mode="threshold"`` keeps ``W`` (e.g. ±1) and
    divides the neuron instead: ``b' = b − μ + β_bn/k``, ``θ' = θ/k`` — exact for k > 0 because
    the LIF recursion is linear in I and m (the membrane is scaled by 1/k; a membrane read-out is
    therefore rescaled); raises when some k ≤ 0. With max-pooling before the norm, pooling commutes
    with the per-channel affine map only for k > 0, so ``mode="weights"`` requires k > 0 there too.
    Without norm the weights are returned unchanged (gain applied). Layer norm depends on each
    input's statistics and cannot be folded: ``ValueError``.
    """
    if mode not in ("weights", "threshold"):
        raise ValueError(f"fold_norm: mode must be 'weights' or 'threshold', got {mode!r}")
    if model.training:
        raise ValueError("fold_norm: call model.eval() first (batch norm must use its running statistics)")
    if model.norm == "layer":
        raise ValueError("fold_norm: layer norm normalises each input by its own statistics and cannot be "
                         "folded into weights or thresholds; train with norm=None or 'batch' for export")
    if getattr(model, "neuron", "lif") != "lif":
        raise ValueError(f"fold_norm: the network has neuron={model.neuron!r} (non-spiking); only "
                         "neuron='lif' networks map to LIF neurons for export")
    if model.norm == "batch" and not all(getattr(n, "track_running_stats", True)
                                         for st in model.stages for n in (st.norms or [])):
        raise ValueError("fold_norm: batch norm without running statistics (track_running_stats=False) "
                         "normalises by each batch and cannot be folded")
    layers = model.layers(task)
    nset = model._select(task, model.n_norm_sets, "norm sets") if model.norm is not None else 0
    out = []
    for i, (st, layer) in enumerate(zip(model.stages, layers)):
        w = layer.effective_weight()
        b = layer.bias.detach().clone() if layer.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
        lif = st.lif
        thr = lif.threshold.detach().clone().to(w.dtype)
        beta = lif.beta.detach().clone().clamp(0, 1).to(w.dtype)
        reset = {0: "subtract", 1: "zero", 2: "none"}[int(lif.reset_mechanism_val)]
        if st.norms is not None:
            bn = st.norms[nset]
            k = (bn.weight.detach() if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
            mu = bn.running_mean.detach()
            bb = bn.bias.detach() if bn.affine else torch.zeros_like(mu)
            if (mode == "threshold" or st.pool > 1) and not bool((k > 0).all()):
                raise ValueError(f"fold_norm: stage {i} has non-positive batch-norm scale γ/σ; "
                                 "use mode='weights' (and no pooling before the norm)")
            kw = k.reshape(-1, *([1] * (w.dim() - 1)))
            if mode == "weights":
                w = w * kw
                b = k * (b - mu) + bb
            else:
                b = b - mu + bb / k
                thr = thr / k
        kw = dict(stride=layer.stride, padding=layer.padding) if st.kind == "conv" else {}
        out.append(FoldedLayer(st.kind, w, b, beta, thr, reset, pool=st.pool, **kw))
    return out
