"""Event-driven (input-sparse) linear product for spike inputs, as a torch autograd function.

Forward ``y[r] = b + Σ_{k: x[r,k] ≠ 0} x[r,k]·Wᵀ[k]`` and weight gradient
``∂L/∂Wᵀ[k] = Σ_{r: x[r,k] ≠ 0} x[r,k]·∂L/∂y[r]`` touch only the non-zero inputs (spikes), so their
cost scales with the spike rate instead of the full ``M·K·N`` of a dense GEMM. The input gradient
``∂L/∂x = ∂L/∂y · W`` is dense (computed by torch only when the input needs it).

The input's non-zeros are listed once per forward (CSR: row pointers, column indices, values; the
pass that builds it is also the density count) and, for the weight gradient, re-sorted by column
(CSC) so that both passes are gathers: binary inputs add eight rows per store, with no multiplies.
Above its own (lower) density threshold the weight gradient is the dense ``gᵀ·x``.

Which product a layer uses (:func:`input_events`): ``"auto"`` — fixed thresholds
(``SPARSE_MAX_DENSITY``, ``SPARSE_MIN_OUT``: the policy of the published runs); ``"calibrated"`` — a
cost model of the two products measured once on the machine (:class:`ProductCosts`,
:func:`product_costs`), kept in the user cache so that later runs make the same choices. The
summation order differs from GEMM, so the two products agree to rounding (not bitwise); the event
product's own sums are in a fixed order (columns ascending, rows ascending), whatever the machine.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numba
import numpy as np
import torch

from ..files import atomic_write_bytes

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
        self._fill(x, x.shape[0] * x.shape[1])

    @classmethod
    def build(cls, x: np.ndarray, max_nnz: int) -> "Events | None":
        """The events of ``x``, or None when it has more than ``max_nnz`` non-zeros (the count stops
        there: a dense input costs a fraction of one pass)."""
        ev = cls.__new__(cls)
        return ev if ev._fill(x, max_nnz) else None

    def _fill(self, x: np.ndarray, max_nnz: int) -> bool:
        """Build the CSR of ``x``; False (nothing kept) past ``max_nnz`` non-zeros."""
        M, K = x.shape
        limit = min(int(max_nnz), M * K)
        self.M, self.K = M, K
        self.ptr = np.empty(M + 1, np.int64)
        idx = np.empty(min(limit + K, M * K) + 1, np.int32)
        status = _build_csr(x, self.ptr, idx, limit)
        if status < 0:
            return False
        self.binary = status == 1
        self.nnz = int(self.ptr[-1])
        self.idx = idx[:self.nnz].copy() if self.nnz < idx.size // 4 else idx
        self.val = np.ones(0, x.dtype)
        if not self.binary:
            self.val = np.empty(self.nnz, x.dtype)
            _gather_values(x, self.ptr, self.idx, self.val)
        return True


PRODUCT_MODES = (True, False, "auto", "calibrated")


def _product_ok(x2d: torch.Tensor, mode: bool | str) -> bool:
    ok = x2d.device.type == "cpu" and x2d.dtype in (torch.float32, torch.float64)
    if mode is True and not ok:
        raise ValueError(f"sparse product needs float32/float64 CPU input, got {x2d.dtype} on {x2d.device}")
    return ok


def input_events(x2d: torch.Tensor, out_features: int, mode: bool | str) -> Events | None:
    """The events of input ``x2d [M, K]`` when the event-driven product is to be used, else None:
    ``mode`` True forces it (CPU float32/64 only), False never; ``"auto"`` uses it on CPU float32/64
    when the layer has ≥ SPARSE_MIN_OUT outputs and the input density is ≤ SPARSE_MAX_DENSITY (the
    count is the CSR build itself, which stops past that budget); ``"calibrated"`` when the density is
    below the machine's crossover for this layer width (:meth:`ProductCosts.max_density` of
    :func:`product_costs`)."""
    if mode is False or not _product_ok(x2d, mode):
        return None
    if mode is True:
        return Events(x2d.detach().contiguous().numpy())
    if x2d.numel() == 0:
        return None
    if mode == "calibrated":
        density = product_costs().max_density(out_features)  # 0: the scan alone costs more than dense
    else:
        density = SPARSE_MAX_DENSITY if out_features >= SPARSE_MIN_OUT else 0.0
    if density <= 0:
        return None
    return Events.build(x2d.detach().contiguous().numpy(), int(density * x2d.numel()))


def use_sparse(x2d: torch.Tensor, out_features: int, mode: bool | str) -> bool:
    """Whether :func:`input_events` picks the event-driven product for ``x2d`` (see there)."""
    return input_events(x2d, out_features, mode) is not None


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


# ---- the calibrated policy: a cost model of the two products, measured on this machine ------------
@dataclass(frozen=True)
class ProductCosts:
    """Seconds per unit of work of one layer's forward + weight gradient on this machine:
    ``dense`` per multiply-add of one GEMM (two GEMMs: ``2·dense·M·K·N``), ``event`` per element of
    a gathered row (forward and gradient: ``2·event·nnz·N``), ``scan`` per input element (the CSR
    pass: ``scan·M·K``). The event product is cheaper below the density
    ``(2·dense·N − scan) / (2·event·N)`` (:meth:`max_density`)."""

    dense: float
    event: float
    scan: float

    def __post_init__(self) -> None:
        for name in ("dense", "event", "scan"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"ProductCosts.{name} must be a finite number >= 0, got {v!r}")
        if self.event <= 0:
            raise ValueError(f"ProductCosts.event must be > 0, got {self.event!r}")

    def max_density(self, n_out: int) -> float:
        """The input density below which the event product is predicted faster, for ``n_out`` outputs."""
        return min(1.0, max(0.0, (2.0 * self.dense * n_out - self.scan) / (2.0 * self.event * n_out)))


def _time(fn: Callable[[], object], repeat: int) -> float:
    fn()
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def calibrate(M: int = 1024, K: int = 512, N: int = 512, repeat: int = 5, seed: int = 0) -> ProductCosts:
    """Measure :class:`ProductCosts` here (at the current torch thread count): the dense forward +
    weight gradient of an ``[M, K] × [K, N]`` layer, and the event product at densities 0.02 and 0.1
    (two equations for ``event`` and ``scan``); best of ``repeat``, about a quarter of a second."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(N, K, generator=gen)
    g = torch.randn(M, N, generator=gen)
    x_dense = (torch.rand(M, K, generator=gen) < 0.1).float()

    def dense() -> None:
        torch.mm(x_dense, w.t())
        torch.mm(g.t(), x_dense)
    t_dense = _time(dense, repeat)
    rows = []
    for d in (0.02, 0.1):
        x = (torch.rand(M, K, generator=gen) < d).float()
        nnz = int(torch.count_nonzero(x))

        def event(x=x) -> None:
            xd = x.numpy()
            ev = Events(xd)
            out = np.empty((M, N), np.float32)
            _csr_fwd(ev.ptr, ev.idx, ev.val, ev.binary, w.t().contiguous().numpy(), np.zeros(N, np.float32), out)
            cptr, rows_, cval = np.empty(K + 1, np.int64), np.empty(ev.nnz, np.int32), np.empty(0, np.float32)
            _csr_to_csc(ev.ptr, ev.idx, ev.val, ev.binary, K, cptr, rows_, cval)
            _csc_wgrad(cptr, rows_, cval, ev.binary, g.numpy(), np.empty((K, N), np.float32))
        rows.append((2.0 * nnz * N, float(M * K), _time(event, repeat)))
    (a1, b1, t1), (a2, b2, t2) = rows  # t = event·a + scan·b
    event_c = max((t2 - t1) / (a2 - a1), 1e-15)
    scan_c = max((t1 - event_c * a1) / b1, 0.0)
    return ProductCosts(dense=t_dense / (2.0 * M * K * N), event=event_c, scan=scan_c)


