"""Fused LIF scan on the GPU: one Triton kernel for the forward recursion over all T steps and one for
the backward (BPTT) recursion, for :func:`.lif.leaky_scan`.

Same equations as :mod:`.lif` (snnTorch 1.0 ``Leaky``, ``reset_delay=True``, r[t] = s[t−1] detached)::

    zero:      m[t] = β·((1 − r[t])·m[t−1]) + I[t]
    subtract:  m[t] = (β·m[t−1] + I[t]) − r[t]·θ
    none:      m[t] = β·m[t−1] + I[t]                 s[t] = H(m[t] − θ)

    δ[t] = (∂L/∂m[t] + ∂L/∂s[t]·σ'(m[t] − θ)) + c[t+1]·δ[t+1],   c[t+1] = β(1 − s[t]) (zero) or β
    ∂L/∂I[t] = δ[t];  ∂L/∂β = Σ_t δ[t]·m̃[t−1];  ∂L/∂θ = −Σ ∂L/∂s·σ' − Σ δ·r (subtract)

Each program owns ``BLOCK`` neurons (of the flattened per-step shape B·…) and runs all T steps for
them, so the membrane and the backward carry stay in registers: the forward reads I and writes m and
s once (12 B per neuron-step in float32), the backward reads m, s and the output gradients and writes
δ once. The torch loop it replaces launches several kernels per step and reads the state back each time.

Floating point follows the eager torch ops it replaces, one rounding per operation in the same order
(FMA contraction is switched off, divisions are correctly rounded): the forward is bitwise equal to the
torch recursion; the backward sums δ in the torch recursion's order. The surrogate derivative is
either evaluated in the kernel (snnTorch's ``atan`` and ``fast_sigmoid``, in the order of their
``backward``: ATan ``(1/(1 + (π/2·α·u)²))·(α/2)·g`` — Python's ``a / t`` is ``t.reciprocal()·a`` —
and FastSigmoid ``g / (k|u| + 1)²``) or, for any other surrogate, formed by autograd beforehand and
passed in. β and θ may be scalars or per-neuron; their gradients are accumulated per neuron over T in
the kernel and reduced over the batch by torch.

Triton is optional; without a GPU the kernels run under Triton's interpreter (:mod:`metaspin_snn.gpu`),
which is how the tests check them on a CPU. Reference: snnTorch ``snntorch/_neurons/leaky.py`` and
``snntorch/surrogate.py``; Triton language documentation (triton-lang.org).
"""
from __future__ import annotations  # the kernels' tl.constexpr annotations stay strings (Triton reads them so)

import functools
import math

import torch

from .. import gpu

SURR_AUTOGRAD, SURR_ATAN, SURR_FAST_SIGMOID = -1, 0, 1
# one neuron per GPU thread (256 threads = 8 warps a program): a scan's steps depend on each other, so
# latency is hidden by many resident threads rather than by work per thread
BLOCK, NUM_WARPS = 256, 8

# The kernels are plain functions, decorated on first use by :func:`_kernels` (metaspin_snn.gpu.jit),
# which binds ``tl``, ``_div`` and ``_step`` (the names the kernels call) in this module.
tl = None
_div = _step = None


