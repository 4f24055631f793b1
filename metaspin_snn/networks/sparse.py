"""Event-driven (input-sparse) linear product for spike inputs, as a torch autograd function.

Forward ``y[r] = b + Σ_{k: x[r,k] ≠ 0} x[r,k]·Wᵀ[k]`` and weight gradient
``∂L/∂Wᵀ[k] = Σ_{r: x[r,k] ≠ 0} x[r,k]·∂L/∂y[r]`` touch only the non-zero inputs (spikes), so their
cost scales with the spike rate instead of the full ``M·K·N`` of a dense GEMM. The input gradient
``∂L/∂x = ∂L/∂y · W`` is dense (computed by torch only when the input needs it).

Measured (bench/networks.py, one thread): at ~13 % input density the Numba kernels take about half
the time of the dense GEMM for a 784→1000 layer over T·B = 3200 rows; they lose above ~25–30 %
density or with small output widths, so :func:`use_sparse` only picks them for wide layers and
sparse inputs. The summation order differs from GEMM, so results agree to rounding (not bitwise).
"""
from __future__ import annotations

import numba
import numpy as np
import torch

# Choose the event-driven product only when it measured faster (see module docstring).
SPARSE_MAX_DENSITY = 0.2
SPARSE_MIN_OUT = 128


@numba.njit(cache=True, error_model="numpy")
def _spmm_fwd(x: np.ndarray, wt: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    M, K = x.shape
    N = wt.shape[1]
    for r in range(M):
        o = out[r]
        for n in range(N):
            o[n] = b[n]
        xr = x[r]
        for k in range(K):
            v = xr[k]
            if v != 0:
                w = wt[k]
                if v == 1:
                    for n in range(N):
                        o[n] += w[n]
                else:
                    for n in range(N):
                        o[n] += v * w[n]


@numba.njit(cache=True, error_model="numpy")
def _spmm_wgrad(x: np.ndarray, g: np.ndarray, gwt: np.ndarray) -> None:  # pragma: no cover
    M, K = x.shape
    N = g.shape[1]
    gwt[:] = 0
    for r in range(M):
        gr = g[r]
        xr = x[r]
        for k in range(K):
            v = xr[k]
            if v != 0:
                d = gwt[k]
                if v == 1:
                    for n in range(N):
                        d[n] += gr[n]
                else:
                    for n in range(N):
                        d[n] += v * gr[n]


def use_sparse(x2d: torch.Tensor, out_features: int, mode: bool | str) -> bool:
    """Whether to use the event-driven product for input ``x2d [M, K]``: ``mode`` True/False forces,
    ``"auto"`` picks it on CPU float32/64 when the input density ≤ SPARSE_MAX_DENSITY and the layer has
    ≥ SPARSE_MIN_OUT outputs (where it measured faster than dense GEMM)."""
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
        _spmm_fwd(xd.numpy(), wt.numpy(), bias.contiguous().numpy(), out.numpy())
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
            gc = g.contiguous()
            gwt = torch.empty(x.shape[1], gc.shape[1], dtype=gc.dtype)
            _spmm_wgrad(x.numpy(), gc.numpy(), gwt.numpy())
            gw = gwt.t()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb


def sparse_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """Event-driven ``x @ wᵀ + b`` for a 2-D input ``x [M, K]`` (CPU)."""
    return SparseLinearFn.apply(x, w, b)
