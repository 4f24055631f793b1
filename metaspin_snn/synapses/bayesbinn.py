"""BayesBiNN binary synapse — Meng, Bachmann, Khan, *Training Binary Neural Networks using the Bayesian
Learning Rule*, ICML 2020; a re-implementation of the authors' code github.com/team-approx-bayes/BayesBiNN
(commit 67e0c6f7d19c22ebf5bfee8360fd734347f26057): ``optimizers/BayesBiNN.py`` (class ``BayesBiNN``),
its continual-learning driver ``main_permute_mnist_CL.py`` and ``utils/train_cl_utils.py``. Line numbers
below refer to that commit.

Mean-field Bernoulli posterior per synapse with natural parameter λ: P(w = +1) = sigmoid(2λ), mean
tanh(λ). Initialisation (BayesBiNN.py:71-72): λ = ±(λ_init + √lambda_std·n), n ~ N(0, 1), random sign
(``lambda_std`` is a variance, as the code's ``np.sqrt(lamda_std)``). A training forward pass uses a
relaxed (Gumbel/concrete) sample from uniform noise u ~ U[0, 1) (BayesBiNN.py:156-160)::

    w = tanh((log(u/(1−u))/2 + λ)/τ)

and, from g = ∂L/∂w of the per-batch loss (their ``nn.CrossEntropyLoss()``: mean over the batch),
one step (BayesBiNN.py:175-193; S Monte-Carlo samples s = 1..S, N = training-set size)::

    scale_s = (1 − w_s·w_s + 1e-10)/τ/(1 − μ·μ + 1e-10)                          (:175)
    ĝ       = N/S · Σ_s scale_s·g_s                                              (:176-178)
    m       ← β·m + (1−β)·(ĝ + r·(λ − λ_prior))                                  (:182)
    λ       ← λ − lr·m/(1 − βᵗ)                                                  (:188-191)
    μ       ← tanh(λ before this step)                                           (:193)

**Lagged μ** (``lagged_mu=True``, default). Line 193 assigns ``tanh(lamda)`` with the local ``lamda``
bound at line 125, *before* line 191 rebinds ``self.state['lamda']``: the μ in the next step's scale is
tanh of the λ one update older than the λ the sample is drawn from (steps 1 and 2 both use tanh(λ₀)).
The model keeps it in the buffer ``lam_mu`` (μ = tanh(lam_mu), property :attr:`mu`, the code's
``state['mu']``); ``lagged_mu=False`` uses μ = tanh(λ) (the paper's equation). It is copied because a
re-implementation should reproduce the code's numbers, and the lag is not negligible: with the
float32 floor below, a λ that leaves |λ| ≳ 9 keeps the large scale for one more step.

**1 − μ·μ as the code computes it** (``variance="code"``, default): their tensors are float32 (torch's
default dtype), where tanh(λ) rounds to exactly ±1 for |λ| ≳ 9 and 1 − μ·μ = 0 leaves the 1e-10 guard:
the scale is then (1 − w² + 1e-10)/τ/1e-10, which for a saturated sample (1 − w² = 0 in float32, all
samples when |λ| ≳ 8.4 because float32 u ≥ 2⁻²⁴) is 1/τ up to rounding — about 80 times the exact value
1e-10/τ/(1 − tanh²10 + 1e-10) at the initial |λ| = 10 with τ = 1e-2. The model evaluates the code's
expression in the state's dtype with μ = tanh(lam_mu) correctly rounded to that dtype (computed in
float64 by torch for both backends: between 6 ≲ |λ| ≲ 9 the float32 1 − μ·μ moves in steps of ~1.2e-7,
so one ulp of μ changes the scale by up to tens of percent; the code's float32 ``torch.tanh`` is within
1 ulp of the correctly rounded value and which ulp it returns depends on the device, so the model uses
the device-independent value, and numba, torch-CPU and CUDA agree on it).
``variance="exact"`` uses 1 − tanh²λ = 4e/(1+e)², e = exp(−2|λ|) (no cancellation) — the float64
behaviour of their formula, which trains differently (much more slowly from the initial |λ| = 10).

Defaults follow main_permute_mnist_CL.py: lr = 1e-3 (:45), β = 0 (``--momentum``, :56), λ_init = 10
(:77), lambda_std = 0 (:80), τ = 1e-2 (:84; the optimiser's own default, BayesBiNN.py:36, is 1),
reweight r = 1 (:88); 1 training sample and 100 evaluation samples (:38, :40; :attr:`PROTOCOL`).
``n_data`` = N is the training-set size, ``len(train_loader.sampler)·trainset_scale`` (:200-201) — the
runner sets it from the data (the default 1 is a placeholder). Their learning-rate schedule (cosine per
epoch, reset at each task: train_cl_utils.py:83-84, main_permute_mnist_CL.py:237-238) is the runner's.

Continual learning (main_permute_mnist_CL.py:231-232): before each new task ``prior_lamda ← lamda``,
with the same optimiser object, so momentum m, step t (hence 1 − βᵗ) and μ carry over.
``task_boundary()`` does λ_prior ← λ and keeps m and t; ``reset_at_task=True`` also zeroes them (a
fresh optimiser per task: this library's earlier behaviour).

Monte-Carlo samples (:mod:`.base`): with the loss of each of S samples scaled by 1/S,
``accumulate()`` sums scale_s·g_s/S (``_sample_stats``, scale from the sample just evaluated) and
``update()`` steps on ĝ = N·Σ — the code's N/S·Σ_s scale_s·∂L_s/∂w. ``update(grad)`` is the fused S = 1
step. At a point that is not a relaxed sample (an update in eval mode) scale = 1, as the code's
``num_samples ≤ 0`` branch (BayesBiNN.py:135-150).

Evaluation (``refresh(sample=False)``), ``eval_mode``:

* ``"sign"`` (default) — the code's point estimate ``get_mc_predictions`` without noises
  (BayesBiNN.py:221-228, train_cl_utils.py:223-224 with ``--test-samples 0``): w = +1 where μ > 0 and
  −1 where μ ≤ 0 (so λ = 0 gives −1), with μ the code's (lagged) ``state['mu']``.
* ``"sample"`` — one hard draw w = 2·Bernoulli(sigmoid(2λ)) − 1 per refresh (train_cl_utils.py:226-228).
  :meth:`draw_eval_sample` always makes such a draw: the runner's ``eval_samples`` ensemble (the
  script's 100 samples) averages the network outputs over draws, as ``softmax_predictive_accuracy``
  averages the logits (train_cl_utils.py:18-22).
* ``"mean"`` — the real-valued w = tanh(λ) (the code's training point for ``num_samples ≤ 0``, not an
  evaluation it reports): a named option, not the authors' evaluation.

Guards (not in the code, documented): the drive ĝ + r(λ − λ_prior) is clipped to ±drive_max and λ to
±lambda_max (both 1e30 by default: only a finiteness guard — a rare unsaturated sample where
1 − μ² ~ 1e-7 has a scale ~1/(τ·1e-7) and throws λ far beyond 100 in the code, so a tighter clip
would change the dynamics); |lambda_init| ≤ 100 is required (float32 samples stop changing beyond ~9).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from numba import njit, prange

from . import triton_updates
from ._kernels import np_view
from ._random import SeededGenerator
from .base import Backend, SynapseModel, check_range

EvalMode = Literal["sign", "sample", "mean"]
Variance = Literal["code", "exact"]
_F1 = np.float32(1.0)
_TINY = np.float32(1e-10)
# No fastmath "contract" here (unlike the other kernels): the kernel must round every product and
# sum as the torch reference does (no fused multiply-add), so that the two backends agree bit for bit
# — the code's 1 − w·w and its 1e-10 guards cancel catastrophically near |w| = 1.
_NJIT_IEEE = dict(cache=True, error_model="numpy")
LAMBDA_INIT_MAX = 100.0  # |λ_init| above this is a unit mistake (float32 samples are fixed beyond ~9)


@dataclass(frozen=True)
class BayesianBinaryParams:
    """Parameters of :class:`BayesianBinary`; defaults = the authors' continual-learning script
    (main_permute_mnist_CL.py, see the module docstring). ``n_data`` = training-set size (set by the
    runner); ``lambda_std`` is the variance of the initial |λ| around ``lambda_init``."""

    lr: float = 1e-3
    beta: float = 0.0
    tau: float = 1e-2
    n_data: float = 1.0
    reweight: float = 1.0
    lambda_init: float = 10.0
    lambda_std: float = 0.0
    lambda_max: float = 1e30
    drive_max: float = 1e30
    eval_mode: EvalMode = "sign"
    variance: Variance = "code"
    lagged_mu: bool = True
    reset_at_task: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_range(self, "lr", 0.0, None)
        check_range(self, "beta", 0.0, 1.0, hi_open=True)
        check_range(self, "tau", 0.0, None, lo_open=True)
        check_range(self, "n_data", 0.0, None, lo_open=True)
        check_range(self, "reweight", 0.0, None)
        check_range(self, "lambda_max", 0.0, 1e30, lo_open=True)
        lim = min(self.lambda_max, LAMBDA_INIT_MAX)
        check_range(self, "lambda_init", -lim, lim)
        check_range(self, "lambda_std", 0.0, None)
        check_range(self, "drive_max", 0.0, 1e37, lo_open=True)
        if self.eval_mode not in ("sign", "sample", "mean"):
            raise ValueError("BayesianBinaryParams.eval_mode must be 'sign', 'sample' or 'mean', "
                             f"got {self.eval_mode!r}")
        if self.variance not in ("code", "exact"):
            raise ValueError(f"BayesianBinaryParams.variance must be 'code' or 'exact', got {self.variance!r}")
        for name in ("lagged_mu", "reset_at_task"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"BayesianBinaryParams.{name} must be a bool, got {getattr(self, name)!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"BayesianBinaryParams.seed must be an int, got {self.seed!r}")


# ---- numba kernels (float32, IEEE rounding of every operation, same order as the torch reference) ----
@njit(inline="always", **_NJIT_IEEE)
def _bbinn_scale(w, v, tau):
    return ((_F1 - w * w) + _TINY) / tau / (v + _TINY)


@njit(inline="always", **_NJIT_IEEE)
def _bbinn_elem(lam, mom, lam0, v, w, g, relaxed, tau, n_data, rw, beta, one_m_beta, lr, bc, dmax, lmax):
    if relaxed:
        gh = (_bbinn_scale(w, v, tau) * g) * n_data
    else:
        gh = g * n_data
    d = gh + rw * (lam - lam0)
    d = min(max(d, -dmax), dmax)
    mom = beta * mom + one_m_beta * d
    lam = lam - (lr * mom) / bc
    lam = min(max(lam, -lmax), lmax)
    return lam, mom


@njit(**_NJIT_IEEE)
def bayesbinn_kernel(lam, mom, lam0, lam_mu, v, w, g, relaxed, lagged, tau, n_data, rw, beta, one_m_beta, lr,
                     bc, dmax, lmax):
    """In place on flat float32 arrays: one BayesBiNN step (serial). ``v`` = 1 − μ² of the scale;
    ``relaxed=False``: g is used unscaled (an accumulated Σ scale·g, or the point-estimate branch);
    ``lam_mu`` ← λ before the step (``lagged``) or after it."""
    for i in range(lam.size):
        old = lam[i]
        a, b = _bbinn_elem(old, mom[i], lam0[i], v[i], w[i], g[i], relaxed, tau, n_data, rw, beta, one_m_beta,
                           lr, bc, dmax, lmax)
        lam[i] = a
        mom[i] = b
        lam_mu[i] = old if lagged else a


@njit(parallel=True, **_NJIT_IEEE)
def bayesbinn_kernel_parallel(lam, mom, lam0, lam_mu, v, w, g, relaxed, lagged, tau, n_data, rw, beta,
                              one_m_beta, lr, bc, dmax, lmax):
    """Same as :func:`bayesbinn_kernel`, multithreaded."""
    for i in prange(lam.size):
        old = lam[i]
        a, b = _bbinn_elem(old, mom[i], lam0[i], v[i], w[i], g[i], relaxed, tau, n_data, rw, beta, one_m_beta,
                           lr, bc, dmax, lmax)
        lam[i] = a
        mom[i] = b
        lam_mu[i] = old if lagged else a


@njit(**_NJIT_IEEE)
def bayesbinn_scaled_grad_kernel(w, v, g, tau, out):
    """out = scale·g, scale = (1 − w·w + 1e-10)/τ/(v + 1e-10) (flat float32 arrays)."""
    for i in range(w.size):
        out[i] = _bbinn_scale(w[i], v[i], tau) * g[i]


@njit(**_NJIT_IEEE)
def _code_variance_kernel(tanh64, out):
    """out = 1 − m·m with m = float32(tanh64) (round to nearest), each operation rounded to float32."""
    for i in range(out.size):
        m = np.float32(tanh64[i])
        out[i] = _F1 - m * m


# ---- torch reference ------------------------------------------------------------------------------
def bernoulli_variance(lam: torch.Tensor) -> torch.Tensor:
    """1 - tanh²(λ) = 4e/(1+e)², e = exp(-2|λ|) (accurate for large |λ|)."""
    e = torch.exp(-2.0 * lam.abs())
    return 4.0 * e / (1.0 + e).square()


def code_mu(lam_mu: torch.Tensor) -> torch.Tensor:
    """μ = tanh(λ) in ``lam_mu``'s dtype, correctly rounded (evaluated in float64 and rounded): the same
    on every device. The code's float32 ``torch.tanh`` is within 1 ulp of it, and which ulp depends on
    the device's tanh (CPU SLEEF vs CUDA), so no re-implementation can reproduce those bits."""
    if lam_mu.dtype == torch.float64:
        return torch.tanh(lam_mu)
    return torch.tanh(lam_mu.double()).to(lam_mu.dtype)