def _fwd_py(cur, m0, s0, beta, thr, mem, spk, T, N, MODE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < N
    N = N.to(tl.int64)  # t·N in 64 bits: T·N may pass 2³¹
    m = tl.load(m0 + offs, mask=ok, other=0.0)
    r = tl.load(s0 + offs, mask=ok, other=0.0)
    b = tl.load(beta + offs, mask=ok, other=0.0)
    th = tl.load(thr + offs, mask=ok, other=1.0)
    one = tl.full(m.shape, 1.0, m.dtype)
    for t in range(T):
        i = t * N + offs
        x = tl.load(cur + i, mask=ok, other=0.0)
        if MODE == 0:
            m = b * ((one - r) * m) + x
        elif MODE == 1:
            m = (b * m + x) - r * th
        else:
            m = b * m + x
        s = ((m - th) > 0).to(m.dtype)
        tl.store(mem + i, m, mask=ok)
        tl.store(spk + i, s, mask=ok)
        r = s

def _step_py(t, prev_m, prev_s, carry, gb_acc, gt_acc, mem, gs, gm, delta, consts, b, th, offs, ok, N,
          MODE: tl.constexpr, SURR: tl.constexpr, HAS_GS: tl.constexpr, HAS_GM: tl.constexpr,
          NEED_B: tl.constexpr, NEED_T: tl.constexpr):
    """One backward step at time t (prev_m, prev_s = m[t−1], r[t]); returns the carry c[t]·δ[t]
    for step t − 1 and the updated β/θ accumulators."""
    i = t * N + offs
    one = tl.full(carry.shape, 1.0, carry.dtype)
    zero = one - one
    if HAS_GM:
        a = tl.load(gm + i, mask=ok, other=0.0)
    else:
        a = zero
    if HAS_GS:
        g = tl.load(gs + i, mask=ok, other=0.0)
        if SURR == 0:  # ATan: reciprocal(1 + (π/2·α·u)²) · (α/2) · g
            u = tl.load(mem + i, mask=ok, other=0.0) - th
            v = tl.load(consts) * u
            sg = (_div(one, one + v * v) * tl.load(consts + 1)) * g
        elif SURR == 1:  # FastSigmoid: g / (k·|u| + 1)²
            u = tl.load(mem + i, mask=ok, other=0.0) - th
            d = tl.load(consts + 2) * tl.abs(u) + one
            sg = _div(g, d * d)
        else:  # σ'·g formed beforehand by autograd
            sg = g
        if HAS_GM:
            a = a + sg
        else:
            a = sg
        if NEED_T:
            gt_acc = gt_acc - sg
    d_t = a + carry
    tl.store(delta + i, d_t, mask=ok)
    if MODE == 0:
        carry = (b * (one - prev_s)) * d_t
        if NEED_B:
            gb_acc = gb_acc + d_t * ((one - prev_s) * prev_m)
    else:
        carry = b * d_t
        if NEED_B:
            gb_acc = gb_acc + d_t * prev_m
        if MODE == 1:
            if NEED_T:
                gt_acc = gt_acc - d_t * prev_s
    return carry, gb_acc, gt_acc

def _bwd_py(mem, spk, m0, s0, gs, gm, beta, thr, consts, delta, gbv, gtv, T, N,
        MODE: tl.constexpr, SURR: tl.constexpr, HAS_GS: tl.constexpr, HAS_GM: tl.constexpr,
        NEED_B: tl.constexpr, NEED_T: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < N
    N = N.to(tl.int64)  # t·N in 64 bits: T·N may pass 2³¹
    b = tl.load(beta + offs, mask=ok, other=0.0)
    th = tl.load(thr + offs, mask=ok, other=1.0)
    carry = b - b
    gb_acc = carry
    gt_acc = carry
    for k in range(T - 1):
        t = T - 1 - k
        j = (t - 1) * N + offs
        carry, gb_acc, gt_acc = _step(t, tl.load(mem + j, mask=ok, other=0.0),
                                      tl.load(spk + j, mask=ok, other=0.0), carry, gb_acc, gt_acc,
                                      mem, gs, gm, delta, consts, b, th, offs, ok, N,
                                      MODE, SURR, HAS_GS, HAS_GM, NEED_B, NEED_T)
    carry, gb_acc, gt_acc = _step(0, tl.load(m0 + offs, mask=ok, other=0.0),
                                  tl.load(s0 + offs, mask=ok, other=0.0), carry, gb_acc, gt_acc,
                                  mem, gs, gm, delta, consts, b, th, offs, ok, N,
                                  MODE, SURR, HAS_GS, HAS_GM, NEED_B, NEED_T)
    if NEED_B:
        tl.store(gbv + offs, gb_acc, mask=ok)
    if NEED_T:
        tl.store(gtv + offs, gt_acc, mask=ok)


@functools.cache
def _kernels() -> dict:
    """The decorated kernels (``_fwd``, ``_bwd``), on first call."""
    return gpu.jit(globals(), {"_div": gpu.div_rn, "_step": _step_py, "_fwd": _fwd_py, "_bwd": _bwd_py})


def _per_neuron(p: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``p`` broadcast to the per-step shape of ``like[T, ...]``, contiguous, in its dtype."""
    return p.detach().to(like.dtype).expand(like.shape[1:]).contiguous()


def scan_forward(cur: torch.Tensor, m0: torch.Tensor, s0: torch.Tensor, beta_c: torch.Tensor,
                 thr: torch.Tensor, mode: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and membrane ``[T, ...]`` of the recursion from ``m0``/``s0`` (per-step shape, contiguous)
    with the clamped ``beta_c`` and ``thr`` (scalar or broadcastable to the per-step shape)."""
    c = cur.detach().contiguous()
    T, N = c.shape[0], c[0].numel()
    mem = torch.empty_like(c)
    spk = torch.empty_like(c)
    gpu.launch(_kernels()["_fwd"], N, BLOCK, NUM_WARPS, c, m0, s0, _per_neuron(beta_c, c), _per_neuron(thr, c), mem, spk, T, N,
            MODE=mode)
    return spk, mem


def scan_backward(mem: torch.Tensor, spk: torch.Tensor, m0: torch.Tensor, s0: torch.Tensor,
                  g_spk: torch.Tensor | None, g_mem: torch.Tensor | None, beta_c: torch.Tensor,
                  thr: torch.Tensor, mode: int, surr: tuple[int, float], need_b: bool, need_t: bool
                  ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(δ = ∂L/∂I ``[T, ...]``, Σ_t ∂L/∂β per neuron, Σ_t ∂L/∂θ per neuron) — the last two of the
    per-step shape (None when not needed). ``surr`` = (kind, parameter): ``SURR_ATAN`` /
    ``SURR_FAST_SIGMOID`` evaluate σ' in the kernel, ``SURR_AUTOGRAD`` takes ``g_spk`` as σ'·∂L/∂s."""
    T, N = mem.shape[0], mem[0].numel()
    kind, p = surr
    dt = mem.dtype
    # (π/2·α, α/2, k) computed in double, as Python does, then held in the tensor's dtype (as eager
    # CUDA kernels hold a Python scalar)
    consts = torch.tensor([math.pi / 2 * p, p / 2, p], dtype=torch.float64).to(device=mem.device, dtype=dt)
    delta = torch.empty_like(mem)
    dummy = mem[:0]
    gs = g_spk.contiguous() if g_spk is not None else dummy
    gm = g_mem.contiguous() if g_mem is not None else dummy
    gbv = torch.empty(mem.shape[1:], dtype=dt, device=mem.device) if need_b else dummy
    gtv = torch.empty(mem.shape[1:], dtype=dt, device=mem.device) if need_t else dummy
    gpu.launch(_kernels()["_bwd"], N, BLOCK, NUM_WARPS, mem, spk, m0, s0, gs, gm, _per_neuron(beta_c, mem), _per_neuron(thr, mem),
            consts, delta, gbv, gtv, T, N, MODE=mode, SURR=kind, HAS_GS=g_spk is not None,
            HAS_GM=g_mem is not None, NEED_B=need_b, NEED_T=need_t)
    return delta, (gbv if need_b else None), (gtv if need_t else None)
