"""Two-device magneto-ionic synapse (C2N device model).

Model of the simulations in the public repository ``kellian-cottart/magnetoionic-simulations``
(commit 8cf78c27bde66bdf947612f14ccdbad039797665; files ``readme.md``, ``main.py``,
``optimizers/magnetoionicDouble.py`` [MID], ``models/layers/noisyDoubleLinear.py`` [NDL]);
equations re-derived and re-implemented here in pulse-count space, no code copied. Their state is
the two device voltages; ours is the two pulse counts ``x = f⁻¹(voltage)`` — the same state.

* **Devices.** Two per weight; each device's state is its pulse count ``x ∈ [0, x_max]``, x_max = 27
  (readme.md:48; MID:54-57 ``start = f(0)``, ``stop = f(27)``), read out as the Hall voltage ``f(x)``
  (readme.md:41-46, main.py:88-93):

  - linear       ``f(x) = −0.021·x + 2.742``
  - exponential  ``f(x) = 1.530·exp(−x/9.741) + 0.750``

  The effective weight is ``w = gain·(f(x₂) − f(x₁))`` (NDL:66-68 ``resistor = weight2 − weight1``;
  ``gain`` = 1 is the repository), so |w| ≤ gain·(f(0) − f(x_max)) = 0.567·gain (linear) or
  1.434·gain (exponential). Their weight voltages are clamped to [f(27), f(0)] at every step
  (MID:75-76), i.e. ``x ∈ [0, x_max]``, which our state satisfies by construction.
* **Write.** With ``g = ∂L/∂w``, their layer hands ``∂L/∂w₁ = −g`` and ``∂L/∂w₂ = +g`` to the
  optimiser (NDL:82-83), which moves device i by ``uᵢ = lr·|∂L/∂wᵢ|·νᵢ = lr·|g|·νᵢ`` pulses
  (MID:81-82), ``xᵢ ← xᵢ + uᵢ`` applied where ``∂L/∂wᵢ ≥ 0`` (MID:93-97): ``g < 0`` (w should rise)
  pulses device 1, ``g > 0`` pulses device 2 (``g = 0``: both by 0, a no-op; here no pulse and none
  counted). Devices only move one way (``f' < 0``, enforced by validation).
  ``νᵢ ~ |N(1, σ_dev)|``, σ_dev = 0.2, fixed per device (MID:69-74, drawn at their first step, here at
  init; MID:23, main.py:38, readme.md:56). ``clipping``: steps ``uᵢ < min_dx`` are set to 0
  (MID:87-91; default 0 = off, MID:24, main.py:40). Their ``physical_clip`` (MID:83-85, 109-110) is
  never applied at this commit — MID:37 stores the function ``physical_clip`` under
  ``"physical_clipping"`` instead of the flag, so MID:83 ``== True`` is always false — and is not
  modelled.
* **Refresh, after the pulse, over the whole tensor** (MID:98-105), in voltages with
  ``start = f(0)``, ``stop = f(x_max)``:

  1. where ``w₁ ≤ stop`` (device 1 at or beyond its bound): ``w₁ ← stop − (w₂ − start)``,
     ``w₂ ← start``;
  2. then, where ``w₂ ≤ stop``: ``w₂ ← stop − (w₁ − start)``, ``w₁ ← start``.

  Here, with the pulsed state clipped at ``x_max`` (their ``f(x + u)`` beyond ``stop`` is replaced by
  ``stop`` in the formula, so the part of a pulse beyond the bound is lost there too): where
  ``x₁ = x_max``: ``x₁ ← f⁻¹(f(x_max) + f(0) − f(x₂))``, ``x₂ ← 0``; else where ``x₂ = x_max``:
  ``x₂ ← f⁻¹(f(x_max) + f(0) − f(x₁))``, ``x₁ ← 0`` (float64). This keeps ``f(x₂) − f(x₁)`` and gives
  the device that must read higher its full range back (linear: ``x_other ← x_max − x_kept``).
  One difference, between steps only: from (x_max, 0) a single pulse u > x_max on device 2 makes
  their MID:100 use the unclamped ``f(u) < stop``, leaving ``w₁`` above f(0) until the clamp of
  their next step (MID:75-76); here the pair goes straight to (0, 0), their clamped state.
  The trigger is **any** device at its bound, pulsed in this step or not: from (x₁, x₂) = (0, 27) a
  pulse u on device 1 gives (0, f⁻¹(f(27) + f(0) − f(u))) = (0, 27 − u) (linear). The two pairs the
  rule maps to themselves, (x_max, 0) and (0, x_max) (|w| at its maximum), are skipped, exactly (their
  voltage rule returns the same voltages there); every other refresh is counted in ``n_refresh``
  (per synapse); applied pulses are counted in ``n_pulse`` (also those lost at a bound).
* **Noise** (readme.md:50-56; σ_r = ``resistor_noise``, readme value 0.015, main.py:42 default 0).
  Their training forward is noise-free (NDL:61-68; ``device_noise`` defaults to False, NDL:16,
  main.py:48, and no readme run sets it). The backward pass draws a fresh ``εᵢ ~ N(0, σ_r)`` per
  device and per backward call and uses ``w + ε₂ − ε₁`` *only* for the error sent to the layer's
  input, ``∂L/∂x = (∂L/∂y)·(w + ε₂ − ε₁)`` (NDL:76-81); the weight gradient ``(∂L/∂y)ᵀ·x`` is exact
  (NDL:82-83). So read noise never changes a layer's own update; it perturbs the gradients of the
  layers *before* it. ``noise_placement``:

  - ``"backward"`` (default, theirs): the forward read (``weight``) is noise-free; a layer that
    calls :meth:`MagnetoIonicPair.backward_read` and :func:`backward_read_linear` /
    :func:`backward_read_conv2d` back-propagates through ``gain·(f(x₂) + ε₂ − f(x₁) − ε₁)``;
  - ``"both"`` (their ``device_noise=True``, NDL:61-66): a noisy forward read *and* an independent
    fresh noisy read for the input-gradient product;
  - ``"forward"`` (this project's earlier model): one noisy read ``f(xᵢ) + εᵢ`` used by the forward
    and, through autograd, by both backward products.

  In eval the forward read is noise-free unless ``eval_noise=True`` (their eval forward, NDL:43-49
  with ``device_noise`` off, is noise-free). Not modelled: their additive output noise
  ``N(0, σ_v)``, σ_v = 1e-4·σ_r (NDL:47-49, main.py:68), a layer (matrix-product) property.
* **Initial state** (``init_mode="repository"``, NDL:35-41): ``f(x₁) = f(0) − init``,
  ``f(x₂) = f(0) − init − u``, ``u ~ U(−init, init)``, so ``w = −u ~ U(−init, init)`` with a common
  offset of ``init`` volts below f(0) (linear: both devices near 0.48 pulses); init = 0.01 (NDL:15;
  NNN never passes it, noisyNeuralNetwork.py:98-107, and main.py's ``--init`` only reaches
  ``_weight_init``, which skips these layers — they have no ``weight``, noisyNeuralNetwork.py:186-187).
  ``init_mode="least_range"``: w ~ U(−init, init) with one device at 0 (the refresh rule; earlier
  default here).
* **Learning rate.** ``lr`` keeps their meaning, pulses per unit |∂L/∂w|, with ∂L/∂w the gradient
  with respect to the weight the forward multiplies. Their layer multiplies ``w`` by
  ``input_scale·x`` (NDL:44, input_scale = 1e-3, NDL:14, main.py:36), so their ∂L/∂w carries that
  factor; our layer's scalar ``gain`` (``y = gain·W_eff x``) plays the same role
  (``SynapticLinear(gain=1e-3)`` is their ``y = W·(1e-3·x)``). Their defaults are lr = 1e-3 (MID:22,
  main.py:20) and their runs use 500–5000 (readme.md:58). Our default lr = 1 is *not* theirs: it is
  their lr = 1000 times their input scale, for a unit-gain layer; through a normalised network
  ∂L/∂y itself depends on the scale, so there is no exact conversion.
* ``hidden()`` = ``(x₁ + x₂) / (2·x_max)`` ∈ [0, 1]: the fraction of the pair's pulse budget used
  since its last refresh — a trace of cumulative write activity.

Kernel: blocks of 16384 synapses; a branch-free, vectorised float32 pulse pass (bit-equal to
:func:`mi_step_torch`), then, only in blocks where a device sits at its bound outside the two fixed
pairs, a float64 refresh pass while the block is in cache — one pass over memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numba
import numpy as np
import torch
import torch.nn.functional as F

from .base import Backend, SynapseModel, check_range
from .devices import NonIdeal

_RESPONSES = ("linear", "exponential")
_PLACEMENTS = ("backward", "forward", "both")
_INIT_MODES = ("repository", "least_range")


@dataclass(frozen=True)
class MagnetoIonicParams:
    """Parameters of :class:`MagnetoIonicPair` (defaults: kellian-cottart/magnetoionic-simulations,
    module docstring; lr excepted).

    ``lr`` [pulses per unit |∂L/∂w|]; ``response`` "linear" | "exponential"; ``x_max`` [pulses];
    ``lin_slope``/``lin_offset`` [V/pulse, V]; ``exp_amp``/``exp_tau``/``exp_offset`` [V, pulses, V];
    ``device_variability`` σ of ν ~ |N(1, σ)|; ``read_noise`` σ_r [V] per device read (their
    ``resistor_noise``; 0.015 as in their readme runs); ``noise_placement`` "backward" (theirs: noise
    only in the product for the layer's input gradient) | "both" (their ``device_noise``) |
    "forward" (one noisy read for forward and backward); ``eval_noise`` noisy forward read in eval
    mode (and a noisy backward read, for placements that have one); ``gain`` weight per volt;
    ``min_dx`` smallest applied step [pulses] (their ``clipping``); ``init_range`` their ``init`` [V];
    ``init_mode`` "repository" | "least_range"; ``seed`` of the model's generator (ν, initial state,
    read noise).
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
    noise_placement: str = "backward"
    eval_noise: bool = False
    gain: float = 1.0
    min_dx: float = 0.0
    init_range: float = 0.01
    init_mode: str = "repository"
    seed: int = 0
    preset: str = ""  # name of the preset the values came from (metaspin devices)
    # physical units (energy and time; not in the authors' code — assumptions, see the presets)
    gate_v: float = 3.0          # gate pulse voltage, V
    gate_cap_f: float = 1e-13    # gate capacitance of one device, F
    t_gate_s: float = 1e-3       # duration of one gate pulse, s (fractional pulses: pulse-width modulated)
    v_read: float = 0.1          # read voltage, V
    r_read_ohm: float = 1e3      # read resistance of one device, Ω
    t_read_ns: float = 100.0     # read pulse, ns
    e_sense_pj: float = 0.01     # sense energy per column per read cycle, pJ
    pulse_c2c: float = 0.0       # c2c: relative σ of every applied pulse amount (0 in the authors' code)
    pulse_quantum: float = 0.0   # finite_levels: pulse amounts rounded stochastically to this unit (0 = off)
    nonideal: NonIdeal = field(default_factory=NonIdeal)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"MagnetoIonicParams.seed must be an int in [0, inf), got {self.seed!r}")
        if self.response not in _RESPONSES:
            raise ValueError(f"MagnetoIonicParams.response must be one of {_RESPONSES}, got {self.response!r}")
        if self.noise_placement not in _PLACEMENTS:
            raise ValueError(f"MagnetoIonicParams.noise_placement must be one of {_PLACEMENTS}, "
                             f"got {self.noise_placement!r}")
        if self.init_mode not in _INIT_MODES:
            raise ValueError(f"MagnetoIonicParams.init_mode must be one of {_INIT_MODES}, got {self.init_mode!r}")
        if not isinstance(self.eval_noise, bool):
            raise ValueError(f"MagnetoIonicParams.eval_noise must be a bool, got {self.eval_noise!r}")
        if not isinstance(self.preset, str):
            raise ValueError(f"MagnetoIonicParams.preset must be a string, got {self.preset!r}")
        object.__setattr__(self, "nonideal", NonIdeal.coerce(self.nonideal, "MagnetoIonicParams"))
        for name, hi in (("gate_v", 1e3), ("gate_cap_f", 1.0), ("t_gate_s", 1e6), ("v_read", 1e3),
                         ("t_read_ns", 1e9), ("e_sense_pj", 1e6), ("pulse_c2c", 1.0), ("pulse_quantum", 1e3)):
            check_range(self, name, 0.0, hi)
        check_range(self, "r_read_ohm", 0.0, 1e12, lo_open=True)
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
        # repository init: f(x₂) = f(0) − init − u reaches f(0) − 2·init, which must be in range
        top = self.f_range() / 2.0 if self.init_mode == "repository" else self.f_range()
        check_range(self, "init_range", 0.0, top)

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

    def forward_noise(self) -> bool:
        """Whether the forward read carries read noise in training."""
        return self.noise_placement in ("forward", "both") and self.read_noise > 0

    def backward_noise(self) -> bool:
        """Whether the input-gradient product uses its own fresh noisy read (a layer's job)."""
        return self.noise_placement in ("backward", "both") and self.read_noise > 0


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
    zero32 = np.float32(0.0)
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
        # any device at its bound, except the two pairs the refresh maps to themselves
        nsat += np.int32(((y1 >= xmax32) & (y2 != zero32)) | ((y2 >= xmax32) & (y1 != zero32)))
    if nsat == 0:
        return
    f0 = _f_nb(0.0, kind, p0, p1, p2)
    top = _f_nb(x_max, kind, p0, p1, p2) + f0  # stop + start
    for i in range(g.size):
        a1 = x1[i]
        a2 = x2[i]
        if (a1 >= xmax32) & (a2 != zero32):  # MID:99-101 (device 1 first)
            x1[i] = np.float32(_finv_nb(top - _f_nb(np.float64(a2), kind, p0, p1, p2), kind, p0, p1, p2, x_max))
            x2[i] = zero32
            n_refresh[i] += 1
        elif (a2 >= xmax32) & (a1 != zero32):  # MID:103-105
            x2[i] = np.float32(_finv_nb(top - _f_nb(np.float64(a1), kind, p0, p1, p2), kind, p0, p1, p2, x_max))
            x1[i] = zero32
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
    # refresh over the whole tensor (MID:98-105): device 1 at its bound first, then device 2; the
    # fixed pairs (x_max, 0) and (0, x_max) are left as they are (the rule maps them to themselves)
    r1 = (x1 >= xmax) & (x2 != 0)
    r2 = (x2 >= xmax) & (x1 != 0) & ~r1
    ref = r1 | r2
    if bool(ref.any()):  # float64, on the refreshed synapses only (r1, r2 disjoint)
        f0 = _f_scalar(0.0, kind, p0, p1, p2)
        top = _f_scalar(float(x_max), kind, p0, p1, p2) + f0
        k1 = _finv_t(top - _f_t(x2[r1].double(), kind, p0, p1, p2), kind, p0, p1, p2, x_max).to(x1.dtype)
        k2 = _finv_t(top - _f_t(x1[r2].double(), kind, p0, p1, p2), kind, p0, p1, p2, x_max).to(x1.dtype)
        x1[r1] = k1
        x2[r1] = 0.0
        x2[r2] = k2
        x1[r2] = 0.0
        n_refresh.add_(ref.to(n_refresh.dtype))


