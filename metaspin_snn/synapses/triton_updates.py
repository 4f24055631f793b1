"""Fused synapse updates on the GPU (Triton): one pass over the state, in place, for the models whose
torch reference is a chain of elementwise kernels. Each kernel performs the torch reference's float32
operations in the same order, one rounding each (no FMA contraction, correctly rounded divisions), so
it gives the reference's state to the bit; it reads each state array once and writes the changed
ones once, where the eager reference runs one kernel (and one round trip to memory) per operation.

MESU (:mod:`.mesu`, ``mesu_step_torch``; Bonnet et al., Nat. Commun. 2025, kellian-cottart/mesu-pmnist
``optimizers/mesu.py``)::

    μ ← clamp(μ + η_μ·[(−σ²)·ḡ_μ + (σ²·(μ_p − μ))·r],         ±μ_max)        r = 1/(N·σ_p²)
    σ ← clamp(σ + (η_σ/2)·[(−σ²)·ḡ_σ + (σ·(σ_p² − σ²))·r],  σ_min, σ_max)

From one sample (``FROM_GRAD``) ḡ_μ = g and ḡ_σ = g·ε are formed in the kernel from ∂C/∂w and the
sample's ε; ``SHRINK`` takes max(ḡ_σ, 0); a prior the same for every synapse is read as one value.
Reads 16 B and writes 8 B per synapse (g, ε, μ, σ), where the torch step also reads both priors and
stores its temporaries.

MetaplasticBinary (:mod:`.metaplastic`, ``metaplastic_step_torch``; Laborieux et al., Nat. Commun. 2021,
``Adam_meta`` in the authors' ``models_utils.py``), with the scalars of ``MetaplasticBinary._scalars``::

    g ← clamp(g + wd·W_h, ±g_clip);  m ← m + (1 − β₁)(g − m);  v ← β₂v + (1 − β₂)g²
    W_h ← W_h − step·u/(√v / bc2 + ε),   u = f_meta·m if sign(W_h)·m > 0 else m
    f_meta = 1 − tanh²(meta·|W_h|) = 4e/(1 + e)²,  e = exp(−2·meta·|W_h|)

f_meta is formed as the Numba kernel forms it (no cancellation where tanh² is close to 1; the torch
reference's ``1 − tanh²`` loses those digits), and the exponential is the GPU's, so this kernel agrees
with the reference to rounding, not to the bit. Reads 16 B and writes 12 B per synapse.

BayesianBinary (:mod:`.bayesbinn`, ``bayesbinn_step_torch``; Meng et al., ICML 2020,
team-approx-bayes/BayesBiNN ``optimizers/BayesBiNN.py``:175-193), from v = 1 − μ² as the model forms it
(torch's float64 tanh rounded to float32, so μ is the same as on every other path)::

    scale = ((1 − w·w) + 1e-10)/τ/(v + 1e-10);   d = clamp(scale·g·N + r·(λ − λ_prior), ±d_max)
    m ← β·m + (1 − β)·d;   λ ← clamp(λ − lr·m/(1 − βᵗ), ±λ_max);   λ_μ ← λ before (lagged) or after

A division by a Python scalar (τ, 1 − βᵗ) is a multiplication by its float32 reciprocal, as eager CUDA
torch computes ``tensor / scalar`` (ATen ``BinaryDivTrueKernel.cu``: ``a * (1/b)`` when b is a CPU
scalar); other divisions are correctly rounded. Reads 24 B and writes 12 B per synapse.
"""
from __future__ import annotations

import functools

import torch

from .. import gpu

BLOCK, NUM_WARPS = 1024, 4  # streaming: 8 synapses per thread (128-bit loads)

# decorated on first use (metaspin_snn.gpu.jit binds ``tl``, ``_div``)
tl = None
_div = None


