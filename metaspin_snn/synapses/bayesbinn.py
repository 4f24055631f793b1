"""BayesBiNN binary synapse — Meng, Bachmann, Khan, *Training Binary Neural Networks using the Bayesian
Learning Rule*, ICML 2020 (github.com/team-approx-bayes/BayesBiNN, ``optimizers/BayesBiNN.py``).

Mean-field Bernoulli posterior per synapse with natural parameter λ: P(w = +1) = sigmoid(2λ), mean
μ = tanh(λ), variance 1 - tanh²(λ). Training uses a relaxed (Gumbel / concrete) sample::

    ε ~ U(0, 1),  δ = ½·log(ε/(1-ε)),  w = tanh((λ + δ)/τ)

and one step from g = ∂L/∂w (paper Eq. 11 with the code's momentum and 1e-10 guards)::

    s  = (1 - w² + 1e-10) / (τ·(1 - tanh²λ + 1e-10))        (s = 1 if w was not a relaxed sample)
    d  = N·s·g + r·(λ - λ_prior)                             (N: training-set size, r: KL reweight)
    m  ← β·m + (1-β)·d
    λ  ← λ - lr·m / (1 - βᵗ)

With β = 0, r = 1 this is the paper's λ ← (1-α)λ - α[N s g - λ_prior]. ``task_boundary()`` sets
λ_prior ← λ (the paper's continual-learning prior: posterior of the previous task) and restarts m and t
(their script builds a fresh optimiser per task). 1 - tanh²λ is computed as 4e/(1+e)², e = exp(-2|λ|),
in both backends (no cancellation for large |λ|). Evaluation: ``eval_mode`` "mean" (w = tanh λ), "sign"
(sign λ, sign(0) = +1) or "sample" (hard ±1 draw with P(+1) = sigmoid(2λ)); updates taken at such a
point use s = 1 (the code's point-estimate branch). Guards (documented, not in the paper): d is clipped
to ±drive_max and λ to ±lambda_max, so the state stays finite for any finite gradient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from numba import njit, prange

from ._kernels import NJIT, np_view, sech2
from ._random import SeededGenerator
from .base import Backend, SynapseModel, check_range

EvalMode = Literal["mean", "sign", "sample"]
_F1 = np.float32(1.0)
_TINY = np.float32(1e-10)


@dataclass(frozen=True)
class BayesianBinaryParams:
    """Parameters of :class:`BayesianBinary` (paper/code defaults: λ initialised at ±lambda_init with
    random sign, τ the Gumbel-softmax temperature, N the training-set size)."""

    lr: float = 1e-4
    beta: float = 0.0
    tau: float = 1.0
    n_data: float = 1.0
    reweight: float = 1.0
    lambda_init: float = 10.0
    lambda_std: float = 0.0
    lambda_max: float = 100.0
    drive_max: float = 1e30
    eval_mode: EvalMode = "mean"
    seed: int = 0

    def __post_init__(self) -> None:
        check_range(self, "lr", 0.0, None)
        check_range(self, "beta", 0.0, 1.0, hi_open=True)
        check_range(self, "tau", 0.0, None, lo_open=True)
        check_range(self, "n_data", 0.0, None, lo_open=True)
        check_range(self, "reweight", 0.0, None)
        check_range(self, "lambda_max", 0.0, 1e30, lo_open=True)
        check_range(self, "lambda_init", -self.lambda_max, self.lambda_max)
        check_range(self, "lambda_std", 0.0, None)
        check_range(self, "drive_max", 0.0, 1e37, lo_open=True)
        if self.eval_mode not in ("mean", "sign", "sample"):
            raise ValueError("BayesianBinaryParams.eval_mode must be 'mean', 'sign' or 'sample', "
                             f"got {self.eval_mode!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"BayesianBinaryParams.seed must be an int, got {self.seed!r}")


@njit(inline="always", **NJIT)
def _bbinn_elem(lam, mom, lam0, w, g, relaxed, inv_tau, n_data, rw, beta, one_m_beta, step_size, dmax, lmax):
    v = sech2(lam)
    s_rel = (_F1 - w * w + _TINY) * inv_tau / (v + _TINY)
    s = s_rel if relaxed else _F1
    d = n_data * (s * g) + rw * (lam - lam0)
    d = min(max(d, -dmax), dmax)
    mom = beta * mom + one_m_beta * d
    lam = lam - step_size * mom
    lam = min(max(lam, -lmax), lmax)
    return lam, mom


@njit(**NJIT)
def bayesbinn_kernel(lam, mom, lam0, w, g, relaxed, inv_tau, n_data, rw, beta, one_m_beta, step_size, dmax, lmax):
    """In place on flat float32 arrays: one BayesBiNN step (serial)."""
    for i in range(lam.size):
        a, b = _bbinn_elem(lam[i], mom[i], lam0[i], w[i], g[i], relaxed, inv_tau, n_data, rw, beta,
                           one_m_beta, step_size, dmax, lmax)
        lam[i] = a
        mom[i] = b


@njit(parallel=True, **NJIT)
def bayesbinn_kernel_parallel(lam, mom, lam0, w, g, relaxed, inv_tau, n_data, rw, beta, one_m_beta, step_size,
                              dmax, lmax):
    """Same as :func:`bayesbinn_kernel`, multithreaded."""
    for i in prange(lam.size):
        a, b = _bbinn_elem(lam[i], mom[i], lam0[i], w[i], g[i], relaxed, inv_tau, n_data, rw, beta,
                           one_m_beta, step_size, dmax, lmax)
        lam[i] = a
        mom[i] = b


def bernoulli_variance(lam: torch.Tensor) -> torch.Tensor:
    """1 - tanh²(λ) = 4e/(1+e)², e = exp(-2|λ|) (accurate for large |λ|)."""
    e = torch.exp(-2.0 * lam.abs())
    return 4.0 * e / (1.0 + e).square()


def bayesbinn_step_torch(lam: torch.Tensor, mom: torch.Tensor, lam0: torch.Tensor, w: torch.Tensor,
                         g: torch.Tensor, relaxed: bool, tau: float, n_data: float, rw: float, beta: float,
                         step_size: float, dmax: float, lmax: float) -> None:
    """Reference BayesBiNN step in place (any device)."""
    if relaxed:
        s = (1.0 - w * w + 1e-10) * (1.0 / tau) / (bernoulli_variance(lam) + 1e-10)
        d = n_data * (s * g) + rw * (lam - lam0)
    else:
        d = n_data * g + rw * (lam - lam0)
    d = d.clamp(-dmax, dmax)
    mom.mul_(beta).add_((1.0 - beta) * d)
    lam.sub_(step_size * mom).clamp_(-lmax, lmax)


class BayesianBinary(SynapseModel):
    """Binary synapse with a Bernoulli posterior trained by BayesBiNN. State: ``lam`` (λ), ``lam_prior``,
    ``momentum``, ``step``; the current relaxed sample is the effective ``weight``."""

    def __init__(self, shape: tuple[int, ...] | torch.Size, params: BayesianBinaryParams | None = None,
                 backend: Backend = "auto", parallel: bool = False) -> None:
        params = BayesianBinaryParams() if params is None else params
        if not isinstance(params, BayesianBinaryParams):
            raise TypeError(f"BayesianBinary: params must be BayesianBinaryParams, got {type(params).__name__}")
        super().__init__(shape, params, backend)
        self.parallel = bool(parallel)
        gen = torch.Generator().manual_seed(params.seed)
        sign = torch.randint(0, 2, self.shape, generator=gen).float() * 2.0 - 1.0
        lam = sign * (params.lambda_init + params.lambda_std ** 0.5 * torch.randn(self.shape, generator=gen))
        self.register_buffer("lam", lam.clamp(-params.lambda_max, params.lambda_max))
        self.register_buffer("lam_prior", torch.zeros(self.shape))
        self.register_buffer("momentum", torch.zeros(self.shape))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        self._rng = SeededGenerator(params.seed + 1)
        self._relaxed = False

    def _compute_weight(self, sample: bool) -> torch.Tensor:
        lam = self.lam
        self._relaxed = bool(sample)
        if sample:
            u = torch.rand(self.shape, generator=self._rng.get(lam.device), device=lam.device, dtype=lam.dtype)
            u = u.clamp_(min=1e-12)
            delta = 0.5 * torch.log(u / (1.0 - u))
            return torch.tanh((lam + delta) / self.params.tau)
        mode = self.params.eval_mode
        if mode == "mean":
            return torch.tanh(lam)
        if mode == "sign":
            return torch.where(lam >= 0, 1.0, -1.0).to(lam.dtype)
        u = torch.rand(self.shape, generator=self._rng.get(lam.device), device=lam.device, dtype=lam.dtype)
        return torch.where(u < torch.sigmoid(2.0 * lam), 1.0, -1.0).to(lam.dtype)

    def hidden(self) -> torch.Tensor:
        """λ — |λ| is the confidence; the posterior variance is 1 - tanh²(λ)."""
        return self.lam

    def mean(self) -> torch.Tensor:
        """Posterior mean tanh(λ)."""
        return torch.tanh(self.lam)

    def variance(self) -> torch.Tensor:
        """Posterior variance 1 - tanh²(λ)."""
        return bernoulli_variance(self.lam)

    def task_boundary(self) -> None:
        """λ_prior ← λ; momentum and step restart (a fresh optimiser per task, as in the paper's code)."""
        self.lam_prior.copy_(self.lam)
        self.momentum.zero_()
        self.step.zero_()

    def _scalars(self) -> tuple[bool, float]:
        self.step += 1
        t = int(self.step.item())
        b = self.params.beta
        return self._relaxed, self.params.lr / (1.0 - b ** t)

    def _point(self) -> torch.Tensor:
        return self.weight.detach()

    def _update_torch(self, grad: torch.Tensor) -> None:
        p = self.params
        relaxed, step_size = self._scalars()
        bayesbinn_step_torch(self.lam, self.momentum, self.lam_prior, self._point().to(self.lam.device),
                             grad.to(self.lam.dtype), relaxed, p.tau, p.n_data, p.reweight, p.beta, step_size,
                             p.drive_max, p.lambda_max)

    def _update_numba(self, grad: torch.Tensor) -> None:
        p = self.params
        relaxed, step_size = self._scalars()
        f = np.float32
        kern = bayesbinn_kernel_parallel if self.parallel else bayesbinn_kernel
        kern(np_view(self.lam, "lam"), np_view(self.momentum, "momentum"), np_view(self.lam_prior, "lam_prior"),
             np_view(self._point(), "weight"), np_view(grad, "grad"), relaxed, f(1.0 / p.tau), f(p.n_data),
             f(p.reweight), f(p.beta), f(1.0 - p.beta), f(step_size), f(p.drive_max), f(p.lambda_max))

    def get_extra_state(self) -> Any:
        return {"rng": self._rng.state()}

    def set_extra_state(self, state: Any) -> None:
        self._rng.load(state["rng"])


__all__ = ["BayesianBinary", "BayesianBinaryParams", "bayesbinn_kernel", "bayesbinn_kernel_parallel",
           "bayesbinn_step_torch", "bernoulli_variance"]