# ---- backward-pass read noise (their NoisyForward.backward, NDL:72-84) ------------------------------
Read = Callable[[], torch.Tensor]


class _BackwardReadLinear(torch.autograd.Function):
    """``F.linear(x, w, b)``; backward: ∂L/∂x = (∂L/∂y)·read(), ∂L/∂w = (∂L/∂y)ᵀ·x, ∂L/∂b = Σ ∂L/∂y."""

    @staticmethod
    def forward(ctx, x, w, bias, read):  # type: ignore[override]
        ctx.save_for_backward(x, w)
        ctx.read = read
        ctx.has_bias = bias is not None
        return F.linear(x, w, bias)

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        x, w = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            wr = ctx.read().to(device=gy.device, dtype=gy.dtype)
            gx = gy.matmul(wr)
        g2 = gy.reshape(-1, gy.shape[-1])
        if ctx.needs_input_grad[1]:
            gw = g2.t().matmul(x.reshape(-1, x.shape[-1]).to(gy.dtype)).to(w.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(0)
        return gx, gw, gb, None


class _BackwardReadConv2d(torch.autograd.Function):
    """``F.conv2d(x, w, b, stride, padding)``; backward: ∂L/∂x through ``read()``, ∂L/∂w and ∂L/∂b exact."""

    @staticmethod
    def forward(ctx, x, w, bias, read, stride, padding):  # type: ignore[override]
        ctx.save_for_backward(x, w)
        ctx.read, ctx.stride, ctx.padding = read, stride, padding
        ctx.has_bias = bias is not None
        return F.conv2d(x, w, bias, stride=stride, padding=padding)

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        x, w = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            wr = ctx.read().to(device=gy.device, dtype=gy.dtype)
            gx = torch.nn.grad.conv2d_input(x.shape, wr, gy, stride=ctx.stride, padding=ctx.padding)
        if ctx.needs_input_grad[1]:
            gw = torch.nn.grad.conv2d_weight(x, w.shape, gy, stride=ctx.stride, padding=ctx.padding)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gy.sum((0, 2, 3))
        return gx, gw, gb, None, None, None


def backward_read_linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None,
                         read: Read | None) -> torch.Tensor:
    """``F.linear(x, w, bias)`` whose input gradient uses ``read()`` — a weight of ``w``'s shape and
    units, evaluated in the backward pass (a fresh draw per backward, as NDL:76-81) — instead of
    ``w``; the weight and bias gradients are the ordinary ones (NDL:82-83). ``read=None``: plain
    ``F.linear``."""
    if read is None:
        return F.linear(x, w, bias)
    return _BackwardReadLinear.apply(x, w, bias, read)