def code_variance(lam_mu: torch.Tensor) -> torch.Tensor:
    """1 − μ·μ with μ = :func:`code_mu`, as BayesBiNN.py:175 evaluates it (in ``lam_mu``'s dtype)."""
    mu = code_mu(lam_mu)
    return 1.0 - mu * mu


def code_variance_fused(lam_mu: torch.Tensor) -> torch.Tensor:
    """:func:`code_variance` for a float32 CPU tensor with one Numba pass after torch's float64 tanh:
    μ rounded to float32 and 1 − μ·μ formed with the same two float32 roundings (the same bits, in
    one pass instead of three). Other dtypes and devices: :func:`code_variance`."""
    if lam_mu.dtype != torch.float32 or lam_mu.device.type != "cpu":
        return code_variance(lam_mu)
    t = lam_mu.detach().double()
    torch.tanh(t, out=t)
    out = torch.empty(lam_mu.shape, dtype=torch.float32)
    _code_variance_kernel(t.reshape(-1).numpy(), out.reshape(-1).numpy())
    return out


def bayesbinn_scale_torch(w: torch.Tensor, v: torch.Tensor, tau: float) -> torch.Tensor:
    """(1 − w·w + 1e-10)/τ/(v + 1e-10) (BayesBiNN.py:175)."""
    return ((1.0 - w * w) + 1e-10) / tau / (v + 1e-10)


