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
"""
from __future__ import annotations

import functools

import torch

from .. import gpu

BLOCK = 1024

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


@functools.cache
def _kernels() -> dict:
    return gpu.jit(globals(), {"_div": gpu.div_rn, "_mesu": _mesu_py})


def mesu_step(mu: torch.Tensor, sig: torch.Tensor, g: torch.Tensor, e: torch.Tensor, mup: torch.Tensor,
              sigp: torch.Tensor, uniform_prior: bool, from_grad: bool, shrink: bool, lr_mu: float,
              lr_sig: float, n: float, smin: float, smax: float, mmax: float) -> None:
    """One MESU step in place on contiguous float32 tensors of one device. ``from_grad``: ``g`` is one
    sample's ∂C/∂w and ``e`` its ε (else ``g`` = ḡ_μ, ``e`` = ḡ_σ); ``uniform_prior``: ``mup``/``sigp``
    hold one value for all synapses (their first element is read). The scalars are rounded to float32
    as the torch reference's Python scalars are (η_σ·½ formed in double first, as there)."""
    consts = torch.tensor([lr_mu, lr_sig * 0.5, n, smin, smax, mmax], dtype=torch.float64).to(
        device=mu.device, dtype=mu.dtype)
    gpu.launch(_kernels()["_mesu"], mu.numel(), BLOCK, mu, sig, g, e, mup, sigp, consts, mu.numel(),
               FROM_GRAD=from_grad, SHRINK=shrink, UNIFORM_PRIOR=uniform_prior)
