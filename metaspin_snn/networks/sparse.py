"""Event-driven (input-sparse) linear product for spike inputs, as a torch autograd function.

Forward ``y[r] = b + Σ_{k: x[r,k] ≠ 0} x[r,k]·Wᵀ[k]`` and weight gradient
``∂L/∂Wᵀ[k] = Σ_{r: x[r,k] ≠ 0} x[r,k]·∂L/∂y[r]`` touch only the non-zero inputs (spikes), so their
cost scales with the spike rate instead of the full ``M·K·N`` of a dense GEMM. The input gradient
``∂L/∂x = ∂L/∂y · W`` is dense (computed by torch only when the input needs it).

The input's non-zeros are listed once per forward (CSR: row pointers, column indices, values) and
reused by the weight gradient, which falls back to the dense ``gᵀ·x`` above its own (lower) density
threshold. The cost scales with the spike count, the dense GEMM's with M·K·N, so
:func:`use_sparse` picks the event product for wide layers below a density threshold
(``bench/peers.py`` / ``bench/networks.py`` measure the crossovers, results/speed/README.md). The
summation order differs from GEMM, so results agree to rounding (not bitwise).
"""
from __future__ import annotations

import numba
import numpy as np
import torch

# The event-driven forward below SPARSE_MAX_DENSITY; its weight gradient below SPARSE_WGRAD_MAX_DENSITY,
# the dense product gᵀ·x above it (reached only when the product is forced). The crossovers measured by
# bench/peers.py are lower (results/speed/README.md), but a change of policy changes which summation
# order a run uses, and so its published numbers: these stay at the values the published runs used
# until those are rerun.
SPARSE_MAX_DENSITY = 0.2
SPARSE_WGRAD_MAX_DENSITY = 0.2
SPARSE_MIN_OUT = 128


@numba.njit(cache=True, error_model="numpy")
def _build_csr(x: np.ndarray, ptr: np.ndarray, idx: np.ndarray) -> bool:  # pragma: no cover
    """One branch-free pass: idx[ptr[r]:ptr[r+1]] = the columns of row r's non-zeros (every column is
    written, the write position only advances on a non-zero); returns whether every non-zero is 1."""
    M, K = x.shape
    j = 0
    other = 0
    ptr[0] = 0
    for r in range(M):
        xr = x[r]
        for k in range(K):
            v = xr[k]
            idx[j] = k
            nz = v != 0
            other |= nz & (v != 1)
            j += nz
        ptr[r + 1] = j
    return other == 0


@numba.njit(cache=True, error_model="numpy")
def _gather_values(x: np.ndarray, ptr: np.ndarray, idx: np.ndarray, val: np.ndarray) -> None:  # pragma: no cover
    M = x.shape[0]
    for r in range(M):
        for j in range(ptr[r], ptr[r + 1]):
            val[j] = x[r, idx[j]]


# Output columns are processed in tiles of _TILE: the weight (forward) or weight-gradient (backward)
# columns of one tile, K × _TILE values, stay in the L2 cache while every row's events pass over them.
_TILE = 128


@numba.njit(cache=True, error_model="numpy")
def _csr_fwd(ptr: np.ndarray, idx: np.ndarray, val: np.ndarray, binary: bool, wt: np.ndarray, b: np.ndarray,
             out: np.ndarray) -> None:  # pragma: no cover
    """out[r] = b + Σ_j val[j]·wt[idx[j]] over row r's non-zeros in column order (gather-add of weight
    rows; binary inputs: adds only, eight events per pass with one store of the output, in the order
    of one add per event, so the sums are those of the one-event loop to the bit), one tile of output
    columns at a time."""
    M = out.shape[0]
    N = wt.shape[1]
    for n0 in range(0, N, _TILE):
        n1 = min(n0 + _TILE, N)
        for r in range(M):
            o = out[r, n0:n1]
            o[:] = b[n0:n1]
            j, end = ptr[r], ptr[r + 1]
            if binary:
                while j + 8 <= end:
                    w0, w1 = wt[idx[j], n0:n1], wt[idx[j + 1], n0:n1]
                    w2, w3 = wt[idx[j + 2], n0:n1], wt[idx[j + 3], n0:n1]
                    w4, w5 = wt[idx[j + 4], n0:n1], wt[idx[j + 5], n0:n1]
                    w6, w7 = wt[idx[j + 6], n0:n1], wt[idx[j + 7], n0:n1]
                    for n in range(n1 - n0):  # the sequential order of one add per event, one store
                        o[n] = (((((((o[n] + w0[n]) + w1[n]) + w2[n]) + w3[n]) + w4[n]) + w5[n]) + w6[n]) + w7[n]
                    j += 8
                while j < end:
                    w0 = wt[idx[j], n0:n1]
                    for n in range(n1 - n0):
                        o[n] += w0[n]
                    j += 1
            else:
                while j < end:
                    v = val[j]
                    w0 = wt[idx[j], n0:n1]
                    for n in range(n1 - n0):
                        o[n] += v * w0[n]
                    j += 1


