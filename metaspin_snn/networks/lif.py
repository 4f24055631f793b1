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

On CPU with scalar β and θ both directions run as single-pass Numba kernels (the backward evaluates
snnTorch's ``atan`` / ``fast_sigmoid`` surrogate derivatives itself; any other surrogate goes through
autograd); on CUDA (with Triton) both run as the Triton kernels of :mod:`.triton_lif`, for scalar or
per-neuron β/θ and any surrogate; anything else uses the torch loop (:func:`scan_backend` says which). The scan may start from a given
(detached) membrane m[−1] (truncated BPTT), with r[0] = H(m[−1] − θ) as ``snn.Leaky`` computes it.
"""
from __future__ import annotations

import math
from typing import Callable

import numba
import numpy as np
import snntorch as snn
import torch

from .. import gpu
from . import triton_lif

RESETS = ("zero", "subtract", "none")
SCAN_BACKENDS = ("auto", "numba", "triton", "torch")
_CHUNK = 2048  # neurons per pass of the backward kernel (all T over a chunk: its state stays in the L1 cache)
_SURR_ATAN, _SURR_FAST_SIGMOID = 0, 1


# ---- fused Numba kernels (scalar β and θ, CPU float32/float64) -------------------------------------
# Operations and their order match the torch ops of snn.Leaky exactly (no fastmath: no FMA
# contraction or reassociation), so spikes and membranes are bitwise equal to snnTorch's.
@numba.njit(cache=True, error_model="numpy")
def _scan_fwd_kernel(cur, m0, s0, consts, mode, mem, spk):  # pragma: no cover - compiled
    T, N = cur.shape
    b, th, one = consts[0], consts[1], consts[2]
    zero = one - one
    m = m0.copy()
    for t in range(T):
        for n in range(N):
            x = m[n]
            r = spk[t - 1, n] if t > 0 else s0[n]
            if mode == 0:
                x = b * ((one - r) * x) + cur[t, n]
            elif mode == 1:
                x = (b * x + cur[t, n]) - r * th
            else:
                x = b * x + cur[t, n]
            m[n] = x
            mem[t, n] = x
            spk[t, n] = one if (x - th) > zero else zero


@numba.njit(cache=True, error_model="numpy")
def _scan_bwd_kernel(mem, spk, m0, s0, gs, gm, consts, c64, mode, surr, has_gs, has_gm, need_b, need_t,
                     delta, acc):  # pragma: no cover
    """delta[t] = gm[t] + gs[t]·σ'(mem[t] − θ) + c[t+1]·delta[t+1]; acc[0] = Σ δ·m̃[t−1] (∂L/∂β, when
    ``need_b``), acc[1] = −Σ gs·σ' − Σ δ·r (subtract) (∂L/∂θ, when ``need_t``).

    Neurons are taken in chunks of ``_CHUNK`` (the recursion runs over all T within a chunk, so the
    carried state stays in the L1 cache); each time step is a few branch-free loops over the chunk's
    neurons (vectorised). δ of one step is formed
    in float64 and rounded to the tensor's dtype, with the operations in the order of the one-loop
    form this replaced (so δ, the input gradient, is unchanged to the bit); the β/θ sums are kept per
    neuron and added up at the end. ``c64`` = (π/2·α, α/2) for ATan, in float64."""
    T, N = mem.shape
    b, th, p, one = consts[0], consts[1], consts[2], consts[3]
    kp, p2 = c64[0], c64[1]
    C = min(N, _CHUNK)
    carry = np.zeros(C, mem.dtype)
    a = np.empty(C, np.float64)
    gbv = np.zeros(N if need_b else 1, np.float64)  # per neuron, summed at the end
    gtv = np.zeros(N if need_t else 1, np.float64)
    for c0 in range(0, N, C):
        c1 = min(c0 + C, N)
        L = c1 - c0
        carry[:] = 0
        gbc = gbv[c0:c1] if need_b else gbv
        gtc = gtv[c0:c1] if need_t else gtv
        for t in range(T - 1, -1, -1):
            for n in range(L):
                a[n] = carry[n]
            if has_gm:
                g_m = gm[t, c0:c1]
                for n in range(L):
                    a[n] += g_m[n]
            if has_gs:
                g_s = gs[t, c0:c1]
                mt = mem[t, c0:c1]
                if surr == 0:  # ATan: α/2 / (1 + (π/2·α·u)²)
                    for n in range(L):
                        u = mt[n] - th
                        v = kp * u
                        sg = g_s[n] * (p2 / (one + v * v))
                        a[n] += sg
                        if need_t:
                            gtc[n] -= sg
                else:  # FastSigmoid: 1 / (k|u| + 1)²
                    for n in range(L):
                        u = mt[n] - th
                        v = np.float64(p * abs(u) + one)
                        sg = g_s[n] * (one / (v * v))
                        a[n] += sg
                        if need_t:
                            gtc[n] -= sg
            dl = delta[t, c0:c1]
            for n in range(L):
                dl[n] = a[n]
            r = spk[t - 1, c0:c1] if t > 0 else s0[c0:c1]
            prev = mem[t - 1, c0:c1] if t > 0 else m0[c0:c1]
            if mode == 0:
                for n in range(L):
                    carry[n] = b * ((one - r[n]) * a[n])
                if need_b:
                    for n in range(L):
                        gbc[n] += a[n] * ((one - r[n]) * prev[n])
            else:
                for n in range(L):
                    carry[n] = b * a[n]
                if need_b:
                    for n in range(L):
                        gbc[n] += a[n] * prev[n]
                if need_t and mode == 1:
                    for n in range(L):
                        gtc[n] -= a[n] * r[n]
    # (the carry out of t = 0 is dropped: the initial state is detached)
    acc[0] = gbv.sum() if need_b else 0.0
    acc[1] = gtv.sum() if need_t else 0.0


def _surrogate_kind(fn: Callable) -> tuple[int, float] | None:
    """(kind, parameter) when ``fn`` is snnTorch's ``surrogate.atan(alpha)`` or
    ``surrogate.fast_sigmoid(slope)`` closure (whose derivative the kernel evaluates); else None."""
    code = getattr(fn, "__code__", None)
    if getattr(fn, "__module__", "") != "snntorch.surrogate" or code is None or not fn.__closure__:
        return None
    cells = dict(zip(code.co_freevars, (c.cell_contents for c in fn.__closure__)))
    if fn.__qualname__ == "atan.<locals>.inner" and isinstance(cells.get("alpha"), (int, float)):
        return _SURR_ATAN, float(cells["alpha"])
    if fn.__qualname__ == "fast_sigmoid.<locals>.inner" and isinstance(cells.get("slope"), (int, float)):
        return _SURR_FAST_SIGMOID, float(cells["slope"])
    return None


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
    def forward(ctx, cur, beta, thr, m0, mode: int, spike_fn, backend: str):  # type: ignore[override]
        T = cur.shape[0]
        bc = beta.clamp(0, 1)
        m0 = m0.detach().to(cur.dtype).expand(cur.shape[1:]).contiguous()
        s0 = ((m0 - thr.detach()) > 0).to(cur.dtype)  # r[0] = H(m[-1] − θ), as snn.Leaky computes it
        ctx.mode = mode
        ctx.spike_fn = spike_fn
        ctx.set_materialize_grads(False)  # an unused output (e.g. membrane) arrives as None, not zeros
        ctx.backend = backend
        ctx.kernel = backend == "numba"
        if backend == "triton":
            spk, mem = triton_lif.scan_forward(cur, m0, s0, bc.detach(), thr.detach(), mode)
            ctx.save_for_backward(mem, spk, beta, thr, m0, s0)
            return spk, mem
        if ctx.kernel:
            c = cur.detach().contiguous()
            mem = torch.empty_like(c)
            spk = torch.empty_like(c)
            consts = np.array([float(bc), float(thr), 1.0], dtype=np.float32 if c.dtype == torch.float32 else np.float64)
            _scan_fwd_kernel(c.reshape(T, -1).numpy(), m0.reshape(-1).numpy(), s0.reshape(-1).numpy(), consts,
                             mode, mem.reshape(T, -1).numpy(), spk.reshape(T, -1).numpy())
            ctx.save_for_backward(mem, spk, beta, thr, m0, s0)
            return spk, mem
        mem = torch.empty_like(cur)
        spk = torch.empty_like(cur)
        m = m0
        for t in range(T):
            # r[t] = H(m[t-1] − θ) is exactly s[t-1] (same operation on the same value)
            r = spk[t - 1] if t > 0 else s0
            if mode == 0:  # zero
                m = bc * ((1 - r) * m) + cur[t]
            elif mode == 1:  # subtract
                m = (bc * m + cur[t]) - r * thr
            else:
                m = bc * m + cur[t]
            mem[t] = m
            torch.gt(m - thr, 0, out=spk[t])
        ctx.save_for_backward(mem, spk, beta, thr, m0, s0)
        return spk, mem

    @staticmethod
    def backward(ctx, g_spk, g_mem):  # type: ignore[override]
        mem, spk, beta, thr, m0, s0 = ctx.saved_tensors
        mode = ctx.mode
        bc = beta.clamp(0, 1)
        if ctx.backend == "triton":
            return _triton_backward(ctx, g_spk, g_mem, mem, spk, beta, thr, m0, s0, bc)
        surr = _surrogate_kind(ctx.spike_fn) if ctx.kernel else None
        if surr is not None:
            T = mem.shape[0]
            np_dt = np.float32 if mem.dtype == torch.float32 else np.float64
            consts = np.array([float(bc), float(thr), surr[1], 1.0], dtype=np_dt)
            p32 = float(consts[2])  # α as the kernel's dtype holds it
            c64 = np.array([math.pi / 2 * p32, p32 / 2], dtype=np.float64)
            delta = torch.empty_like(mem)
            acc = np.zeros(2, dtype=np.float64)
            empty = np.zeros((0, 0), dtype=np_dt)
            gs = g_spk.contiguous().reshape(T, -1).numpy() if g_spk is not None else empty
            gm = g_mem.contiguous().reshape(T, -1).numpy() if g_mem is not None else empty
            _scan_bwd_kernel(mem.reshape(T, -1).numpy(), spk.reshape(T, -1).numpy(), m0.reshape(-1).numpy(),
                             s0.reshape(-1).numpy(), gs, gm, consts, c64, mode,
                             surr[0], g_spk is not None, g_mem is not None, bool(ctx.needs_input_grad[1]),
                             bool(ctx.needs_input_grad[2]), delta.reshape(T, -1).numpy(), acc)
            g_beta = g_thr = None
            if ctx.needs_input_grad[1]:
                inside = bool((beta >= 0) & (beta <= 1))
                g_beta = torch.full_like(beta, acc[0] if inside else 0.0)
            if ctx.needs_input_grad[2]:
                g_thr = torch.full_like(thr, acc[1])
            return delta, g_beta, g_thr, None, None, None, None
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
            prev = torch.empty_like(mem)
            prev[0] = m0
            prev[1:] = mem[:-1]
            if mode == 0:
                r = torch.empty_like(mem)
                r[0] = s0
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
                r = torch.empty_like(mem)
                r[0] = s0
                r[1:] = spk[:-1]
                gt -= delta * r
            g_thr = _reduce_to(gt, thr)
        return delta, g_beta, g_thr, None, None, None, None


def _triton_backward(ctx, g_spk, g_mem, mem, spk, beta, thr, m0, s0, bc):
    """The backward of :class:`_LeakyScan` by the Triton kernel; a surrogate the kernel does not know
    contributes σ'·∂L/∂s formed by autograd over all T at once."""
    surr = _surrogate_kind(ctx.spike_fn)
    if surr is None:
        surr = (triton_lif.SURR_AUTOGRAD, 0.0)
        if g_spk is not None:
            with torch.enable_grad():
                u = (mem - thr).detach().requires_grad_(True)
                s = ctx.spike_fn(u)
            (g_spk,) = torch.autograd.grad(s, u, grad_outputs=g_spk)
    need_b, need_t = bool(ctx.needs_input_grad[1]), bool(ctx.needs_input_grad[2])
    if g_spk is not None:
        g_spk = g_spk.to(mem.dtype)
    if g_mem is not None:
        g_mem = g_mem.to(mem.dtype)
    delta, gbv, gtv = triton_lif.scan_backward(mem, spk, m0, s0, g_spk, g_mem, bc.detach(), thr.detach(),
                                               ctx.mode, surr, need_b, need_t)
    g_beta = g_thr = None
    if need_b:
        gbv = gbv * ((beta >= 0) & (beta <= 1)).to(gbv.dtype)  # clamp's gradient mask
        g_beta = _reduce_to(gbv, beta)
    if need_t:
        g_thr = _reduce_to(gtv, thr)
    return delta, g_beta, g_thr, None, None, None, None


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