def backward_read_conv2d(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, read: Read | None,
                         stride: int = 1, padding: int = 0) -> torch.Tensor:
    """Convolution counterpart of :func:`backward_read_linear`."""
    if read is None:
        return F.conv2d(x, w, bias, stride=stride, padding=padding)
    return _BackwardReadConv2d.apply(x, w, bias, read, stride, padding)


class MagnetoIonicPair(SynapseModel):
    """Two one-way magneto-ionic devices per weight, ``w = gain·(f(x₂) − f(x₁))`` (module docstring).

    Buffers (all in ``state_dict``): ``x1``, ``x2`` [pulses, float32], ``nu1``, ``nu2`` (per-device
    slope factors), ``n_pulse`` (write pulses applied, int32), ``n_refresh`` (re-centrings, int32).
    The read-noise generator's state is saved too (``extra_state``), so a reload reproduces reads.

    Backward-pass read noise (default ``noise_placement="backward"``) needs the layer: instead of
    ``F.linear(x, w, b)`` with ``w = s·weight`` (``s`` the layer's scalar gain) it calls
    ``backward_read_linear(x, w, b, model.backward_read(s))`` (``backward_read_conv2d`` for a
    convolution). A layer that does not call it trains this model noise-free; the model's own
    update is the same either way (the noise never enters a layer's weight gradient, NDL:82-83).
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
        u = (torch.rand(self.shape, generator=self._gen, dtype=torch.float64) * 2 - 1) * p.init_range
        f0 = p.f(0.0)
        if p.init_mode == "repository":  # NDL:38-41: w₁ = f(0) − init, w₂ = f(0) − init − u
            x1 = f_inv_torch(torch.full_like(u, f0 - p.init_range), p)
            x2 = f_inv_torch(f0 - p.init_range - u, p)
        else:  # least range: w = u with one device at 0
            d0 = u / p.gain
            x1 = torch.where(d0 >= 0, f_inv_torch(f0 - d0, p), torch.zeros_like(d0))
            x2 = torch.where(d0 >= 0, torch.zeros_like(d0), f_inv_torch(f0 + d0, p))
        self.register_buffer("x1", x1.float())
        self.register_buffer("x2", x2.float())
        if not p.nonideal.d2d:  # drawn all the same, so the other streams keep their numbers
            nu1, nu2 = torch.ones_like(nu1), torch.ones_like(nu2)
        self.register_buffer("nu1", nu1.float())
        self.register_buffer("nu2", nu2.float())
        self.register_buffer("n_pulse", torch.zeros(self.shape, dtype=torch.int32))
        self.register_buffer("n_refresh", torch.zeros(self.shape, dtype=torch.int32))
        self.register_buffer("pulses_applied", torch.zeros((), dtype=torch.float64))  # Σ pulse amounts
        self.register_buffer("time_s", torch.zeros((), dtype=torch.float64))
        self.register_buffer("energy_read_j", torch.zeros((), dtype=torch.float64))
        self._pending_cycles = 0.0
        # the c2c and finite-level draws have their own generators (seed·16 + 2, + 5, as the MTJ's)
        self._gen_c2c = torch.Generator().manual_seed(p.seed * 16 + 3)
        self._gen_levels = torch.Generator().manual_seed(p.seed * 16 + 6)

    # ---- generator in the state_dict ----------------------------------------------------------
    def get_extra_state(self) -> Any:
        return {"generator": self._gen.get_state(), "c2c": self._gen_c2c.get_state(),
                "levels": self._gen_levels.get_state(), "pending_cycles": self._pending_cycles}

    def set_extra_state(self, state: Any) -> None:
        self._gen.set_state(state["generator"])
        if "c2c" in state:
            self._gen_c2c.set_state(state["c2c"])
            self._gen_levels.set_state(state["levels"])
            self._pending_cycles = float(state.get("pending_cycles", 0.0))

    COUNTS_READS = True

    # ---- physical units: pulses, time, energy ------------------------------------------------
    def pulse_drive(self, grad: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(g', Σ pulse amounts) of one update: the gradient whose pulses ``lr·|g'|·ν`` the kernel applies
        — ``grad`` itself unless c2c (each amount × (1 + σ·z), clipped at 0) or finite levels (each
        amount stochastically rounded to a multiple of ``pulse_quantum``) are on — and the total amount
        applied (steps below ``min_dx`` are not applied)."""
        p: MagnetoIonicParams = self.params
        g = grad.to(device=self.x1.device, dtype=self.x1.dtype)
        nu = torch.where(g < 0, self.nu1, self.nu2)
        amt = g.abs() * float(p.lr) * nu
        changed = False
        if p.nonideal.c2c and p.pulse_c2c > 0:
            z = torch.randn(self.shape, generator=self._gen_c2c).to(g.device)
            amt = amt * (1.0 + p.pulse_c2c * z).clamp(min=0.0)
            changed = True
        if p.nonideal.finite_levels and p.pulse_quantum > 0:
            u = torch.rand(self.shape, generator=self._gen_levels).to(g.device)
            amt = torch.floor(amt / p.pulse_quantum + u) * p.pulse_quantum
            changed = True
        if changed:
            den = float(p.lr) * nu
            g = torch.where(den > 0, torch.sign(g) * amt / torch.where(den > 0, den, torch.ones_like(den)),
                            torch.zeros_like(g))
        applied = torch.where(amt >= p.min_dx, amt, torch.zeros_like(amt)) if p.min_dx > 0 else amt
        return g.contiguous(), float(applied.double().sum())

    def count_reads(self, inputs: torch.Tensor) -> None:
        """Read energy of one crossbar product (both devices of each synapse read at V_read through
        R_read for t_read; an input driven with amplitude u costs u² times that) + sense energy per
        column per read cycle; the read cycles count as time of the next training update."""
        p: MagnetoIonicParams = self.params
        with torch.no_grad():
            u = inputs.detach()
            u = u.reshape(-1, u.shape[-1]) if len(self.shape) == 2 else u
            if u.dim() < 2:
                return
            n = float(u.shape[0])
            drive = float((u.double() ** 2).sum())
            fan_out = float(self.shape[0]) * (float(self.shape[2] * self.shape[3]) if len(self.shape) == 4 else 1.0)
            e = 2.0 * p.v_read ** 2 / p.r_read_ohm * p.t_read_ns * 1e-9 * drive * fan_out
            self.energy_read_j += e + p.e_sense_pj * 1e-12 * float(self.shape[0]) * n
            if self.training:
                self._pending_cycles += n

    def _max_amount(self, g: torch.Tensor) -> float:
        """The largest pulse amount lr·|g|·ν of an update (its gate time in units of t_gate)."""
        nu = torch.where(g < 0, self.nu1, self.nu2)
        return float((g.abs() * float(self.params.lr) * nu).max())

    def _account(self, applied: float, max_amt: float, refreshes: int) -> None:
        """Time and pulse totals of one update: gate pulses of all devices in parallel, pulse-width
        modulated (duration = the largest amount × t_gate), after the forward reads."""
        p: MagnetoIonicParams = self.params
        self.pulses_applied += applied + refreshes * p.x_max  # a refresh erases one device: x_max pulses
        self.time_s += self._pending_cycles * p.t_read_ns * 1e-9 + max_amt * p.t_gate_s
        self._pending_cycles = 0.0

    def energy_j(self) -> dict[str, float]:
        """Energy so far [J]: gate (C·V_g² per pulse; a refresh erases one device, x_max pulses — an
        assumption), read; no write energy beyond the gate (the devices are written by gating)."""
        p: MagnetoIonicParams = self.params
        return {"write": 0.0, "read": float(self.energy_read_j),
                "gate": float(self.pulses_applied) * p.gate_cap_f * p.gate_v ** 2}

    def total_time_s(self) -> float:
        return float(self.time_s)

    # ---- model --------------------------------------------------------------------------------
    def device_read(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise-free device voltages ``(f(x₁), f(x₂))``."""
        return f_torch(self.x1, self.params), f_torch(self.x2, self.params)

    def _noisy_read(self) -> torch.Tensor:
        """``gain·(f(x₂) + ε₂ − f(x₁) − ε₁)``, ε ~ N(0, σ_r) per device, a fresh draw."""
        p: MagnetoIonicParams = self.params
        f1, f2 = self.device_read()
        eps = torch.randn((2,) + self.shape, generator=self._gen).to(self.x1.device)
        return (f2 + p.read_noise * eps[1] - (f1 + p.read_noise * eps[0])) * p.gain

    def _compute_weight(self, sample: bool) -> torch.Tensor:
        p: MagnetoIonicParams = self.params
        if self._read_noise_on() and ((sample and p.forward_noise()) or (not sample and p.eval_noise)):
            return self._noisy_read()
        f1, f2 = self.device_read()
        return (f2 - f1) * p.gain

    def programmed_weight(self) -> torch.Tensor:
        """``gain·(f(x₂) − f(x₁))`` without read noise (export)."""
        f1, f2 = self.device_read()
        return (f2 - f1) * self.params.gain

    def backward_noise_active(self) -> bool:
        """True when the input-gradient product should use :meth:`backward_weight` (placement
        "backward" or "both", σ_r > 0, training mode or ``eval_noise``)."""
        p: MagnetoIonicParams = self.params
        return self._read_noise_on() and p.backward_noise() and (self.training or p.eval_noise)

    def _read_noise_on(self) -> bool:
        return self.params.read_noise > 0 and self.params.nonideal.read_noise

    def backward_weight(self) -> torch.Tensor:
        """The weight of one backward product for ∂L/∂x (NDL:76-81): ``gain·(f(x₂) + ε₂ − f(x₁) − ε₁)``,
        a fresh ε per call (noise-free when ``backward_noise_active()`` is false)."""
        if self.backward_noise_active():
            return self._noisy_read()
        f1, f2 = self.device_read()
        return (f2 - f1) * self.params.gain

    def backward_read(self, scale: float | torch.Tensor = 1.0) -> Read | None:
        """The ``read`` argument of :func:`backward_read_linear` / :func:`backward_read_conv2d` for a
        layer that multiplies ``scale·weight``: a callable giving ``scale·backward_weight()``, or None
        when the backward product should use the forward weight (no backward noise)."""
        if not self.backward_noise_active():
            return None

        def read() -> torch.Tensor:
            with torch.no_grad():
                w = self.backward_weight()
                return w * (scale.to(w.dtype) if isinstance(scale, torch.Tensor) else float(scale))

        return read

    def _update_torch(self, grad: torch.Tensor) -> None:
        p: MagnetoIonicParams = self.params
        g, applied = self.pulse_drive(grad)
        r0 = int(self.n_refresh.sum())
        mi_step_torch(g, self.x1, self.x2, self.nu1, self.nu2, self.n_pulse, self.n_refresh,
                      float(p.lr), float(p.min_dx), float(p.x_max), p.kind(), *p.coeffs())
        self._account(applied, self._max_amount(g), int(self.n_refresh.sum()) - r0)

    def _update_numba(self, grad: torch.Tensor) -> None:
        p: MagnetoIonicParams = self.params
        grad, applied = self.pulse_drive(grad)
        r0 = int(self.n_refresh.sum())
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
        self._account(applied, self._max_amount(grad), int(self.n_refresh.sum()) - r0)

    def hidden(self) -> torch.Tensor:
        """(x₁ + x₂)/(2·x_max) ∈ [0, 1]: fraction of the pulse budget used since the last refresh."""
        return (self.x1 + self.x2) / (2.0 * self.params.x_max)

    def total_pulses(self) -> int:
        return int(self.n_pulse.sum().item())

    def total_refreshes(self) -> int:
        return int(self.n_refresh.sum().item())


__all__ = ["MagnetoIonicPair", "MagnetoIonicParams", "backward_read_conv2d", "backward_read_linear",
           "f_inv_torch", "f_torch", "mi_kernel", "mi_kernel_parallel", "mi_step_torch"]