_costs: ProductCosts | None = None


def costs_file() -> Path:
    """Where :func:`product_costs` keeps the calibration: ``$METASPIN_CACHE_DIR`` or the per-user cache
    directory (``platformdirs.user_cache_dir("metaspin-snn")``), ``product-costs.json``."""
    root = os.environ.get("METASPIN_CACHE_DIR")
    if not root:
        try:
            import platformdirs
            root = platformdirs.user_cache_dir("metaspin-snn")
        except ImportError:  # pragma: no cover - platformdirs is a dependency
            root = os.path.join(os.path.expanduser("~"), ".cache", "metaspin-snn")
    return Path(root) / "product-costs.json"


def _machine_key() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu} | torch {torch.__version__} | numba {numba.__version__} | threads {torch.get_num_threads()}"


def product_costs() -> ProductCosts:
    """The machine's :class:`ProductCosts`: calibrated once (:func:`calibrate`) and kept in
    :func:`costs_file` under a key of CPU model, torch and numba versions and torch thread count, so
    that every later run on the machine makes the same choices (a run's numbers do not depend on the
    timing noise of its own start). :func:`set_product_costs` overrides it in this process."""
    global _costs
    if _costs is not None:
        return _costs
    path, key = costs_file(), _machine_key()
    table: dict = {}
    try:
        table = json.loads(path.read_text())
        if not isinstance(table, dict):
            table = {}
        if key in table:
            _costs = ProductCosts(**table[key])
            return _costs
    except (OSError, ValueError, TypeError):
        table = {}
    _costs = calibrate()
    table[key] = dataclasses.asdict(_costs)
    try:
        atomic_write_bytes(path, (json.dumps(table, indent=1, sort_keys=True) + "\n").encode())
    except OSError:
        pass  # an unwritable cache: the calibration holds for this process only
    return _costs


def set_product_costs(costs: ProductCosts | None) -> None:
    """Use ``costs`` for the ``"calibrated"`` policy in this process (None: back to :func:`product_costs`'s
    cached calibration)."""
    global _costs
    if costs is not None and not isinstance(costs, ProductCosts):
        raise TypeError(f"set_product_costs: expected ProductCosts or None, got {type(costs).__name__}")
    _costs = costs