def scan_backend(cur: torch.Tensor, beta: torch.Tensor, thr: torch.Tensor, backend: str = "auto") -> str:
    """The implementation :func:`leaky_scan` uses: ``"numba"`` (CPU, float32/64, scalar β and θ),
    ``"triton"`` (a CUDA tensor with Triton installed, or the CPU under ``TRITON_INTERPRET=1``; scalar
    or per-neuron β/θ) or ``"torch"`` (the per-step torch recursion, any device). ``"auto"`` takes the
    first that applies, in that order (Triton only for CUDA tensors); naming one that cannot run on
    ``cur`` is a ValueError."""
    if backend not in SCAN_BACKENDS:
        raise ValueError(f"leaky_scan: backend must be one of {SCAN_BACKENDS}, got {backend!r}")
    numba_ok = (cur.device.type == "cpu" and cur.dtype in (torch.float32, torch.float64)
                and beta.numel() == 1 and thr.numel() == 1)
    if backend == "auto":
        if numba_ok:
            return "numba"
        return "triton" if cur.device.type == "cuda" and gpu.usable(cur) else "torch"
    if backend == "numba" and not numba_ok:
        raise ValueError("leaky_scan: backend 'numba' needs a float32/float64 CPU tensor and scalar beta "
                         f"and threshold (got {cur.dtype} on {cur.device}, beta {list(beta.shape)}, "
                         f"threshold {list(thr.shape)})")
    if backend == "triton" and not gpu.usable(cur):
        raise ValueError(f"leaky_scan: backend 'triton' cannot run on a {cur.dtype} tensor on {cur.device} "
                         "(needs Triton and float32/float64 on CUDA, or TRITON_INTERPRET=1 on the CPU)")
    return backend


