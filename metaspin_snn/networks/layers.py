"""Synapse-backed layers: a ``Linear`` / ``Conv2d`` whose weight is a synapse model's effective weight.

``synapse=None`` gives an ordinary ``nn.Parameter`` weight (PyTorch's default init, Kaiming-uniform
with a = √5: U(−1/√fan_in, 1/√fan_in)). Otherwise ``synapse(shape)`` must return a
:class:`~metaspin_snn.synapses.base.SynapseModel`; the forward pass reads
``synapse.effective_weight()`` (sign of a hidden weight, a posterior sample, a device read …), a
leaf whose ``.grad`` after ``backward()`` is what the synapse's own fused update consumes (binary
models thereby get the straight-through estimator ∂L/∂W_h := ∂L/∂sign(W_h), Courbariaux et al. 2016).

The layer computes ``y = g·(W_eff x) + b`` with a fixed scalar ``gain`` g. ``gain=None`` sets g = 1
for real weights and, for synapse models, g = (1/√(3·fan_in)) / rms(W_eff at construction), so the
initial weights have the RMS of PyTorch's default init whatever the synapse's units (±1 for binary,
siemens for devices). g is a persistent buffer (checkpoints keep it).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..synapses.base import SynapseModel
from .sparse import PRODUCT_MODES, input_events, sparse_linear

SynapseFactory = Callable[[tuple[int, ...]], SynapseModel]


class _SynapticBase(nn.Module):
    weight: nn.Parameter | None
    synapse: SynapseModel | None

    def _init_weight(self, shape: tuple[int, ...], fan_in: int, synapse: SynapseFactory | None,
                     bias: bool, gain: float | None) -> None:
        if synapse is None:
            self.weight = nn.Parameter(torch.empty(shape))
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
            self.synapse = None
        else:
            if not callable(synapse):
                raise TypeError(f"{type(self).__name__}: synapse must be a factory shape -> SynapseModel "
                                f"or None, got {type(synapse).__name__}")
            model = synapse(shape)
            if not isinstance(model, SynapseModel):
                raise TypeError(f"{type(self).__name__}: synapse factory returned {type(model).__name__}, "
                                "expected a SynapseModel")
            if tuple(model.shape) != tuple(shape):
                raise ValueError(f"{type(self).__name__}: synapse model has shape {tuple(model.shape)}, "
                                 f"layer needs {tuple(shape)}")
            self.register_parameter("weight", None)
            self.synapse = model
        if bias:
            bound = 1.0 / math.sqrt(fan_in)
            self.bias = nn.Parameter(torch.empty(shape[0]).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)
        if gain is None:
            if self.synapse is None:
                g = 1.0
            else:
                with torch.no_grad():
                    w = self.synapse.effective_weight().detach()
                    rms = float(w.double().pow(2).mean().sqrt())
                g = (1.0 / math.sqrt(3.0 * fan_in)) / rms if (rms > 0 and math.isfinite(rms)) else 1.0
        else:
            if not isinstance(gain, (int, float)) or isinstance(gain, bool) or not math.isfinite(gain) or gain <= 0:
                raise ValueError(f"{type(self).__name__}: gain must be a positive finite number or None, got {gain!r}")
            g = float(gain)
        self.register_buffer("gain", torch.tensor(g, dtype=torch.float32))

    def raw_weight(self) -> torch.Tensor:
        """The weight tensor the forward pass multiplies (before ``gain``): the parameter, or the
        synapse model's effective-weight leaf."""
        return self.weight if self.synapse is None else self.synapse.effective_weight()

    def scaled_weight(self) -> torch.Tensor:
        """``gain · raw_weight()`` (differentiable), in the layer's bias dtype if they differ."""
        w = self.raw_weight()
        g = self.gain
        if float(g) == 1.0:
            return w
        return w * g.to(w.dtype)

    def _count_reads(self, x: torch.Tensor) -> None:
        """Device models that charge read energy and read time (``COUNTS_READS``) see each product's
        input; in evaluation the next product reads again (fresh read noise per forward call)."""
        syn = self.synapse
        if syn is not None and getattr(syn, "COUNTS_READS", False):
            syn.count_reads(x)
            if not syn.training:
                syn._stale = True

    def _backward_read(self):
        """The synapse model's backward-pass weight read (``SynapseModel.backward_read``), or None."""
        return None if self.synapse is None else self.synapse.backward_read(self.gain)

    def effective_weight(self) -> torch.Tensor:
        """The weight actually applied, ``gain · W_eff``, detached — in eval mode the frozen weight
        for export: the synapse model's ``programmed_weight()`` (mean / sign / the device state
        without read noise)."""
        syn = self.synapse
        if syn is not None and not syn.training:
            w = syn.programmed_weight()
            g = self.gain
            return (w if float(g) == 1.0 else w * g.to(w.dtype)).detach().clone()
        return self.scaled_weight().detach().clone()


