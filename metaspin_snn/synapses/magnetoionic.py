"""Two-device magneto-ionic synapse (C2N device model).

Model of the simulations in the public repository ``kellian-cottart/magnetoionic-simulations``
(readme "Description", ``optimizers/magnetoionicDouble.py``, ``models/layers/noisyDoubleLinear.py``);
equations re-derived and re-implemented here, no code copied.

* Two devices per weight; each device's state is its pulse count ``x ∈ [0, x_max]`` (``x_max`` = 27
  pulses, the measured range) and its read-out is the Hall voltage ``f(x)``:

  - linear       ``f(x) = −0.021·x + 2.742``
  - exponential  ``f(x) = 1.530·exp(−x/9.741) + 0.750``

  The effective weight is ``w = gain·(f(x₂) − f(x₁))`` (``gain`` = 1 reproduces the repository, whose
  weights are the device voltages themselves; |w| ≤ gain·(f(0) − f(x_max)) = 0.567·gain (linear) or
  1.434·gain (exponential)).
* A device only moves one way: pulses increase ``x`` (so ``f`` decreases, ``f' < 0`` for both
  responses — enforced by validation). A gradient ``g = ∂L/∂w`` moves one device by
  ``Δx = lr·|g|·ν`` pulses: ``g < 0`` (w should rise) pulses device 1 (``f(x₁)`` drops, w rises);
  ``g > 0`` pulses device 2. ``ν ~ |N(1, σ_dev)|`` (σ_dev = 0.2) is fixed per device, drawn at init
  (device-to-device variability: each device has its own slope). Steps ``Δx < min_dx`` are dropped
  (the repository's ``clipping`` option; 0 disables). ``x`` saturates at ``x_max``.
* Read noise: in training (``sample=True``) each device read adds ``N(0, σ_r)`` with σ_r = 0.015
  (readme: "σ_r = 0.015 to match experimental conditions"); so w carries noise of std ``√2·σ_r·gain``.
  At evaluation the read is noise-free unless ``eval_noise=True``.
* Refresh (re-centring). When the pulsed device reaches ``x_max`` the pair is re-programmed to the
  *same* weight with the least range used: with ``D = f(x₂) − f(x₁)`` (saturated values),

  - ``D ≥ 0``: ``x₂ ← 0``, ``x₁ ← f⁻¹(f(0) − D)``;
  - ``D < 0``: ``x₁ ← 0``, ``x₂ ← f⁻¹(f(0) + D)``;

  so ``f(x₂) − f(x₁) = D`` exactly (up to float rounding) and the device that must stay high gets its
  full range back. This is the repository's rule written in x (there, in voltage: the saturated
  device ← ``f(x_max) − (f(partner) − f(0))``, partner ← ``f(0)``; the saturated device is always the
  one on the losing side of D, so both coincide); the part of the last pulse beyond ``x_max`` is
  lost (saturation), as there. A refresh is triggered only by a device pulsed in this step, and
  counted per synapse (``n_refresh``); pulses are counted in ``n_pulse``.
* Initial state: ``w ~ U(−init_range, init_range)`` programmed with the same least-range rule (the
  repository starts both devices slightly below f(0); the difference is a common-mode offset).
  Not modelled: the repository's optional ``physical_clip`` (smooth suppression of sub-0.18-pulse
  steps) and its matrix-product voltage noise σ_v (a layer property, not a synapse one).
* ``hidden()`` = ``(x₁ + x₂) / (2·x_max)`` ∈ [0, 1]: the fraction of the pair's pulse budget used
  since its last refresh — a trace of cumulative write activity (each refresh drops it to the
  minimum that encodes |w|).

Kernel: blocks of 16384 synapses; a branch-free, vectorised float32 pulse pass (bit-equal to
:func:`mi_step_torch`), then, only in blocks where a device saturated, a float64 refresh pass while
the block is in cache — one pass over memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import torch

from .base import Backend, SynapseModel, check_range

_RESPONSES = ("linear", "exponential")


@dataclass(frozen=True)
class MagnetoIonicParams:
    """Parameters of :class:`MagnetoIonicPair` (defaults: kellian-cottart/magnetoionic-simulations).

    ``lr`` [pulses per unit |∂L/∂w|]; ``response`` "linear" | "exponential"; ``x_max`` [pulses];
    ``lin_slope``/``lin_offset`` [V/pulse, V]; ``exp_amp``/``exp_tau``/``exp_offset`` [V, pulses, V];
    ``device_variability`` σ of ν ~ |N(1, σ)|; ``read_noise`` σ_r [V] per device read;
    ``eval_noise`` noisy read in eval mode; ``gain`` weight per volt; ``min_dx`` smallest applied
    step [pulses]; ``init_range`` initial w ~ U(−init_range, init_range) (repository: 0.01);
    ``seed`` of the model's generator (ν, initial state, read noise).

    ``lr`` = 1: the repository trains MNIST with lr 500–5000 on inputs scaled by ``input_scale`` =
    1e-3 (``NoisyDoubleLinear``), and ∂L/∂w scales with the input, so its lr = 1000 is lr = 1 here
    for unscaled inputs.
    """

    lr: float = 1.0
    response: str = "linear"
    x_max: float = 27.0
    lin_slope: float = -0.021
    lin_offset: float = 2.742
    exp_amp: float = 1.530
    exp_tau: float = 9.741
    exp_offset: float = 0.750
    device_variability: float = 0.2
    read_noise: float = 0.015
    eval_noise: bool = False
    gain: float = 1.0
    min_dx: float = 0.0
    init_range: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"MagnetoIonicParams.seed must be an int in [0, inf), got {self.seed!r}")
        if self.response not in _RESPONSES:
            raise ValueError(f"MagnetoIonicParams.response must be one of {_RESPONSES}, got {self.response!r}")
        if not isinstance(self.eval_noise, bool):
            raise ValueError(f"MagnetoIonicParams.eval_noise must be a bool, got {self.eval_noise!r}")
        check_range(self, "lr", 0.0, 1e12)
        check_range(self, "x_max", 0.0, 1e6, lo_open=True)
        check_range(self, "lin_slope", None, 0.0, hi_open=True)  # f must decrease with pulses
        check_range(self, "lin_offset", -1e6, 1e6)
        check_range(self, "exp_amp", 0.0, 1e6, lo_open=True)
        check_range(self, "exp_tau", 0.0, 1e6, lo_open=True)
        check_range(self, "exp_offset", -1e6, 1e6)
        check_range(self, "device_variability", 0.0, 1.0)
        check_range(self, "read_noise", 0.0, 1e3)
        check_range(self, "gain", 0.0, 1e6, lo_open=True)
        check_range(self, "min_dx", 0.0, self.x_max)
        check_range(self, "init_range", 0.0, self.f_range())

    # -- response ---------------------------------------------------------------------------
    def kind(self) -> int:
        return _RESPONSES.index(self.response)

    def coeffs(self) -> tuple[float, float, float]:
        """(p0, p1, p2): linear f = p0·x + p1; exponential f = p0·exp(−x/p1) + p2."""
        if self.response == "linear":
            return (float(self.lin_slope), float(self.lin_offset), 0.0)
        return (float(self.exp_amp), float(self.exp_tau), float(self.exp_offset))

    def f(self, x: float) -> float:
        """Device response f(x) [V] (scalar, float64)."""
        return _f_scalar(float(x), self.kind(), *self.coeffs())

    def f_range(self) -> float:
        """f(0) − f(x_max) > 0: the largest |f(x₂) − f(x₁)|."""
        return self.f(0.0) - self.f(self.x_max)

    def w_max(self) -> float:
        """Largest |w| (noise-free)."""
        return self.gain * self.f_range()


def _f_scalar(x: float, kind: int, p0: float, p1: float, p2: float) -> float:
    if kind == 0:
        return p0 * x + p1
    return p0 * math.exp(-x / p1) + p2


def f_torch(x: torch.Tensor, p: MagnetoIonicParams) -> torch.Tensor:
    """f(x) elementwise (dtype of ``x``)."""
    p0, p1, p2 = p.coeffs()
    if p.kind() == 0:
        return x * p0 + p1
    return torch.exp(-x / p1) * p0 + p2


def f_inv_torch(y: torch.Tensor, p: MagnetoIonicParams) -> torch.Tensor:
    """f⁻¹(y), clipped to [0, x_max]."""
    p0, p1, p2 = p.coeffs()
    if p.kind() == 0:
        x = (y - p1) / p0
    else:
        x = -p1 * torch.log(torch.clamp((y - p2) / p0, min=1e-300))
    return torch.clamp(x, 0.0, p.x_max)


_JIT = dict(cache=True, error_model="numpy")  # no fastmath: float32 bit-equality with torch
_BLOCK = 16384  # synapses per block: vectorised pulse loop; rare refreshes fixed up in cache


@numba.njit(**_JIT)
def _f_nb(x: float, kind: int, p0: float, p1: float, p2: float) -> float:
    if kind == 0:
        return p0 * x + p1
    return p0 * math.exp(-x / p1) + p2


@numba.njit(**_JIT)
def _finv_nb(y: float, kind: int, p0: float, p1: float, p2: float, x_max: float) -> float:
    if kind == 0:
        x = (y - p1) / p0
    else:
        x = -p1 * math.log(max((y - p2) / p0, 1e-300))
    return min(max(x, 0.0), x_max)


@numba.njit(**_JIT)
def _mi_block(g, x1, x2, nu1, nu2, n_pulse, n_refresh, lr, min_dx, x_max,
              kind, p0, p1, p2):  # pragma: no cover - compiled
    """One block (array slices): branch-free, vectorised pulse pass (float32, bit-equal to torch),
    then the refreshes of this block (float64) while it is still in cache. (Slices index from 0, so
    LLVM knows i ≥ 0 and vectorises; ``range(lo, hi)`` on the full arrays did not.)"""
    lr32, min32, xmax32 = np.float32(lr), np.float32(min_dx), np.float32(x_max)
    nsat = 0
    for i in range(g.size):
        gi = g[i]
        ag = abs(gi)
        dx1 = lr32 * ag * nu1[i]
        dx2 = lr32 * ag * nu2[i]
        q1 = (gi < 0) & (dx1 >= min32) & (dx1 > 0)  # w should rise: pulse device 1 (f' < 0)
        q2 = (gi > 0) & (dx2 >= min32) & (dx2 > 0)  # w should fall: pulse device 2
        a1 = x1[i]
        a2 = x2[i]
        y1 = min(a1 + dx1, xmax32)
        y2 = min(a2 + dx2, xmax32)
        y1 = y1 if q1 else a1
        y2 = y2 if q2 else a2
        x1[i] = y1
        x2[i] = y2
        n_pulse[i] += np.int32(q1 | q2)
        nsat += np.int32((q1 & (y1 >= xmax32)) | (q2 & (y2 >= xmax32)))
    if nsat == 0:
        return
    f0 = _f_nb(0.0, kind, p0, p1, p2)
    for i in range(g.size):
        gi = g[i]
        ag = abs(gi)
        dx1 = lr32 * ag * nu1[i]
        dx2 = lr32 * ag * nu2[i]
        q1 = (gi < 0) & (dx1 >= min32) & (dx1 > 0)
        q2 = (gi > 0) & (dx2 >= min32) & (dx2 > 0)
        if (q1 & (x1[i] >= xmax32)) | (q2 & (x2[i] >= xmax32)):
            d = _f_nb(np.float64(x2[i]), kind, p0, p1, p2) - _f_nb(np.float64(x1[i]), kind, p0, p1, p2)
            if d >= 0:
                x1[i] = np.float32(_finv_nb(f0 - d, kind, p0, p1, p2, x_max))
                x2[i] = np.float32(0.0)
            else:
                x1[i] = np.float32(0.0)
                x2[i] = np.float32(_finv_nb(f0 + d, kind, p0, p1, p2, x_max))
            n_refresh[i] += 1


@numba.njit(**_JIT)
def mi_kernel(g, x1, x2, nu1, nu2, n_pulse, n_refresh, lr, min_dx, x_max, kind, p0, p1, p2):
    """Fused in-place update over flat arrays (serial): one pass over g, x₁, x₂, ν₁, ν₂ and the
    counters (float32 g, x, ν; int32 counters; scalars as in :func:`mi_step_torch`)."""
    n = g.size
    for b in range((n + _BLOCK - 1) // _BLOCK):
        lo = b * _BLOCK
        hi = min(n, lo + _BLOCK)
        _mi_block(g[lo:hi], x1[lo:hi], x2[lo:hi], nu1[lo:hi], nu2[lo:hi], n_pulse[lo:hi],
                  n_refresh[lo:hi], lr, min_dx, x_max, kind, p0, p1, p2)


@numba.njit(parallel=True, **_JIT)
def mi_kernel_parallel(g, x1, x2, nu1, nu2, n_pulse, n_refresh, lr, min_dx, x_max, kind, p0, p1, p2):
    """Same as :func:`mi_kernel`, multithreaded over blocks."""
    n = g.size
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        lo = b * _BLOCK
        hi = min(n, lo + _BLOCK)
        _mi_block(g[lo:hi], x1[lo:hi], x2[lo:hi], nu1[lo:hi], nu2[lo:hi], n_pulse[lo:hi],
                  n_refresh[lo:hi], lr, min_dx, x_max, kind, p0, p1, p2)


def _f_t(x: torch.Tensor, kind: int, p0: float, p1: float, p2: float) -> torch.Tensor:
    return x * p0 + p1 if kind == 0 else torch.exp(-x / p1) * p0 + p2


def _finv_t(y: torch.Tensor, kind: int, p0: float, p1: float, p2: float, x_max: float) -> torch.Tensor:
    x = (y - p1) / p0 if kind == 0 else -p1 * torch.log(torch.clamp((y - p2) / p0, min=1e-300))
    return torch.clamp(x, 0.0, x_max)


def mi_step_torch(g: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, nu1: torch.Tensor,
                  nu2: torch.Tensor, n_pulse: torch.Tensor, n_refresh: torch.Tensor, lr: float,
                  min_dx: float, x_max: float, kind: int, p0: float, p1: float, p2: float) -> None:
    """Torch reference of :func:`mi_kernel`, in place, any device (same arguments, tensors)."""
    ag = g.abs()
    xmax = torch.tensor(x_max, dtype=torch.float32, device=g.device)
    dx1 = ag * lr * nu1
    dx2 = ag * lr * nu2
    q1 = (g < 0) & (dx1 >= min_dx) & (dx1 > 0)
    q2 = (g > 0) & (dx2 >= min_dx) & (dx2 > 0)
    x1.copy_(torch.where(q1, torch.minimum(x1 + dx1, xmax), x1))
    x2.copy_(torch.where(q2, torch.minimum(x2 + dx2, xmax), x2))
    n_pulse.add_((q1 | q2).to(n_pulse.dtype))
    ref = (q1 & (x1 >= xmax)) | (q2 & (x2 >= xmax))
    if bool(ref.any()):  # refresh (float64) on the saturated synapses only
        a1, a2 = x1[ref].double(), x2[ref].double()
        d = _f_t(a2, kind, p0, p1, p2) - _f_t(a1, kind, p0, p1, p2)
        f0 = _f_scalar(0.0, kind, p0, p1, p2)
        pos = d >= 0
        zero = torch.zeros_like(d)
        x1[ref] = torch.where(pos, _finv_t(f0 - d, kind, p0, p1, p2, x_max), zero).float()
        x2[ref] = torch.where(pos, zero, _finv_t(f0 + d, kind, p0, p1, p2, x_max)).float()
        n_refresh.add_(ref.to(n_refresh.dtype))


class MagnetoIonicPair(SynapseModel):
    """Two one-way magneto-ionic devices per weight, ``w = gain·(f(x₂) − f(x₁))`` (module docstring).

    Buffers (all in ``state_dict``): ``x1``, ``x2`` [pulses, float32], ``nu1``, ``nu2`` (per-device
    slope factors), ``n_pulse`` (write pulses applied, int32), ``n_refresh`` (re-centrings, int32).
    The read-noise generator's state is saved too (``extra_state``), so a reload reproduces reads.
    """

    def __init__(self, shape: tuple[int, ...] | torch.Size,
                 params: MagnetoIonicParams | None = None,
                 backend: Backend = "auto", parallel: bool = False) -> None:
        params = MagnetoIonicParams() if params is None else params
        if not isinstance(params, MagnetoIonicParams):
            raise TypeError(f"MagnetoIonicPair: params must be MagnetoIonicParams, got {type(params).__name__}")
        super().__init__(shape, params, backend)
        self.parallel = bool(parallel)
        # CPU generator; draws are moved to the state's device, so every device sees the same numbers.
        self._gen = torch.Generator().manual_seed(params.seed)
        p = params
        sd = p.device_variability
        nu1 = (1.0 + sd * torch.randn(self.shape, generator=self._gen)).abs()
        nu2 = (1.0 + sd * torch.randn(self.shape, generator=self._gen)).abs()
        w0 = (torch.rand(self.shape, generator=self._gen, dtype=torch.float64) * 2 - 1) * p.init_range
        d0 = w0 / p.gain
        f0 = p.f(0.0)
        x1 = torch.where(d0 >= 0, f_inv_torch(f0 - d0, p), torch.zeros_like(d0))
        x2 = torch.where(d0 >= 0, torch.zeros_like(d0), f_inv_torch(f0 + d0, p))
        self.register_buffer("x1", x1.float())
        self.register_buffer("x2", x2.float())
        self.register_buffer("nu1", nu1.float())
        self.register_buffer("nu2", nu2.float())
        self.register_buffer("n_pulse", torch.zeros(self.shape, dtype=torch.int32))
        self.register_buffer("n_refresh", torch.zeros(self.shape, dtype=torch.int32))

    # ---- generator in the state_dict ----------------------------------------------------------
    def get_extra_state(self) -> Any:
        return {"generator": self._gen.get_state()}

    def set_extra_state(self, state: Any) -> None:
        self._gen.set_state(state["generator"])

    # ---- model --------------------------------------------------------------------------------
    def device_read(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise-free device voltages ``(f(x₁), f(x₂))``."""
        return f_torch(self.x1, self.params), f_torch(self.x2, self.params)

    def _compute_weight(self, sample: bool) -> torch.Tensor:
        p: MagnetoIonicParams = self.params
        f1, f2 = self.device_read()
        if (sample or p.eval_noise) and p.read_noise > 0:
            eps = torch.randn((2,) + self.shape, generator=self._gen).to(self.x1.device)
            f1 = f1 + p.read_noise * eps[0]
            f2 = f2 + p.read_noise * eps[1]
        return (f2 - f1) * p.gain

    def _update_torch(self, grad: torch.Tensor) -> None:
        p: MagnetoIonicParams = self.params
        g = grad.to(device=self.x1.device, dtype=self.x1.dtype)
        mi_step_torch(g, self.x1, self.x2, self.nu1, self.nu2, self.n_pulse, self.n_refresh,
                      float(p.lr), float(p.min_dx), float(p.x_max), p.kind(), *p.coeffs())

    def _update_numba(self, grad: torch.Tensor) -> None:
        p: MagnetoIonicParams = self.params
        for name in ("x1", "x2", "nu1", "nu2", "n_pulse", "n_refresh"):
            t = getattr(self, name)
            if t.device.type != "cpu" or not t.is_contiguous():
                raise ValueError(f"MagnetoIonicPair: numba backend needs contiguous CPU state, "
                                 f"buffer {name} is on {t.device} (contiguous={t.is_contiguous()})")
        p0, p1, p2 = p.coeffs()
        kern = mi_kernel_parallel if self.parallel else mi_kernel
        kern(grad.reshape(-1).numpy(), self.x1.view(-1).numpy(), self.x2.view(-1).numpy(),
             self.nu1.view(-1).numpy(), self.nu2.view(-1).numpy(),
             self.n_pulse.view(-1).numpy(), self.n_refresh.view(-1).numpy(),
             float(p.lr), float(p.min_dx), float(p.x_max), p.kind(), p0, p1, p2)

    def hidden(self) -> torch.Tensor:
        """(x₁ + x₂)/(2·x_max) ∈ [0, 1]: fraction of the pulse budget used since the last refresh."""
        return (self.x1 + self.x2) / (2.0 * self.params.x_max)

    def total_pulses(self) -> int:
        return int(self.n_pulse.sum().item())

    def total_refreshes(self) -> int:
        return int(self.n_refresh.sum().item())


__all__ = ["MagnetoIonicPair", "MagnetoIonicParams", "f_inv_torch", "f_torch", "mi_kernel",
           "mi_kernel_parallel", "mi_step_torch"]