def leaky_scan(cur: torch.Tensor, lif: snn.Leaky, mem0: torch.Tensor | None = None,
               backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``lif``'s dynamics over the whole sequence ``cur[T, B, ...]`` from the membrane ``mem0``
    (``[B, ...]``, detached: truncated BPTT; default 0). Returns ``(spikes, membrane)``, both
    ``[T, B, ...]``; bitwise equal to stepping ``lif``. ``backend``: see :func:`scan_backend`."""
    mode = {0: 1, 1: 0, 2: 2}[int(lif.reset_mechanism_val)]  # snnTorch: 0 subtract, 1 zero, 2 none
    if float(torch.as_tensor(lif.graded_spikes_factor)) != 1.0:
        raise ValueError("leaky_scan: graded_spikes_factor != 1 is not supported")
    beta = lif.beta.to(cur.dtype) if lif.beta.dtype != cur.dtype else lif.beta
    thr = lif.threshold.to(cur.dtype) if lif.threshold.dtype != cur.dtype else lif.threshold
    if cur.dim() < 2 or cur.shape[0] == 0:
        raise ValueError(f"leaky_scan: expected a current [T, B, ...] with T >= 1, got {list(cur.shape)}")
    if mem0 is None:
        mem0 = torch.zeros((), dtype=cur.dtype, device=cur.device)
    elif tuple(mem0.shape) != tuple(cur.shape[1:]):
        raise ValueError(f"leaky_scan: mem0 shape {list(mem0.shape)} != per-step shape {list(cur.shape[1:])}")
    return _LeakyScan.apply(cur, beta, thr, mem0, mode, lif.spike_grad, scan_backend(cur, beta, thr, backend))


def leaky_steps(cur: torch.Tensor, lif: snn.Leaky, mem0: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: call ``snn.Leaky`` once per time step (from ``mem0``, default a reset state)."""
    mem = lif.reset_mem() if mem0 is None else mem0.detach()
    spk_rec, mem_rec = [], []
    for t in range(cur.shape[0]):
        spk, mem = lif(cur[t], mem)
        spk_rec.append(spk)
        mem_rec.append(mem)
    lif.mem = torch.zeros(0, device=cur.device)  # drop the graph reference kept by snnTorch
    return torch.stack(spk_rec), torch.stack(mem_rec)
