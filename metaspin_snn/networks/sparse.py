"""Event-driven (input-sparse) linear product for spike inputs, as a torch autograd function.

Forward ``y[r] = b + Σ_{k: x[r,k] ≠ 0} x[r,k]·Wᵀ[k]`` and weight gradient
``∂L/∂Wᵀ[k] = Σ_{r: x[r,k] ≠ 0} x[r,k]·∂L/∂y[r]`` touch only the non-zero inputs (spikes), so their
cost scales with the spike rate instead of the full ``M·K·N`` of a dense GEMM. The input gradient
``∂L/∂x = ∂L/∂y · W`` is dense (computed by torch only when the input needs it).

The input's non-zeros are listed once per forward (CSR: row pointers, column indices, values) and
reused by the weight gradient, which falls back to the dense ``gᵀ·x`` above its own (lower) density
threshold. The cost scales with the spike count, the dense GEMM's with M·K·N, so
:func:`input_events` picks the event product for wide layers below a density threshold
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
def _build_csr(x: np.ndarray, ptr: np.ndarray, idx: np.ndarray, limit: int) -> int:  # pragma: no cover
    """One branch-free pass: idx[ptr[r]:ptr[r+1]] = the columns of row r's non-zeros (every column is
    written, the write position only advances on a non-zero). Returns 1 if every non-zero is 1, 0 if
    not, and -1 as soon as more than ``limit`` non-zeros are counted (``idx`` needs ``limit + K + 1``
    entries, at most ``M·K + 1``)."""
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
        if j > limit:
            return -1
    return 1 if other == 0 else 0


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
def _csr_to_csc(ptr: np.ndarray, idx: np.ndarray, val: np.ndarray, binary: bool, K: int, cptr: np.ndarray,
                rows: np.ndarray, cval: np.ndarray) -> None:  # pragma: no cover
    """The same non-zeros by column: rows[cptr[k]:cptr[k+1]] = the rows r with x[r,k] ≠ 0, ascending
    (a counting sort of the CSR, rows visited in order); cval their values (non-binary input)."""
    M = ptr.shape[0] - 1
    cnt = np.zeros(K + 1, np.int64)
    for j in range(ptr[M]):
        cnt[idx[j] + 1] += 1
    for k in range(K):
        cnt[k + 1] += cnt[k]
    cptr[:] = cnt
    for r in range(M):
        for j in range(ptr[r], ptr[r + 1]):
            k = idx[j]
            q = cnt[k]
            rows[q] = r
            if not binary:
                cval[q] = val[j]
            cnt[k] = q + 1


@numba.njit(cache=True, error_model="numpy")
def _csc_wgrad(cptr: np.ndarray, rows: np.ndarray, cval: np.ndarray, binary: bool, g: np.ndarray,
               gwt: np.ndarray) -> None:  # pragma: no cover
    """gwt[k] = Σ_{r: x[r,k] ≠ 0} x[r,k]·g[r] with the rows in ascending order (gather-add of gradient
    rows from 0; binary inputs: eight rows per store of gwt, in the order of one add per row, so the
    sums are those of a row-by-row scatter-add to the bit), one tile of columns at a time so that the
    gradient columns of the tile stay in the L2 cache."""
    K = gwt.shape[0]
    N = g.shape[1]
    for n0 in range(0, N, _TILE):
        n1 = min(n0 + _TILE, N)
        for k in range(K):
            o = gwt[k, n0:n1]
            o[:] = 0
            j, end = cptr[k], cptr[k + 1]
            if binary:
                while j + 8 <= end:
                    g0, g1 = g[rows[j], n0:n1], g[rows[j + 1], n0:n1]
                    g2, g3 = g[rows[j + 2], n0:n1], g[rows[j + 3], n0:n1]
                    g4, g5 = g[rows[j + 4], n0:n1], g[rows[j + 5], n0:n1]
                    g6, g7 = g[rows[j + 6], n0:n1], g[rows[j + 7], n0:n1]
                    for n in range(n1 - n0):
                        o[n] = (((((((o[n] + g0[n]) + g1[n]) + g2[n]) + g3[n]) + g4[n]) + g5[n]) + g6[n]) + g7[n]
                    j += 8
                while j < end:
                    g0 = g[rows[j], n0:n1]
                    for n in range(n1 - n0):
                        o[n] += g0[n]
                    j += 1
            else:
                while j < end:
                    v = cval[j]
                    g0 = g[rows[j], n0:n1]
                    for n in range(n1 - n0):
                        o[n] += v * g0[n]
                    j += 1


class Events:
    """The non-zeros of a 2-D input ``x [M, K]`` in CSR form (``ptr``, ``idx``, ``val``), whether they
    are all 1 (``binary``), and ``nnz``: one branch-free pass over ``x`` (values gathered after it).
    Build with :meth:`build`, which stops early (and returns None) past a non-zero budget."""

    ptr: np.ndarray
    idx: np.ndarray
    val: np.ndarray
    binary: bool
    nnz: int

    def __init__(self, x: np.ndarray) -> None:
        ev = Events.build(x, x.shape[0] * x.shape[1])
        assert ev is not None
        self.__dict__.update(ev.__dict__)

    @classmethod
    def build(cls, x: np.ndarray, max_nnz: int) -> "Events | None":
        """The events of ``x``, or None when it has more than ``max_nnz`` non-zeros (the count stops
        there: a dense input costs a fraction of one pass)."""
        M, K = x.shape
        limit = min(int(max_nnz), M * K)
        ev = cls.__new__(cls)
        ev.M, ev.K = M, K
        ev.ptr = np.empty(M + 1, np.int64)
        idx = np.empty(min(limit + K, M * K) + 1, np.int32)
        status = _build_csr(x, ev.ptr, idx, limit)
        if status < 0:
            return None
        ev.binary = status == 1
        ev.nnz = int(ev.ptr[-1])
        ev.idx = idx[:ev.nnz].copy() if ev.nnz < idx.size // 4 else idx
        ev.val = np.ones(0, x.dtype)
        if not ev.binary:
            ev.val = np.empty(ev.nnz, x.dtype)
            _gather_values(x, ev.ptr, ev.idx, ev.val)
        return ev


def _product_ok(x2d: torch.Tensor, mode: bool | str) -> bool:
    ok = x2d.device.type == "cpu" and x2d.dtype in (torch.float32, torch.float64)
    if mode is True and not ok:
        raise ValueError(f"sparse product needs float32/float64 CPU input, got {x2d.dtype} on {x2d.device}")
    return ok


def input_events(x2d: torch.Tensor, out_features: int, mode: bool | str) -> Events | None:
    """The events of input ``x2d [M, K]`` when the event-driven product is to be used, else None:
    ``mode`` True forces it (CPU float32/64 only), False never; ``"auto"`` uses it on CPU float32/64
    when the layer has ≥ SPARSE_MIN_OUT outputs and the input density is ≤ SPARSE_MAX_DENSITY (the
    count is the CSR build itself, which stops past that budget)."""
    if mode is False or not _product_ok(x2d, mode):
        return None
    xd = x2d.detach().contiguous().numpy()
    if mode is True:
        return Events(xd)
    if out_features < SPARSE_MIN_OUT or x2d.numel() == 0:
        return None
    return Events.build(xd, int(SPARSE_MAX_DENSITY * x2d.numel()))


def use_sparse(x2d: torch.Tensor, out_features: int, mode: bool | str) -> bool:
    """Whether :func:`input_events` picks the event-driven product for ``x2d`` (see there)."""
    if mode is False or not _product_ok(x2d, mode):
        return False
    if mode is True:
        return True
    if out_features < SPARSE_MIN_OUT or x2d.numel() == 0:
        return False
    return torch.count_nonzero(x2d).item() <= SPARSE_MAX_DENSITY * x2d.numel()


class SparseLinearFn(torch.autograd.Function):
    """``F.linear(x, w, b)`` with the event-driven forward and weight gradient (CPU, Numba)."""

    @staticmethod
    def forward(ctx, x, w, b, ev):  # type: ignore[override]
        xd = x.detach().contiguous()
        wd = w.detach()
        if wd.dtype != x.dtype:
            raise TypeError(f"sparse linear: input dtype {x.dtype} != weight dtype {wd.dtype}")
        wt = wd.t().contiguous()
        bias = b.detach().to(x.dtype) if b is not None else torch.zeros(wd.shape[0], dtype=x.dtype)
        out = torch.empty(xd.shape[0], wd.shape[0], dtype=x.dtype)
        if ev is None:
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
                cptr = np.empty(ev.K + 1, np.int64)
                rows = np.empty(ev.nnz, np.int32)
                cval = np.empty(0 if ev.binary else ev.nnz, ev.val.dtype)
                _csr_to_csc(ev.ptr, ev.idx, ev.val, ev.binary, ev.K, cptr, rows, cval)
                _csc_wgrad(cptr, rows, cval, ev.binary, gc.numpy(), gwt.numpy())
                gw = gwt.t()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb, None


def sparse_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                  events: Events | None = None) -> torch.Tensor:
    """Event-driven ``x @ wᵀ + b`` for a 2-D input ``x [M, K]`` (CPU); ``events``: the input's
    :class:`Events` when already built (by :func:`input_events`)."""
    return SparseLinearFn.apply(x, w, b, events)
