"""Metaplastic binary synapse — Laborieux et al., *Synaptic metaplasticity in binarized neural
networks*, Nat. Commun. 12:2549 (2021), their ``Adam_meta`` optimiser
(github.com/Laborieux-Axel/SynapticMetaplasticityBNN).

Hidden weight ``W_h``, effective weight ``w = sign(W_h)`` with **sign(0) = +1**. One step from
``g = ∂L/∂w`` (straight-through: the gradient w.r.t. ``w`` drives ``W_h``)::

    g   ← clip(g + wd·W_h, ±grad_clip)                      (L2 weight decay, as ``Adam_meta``)
    m   ← m + (1-β₁)(g - m)                                  (= β₁m + (1-β₁)g)
    v   ← β₂v + (1-β₂)g²
    d   = √v / √(1-β₂ᵗ) + ε                                  (torch.optim.Adam's ε placement)
    u   = f_meta·m   if sign(W_h)·m > 0   else   m           (the step moves W_h toward 0)
    W_h ← W_h - lr/(1-β₁ᵗ) · u / d,     f_meta = 1 - tanh²(m_meta·|W_h|)

``m_meta = 0`` gives f_meta ≡ 1: exactly binarised Adam (``torch.optim.Adam`` on W_h). Laborieux's code
puts ε before the bias correction (ε·√(1-β₂ᵗ)); we follow torch.optim.Adam / Kingma & Ba Alg. 1 so that
the m = 0 reduction is exact; the difference only matters for |g| ≲ ε. ``grad_clip`` (default 1e15) is a
finiteness guard: above ~1.8e19, g² overflows float32 and Adam's state becomes inf.

Kernel: one pass, branch-free (the consolidation test is a select), ``error_model='numpy'``; f_meta is
evaluated as sech²(x) = 4e/(1+e)², e = exp(-2|x|) with a vectorisable exp (``_kernels.sech2``, rel.
error < 3e-7, no 1 - tanh² cancellation) — measured faster here than a rational tanh (no SVML, so
``math.tanh`` would be a scalar libm call). The torch reference uses ``torch.tanh``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numba import njit, prange

from ._kernels import NJIT, np_view, sech2
from .base import Backend, SynapseModel, check_range

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)


@dataclass(frozen=True)
class MetaplasticBinaryParams:
    """Parameters of :class:`MetaplasticBinary` (defaults: Laborieux et al. 2021, permuted MNIST:
    Adam lr 0.005, m = 1.3, Gaussian init of width 0.01)."""

    lr: float = 0.005
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    m: float = 1.3
    weight_decay: float = 0.0
    init_scale: float = 0.01
    grad_clip: float = 1e15
    reset_at_task: bool = False  # task_boundary() zeroes m, v and t (the paper's code builds a new
    #                              Adam_meta for every task); False keeps them across tasks
    seed: int = 0

    def __post_init__(self) -> None:
        check_range(self, "lr", 0.0, None)
        if (not isinstance(self.betas, tuple) or len(self.betas) != 2
                or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0.0 <= b < 1.0
                           for b in self.betas)):
            raise ValueError(f"MetaplasticBinaryParams.betas must be a pair of numbers in [0, 1), got {self.betas!r}")
        check_range(self, "eps", 0.0, None, lo_open=True)
        check_range(self, "m", 0.0, None)
        check_range(self, "weight_decay", 0.0, None)
        check_range(self, "init_scale", 0.0, None)
        check_range(self, "grad_clip", 0.0, 1e19, lo_open=True)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"MetaplasticBinaryParams.seed must be an int, got {self.seed!r}")
        if not isinstance(self.reset_at_task, bool):
            raise ValueError(f"MetaplasticBinaryParams.reset_at_task must be a bool, got {self.reset_at_task!r}")


# ---- fused Numba kernel ---------------------------------------------------------------------------
@njit(inline="always", **NJIT)
def _meta_elem(w, m, v, g, step_size, b1c, b2, b2c, bc2_sqrt, eps, meta, wd, gclip):
    ge = g + wd * w
    ge = min(max(ge, -gclip), gclip)
    m = m + b1c * (ge - m)
    v = b2 * v + b2c * (ge * ge)
    denom = np.sqrt(v) / bc2_sqrt + eps
    s = _F1 if w >= _F0 else -_F1
    fmeta = sech2(meta * w)                           # 1 - tanh²(meta·|W_h|), no cancellation
    scale = fmeta if s * m > _F0 else _F1             # a select, not a branch
    w = w - step_size * ((scale * m) / denom)
    return w, m, v


@njit(**NJIT)
def metaplastic_kernel(w, m, v, g, step_size, b1c, b2, b2c, bc2_sqrt, eps, meta, wd, gclip):
    """In place on flat float32 arrays: one ``Adam_meta`` step (serial)."""
    for i in range(w.size):
        a, b, c = _meta_elem(w[i], m[i], v[i], g[i], step_size, b1c, b2, b2c, bc2_sqrt, eps, meta, wd, gclip)
        w[i] = a
        m[i] = b
        v[i] = c


@njit(parallel=True, **NJIT)
def metaplastic_kernel_parallel(w, m, v, g, step_size, b1c, b2, b2c, bc2_sqrt, eps, meta, wd, gclip):
    """Same as :func:`metaplastic_kernel`, multithreaded (``numba.set_num_threads``)."""
    for i in prange(w.size):
        a, b, c = _meta_elem(w[i], m[i], v[i], g[i], step_size, b1c, b2, b2c, bc2_sqrt, eps, meta, wd, gclip)
        w[i] = a
        m[i] = b
        v[i] = c


# ---- torch reference ------------------------------------------------------------------------------
def metaplastic_step_torch(w: torch.Tensor, m: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
                           step_size: float, beta1: float, beta2: float, bc2_sqrt: float, eps: float,
                           meta: float, wd: float, gclip: float) -> None:
    """Reference ``Adam_meta`` step in place (any device), same equations as the kernel."""
    if wd != 0.0:
        g = g.add(w, alpha=wd)
    g = g.clamp(-gclip, gclip)
    m.lerp_(g, 1.0 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
    denom = (v.sqrt() / bc2_sqrt).add_(eps)
    sgn = torch.where(w >= 0, 1.0, -1.0)
    fmeta = 1.0 - torch.tanh(meta * w.abs()).square()
    u = torch.where(sgn * m > 0, fmeta * m, m)
    w.addcdiv_(u, denom, value=-step_size)


class MetaplasticBinary(SynapseModel):
    """Binary synapse ``sign(W_h)`` with Laborieux's metaplastic Adam on the hidden weight ``W_h``.

    State buffers: ``hidden_weight`` (W_h), ``exp_avg`` (m), ``exp_avg_sq`` (v), ``step`` (t).
    ``parallel=True`` runs the multithreaded Numba kernel.
    """

    def __init__(self, shape: tuple[int, ...] | torch.Size,
                 params: MetaplasticBinaryParams | None = None, backend: Backend = "auto",
                 parallel: bool = False) -> None:
        params = MetaplasticBinaryParams() if params is None else params
        if not isinstance(params, MetaplasticBinaryParams):
            raise TypeError(f"MetaplasticBinary: params must be MetaplasticBinaryParams, got {type(params).__name__}")
        super().__init__(shape, params, backend)
        self.parallel = bool(parallel)
        gen = torch.Generator().manual_seed(params.seed)
        self.register_buffer("hidden_weight", torch.randn(self.shape, generator=gen) * params.init_scale)
        self.register_buffer("exp_avg", torch.zeros(self.shape))
        self.register_buffer("exp_avg_sq", torch.zeros(self.shape))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def _compute_weight(self, sample: bool) -> torch.Tensor:
        """sign(W_h) with sign(0) = +1 (deterministic; ``sample`` is ignored)."""
        h = self.hidden_weight  # (h >= 0)·2 − 1: same values as where(h >= 0, 1, −1), ~8× faster on CPU
        return (h >= 0).to(h.dtype).mul_(2.0).sub_(1.0)

    def hidden(self) -> torch.Tensor:
        """The hidden weight W_h (its magnitude is the synapse's importance)."""
        return self.hidden_weight

    def task_boundary(self) -> None:
        """With ``reset_at_task``: Adam's moments and step count restart (m = v = 0, t = 0), as a fresh
        optimiser per task does in Laborieux et al.'s code; W_h — the memory — is kept."""
        if self.params.reset_at_task:
            self.exp_avg.zero_()
            self.exp_avg_sq.zero_()
            self.step.zero_()

    def consolidation(self) -> torch.Tensor:
        """f_meta = 1 - tanh²(m·|W_h|): the factor applied to steps that move W_h toward 0."""
        return 1.0 - torch.tanh(self.params.m * self.hidden_weight.abs()).square()

    def _scalars(self) -> tuple[float, ...]:
        p = self.params
        self.step += 1
        t = int(self.step.item())
        b1, b2 = p.betas
        step_size = p.lr / (1.0 - b1 ** t)
        bc2_sqrt = (1.0 - b2 ** t) ** 0.5
        return step_size, b1, b2, bc2_sqrt

    def _update_torch(self, grad: torch.Tensor) -> None:
        p = self.params
        step_size, b1, b2, bc2_sqrt = self._scalars()
        metaplastic_step_torch(self.hidden_weight, self.exp_avg, self.exp_avg_sq, grad.to(self.hidden_weight.dtype),
                               step_size, b1, b2, bc2_sqrt, p.eps, p.m, p.weight_decay, p.grad_clip)

    def _update_numba(self, grad: torch.Tensor) -> None:
        p = self.params
        step_size, b1, b2, bc2_sqrt = self._scalars()
        f = np.float32
        kern = metaplastic_kernel_parallel if self.parallel else metaplastic_kernel
        kern(np_view(self.hidden_weight, "hidden_weight"), np_view(self.exp_avg, "exp_avg"),
             np_view(self.exp_avg_sq, "exp_avg_sq"), np_view(grad, "grad"),
             f(step_size), f(1.0 - b1), f(b2), f(1.0 - b2), f(bc2_sqrt), f(p.eps), f(p.m),
             f(p.weight_decay), f(p.grad_clip))


__all__ = ["MetaplasticBinary", "MetaplasticBinaryParams", "metaplastic_kernel",
           "metaplastic_kernel_parallel", "metaplastic_step_torch"]
