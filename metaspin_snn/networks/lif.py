"""Leaky integrate-and-fire neurons: snnTorch ``Leaky`` construction without the global-list leak,
and a fused whole-sequence recursion that reproduces ``snn.Leaky`` (``reset_delay=True``) exactly.

snnTorch 1.0 ``Leaky`` (``snntorch/_neurons/leaky.py``), with r[t] = H(m[t−1] − θ) detached::

    zero:      m[t] = β·((1 − r[t])·m[t−1]) + I[t]
    subtract:  m[t] = (β·m[t−1] + I[t]) − θ·r[t]
    none:      m[t] = β·m[t−1] + I[t]
    s[t] = H(m[t] − θ)        (backward: surrogate σ'(m[t] − θ))

:func:`leaky_scan` runs this recursion over all T steps of a pre-computed current ``I[T, B, ...]``
with the same floating-point operations in the same order (so spikes and membranes are bitwise
equal to calling ``snn.Leaky`` step by step) and a hand-written backward (BPTT through the
recursion; the reset is detached as in snnTorch)::

    δ[t] = ∂L/∂m[t] + ∂L/∂s[t]·σ'(m[t] − θ) + c[t+1]·δ[t+1],   c[t+1] = β(1 − s[t]) (zero) or β
    ∂L/∂I[t] = δ[t];  ∂L/∂β = Σ_t δ[t]·m̃[t−1] (m̃ = (1 − r)·m for zero);  ∂L/∂θ = −Σ ∂L/∂s·σ' − Σ δ·r (subtract)
"""
from __future__ import annotations

from typing import Callable

import snntorch as snn
import torch

RESETS = ("zero", "subtract", "none")


def make_leaky(beta: float | torch.Tensor, threshold: float | torch.Tensor, reset: str,
               surrogate: Callable | None = None, learn_beta: bool = False,
               learn_threshold: bool = False) -> snn.Leaky:
    """An ``snn.Leaky`` (reset_delay=True) that is *not* kept in snnTorch's global
    ``SpikingNeuron.instances`` list (that list holds every neuron ever built and leaks them)."""
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
    b = torch.as_tensor(beta, dtype=torch.float32)
    th = torch.as_tensor(threshold, dtype=torch.float32)
    if not torch.isfinite(b).all() or (b < 0).any() or (b > 1).any():
        raise ValueError(f"beta must lie in [0, 1], got {beta!r}")
    if not torch.isfinite(th).all() or (th <= 0).any():
        raise ValueError(f"threshold must be > 0 and finite, got {threshold!r}")
    lif = snn.Leaky(beta=b.clone(), threshold=th.clone(), spike_grad=surrogate, reset_mechanism=reset,
                    learn_beta=learn_beta, learn_threshold=learn_threshold)
    inst = snn.SpikingNeuron.instances
    for i in range(len(inst) - 1, -1, -1):
        if inst[i] is lif:
            del inst[i]
            break
    return lif