class SynapticLinear(_SynapticBase):
    """``y = gain·W_eff x + b`` over the last dimension; ``x [..., in_features]``.

    ``sparse``: ``"auto"`` (default) uses the event-driven product of :mod:`.sparse` when the input
    is a wide enough, sparse enough 2-D batch on CPU (fixed thresholds); ``"calibrated"`` when the
    machine's measured cost model (:func:`.sparse.product_costs`) predicts it faster; ``True``
    forces it; ``False`` is ``F.linear``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 synapse: SynapseFactory | None = None, *, gain: float | None = None,
                 sparse: bool | str = "auto") -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"SynapticLinear: {name} must be a positive int, got {v!r}")
        if sparse not in PRODUCT_MODES:
            raise ValueError(f"SynapticLinear: sparse must be one of {PRODUCT_MODES}, got {sparse!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.sparse = sparse
        self._init_weight((out_features, in_features), in_features, synapse, bias, gain)

    def forward(self, x: torch.Tensor, sparse: bool | str | None = None) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[-1] != self.in_features:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"SynapticLinear: expected input [..., {self.in_features}], got {got}")
        w = self.scaled_weight()
        if x.dtype != w.dtype and x.is_floating_point():  # e.g. float64 inputs: the layer's dtype, as SpikingMLP
            x = x.to(w.dtype)
        self._count_reads(x)
        if w.dim() == 3:  # S stacked synapse samples (SynapseModel.set_mc_samples): x [S, N, in] or [N, in]
            y = torch.matmul(x, w.transpose(1, 2))
            return y if self.bias is None else y + self.bias
        read = self._backward_read()
        if read is not None:  # device read noise in the backward pass only (input gradient)
            from ..synapses.magnetoionic import backward_read_linear
            return backward_read_linear(x, w, self.bias, read)
        mode = self.sparse if sparse is None else sparse
        if mode is not False and x.dim() == 2:
            ev = input_events(x, self.out_features, mode)
            if ev is not None:
                return sparse_linear(x, w, self.bias, ev)
        return F.linear(x, w, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, gain={float(self.gain):.4g}")


class SynapticConv2d(_SynapticBase):
    """2-D convolution ``y = gain·(W_eff ⋆ x) + b``; ``x [N, in_ch, H, W]``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, synapse: SynapseFactory | None = None, *,
                 gain: float | None = None) -> None:
        super().__init__()
        for name, v in (("in_ch", in_ch), ("out_ch", out_ch), ("kernel_size", kernel_size), ("stride", stride)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"SynapticConv2d: {name} must be a positive int, got {v!r}")
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"SynapticConv2d: padding must be a non-negative int, got {padding!r}")
        self.in_ch, self.out_ch = in_ch, out_ch
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        fan_in = in_ch * kernel_size * kernel_size
        self._init_weight((out_ch, in_ch, kernel_size, kernel_size), fan_in, synapse, bias, gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_ch:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"SynapticConv2d: expected input [N, {self.in_ch}, H, W], got {got}")
        w = self.scaled_weight()
        if x.dtype != w.dtype and x.is_floating_point():
            x = x.to(w.dtype)
        self._count_reads(x)
        read = self._backward_read()
        if read is not None:  # device read noise in the backward pass only (input gradient)
            from ..synapses.magnetoionic import backward_read_conv2d
            return backward_read_conv2d(x, w, self.bias, read, stride=self.stride, padding=self.padding)
        return F.conv2d(x, w, self.bias, stride=self.stride, padding=self.padding)

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        k, s, p = self.kernel_size, self.stride, self.padding
        return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1

    def extra_repr(self) -> str:
        return (f"{self.in_ch}, {self.out_ch}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}, gain={float(self.gain):.4g}")