def _mesu_py(mu, sig, g, e, mup, sigp, consts, n, FROM_GRAD: tl.constexpr, SHRINK: tl.constexpr,
             UNIFORM_PRIOR: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < n
    m = tl.load(mu + offs, mask=ok, other=0.0)
    s = tl.load(sig + offs, mask=ok, other=1.0)
    gm = tl.load(g + offs, mask=ok, other=0.0)
    gs = tl.load(e + offs, mask=ok, other=0.0)
    if FROM_GRAD:
        gs = gm * gs
    if SHRINK:
        gs = tl.maximum(gs, 0.0)
    if UNIFORM_PRIOR:
        mp = tl.load(mup)
        sp = tl.load(sigp)
    else:
        mp = tl.load(mup + offs, mask=ok, other=0.0)
        sp = tl.load(sigp + offs, mask=ok, other=1.0)
    lr_mu = tl.load(consts)
    half_lr_sig = tl.load(consts + 1)
    big_n = tl.load(consts + 2)
    smin = tl.load(consts + 3)
    smax = tl.load(consts + 4)
    mmax = tl.load(consts + 5)
    s2 = s * s
    sp2 = sp * sp
    r = _div(tl.full(s2.shape, 1.0, s2.dtype), big_n * sp2)
    mu_new = m + lr_mu * ((-s2) * gm + (s2 * (mp - m)) * r)
    sig_new = s + half_lr_sig * ((-s2) * gs + (s * (sp2 - s2)) * r)
    tl.store(mu + offs, tl.minimum(tl.maximum(mu_new, -mmax), mmax), mask=ok)
    tl.store(sig + offs, tl.minimum(tl.maximum(sig_new, smin), smax), mask=ok)


def _metaplastic_py(w, m, v, g, consts, n, WD: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < n
    wh = tl.load(w + offs, mask=ok, other=0.0)
    mm = tl.load(m + offs, mask=ok, other=0.0)
    vv = tl.load(v + offs, mask=ok, other=0.0)
    ge = tl.load(g + offs, mask=ok, other=0.0)
    step = tl.load(consts)
    b1c = tl.load(consts + 1)
    b2 = tl.load(consts + 2)
    b2c = tl.load(consts + 3)
    bc2 = tl.load(consts + 4)
    eps = tl.load(consts + 5)
    meta = tl.load(consts + 6)
    gclip = tl.load(consts + 8)
    if WD:
        ge = ge + tl.load(consts + 7) * wh
    ge = tl.minimum(tl.maximum(ge, -gclip), gclip)
    mm = mm + b1c * (ge - mm)
    vv = b2 * vv + b2c * (ge * ge)
    denom = _div(tl.sqrt_rn(vv), bc2) + eps
    e = tl.exp(-2.0 * (meta * tl.abs(wh)))
    d = 1.0 + e
    fmeta = _div(4.0 * e, d * d)
    sgn = tl.where(wh >= 0, 1.0, -1.0)
    u = tl.where(sgn * mm > 0, fmeta * mm, mm)
    wh = wh - step * _div(u, denom)
    tl.store(w + offs, wh, mask=ok)
    tl.store(m + offs, mm, mask=ok)
    tl.store(v + offs, vv, mask=ok)


def _bayesbinn_py(lam, mom, lam0, lam_mu, v, w, g, consts, n, RELAXED: tl.constexpr, LAGGED: tl.constexpr,
                  BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < n
    la = tl.load(lam + offs, mask=ok, other=0.0)
    mo = tl.load(mom + offs, mask=ok, other=0.0)
    l0 = tl.load(lam0 + offs, mask=ok, other=0.0)
    gg = tl.load(g + offs, mask=ok, other=0.0)
    inv_tau = tl.load(consts)
    n_data = tl.load(consts + 1)
    rw = tl.load(consts + 2)
    beta = tl.load(consts + 3)
    one_m_beta = tl.load(consts + 4)
    lr = tl.load(consts + 5)
    inv_bc = tl.load(consts + 6)
    dmax = tl.load(consts + 7)
    lmax = tl.load(consts + 8)
    tiny = tl.load(consts + 9)
    if RELAXED:
        ww = tl.load(w + offs, mask=ok, other=0.0)
        vv = tl.load(v + offs, mask=ok, other=1.0)
        scale = _div(((1.0 - ww * ww) + tiny) * inv_tau, vv + tiny)
        gh = (scale * gg) * n_data
    else:
        gh = gg * n_data
    d = gh + rw * (la - l0)
    d = tl.minimum(tl.maximum(d, -dmax), dmax)
    mo = mo * beta + one_m_beta * d
    new = la - (lr * mo) * inv_bc
    new = tl.minimum(tl.maximum(new, -lmax), lmax)
    tl.store(lam + offs, new, mask=ok)
    tl.store(mom + offs, mo, mask=ok)
    if LAGGED:
        tl.store(lam_mu + offs, la, mask=ok)
    else:
        tl.store(lam_mu + offs, new, mask=ok)


@functools.cache
def _kernels() -> dict:
    return gpu.jit(globals(), {"_div": gpu.div_rn, "_mesu": _mesu_py, "_metaplastic": _metaplastic_py,
                               "_bayesbinn": _bayesbinn_py})


def mesu_step(mu: torch.Tensor, sig: torch.Tensor, g: torch.Tensor, e: torch.Tensor, mup: torch.Tensor,
              sigp: torch.Tensor, uniform_prior: bool, from_grad: bool, shrink: bool, lr_mu: float,
              lr_sig: float, n: float, smin: float, smax: float, mmax: float) -> None:
    """One MESU step in place on contiguous float32 tensors of one device. ``from_grad``: ``g`` is one
    sample's ∂C/∂w and ``e`` its ε (else ``g`` = ḡ_μ, ``e`` = ḡ_σ); ``uniform_prior``: ``mup``/``sigp``
    hold one value for all synapses (their first element is read). The scalars are rounded to float32
    as the torch reference's Python scalars are (η_σ·½ formed in double first, as there)."""
    consts = torch.tensor([lr_mu, lr_sig * 0.5, n, smin, smax, mmax], dtype=torch.float64).to(
        device=mu.device, dtype=mu.dtype)
    gpu.launch(_kernels()["_mesu"], mu.numel(), BLOCK, NUM_WARPS, mu, sig, g, e, mup, sigp, consts, mu.numel(),
               FROM_GRAD=from_grad, SHRINK=shrink, UNIFORM_PRIOR=uniform_prior)


def metaplastic_step(w: torch.Tensor, m: torch.Tensor, v: torch.Tensor, g: torch.Tensor, step_size: float,
                     beta1: float, beta2: float, bc2_sqrt: float, eps: float, meta: float, wd: float,
                     gclip: float) -> None:
    """One ``Adam_meta`` step in place on contiguous float32 tensors of one device (the arguments of
    ``metaplastic_step_torch``)."""
    consts = torch.tensor([step_size, 1.0 - beta1, beta2, 1.0 - beta2, bc2_sqrt, eps, meta, wd, gclip],
                          dtype=torch.float64).to(device=w.device, dtype=w.dtype)
    gpu.launch(_kernels()["_metaplastic"], w.numel(), BLOCK, NUM_WARPS, w, m, v, g, consts, w.numel(),
               WD=wd != 0.0)


def _reciprocal32(x: float) -> float:
    """1/x as eager CUDA torch forms it for ``tensor / x``: x rounded to float32, then 1/x in float32."""
    return float(torch.tensor(1.0, dtype=torch.float32) / torch.tensor(x, dtype=torch.float32))


def bayesbinn_step(lam: torch.Tensor, mom: torch.Tensor, lam0: torch.Tensor, lam_mu: torch.Tensor,
                   v: torch.Tensor, w: torch.Tensor, g: torch.Tensor, relaxed: bool, lagged: bool, tau: float,
                   n_data: float, rw: float, beta: float, lr: float, bc: float, dmax: float, lmax: float) -> None:
    """One BayesBiNN step in place on contiguous float32 tensors of one device (the arguments of
    ``bayesbinn_step_torch``; ``v`` and ``w`` are read only when ``relaxed``)."""
    consts = torch.tensor([_reciprocal32(tau), n_data, rw, beta, 1.0 - beta, lr, _reciprocal32(bc), dmax, lmax,
                           1e-10], dtype=torch.float64).to(device=lam.device, dtype=lam.dtype)
    gpu.launch(_kernels()["_bayesbinn"], lam.numel(), BLOCK, NUM_WARPS, lam, mom, lam0, lam_mu, v, w, g, consts,
               lam.numel(), RELAXED=relaxed, LAGGED=lagged)