class _LeakyScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cur, beta, thr, mode: int, spike_fn):  # type: ignore[override]
        T = cur.shape[0]
        bc = beta.clamp(0, 1)
        mem = torch.empty_like(cur)
        spk = torch.empty_like(cur)
        m = torch.zeros_like(cur[0])
        for t in range(T):
            # r[t] = H(m[t-1] − θ) is exactly s[t-1] (same operation on the same value)
            if mode == 0 and t > 0:  # zero
                m = bc * ((1 - spk[t - 1]) * m) + cur[t]
            elif mode == 1 and t > 0:  # subtract
                m = (bc * m + cur[t]) - spk[t - 1] * thr
            else:  # no reset, or t = 0 (m[-1] = 0 < θ, so r = 0)
                m = bc * m + cur[t]
            mem[t] = m
            torch.gt(m - thr, 0, out=spk[t])
        ctx.mode = mode
        ctx.spike_fn = spike_fn
        ctx.save_for_backward(mem, spk, beta, thr)
        return spk, mem

    @staticmethod
    def backward(ctx, g_spk, g_mem):  # type: ignore[override]
        mem, spk, beta, thr = ctx.saved_tensors
        mode = ctx.mode
        bc = beta.clamp(0, 1)
        a = torch.zeros_like(mem) if g_mem is None else g_mem.clone()
        sg = None
        if g_spk is not None:
            with torch.enable_grad():
                u = (mem - thr).detach().requires_grad_(True)
                s = ctx.spike_fn(u)
            (sg,) = torch.autograd.grad(s, u, grad_outputs=g_spk)
            a += sg
        T = mem.shape[0]
        delta = a  # overwritten in place from the end: delta[t] = a[t] + c[t+1]·delta[t+1]
        if mode == 0:
            c = bc * (1 - spk[:-1])  # c[t+1] = β(1 − r[t+1]) = β(1 − s[t])
            for t in range(T - 2, -1, -1):
                delta[t] += c[t] * delta[t + 1]
        else:
            for t in range(T - 2, -1, -1):
                delta[t] += bc * delta[t + 1]
        g_beta = g_thr = None
        if ctx.needs_input_grad[1]:
            prev = torch.zeros_like(mem)
            prev[1:] = mem[:-1]
            if mode == 0:
                r = torch.zeros_like(mem)
                r[1:] = spk[:-1]
                prev = (1 - r) * prev
            gb = (delta * prev)
            gb = gb * ((beta >= 0) & (beta <= 1)).to(gb.dtype)  # clamp's gradient mask
            g_beta = _reduce_to(gb, beta)
        if ctx.needs_input_grad[2]:
            gt = torch.zeros_like(mem)
            if sg is not None:
                gt -= sg
            if mode == 1:
                r = torch.zeros_like(mem)
                r[1:] = spk[:-1]
                gt -= delta * r
            g_thr = _reduce_to(gt, thr)
        return delta, g_beta, g_thr, None, None


def _reduce_to(g: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Sum a [T, B, ..., n] gradient down to the (broadcast) shape of parameter ``p``."""
    if p.dim() == 0:
        return g.sum().reshape(p.shape)
    lead = g.dim() - p.dim()
    g = g.sum(dim=tuple(range(lead)))
    for i, n in enumerate(p.shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(dim=i, keepdim=True)
    return g


def leaky_scan(cur: torch.Tensor, lif: snn.Leaky) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``lif``'s dynamics over the whole sequence ``cur[T, B, ...]`` starting from m = 0.
    Returns ``(spikes, membrane)``, both ``[T, B, ...]``; bitwise equal to stepping ``lif``."""
    mode = {0: 1, 1: 0, 2: 2}[int(lif.reset_mechanism_val)]  # snnTorch: 0 subtract, 1 zero, 2 none
    if float(torch.as_tensor(lif.graded_spikes_factor)) != 1.0:
        raise ValueError("leaky_scan: graded_spikes_factor != 1 is not supported")
    beta = lif.beta.to(cur.dtype) if lif.beta.dtype != cur.dtype else lif.beta
    thr = lif.threshold.to(cur.dtype) if lif.threshold.dtype != cur.dtype else lif.threshold
    return _LeakyScan.apply(cur, beta, thr, mode, lif.spike_grad)


def leaky_steps(cur: torch.Tensor, lif: snn.Leaky) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: call ``snn.Leaky`` once per time step (state reset first). Same return."""
    mem = lif.reset_mem()
    spk_rec, mem_rec = [], []
    for t in range(cur.shape[0]):
        spk, mem = lif(cur[t], mem)
        spk_rec.append(spk)
        mem_rec.append(mem)
    lif.mem = torch.zeros(0, device=cur.device)  # drop the graph reference kept by snnTorch
    return torch.stack(spk_rec), torch.stack(mem_rec)
