"""MESU — Metaplasticity from Synaptic Uncertainty: Bonnet, Cottart, Hirtzlin, Januel, Dalgaty, Vianello,
Querlioz, *Bayesian continual learning and forgetting in neural networks*, Nat. Commun. (2025)
(arXiv:2504.13569); the authors' code kellian-cottart/mesu-pmnist (commit cb38851), ``optimizers/mesu.py``
(``update_mesu``), ``utils/trainFunctions.py`` (``bayesian_loss_fn``), ``customLayers/linears/bayesianLinear.py``.

Each synapse is a Gaussian N(μ, σ²). A training forward pass uses a reparameterised sample
``w = μ + σ·ε``, ε ~ N(0, 1) drawn from the model's seeded generator and kept (buffer ``noise``), so
that from g = ∂C/∂w the update forms ∂C/∂μ = g and ∂C/∂σ = g·ε. With S Monte-Carlo samples per step
(``accumulate()``, see :mod:`.base`) the gradients are the sample means ḡ_μ = ⟨g_s⟩, ḡ_σ = ⟨g_s ε_s⟩ of
the loss C = −Σ_batch ⟨log p_s(y|x)⟩_s — the authors' loss: log-softmax averaged over samples, **summed**
over the minibatch (``bayesian_loss_fn``). One step (``update_mesu``; old (μ, σ) on the right)::

    μ ← μ + η_μ  [ −σ²·ḡ_μ + σ²(μ_p − μ)/(N σ_p²) ]
    σ ← σ + η_σ·½[ −σ²·ḡ_σ + σ(σ_p² − σ²)/(N σ_p²) ]

η_μ = η_σ = 1 (the authors' configs). N counts update steps ("number of batches for synaptic memory"
in ``mesu()``); with the summed loss a step carries the likelihood of B samples, so the memory window
is about N steps = N·B samples (the authors' permuted-MNIST config: B = 1, N = 300,000 = five tasks).
Without data (ḡ = 0) (μ_p, σ_p) is the fixed point; at σ = σ_p, μ − μ_p decays by the factor
1 − η_μ/N per step, for σ ≠ σ_p the factor is 1 − η_μσ²/(Nσ_p²) with the current σ (docs/theory.md).
The prior N(μ_p, σ_p²) is fixed (buffers ``mu_prior``, ``sigma_prior``, so analyses can set them);
``task_boundary()`` leaves it unchanged (MESU needs no task boundaries) unless
``prior_from_posterior=True`` (prior ← posterior: a variant, not the paper's method).

Defaults follow ``configurations/pmnist/mlp-bayesian-mesu.json``: σ_p = 1, μ_p = 0, N = 300,000, and
``BayesianLinear.__init__``'s initialisation ``init="authors"``: μ ~ U(−4/√fan_in, 4/√fan_in),
σ = 2/√fan_in (fan_in = ∏ shape[1:]); ``init="gauss"`` gives μ ~ N(μ_p, mu_init_std²), σ = sigma_init
(this library's earlier initialisation). Evaluation: w = μ (``refresh(sample=False)``), or posterior
samples through :meth:`MESU.draw_eval_sample` when the runner averages ``eval_samples`` predictions
(the authors: 10 samples, log-softmax averaged). Guards (not in the paper's equations, documented):
σ is clamped to [sigma_min, sigma_max] (σ > 0) and μ to ±mu_max, so the state stays finite for any
finite gradient; the authors' optional ``clamp_grad`` (0 in their configs) is not implemented.

Two options, both off by default (the paper's estimator and step), for few Monte-Carlo samples:

* ``antithetic``: samples come in pairs ε, −ε (antithetic variates; Owen, *Monte Carlo theory,
  methods and examples* (2013), §8.2). For a pair, ½[g(μ+σε) − g(μ−σε)]·ε keeps the curvature term
  σ·H·ε² of ⟨g·ε⟩ and cancels its first-order term g(μ)·ε exactly (for a quadratic loss), which
  otherwise dominates the σ step when only one or two samples are drawn; ⟨g⟩ loses the odd terms
  too. Both remain unbiased estimates of the same expectations.
* ``shrink_only``: the σ step uses max(ḡ_σ, 0): data only ever shrink σ, and σ grows back only
  through the prior term σ(σ_p² − σ²)/(Nσ_p²). ḡ_σ ≈ σ·∂²C/∂w², so this keeps the curvature estimate
  non-negative, as Gauss–Newton/Fisher approximations of variational Bayes do (Khan et al., *Fast and
  scalable Bayesian deep learning by weight-perturbation in Adam*, ICML 2018). A variant, not the
  paper's equation: σ ← σ + η_σ·½[ −σ²·max(ḡ_σ, 0) + σ(σ_p² − σ²)/(N σ_p²) ].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numba import njit, prange

from . import triton_updates
from ._kernels import NJIT, np_view
from ._random import SeededGenerator
from .base import Backend, SynapseModel, check_range

_HALF = np.float32(0.5)
_F1 = np.float32(1.0)
_F0 = np.float32(0.0)


@dataclass(frozen=True)
class MESUParams:
    """Parameters of :class:`MESU` (defaults: mesu-pmnist ``configurations/pmnist/mlp-bayesian-mesu.json``
    — lr_μ = lr_σ = 1, σ_p = 1, N = 300,000 update steps; ``init="authors"`` as ``BayesianLinear``).
    ``sigma_init``/``mu_init_std`` are used by ``init="gauss"`` only; ``antithetic`` and
    ``shrink_only`` are the options of the module docstring (off: the paper)."""

    lr_mu: float = 1.0
    lr_sigma: float = 1.0
    mu_prior: float = 0.0
    sigma_prior: float = 1.0
    N: float = 3e5
    init: str = "authors"
    sigma_init: float = 0.1
    mu_init_std: float = 0.05
    sigma_min: float = 1e-6
    sigma_max: float = 10.0
    mu_max: float = 1e6
    prior_from_posterior: bool = False
    antithetic: bool = False
    shrink_only: bool = False
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
        if self.init not in ("authors", "gauss"):
            raise ValueError(f"MESUParams.init must be 'authors' or 'gauss', got {self.init!r}")
        for key in ("prior_from_posterior", "antithetic", "shrink_only"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"MESUParams.{key} must be a bool, got {getattr(self, key)!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"MESUParams.seed must be an int, got {self.seed!r}")


@njit(inline="always", **NJIT)
def _mesu_elem(mu, sig, gmu, gsig, mup, sigp, lr_mu, lr_sig, n, smin, smax, mmax):
    s2 = sig * sig
    sp2 = sigp * sigp
    inv = _F1 / (n * sp2)
    mu_new = mu + lr_mu * (-s2 * gmu + s2 * (mup - mu) * inv)
    sig_new = sig + lr_sig * _HALF * (-s2 * gsig + sig * (sp2 - s2) * inv)
    mu_new = min(max(mu_new, -mmax), mmax)
    sig_new = min(max(sig_new, smin), smax)
    return mu_new, sig_new


@njit(**NJIT)
def mesu_kernel(mu, sig, g, e, mup, sigp, from_grad, shrink, lr_mu, lr_sig, n, smin, smax, mmax):
    """In place on flat float32 arrays: one MESU step (serial). ``from_grad``: ``g`` is one sample's
    ∂C/∂w and ``e`` its ε, so ḡ_μ = g and ḡ_σ = g·ε are formed here (the products never stored);
    else ``g`` = ḡ_μ and ``e`` = ḡ_σ. ``shrink``: ḡ_σ ← max(ḡ_σ, 0). ``mup``/``sigp``: the prior per
    synapse (as long as ``mu``) or one value for all (length 1: two arrays fewer to read). The two
    cases are two loops (one loop with a per-case index does not vectorise)."""
    glo = _F0 if shrink else np.float32(-np.inf)
    if mup.size == mu.size:
        for i in range(mu.size):
            gm = g[i]
            gs = max(e[i] * (gm if from_grad else _F1), glo)  # ḡ_σ = g·ε or e; max with 0 or −inf
            mu[i], sig[i] = _mesu_elem(mu[i], sig[i], gm, gs, mup[i], sigp[i], lr_mu, lr_sig, n, smin, smax, mmax)
    else:
        mp, sp = mup[0], sigp[0]
        for i in range(mu.size):
            gm = g[i]
            gs = max(e[i] * (gm if from_grad else _F1), glo)  # ḡ_σ = g·ε or e; max with 0 or −inf
            mu[i], sig[i] = _mesu_elem(mu[i], sig[i], gm, gs, mp, sp, lr_mu, lr_sig, n, smin, smax, mmax)


@njit(parallel=True, **NJIT)
def mesu_kernel_parallel(mu, sig, g, e, mup, sigp, from_grad, shrink, lr_mu, lr_sig, n, smin, smax, mmax):
    """Same as :func:`mesu_kernel`, multithreaded."""
    glo = _F0 if shrink else np.float32(-np.inf)
    if mup.size == mu.size:
        for i in prange(mu.size):
            gm = g[i]
            gs = max(e[i] * (gm if from_grad else _F1), glo)  # ḡ_σ = g·ε or e; max with 0 or −inf
            mu[i], sig[i] = _mesu_elem(mu[i], sig[i], gm, gs, mup[i], sigp[i], lr_mu, lr_sig, n, smin, smax, mmax)
    else:
        mp, sp = mup[0], sigp[0]
        for i in prange(mu.size):
            gm = g[i]
            gs = max(e[i] * (gm if from_grad else _F1), glo)  # ḡ_σ = g·ε or e; max with 0 or −inf
            mu[i], sig[i] = _mesu_elem(mu[i], sig[i], gm, gs, mp, sp, lr_mu, lr_sig, n, smin, smax, mmax)


def mesu_step_torch(mu: torch.Tensor, sig: torch.Tensor, gmu: torch.Tensor, gsig: torch.Tensor,
                    mup: torch.Tensor, sigp: torch.Tensor, lr_mu: float, lr_sig: float, n: float,
                    smin: float, smax: float, mmax: float) -> None:
    """Reference MESU step in place (any device) from ḡ_μ = ⟨g⟩ and ḡ_σ = ⟨g·ε⟩."""
    s2 = sig * sig
    sp2 = sigp * sigp
    inv = 1.0 / (n * sp2)
    mu_new = mu + lr_mu * (-s2 * gmu + s2 * (mup - mu) * inv)
    sig_new = sig + (lr_sig * 0.5) * (-s2 * gsig + sig * (sp2 - s2) * inv)
    mu.copy_(mu_new.clamp_(-mmax, mmax))
    sig.copy_(sig_new.clamp_(smin, smax))


class MESU(SynapseModel):
    """Gaussian synapse N(μ, σ²) trained by MESU. State: ``mu``, ``sigma``, ``mu_prior``,
    ``sigma_prior`` (all in ``state_dict``), ``noise`` = ε of the current sample (not persistent)."""

    #: mesu-pmnist: ``n_train_samples`` = ``n_test_samples`` = 10 (configurations/pmnist/
    #: mlp-bayesian-mesu.json), log-softmax averaged over samples and summed over the batch
    #: (utils/trainFunctions.py ``bayesian_loss_fn``, utils/testFunctions.py ``compute_accuracy``).
    PROTOCOL = {"train_samples": 10, "eval_samples": 10, "eval_average": "log_softmax", "loss_reduction": "sum"}

    def __init__(self, shape: tuple[int, ...] | torch.Size, params: MESUParams | None = None,
                 backend: Backend = "auto", parallel: bool = False) -> None:
        params = MESUParams() if params is None else params
        if not isinstance(params, MESUParams):
            raise TypeError(f"MESU: params must be MESUParams, got {type(params).__name__}")
        super().__init__(shape, params, backend)
        self.parallel = bool(parallel)
        gen = torch.Generator().manual_seed(params.seed)
        if params.init == "authors":  # BayesianLinear: lim = 4/√fan_in, μ ~ U(−lim, lim), σ = lim/2
            fan_in = int(np.prod(self.shape[1:])) if len(self.shape) > 1 else 1
            lim = 4.0 / fan_in ** 0.5
            mu0 = (torch.rand(self.shape, generator=gen) * 2.0 - 1.0) * lim
            sig0 = torch.full(self.shape, float(min(max(0.5 * lim, params.sigma_min), params.sigma_max)))
        else:
            mu0 = params.mu_prior + params.mu_init_std * torch.randn(self.shape, generator=gen)
            sig0 = torch.full(self.shape, float(params.sigma_init))
        self.register_buffer("mu", mu0)
        self.register_buffer("sigma", sig0)
        self.register_buffer("mu_prior", torch.full(self.shape, float(params.mu_prior)))
        self.register_buffer("sigma_prior", torch.full(self.shape, float(params.sigma_prior)))
        self.register_buffer("noise", torch.zeros(self.shape), persistent=False)
        self._rng = SeededGenerator(params.seed + 1)
        self._mirror: torch.Tensor | None = None  # ε of a pending antithetic pair's first draw
        self._prior_key: tuple[int, ...] | None = None  # (data_ptr, version) of the priors last checked
        self._prior_uniform = False

    SAMPLE_BATCH = True

    def _compute_weight(self, sample: bool) -> torch.Tensor:
        """w = μ + σ·ε (training, fresh ε kept in ``noise``; ``mc_samples`` = S ≥ 2: S stacked draws,
        ``[S, *shape]``) or μ (evaluation, ε = 0). ``antithetic``: every second draw is −ε of the one
        before (stacked: ε_1…ε_⌈S/2⌉ then their negatives; odd S leaves one unpaired)."""
        anti = self.params.antithetic
        if sample and self.mc_samples >= 2:
            s = self.mc_samples
            n_draw = (s + 1) // 2 if anti else s
            eps = torch.randn((n_draw, *self.shape), generator=self._rng.get(self.mu.device),
                              device=self.mu.device, dtype=self.mu.dtype)
            self.noise = torch.cat([eps, -eps])[:s] if anti else eps
            return self.mu + self.sigma * self.noise
        if self.noise.shape != self.mu.shape:
            self.noise = torch.zeros_like(self.mu)
        if sample:
            if anti and self._mirror is not None:  # second draw of an antithetic pair: ε → −ε
                self.noise.copy_(self._mirror.neg_())
                self._mirror = None
            else:
                self.noise.copy_(torch.randn(self.shape, generator=self._rng.get(self.mu.device),
                                             device=self.mu.device, dtype=self.mu.dtype))
                self._mirror = self.noise.clone() if anti else None
            return self.mu + self.sigma * self.noise
        self.noise.zero_()
        return self.mu.clone()

    def train(self, mode: bool = True) -> "MESU":
        self._mirror = None  # a pair never spans a change between training and evaluation
        return super().train(mode)

    def draw_eval_sample(self) -> torch.Tensor:
        """One posterior sample w = μ + σε for a Monte-Carlo evaluation (the authors average the
        log-softmax of ``n_test_samples`` such networks)."""
        return self.refresh(sample=True)

    def hidden(self) -> torch.Tensor:
        """σ — the synapse's uncertainty; σ² is its learning rate (small σ = consolidated)."""
        return self.sigma

    def task_boundary(self) -> None:
        """No-op (MESU forgets continuously through N) unless ``prior_from_posterior``."""
        if self.params.prior_from_posterior:
            self.mu_prior.copy_(self.mu)
            self.sigma_prior.copy_(self.sigma)

    def _sample_stats(self, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(g, g·ε) of the current sample: ∂C/∂μ and ∂C/∂σ."""
        g = grad.to(self.mu.dtype)
        return (g, g * self.noise)

    TRITON = True

    def _update_stats(self, stats: tuple[torch.Tensor, ...]) -> None:
        gmu, gsig = stats
        if self.use_numba(gmu):
            self._step_numba(gmu, gsig)
        elif self.use_triton(gmu):
            self._step_triton(gmu, gsig)
        else:
            self._step_torch(gmu, gsig)

    def _sigma_grad(self, gsig: torch.Tensor) -> torch.Tensor:
        """ḡ_σ as the step uses it (``shrink_only``: max(ḡ_σ, 0)); ends a pending antithetic pair."""
        self._mirror = None  # every step starts a new antithetic pair
        return gsig.clamp(min=0.0) if self.params.shrink_only else gsig

    def _uniform_prior(self) -> bool:
        """Whether every synapse has the same prior (checked again only after a prior buffer is
        written: its version counter and data pointer)."""
        key = (self.mu_prior.data_ptr(), self.mu_prior._version, self.sigma_prior.data_ptr(),
               self.sigma_prior._version)
        if self._prior_key != key:
            mp, sp = self.mu_prior.reshape(-1), self.sigma_prior.reshape(-1)
            uniform = bool((mp == mp[0]).all() and (sp == sp[0]).all()) if mp.numel() > 1 else False
            self._prior_uniform = uniform
            self._prior_key = key
        return self._prior_uniform

    def _prior_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(μ_p, σ_p) for the kernel: one value each when every synapse has the same prior, else the
        per-synapse buffers."""
        if self._uniform_prior():
            return np_view(self.mu_prior, "mu_prior")[:1], np_view(self.sigma_prior, "sigma_prior")[:1]
        return np_view(self.mu_prior, "mu_prior"), np_view(self.sigma_prior, "sigma_prior")

    def _step_numba(self, g: torch.Tensor, e: torch.Tensor, from_grad: bool = False) -> None:
        p = self.params
        self._mirror = None  # every step starts a new antithetic pair
        f = np.float32
        kern = mesu_kernel_parallel if self.parallel else mesu_kernel
        mup, sigp = self._prior_arrays()
        kern(np_view(self.mu, "mu"), np_view(self.sigma, "sigma"), np_view(g.contiguous(), "grad_mu"),
             np_view(e.contiguous(), "noise" if from_grad else "grad_sigma"), mup, sigp, from_grad, p.shrink_only,
             f(p.lr_mu), f(p.lr_sigma), f(p.N), f(p.sigma_min), f(p.sigma_max), f(p.mu_max))

    def _step_torch(self, gmu: torch.Tensor, gsig: torch.Tensor) -> None:
        p = self.params
        gsig = self._sigma_grad(gsig)
        mesu_step_torch(self.mu, self.sigma, gmu, gsig, self.mu_prior, self.sigma_prior,
                        p.lr_mu, p.lr_sigma, p.N, p.sigma_min, p.sigma_max, p.mu_max)

    def _step_triton(self, g: torch.Tensor, e: torch.Tensor, from_grad: bool = False) -> None:
        """The Triton kernel (:func:`.triton_updates.mesu_step`): the torch step's operations, fused."""
        p = self.params
        self._mirror = None  # every step starts a new antithetic pair
        triton_updates.mesu_step(self.mu, self.sigma, g.contiguous(), e.contiguous(), self.mu_prior,
                                 self.sigma_prior, self._uniform_prior(), from_grad, p.shrink_only, p.lr_mu,
                                 p.lr_sigma, p.N, p.sigma_min, p.sigma_max, p.mu_max)

    def _update_torch(self, grad: torch.Tensor) -> None:
        self._step_torch(*self._sample_stats(grad))

    def _update_triton(self, grad: torch.Tensor) -> None:
        self._step_triton(grad.to(self.mu.dtype), self.noise, from_grad=True)  # g·ε formed in the kernel

    def _update_numba(self, grad: torch.Tensor) -> None:
        self._step_numba(grad.to(self.mu.dtype), self.noise, from_grad=True)  # g·ε formed in the kernel

    def get_extra_state(self) -> Any:
        return {"rng": self._rng.state()}

    def set_extra_state(self, state: Any) -> None:
        self._rng.load(state["rng"])


__all__ = ["MESU", "MESUParams", "mesu_kernel", "mesu_kernel_parallel", "mesu_step_torch"]
