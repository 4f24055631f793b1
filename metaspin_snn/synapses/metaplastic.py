"""Metaplastic binary synapse — Laborieux et al., *Synaptic metaplasticity in binarized neural
networks*, Nat. Commun. 12:2549 (2021), their ``Adam_meta`` optimiser (github.com/Laborieux-Axel/
SynapticMetaplasticityBNN, commit 5351570; line numbers below are of
``Continual_Learning_Fig-2abcdefgh-3abcd-5cde/models_utils.py`` and ``.../main.py`` there).

Hidden weight ``W_h``, effective weight ``w = sign(W_h)``. One step from ``g = ∂L/∂w`` (straight-
through: their ``train`` copies ``p.org`` = W_h into ``p.data`` before ``optimizer.step()``, so the
gradient w.r.t. the binary weight drives W_h), with the default ``eps_mode="adam_meta"``::

    g   ← g + wd·W_h                              (models_utils.py L369-370: L2 decay, before the moments)
    g   ← clip(g, ±grad_clip)                     (ours only: a finiteness guard, see below)
    m   ← β₁m + (1-β₁)g                           (L373)
    v   ← β₂v + (1-β₂)g²                          (L374)
    d   = √v + ε                                  (L381: ε added *before* bias correction)
    α   = lr·√(1-β₂ᵗ) / (1-β₁ᵗ)                   (L384-386)
    u   = f_meta·m   if sign(W_h)·m > 0   else m  (L389-390, L397-399: the step moves W_h toward 0)
    W_h ← W_h - α·u/d,     f_meta = 1 - tanh²(m_meta·|W_h|)          (L397)

The consolidation test uses m *after* its update and W_h *before* the step, as there. ``eps_mode="torch"``
puts ε after the bias correction, as ``torch.optim.Adam`` / Kingma & Ba Alg. 1 do::

    d = √v / √(1-β₂ᵗ) + ε,     α = lr / (1-β₁ᵗ)

The two differ only in where ε sits: "adam_meta" is the torch form with ε_t = ε/√(1-β₂ᵗ) (≈ 31.6·ε at
t = 1, → ε as t grows), so they differ wherever |g| ≲ ε_t, most of all in the first steps of each task
when the optimiser restarts. "torch" is kept as a named option because the runs in results/README.md
(§9's ε study among them) were made with it; with ``m_meta = 0`` it is exactly ``torch.optim.Adam`` on
W_h (bit for bit, torch backend), and "adam_meta" with m_meta = 0 is the authors' plain Adam (their bias
branch, L394-395).

sign(0): the authors' ``torch.sign`` gives 0 (a zero binary weight, consolidation condition false); here
**sign(0) = +1** (also for -0.0), so the effective weight is always ±1, the two states of a binary
device. The update is unaffected: at W_h = 0, f_meta = 1 - tanh²(0) = 1 and both branches give u = m.
Only the forward value of a synapse whose W_h is exactly 0 differs — measure-zero for the continuous
init (of order 2⁻²⁴ per synapse for a float32 uniform draw) and for the steps that follow.

``grad_clip`` (default 1e15, absent from their code) only guards finiteness: above ~1.8e19, g²
overflows float32 and Adam's state becomes inf; gradients with |g + wd·W_h| ≤ grad_clip are untouched.

Kernel: one pass, branch-free (the consolidation test is a select), ``error_model='numpy'``; f_meta is
evaluated as sech²(x) = 4e/(1+e)², e = exp(-2|x|) with a vectorisable exp (``_kernels.sech2``, rel.
error < 3e-7, no 1 - tanh² cancellation), faster here than a rational tanh (no SVML, so ``math.tanh``
would be a scalar libm call). The torch reference uses ``torch.tanh``. Both backends take the same
per-step scalars from ``_scalars`` (the ε placement is chosen there: for "adam_meta" the kernel's
``bc2_sqrt`` is 1 and the step size carries √(1-β₂ᵗ)).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numba import njit, prange

from . import triton_updates
from ._kernels import NJIT, np_view, sech2
from .base import Backend, SynapseModel, check_range

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)

EPS_MODES = ("adam_meta", "torch")
INITS = ("uniform", "gauss")


@dataclass(frozen=True)
class MetaplasticBinaryParams:
    """Parameters of :class:`MetaplasticBinary`. Defaults follow the authors' code (commit 5351570,
    ``Continual_Learning_Fig-2abcdefgh-3abcd-5cde/``) and their README's permuted-MNIST command:

    * ``lr = 0.005`` — main.py L27 (``--lr`` default; README commands pass ``--lr 0.005``).
    * ``betas = (0.9, 0.999)``, ``eps = 1e-8`` — ``Adam_meta.__init__`` defaults, models_utils.py L308
      (main.py L215 passes neither).
    * ``eps_mode = "adam_meta"`` — ε before the bias correction, models_utils.py L381, L384-386;
      ``"torch"``: torch.optim.Adam's placement (module docstring).
    * ``m = 1.35`` — README, Fig. 2(d) command ``--meta 1.35`` (main.py's own ``--meta`` default,
      L31, is 0.0: no metaplasticity).
    * ``weight_decay = 0.0`` — main.py L38 (``--decay`` default); the README's Fig. 2 commands pass
      ``--decay 1e-7``, its Fig. 3 ones 1e-8. Applied as models_utils.py L369-370.
    * ``init = "uniform"``, ``init_scale = 0.1`` — main.py L39-40 (``--init uniform``,
      ``--init-width 0.1``), used by ``BNN`` at models_utils.py L111-114: "uniform" draws
      U(-init_scale/2, init_scale/2) (so U(-0.05, 0.05) by default), "gauss" draws N(0, init_scale²).
    * ``reset_at_task = True`` — main.py L213-215 builds a fresh ``Adam_meta`` for every task, so
      ``task_boundary()`` zeroes m, v and t (W_h is kept); False keeps them across tasks.
    * ``grad_clip = 1e15`` — ours (finiteness guard; not in their code).
    """

    lr: float = 0.005
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    eps_mode: str = "adam_meta"
    m: float = 1.35
    weight_decay: float = 0.0
    init: str = "uniform"
    init_scale: float = 0.1
    grad_clip: float = 1e15
    reset_at_task: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_range(self, "lr", 0.0, None)
        if (not isinstance(self.betas, tuple) or len(self.betas) != 2
                or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0.0 <= b < 1.0
                           for b in self.betas)):
            raise ValueError(f"MetaplasticBinaryParams.betas must be a pair of numbers in [0, 1), got {self.betas!r}")
        check_range(self, "eps", 0.0, None, lo_open=True)
        if self.eps_mode not in EPS_MODES:
            raise ValueError(f"MetaplasticBinaryParams.eps_mode must be one of {EPS_MODES}, got {self.eps_mode!r}")
        check_range(self, "m", 0.0, None)
        check_range(self, "weight_decay", 0.0, None)
        if self.init not in INITS:
            raise ValueError(f"MetaplasticBinaryParams.init must be one of {INITS}, got {self.init!r}")
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
    """In place on flat float32 arrays: one ``Adam_meta`` step (serial), denominator
    ``√v / bc2_sqrt + eps`` and step ``step_size`` (``MetaplasticBinary._scalars`` picks them per
    ``eps_mode``; ``b1c = 1-β₁``, ``b2c = 1-β₂``)."""
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
    """Reference ``Adam_meta`` step in place (any device), same equations and scalars as the kernel."""
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
    """Binary synapse ``sign(W_h)`` (sign(0) = +1) with Laborieux et al.'s metaplastic Adam
    (``Adam_meta``) on the hidden weight ``W_h``; equations and defaults in the module docstring and
    :class:`MetaplasticBinaryParams`.

    State buffers: ``hidden_weight`` (W_h), ``exp_avg`` (m), ``exp_avg_sq`` (v), ``step`` (t).
    ``parallel=True`` runs the multithreaded Numba kernel. Monte-Carlo ``accumulate()`` uses the base
    class's default (the summed per-sample gradients feed one ordinary step).
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
        if params.init == "uniform":   # models_utils.py L113-114: uniform_(a=-width/2, b=width/2)
            w_h = torch.empty(self.shape).uniform_(-params.init_scale / 2, params.init_scale / 2, generator=gen)
        else:                          # models_utils.py L111-112: normal_(mean=0, std=width)
            w_h = torch.randn(self.shape, generator=gen) * params.init_scale
        self.register_buffer("hidden_weight", w_h)
        self.register_buffer("exp_avg", torch.zeros(self.shape))
        self.register_buffer("exp_avg_sq", torch.zeros(self.shape))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def _compute_weight(self, sample: bool) -> torch.Tensor:
        """sign(W_h) with sign(0) = +1 (the authors' torch.sign gives 0; see the module docstring).
        Deterministic; ``sample`` is ignored."""
        h = self.hidden_weight  # (h >= 0)·2 − 1: same values as where(h >= 0, 1, −1), ~8× faster on CPU
        return (h >= 0).to(h.dtype).mul_(2.0).sub_(1.0)

    def hidden(self) -> torch.Tensor:
        """The hidden weight W_h (its magnitude is the synapse's importance)."""
        return self.hidden_weight

    def task_boundary(self) -> None:
        """With ``reset_at_task`` (default): Adam's moments and step count restart (m = v = 0, t = 0),
        as the fresh ``Adam_meta`` built for every task does in the authors' main.py (L213-215); W_h —
        the memory — is kept."""
        if self.params.reset_at_task:
            self.exp_avg.zero_()
            self.exp_avg_sq.zero_()
            self.step.zero_()

    def consolidation(self) -> torch.Tensor:
        """f_meta = 1 - tanh²(m·|W_h|): the factor applied to steps that move W_h toward 0."""
        return 1.0 - torch.tanh(self.params.m * self.hidden_weight.abs()).square()

    def _scalars(self) -> tuple[float, ...]:
        """Advance t; return (step_size, β₁, β₂, bc2_sqrt, ε) for the denominator √v/bc2_sqrt + ε.
        "adam_meta": bc2_sqrt = 1, step_size = lr·√(1-β₂ᵗ)/(1-β₁ᵗ) (models_utils.py L381, L384-386),
        i.e. torch's form with ε_t = ε/√(1-β₂ᵗ); "torch": bc2_sqrt = √(1-β₂ᵗ), step_size = lr/(1-β₁ᵗ)."""
        p = self.params
        self.step += 1
        t = int(self.step.item())
        b1, b2 = p.betas
        bc1 = 1.0 - b1 ** t
        bc2_sqrt = (1.0 - b2 ** t) ** 0.5  # as before eps_mode existed: "torch" stays bit-identical
        if p.eps_mode == "adam_meta":
            return p.lr * bc2_sqrt / bc1, b1, b2, 1.0, p.eps
        return p.lr / bc1, b1, b2, bc2_sqrt, p.eps

    def _update_torch(self, grad: torch.Tensor) -> None:
        p = self.params
        step_size, b1, b2, bc2_sqrt, eps = self._scalars()
        metaplastic_step_torch(self.hidden_weight, self.exp_avg, self.exp_avg_sq, grad.to(self.hidden_weight.dtype),
                               step_size, b1, b2, bc2_sqrt, eps, p.m, p.weight_decay, p.grad_clip)

    TRITON = True

    def _update_triton(self, grad: torch.Tensor) -> None:
        p = self.params
        step_size, b1, b2, bc2_sqrt, eps = self._scalars()
        triton_updates.metaplastic_step(self.hidden_weight, self.exp_avg, self.exp_avg_sq, grad, step_size, b1,
                                        b2, bc2_sqrt, eps, p.m, p.weight_decay, p.grad_clip)

    def _update_numba(self, grad: torch.Tensor) -> None:
        p = self.params
        step_size, b1, b2, bc2_sqrt, eps = self._scalars()
        f = np.float32
        kern = metaplastic_kernel_parallel if self.parallel else metaplastic_kernel
        kern(np_view(self.hidden_weight, "hidden_weight"), np_view(self.exp_avg, "exp_avg"),
             np_view(self.exp_avg_sq, "exp_avg_sq"), np_view(grad, "grad"),
             f(step_size), f(1.0 - b1), f(b2), f(1.0 - b2), f(bc2_sqrt), f(eps), f(p.m),
             f(p.weight_decay), f(p.grad_clip))


__all__ = ["EPS_MODES", "INITS", "MetaplasticBinary", "MetaplasticBinaryParams", "metaplastic_kernel",
           "metaplastic_kernel_parallel", "metaplastic_step_torch"]