@numba.njit(cache=True, error_model="numpy")
def _csr_wgrad(ptr: np.ndarray, idx: np.ndarray, val: np.ndarray, binary: bool, g: np.ndarray,
               gwt: np.ndarray) -> None:  # pragma: no cover
    """gwt[k] = Σ_{r: x[r,k] ≠ 0} x[r,k]·g[r] (scatter-add of gradient rows), one tile of columns at a
    time so that the tile of gwt being accumulated stays in the L2 cache."""
    M = g.shape[0]
    N = g.shape[1]
    gwt[:] = 0
    for n0 in range(0, N, _TILE):
        n1 = min(n0 + _TILE, N)
        for r in range(M):
            gr = g[r, n0:n1]
            j, end = ptr[r], ptr[r + 1]
            if binary:
                while j < end:
                    d = gwt[idx[j], n0:n1]
                    for n in range(n1 - n0):
                        d[n] += gr[n]
                    j += 1
            else:
                while j < end:
                    v = val[j]
                    d = gwt[idx[j], n0:n1]
                    for n in range(n1 - n0):
                        d[n] += v * gr[n]
                    j += 1


class Events:
    """The non-zeros of a 2-D input ``x [M, K]`` in CSR form (``ptr``, ``idx``, ``val``), whether they
    are all 1 (``binary``), and ``nnz``: one branch-free pass over ``x`` (values gathered after it)."""

    def __init__(self, x: np.ndarray) -> None:
        self.M, self.K = x.shape
        self.ptr = np.empty(self.M + 1, np.int64)
        idx = np.empty(self.M * self.K + 1, np.int32)
        self.binary = bool(_build_csr(x, self.ptr, idx))
        self.nnz = int(self.ptr[-1])
        self.idx = idx[:self.nnz].copy() if self.nnz < idx.size // 4 else idx
        self.val = np.ones(0, x.dtype)
        if not self.binary:
            self.val = np.empty(self.nnz, x.dtype)
            _gather_values(x, self.ptr, self.idx, self.val)


def use_sparse(x2d: torch.Tensor, out_features: int, mode: bool | str) -> bool:
    """Whether to use the event-driven product for input ``x2d [M, K]``: ``mode`` True/False forces,
    ``"auto"`` picks it on CPU float32/64 when the input density ≤ SPARSE_MAX_DENSITY and the layer has
    ≥ SPARSE_MIN_OUT outputs."""
    if mode is False:
        return False
    ok = x2d.device.type == "cpu" and x2d.dtype in (torch.float32, torch.float64)
    if mode is True:
        if not ok:
            raise ValueError(f"sparse product needs float32/float64 CPU input, got {x2d.dtype} on {x2d.device}")
        return True
    if not ok or out_features < SPARSE_MIN_OUT or x2d.numel() == 0:
        return False
    return torch.count_nonzero(x2d).item() <= SPARSE_MAX_DENSITY * x2d.numel()


class SparseLinearFn(torch.autograd.Function):
    """``F.linear(x, w, b)`` with the event-driven forward and weight gradient (CPU, Numba)."""

    @staticmethod
    def forward(ctx, x, w, b):  # type: ignore[override]
        xd = x.detach().contiguous()
        wd = w.detach()
        if wd.dtype != x.dtype:
            raise TypeError(f"sparse linear: input dtype {x.dtype} != weight dtype {wd.dtype}")
        wt = wd.t().contiguous()
        bias = b.detach().to(x.dtype) if b is not None else torch.zeros(wd.shape[0], dtype=x.dtype)
        out = torch.empty(xd.shape[0], wd.shape[0], dtype=x.dtype)
        ev = Events(xd.numpy())
        _csr_fwd(ev.ptr, ev.idx, ev.val, ev.binary, wt.numpy(), bias.contiguous().numpy(), out.numpy())
        ctx.events = ev if ev.nnz <= SPARSE_WGRAD_MAX_DENSITY * max(1, ev.M * ev.K) else None
        ctx.save_for_backward(xd, w)
        ctx.has_bias = b is not None
        return out

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        x, w = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = g @ w.detach()
        if ctx.needs_input_grad[1]:
            ev = ctx.events
            if ev is None:  # denser than SPARSE_WGRAD_MAX_DENSITY: the dense product is faster
                gw = g.t() @ x
            else:
                gc = g.contiguous()
                gwt = torch.empty(x.shape[1], gc.shape[1], dtype=gc.dtype)
                _csr_wgrad(ev.ptr, ev.idx, ev.val, ev.binary, gc.numpy(), gwt.numpy())
                gw = gwt.t()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb


def sparse_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """Event-driven ``x @ wᵀ + b`` for a 2-D input ``x [M, K]`` (CPU)."""
    return SparseLinearFn.apply(x, w, b)
