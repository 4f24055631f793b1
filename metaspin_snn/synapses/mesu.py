"""MESU — Metaplasticity from Synaptic Uncertainty: Bonnet, Cottart, Hirtzlin, Januel, Dalgaty, Vianello,
Querlioz, *Bayesian continual learning and forgetting in neural networks*, Nat. Commun. (2025)
(arXiv:2504.13569).

Each synapse is a Gaussian N(μ, σ²). Training forward passes use a reparameterised sample
``w = μ + σ·ε``, ε ~ N(0, 1) drawn from the model's seeded generator and **kept** (buffer ``noise``) so
that the update can form ∂C/∂μ = g and ∂C/∂σ = g·ε from g = ∂C/∂w. Evaluation uses w = μ (ε = 0).
One step (the issue's form of the paper's update; σ² is each synapse's learning rate)::

    μ ← μ + η_μ  [ -σ²·g     + σ²(μ_p - μ)/(N σ_p²) ]
    σ ← σ + η_σ·½[ -σ²·g·ε   + σ(σ_p² - σ²)/(N σ_p²) ]

with the old (μ, σ) on the right. N is the memory window in minibatches: without data μ relaxes to μ_p
at rate η_μσ²/(Nσ_p²) per step and σ to σ_p, so old information is forgotten over ~N steps. The prior
N(μ_p, σ_p²) is the paper's fixed prior; it is stored per synapse (buffers ``mu_prior``, ``sigma_prior``)
so analyses can set it, and ``task_boundary()`` leaves it unchanged (MESU needs no task boundaries)
unless ``prior_from_posterior=True`` (then prior ← posterior, a variant, not the paper's method).
Guards (not in the paper's equations, documented): σ is clamped to [sigma_min, sigma_max] (σ > 0) and μ to
±mu_max, so the state stays finite for any finite gradient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numba import njit, prange

from ._kernels import NJIT, np_view
from ._random import SeededGenerator
from .base import Backend, SynapseModel, check_range

_HALF = np.float32(0.5)
_F1 = np.float32(1.0)


@dataclass(frozen=True)
class MESUParams:
    """Parameters of :class:`MESU`. ``N`` is in minibatches (paper: dataset size / batch size or more);
    σ_p = 0.1 (≈ √0.01, the paper's typical prior)."""

    lr_mu: float = 1.0
    lr_sigma: float = 1.0
    mu_prior: float = 0.0
    sigma_prior: float = 0.1
    N: float = 1e5
    sigma_init: float = 0.1
    mu_init_std: float = 0.05
    sigma_min: float = 1e-6
    sigma_max: float = 10.0
    mu_max: float = 1e6
    prior_from_posterior: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_range(self, "lr_mu", 0.0, None)
        check_range(self, "lr_sigma", 0.0, None)
        check_range(self, "mu_prior", -1e6, 1e6)
        check_range(self, "sigma_prior", 0.0, 1e3, lo_open=True)
        check_range(self, "N", 0.0, None, lo_open=True)
        check_range(self, "sigma_min", 0.0, None, lo_open=True)
        check_range(self, "sigma_max", self.sigma_min, 1e6)
        check_range(self, "sigma_init", self.sigma_min, self.sigma_max)
        check_range(self, "mu_init_std", 0.0, None)
        check_range(self, "mu_max", 0.0, 1e30, lo_open=True)
        if not isinstance(self.prior_from_posterior, bool):
            raise ValueError(f"MESUParams.prior_from_posterior must be a bool, got {self.prior_from_posterior!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"MESUParams.seed must be an int, got {self.seed!r}")


@njit(inline="always", **NJIT)
def _mesu_elem(mu, sig, eps, g, mup, sigp, lr_mu, lr_sig, n, smin, smax, mmax):
    s2 = sig * sig
    sp2 = sigp * sigp
    inv = _F1 / (n * sp2)
    mu_new = mu + lr_mu * (-s2 * g + s2 * (mup - mu) * inv)
    sig_new = sig + lr_sig * _HALF * (-s2 * (g * eps) + sig * (sp2 - s2) * inv)
    mu_new = min(max(mu_new, -mmax), mmax)
    sig_new = min(max(sig_new, smin), smax)
    return mu_new, sig_new


@njit(**NJIT)
def mesu_kernel(mu, sig, eps, g, mup, sigp, lr_mu, lr_sig, n, smin, smax, mmax):
    """In place on flat float32 arrays: one MESU step (serial)."""
    for i in range(mu.size):
        a, b = _mesu_elem(mu[i], sig[i], eps[i], g[i], mup[i], sigp[i], lr_mu, lr_sig, n, smin, smax, mmax)
        mu[i] = a
        sig[i] = b


@njit(parallel=True, **NJIT)
def mesu_kernel_parallel(mu, sig, eps, g, mup, sigp, lr_mu, lr_sig, n, smin, smax, mmax):
    """Same as :func:`mesu_kernel`, multithreaded."""
    for i in prange(mu.size):
        a, b = _mesu_elem(mu[i], sig[i], eps[i], g[i], mup[i], sigp[i], lr_mu, lr_sig, n, smin, smax, mmax)
        mu[i] = a
        sig[i] = b


def mesu_step_torch(mu: torch.Tensor, sig: torch.Tensor, eps: torch.Tensor, g: torch.Tensor,
                    mup: torch.Tensor, sigp: torch.Tensor, lr_mu: float, lr_sig: float, n: float,
                    smin: float, smax: float, mmax: float) -> None:
    """Reference MESU step in place (any device)."""
    s2 = sig * sig
    sp2 = sigp * sigp
    inv = 1.0 / (n * sp2)
    mu_new = mu + lr_mu * (-s2 * g + s2 * (mup - mu) * inv)
    sig_new = sig + (lr_sig * 0.5) * (-s2 * (g * eps) + sig * (sp2 - s2) * inv)
    mu.copy_(mu_new.clamp_(-mmax, mmax))
    sig.copy_(sig_new.clamp_(smin, smax))


class MESU(SynapseModel):
    """Gaussian synapse N(μ, σ²) trained by MESU. State: ``mu``, ``sigma``, ``mu_prior``,
    ``sigma_prior`` (all in ``state_dict``), ``noise`` = ε of the current sample (not persistent)."""

    def __init__(self, shape: tuple[int, ...] | torch.Size, params: MESUParams | None = None,
                 backend: Backend = "auto", parallel: bool = False) -> None:
        params = MESUParams() if params is None else params
        if not isinstance(params, MESUParams):
            raise TypeError(f"MESU: params must be MESUParams, got {type(params).__name__}")
        super().__init__(shape, params, backend)
        self.parallel = bool(parallel)
        gen = torch.Generator().manual_seed(params.seed)
        self.register_buffer("mu", params.mu_prior + params.mu_init_std * torch.randn(self.shape, generator=gen))
        self.register_buffer("sigma", torch.full(self.shape, float(params.sigma_init)))
        self.register_buffer("mu_prior", torch.full(self.shape, float(params.mu_prior)))
        self.register_buffer("sigma_prior", torch.full(self.shape, float(params.sigma_prior)))
        self.register_buffer("noise", torch.zeros(self.shape), persistent=False)
        self._rng = SeededGenerator(params.seed + 1)

    def _compute_weight(self, sample: bool) -> torch.Tensor:
        """w = μ + σ·ε (training, fresh ε kept in ``noise``) or μ (evaluation, ε = 0)."""
        if sample:
            self.noise.copy_(torch.randn(self.shape, generator=self._rng.get(self.mu.device),
                                         device=self.mu.device, dtype=self.mu.dtype))
            return self.mu + self.sigma * self.noise
        self.noise.zero_()
        return self.mu.clone()

    def hidden(self) -> torch.Tensor:
        """σ — the synapse's uncertainty; σ² is its learning rate (small σ = consolidated)."""
        return self.sigma

    def task_boundary(self) -> None:
        """No-op (MESU forgets continuously through N) unless ``prior_from_posterior``."""
        if self.params.prior_from_posterior:
            self.mu_prior.copy_(self.mu)
            self.sigma_prior.copy_(self.sigma)

    def _update_torch(self, grad: torch.Tensor) -> None:
        p = self.params
        mesu_step_torch(self.mu, self.sigma, self.noise, grad.to(self.mu.dtype), self.mu_prior, self.sigma_prior,
                        p.lr_mu, p.lr_sigma, p.N, p.sigma_min, p.sigma_max, p.mu_max)

    def _update_numba(self, grad: torch.Tensor) -> None:
        p = self.params
        f = np.float32
        kern = mesu_kernel_parallel if self.parallel else mesu_kernel
        kern(np_view(self.mu, "mu"), np_view(self.sigma, "sigma"), np_view(self.noise, "noise"),
             np_view(grad, "grad"), np_view(self.mu_prior, "mu_prior"), np_view(self.sigma_prior, "sigma_prior"),
             f(p.lr_mu), f(p.lr_sigma), f(p.N), f(p.sigma_min), f(p.sigma_max), f(p.mu_max))

    def get_extra_state(self) -> Any:
        return {"rng": self._rng.state()}

    def set_extra_state(self, state: Any) -> None:
        self._rng.load(state["rng"])


__all__ = ["MESU", "MESUParams", "mesu_kernel", "mesu_kernel_parallel", "mesu_step_torch"]