def bayesbinn_step_torch(lam: torch.Tensor, mom: torch.Tensor, lam0: torch.Tensor, lam_mu: torch.Tensor,
                         v: torch.Tensor, w: torch.Tensor, g: torch.Tensor, relaxed: bool, lagged: bool, tau: float,
                         n_data: float, rw: float, beta: float, lr: float, bc: float, dmax: float,
                         lmax: float) -> None:
    """Reference BayesBiNN step in place (any device); arguments as :func:`bayesbinn_kernel`."""
    gh = (bayesbinn_scale_torch(w, v, tau) * g) * n_data if relaxed else g * n_data
    d = (gh + rw * (lam - lam0)).clamp_(-dmax, dmax)
    if lagged:
        lam_mu.copy_(lam)
    mom.mul_(beta).add_((1.0 - beta) * d)
    lam.sub_((lr * mom) / bc).clamp_(-lmax, lmax)
    if not lagged:
        lam_mu.copy_(lam)


class BayesianBinary(SynapseModel):
    """Binary synapse with a Bernoulli posterior trained by BayesBiNN. State: ``lam`` (λ), ``lam_prior``,
    ``lam_mu`` (the λ whose tanh is the code's μ), ``momentum``, ``step``; the current sample (relaxed in
    training, ±1 in evaluation) is the effective ``weight``."""

    #: main_permute_mnist_CL.py: ``--train-samples 1`` (:38), ``--test-samples 100`` (:40),
    #: ``nn.CrossEntropyLoss()`` mean-reduced (:208); outputs averaged over the evaluation samples
    #: (utils/train_cl_utils.py:18-22).
    PROTOCOL = {"train_samples": 1, "eval_samples": 100, "eval_average": "logits", "loss_reduction": "mean"}

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
        lam = lam.clamp(-params.lambda_max, params.lambda_max)
        self.register_buffer("lam", lam)
        self.register_buffer("lam_prior", torch.zeros(self.shape))
        self.register_buffer("lam_mu", lam.clone())           # BayesBiNN.py:77-79: μ = tanh(λ₀)
        self.register_buffer("momentum", torch.zeros(self.shape))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        self._rng = SeededGenerator(params.seed + 1)
        self._relaxed = False
        self._hard_draw = False

    # ---- weights --------------------------------------------------------------------------------
    def _compute_weight(self, sample: bool) -> torch.Tensor:
        lam = self.lam
        self._relaxed = bool(sample)
        if sample:  # BayesBiNN.py:156-160
            u = torch.rand(self.shape, generator=self._rng.get(lam.device), device=lam.device, dtype=lam.dtype)
            rou = torch.log(u / (1.0 - u)) / 2 + lam
            return torch.tanh(rou / self.params.tau)
        mode = "sample" if self._hard_draw else self.params.eval_mode
        if mode == "sign":  # BayesBiNN.py:223: μ ≤ 0 → −1 (tanh keeps the sign and zero of lam_mu)
            return torch.where(self.lam_mu <= 0, -1.0, 1.0).to(lam.dtype)
        if mode == "mean":
            return torch.tanh(lam)
        u = torch.rand(self.shape, generator=self._rng.get(lam.device), device=lam.device, dtype=lam.dtype)
        return torch.where(u < torch.sigmoid(2.0 * lam), 1.0, -1.0).to(lam.dtype)

    def draw_eval_sample(self) -> torch.Tensor:
        """One hard posterior draw w = ±1, P(+1) = sigmoid(2λ) (train_cl_utils.py:226-228), whatever
        ``eval_mode``; the runner averages the outputs of ``eval_samples`` such networks."""
        self._hard_draw = True
        try:
            return self.refresh(sample=False)
        finally:
            self._hard_draw = False

    # ---- analysis -------------------------------------------------------------------------------
    def hidden(self) -> torch.Tensor:
        """λ — |λ| is the confidence; the posterior variance is 1 - tanh²(λ)."""
        return self.lam

    def mean(self) -> torch.Tensor:
        """Posterior mean tanh(λ) (of the current λ; the code's lagged μ is :attr:`mu`)."""
        return torch.tanh(self.lam)

    @property
    def mu(self) -> torch.Tensor:
        """The code's ``state['mu']``: tanh(λ of the previous step) with ``lagged_mu``, else tanh(λ)
        (correctly rounded, :func:`code_mu`)."""
        return code_mu(self.lam_mu)

    def variance(self) -> torch.Tensor:
        """Posterior variance 1 - tanh²(λ) (exact)."""
        return bernoulli_variance(self.lam)

    def task_boundary(self) -> None:
        """λ_prior ← λ (main_permute_mnist_CL.py:231-232); momentum, step and μ are kept (the script
        keeps its optimiser) unless ``reset_at_task``."""
        self.lam_prior.copy_(self.lam)
        if self.params.reset_at_task:
            self.momentum.zero_()
            self.step.zero_()

    # ---- updates --------------------------------------------------------------------------------
    def _mu_variance(self) -> torch.Tensor:
        """1 − μ² of the scale, from ``lam_mu`` (``variance`` "code": the code's float expression)."""
        if self.params.variance == "code":
            return code_variance_fused(self.lam_mu) if self.use_numba(self.lam_mu) else code_variance(self.lam_mu)
        return bernoulli_variance(self.lam_mu)

    def _sample_stats(self, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(scale·g,) of the current sample (BayesBiNN.py:175-176); g unscaled off a relaxed sample."""
        g = grad.to(self.lam.dtype)
        if not self._relaxed:
            return (g,)
        w = self.weight.detach()
        v = self._mu_variance()
        if self.use_numba(g):
            out = torch.empty_like(g)
            bayesbinn_scaled_grad_kernel(np_view(w, "weight"), np_view(v.contiguous(), "v"),
                                         np_view(g.contiguous(), "grad"), np.float32(self.params.tau),
                                         np_view(out, "out"))
            return (out,)
        return (bayesbinn_scale_torch(w.to(g.device), v, self.params.tau) * g,)

    def _update_stats(self, stats: tuple[torch.Tensor, ...]) -> None:
        """One step on ĝ = N·Σ_s scale_s·g_s (the g_s of the 1/S-scaled loss)."""
        self._step(stats[0], relaxed=False)

    def _step(self, grad: torch.Tensor, relaxed: bool) -> None:
        p = self.params
        self.step += 1
        t = int(self.step.item())
        bc = 1.0 - p.beta ** t
        v = self._mu_variance() if relaxed else self.lam_mu  # v unused off a relaxed sample
        w = self.weight.detach()
        if self.use_numba(grad):
            f = np.float32
            kern = bayesbinn_kernel_parallel if self.parallel else bayesbinn_kernel
            kern(np_view(self.lam, "lam"), np_view(self.momentum, "momentum"), np_view(self.lam_prior, "lam_prior"),
                 np_view(self.lam_mu, "lam_mu"), np_view(v.contiguous(), "v"), np_view(w, "weight"),
                 np_view(grad.contiguous(), "grad"), relaxed, p.lagged_mu, f(p.tau), f(p.n_data), f(p.reweight),
                 f(p.beta), f(1.0 - p.beta), f(p.lr), f(bc), f(p.drive_max), f(p.lambda_max))
        elif self.use_triton(grad):
            triton_updates.bayesbinn_step(self.lam, self.momentum, self.lam_prior, self.lam_mu, v.contiguous(), w,
                                          grad.contiguous(), relaxed, p.lagged_mu, p.tau, p.n_data, p.reweight,
                                          p.beta, p.lr, bc, p.drive_max, p.lambda_max)
        else:
            bayesbinn_step_torch(self.lam, self.momentum, self.lam_prior, self.lam_mu, v, w.to(self.lam.device),
                                 grad.to(self.lam.dtype), relaxed, p.lagged_mu, p.tau, p.n_data, p.reweight,
                                 p.beta, p.lr, bc, p.drive_max, p.lambda_max)

    TRITON = True

    def _update_torch(self, grad: torch.Tensor) -> None:
        self._step(grad, self._relaxed)

    def _update_numba(self, grad: torch.Tensor) -> None:
        self._step(grad, self._relaxed)

    def _update_triton(self, grad: torch.Tensor) -> None:
        self._step(grad, self._relaxed)

    # ---- persistence ----------------------------------------------------------------------------
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "lam_mu" not in state_dict and prefix + "lam" in state_dict:  # checkpoints before lam_mu
            state_dict[prefix + "lam_mu"] = state_dict[prefix + "lam"]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def get_extra_state(self) -> Any:
        return {"rng": self._rng.state()}

    def set_extra_state(self, state: Any) -> None:
        self._rng.load(state["rng"])


__all__ = ["BayesianBinary", "BayesianBinaryParams", "bayesbinn_kernel", "bayesbinn_kernel_parallel",
           "bayesbinn_scaled_grad_kernel", "bayesbinn_scale_torch", "bayesbinn_step_torch", "bernoulli_variance",
           "code_mu", "code_variance", "code_variance_fused"]
