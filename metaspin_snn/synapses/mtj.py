"""Metaplastic magnetic tunnel junction (the METASPIN concept): a binary MTJ whose switching barrier
is set by a magneto-ionic hidden variable.

State per synapse: magnetisation ``s ∈ {−1, +1}`` (+1 = parallel, low resistance R_P; −1 =
antiparallel, R_AP = R_P·(1 + TMR)) and ionic state ``x ∈ [0, 1]``.

* **Read.** Conductance ``G_s`` (``G_P = 1/R_P``, ``G_AP = 1/R_AP``) read with relative noise,
  ``Ĝ = G_s·(1 + σ_r·ε)``, ε ~ N(0, 1), and compared with a mid-point reference:
  ``w = scale·(Ĝ − G_mid)/G_half``, ``G_mid = (G_P + G_AP)/2``, ``G_half = (G_P − G_AP)/2``.
  Noise-free this is exactly ``w = scale·s``; the noise on w is ``σ_r·G_s/G_half`` (larger in the P
  state: 1/h vs (1/(1+TMR))/h with h = (1 − 1/(1+TMR))/2). Training reads are noisy, eval reads only
  with ``eval_noise=True``.
* **Barrier.** ``Δ(x) = d_i·(Δ_min + (Δ_max − Δ_min)·x)`` [k_BT], ``d_i`` a per-device factor
  (device-to-device spread, fixed at init).
* **Write.** For ``g = ∂L/∂w ≠ 0`` the target is ``t = −sign(g)``. If ``s ≠ t`` a pulse of amplitude
  ``V = min(volt_per_grad·|g|, V_max)`` is applied (skipped when ``V < V_min``) and ``s`` flips with
  the Néel–Brown / thermal-activation probability ``P_sw = 1 − exp(−t_p/τ)``,
  ``τ = τ₀·exp[Δ(x)·(1 − V/V_c,i)^b]`` for ``V < V_c,i`` and ``P_sw = 1 − exp(−t_p/τ₀)`` for
  ``V ≥ V_c,i`` (``V_c,i`` per device). Energy per pulse ``E = V²/R·t_p`` with R the resistance of the
  state before the pulse. The flip is decided without a transcendental call: with a standard-Gumbel
  draw ``G = −ln(−ln u)`` (u ~ U[0, 1) in float64 from the model's seeded ``torch.Generator``),
  ``flip ⇔ Δ(x)·r^b < ln(t_p/τ₀) + G``, r = max(1 − V/V_c,i, 0), which happens with probability
  exactly ``1 − exp(−(t_p/τ₀)·e^{−Δ·r^b}) = P_sw``. The same G goes to the Numba kernel and to the
  torch reference, so both backends take identical decisions (tested bit-for-bit).
* **Consolidation.** If ``s == t`` (the gradient agrees with the state) ions migrate and
  ``x ← x + min(κ·|g|, 1)·(1 − x)`` (saturating at 1; the rate is capped at 1 so x never passes 1).
  The ionic gating energy is not modelled (only counted as events).
* **Retention.** Every update, ``x ← x − (x − x_rest)/τ_ret`` (τ_ret in update steps; ``inf`` = none).

Equation sources: Néel–Brown thermal activation (W. F. Brown, Phys. Rev. 130, 1677 (1963));
spin-torque thermal-activation form with exponent b = 1, τ = τ₀·exp[Δ(1 − I/I_c0)] (Koch, Katine,
Sun, Phys. Rev. Lett. 92, 088302 (2004)), b = 2 for the field-like Sharrock form (Sharrock,
J. Appl. Phys. 76, 6413 (1994)); ohmic MTJ so V/V_c = I/I_c. Magneto-ionic control of interfacial
anisotropy (hence of Δ) by gate-driven oxygen migration: Bauer et al., Nat. Mater. 14, 174 (2015).

Defaults (units; source or *assumption*):

=================  =========  ===============================================================
τ₀                 1 ns       attempt time, standard Néel–Brown value (Brown 1963)
t_p                10 ns      STT-MRAM write pulses are 1–10 ns
Δ_min, Δ_max       30, 80 kT  *assumption*: 40–60 kT gives ~10-year retention in storage MRAM;
                              here the unconsolidated state is deliberately less stable (30 kT,
                              τ₀e³⁰ ≈ 3 h) and the consolidated state more (80 kT)
V_c                0.5 V      *assumption*, typical STT critical voltage 0.3–0.7 V
V_max              0.46 V     *assumption*: 0.92·V_c, below V_c for every device (spread ±3σ)
V_min              0.25 V     *assumption*: P_sw < 1e-5 below it with defaults, so no pulse
R_P, TMR           2 kΩ, 1.5  *assumption*: CoFeB/MgO junctions, RA·area of a few kΩ, TMR 100–200 %
σ_r                0.02       *assumption*: relative conductance read noise
σ_Δ, σ_Vc          0.05, 0.02 *assumption*: device-to-device spread, factors clipped to ±3σ
b                  1          Koch et al. 2004
=================  =========  ===============================================================

Why these learn: with b = 1, at the largest pulse (V = 0.92·V_c) an unconsolidated device
(Δ = 30) switches with P ≈ 0.60 and a fully consolidated one (Δ = 80) with P ≈ 0.016: plastic
synapses follow the gradient sign like stochastic sign-SGD, consolidated ones are ~36× stiffer — the
ratio 1/f_meta = cosh²(m·|W_h|) of Laborieux et al. 2021 at m·|W_h| ≈ 2.5. ``volt_per_grad`` = 10 V
maps the per-weight gradients of the small logistic-regression check in tests/synapses/test_mtj.py
(mean |g| ≈ 0.014, large ones ≈ 0.05) onto the steep part of P_sw(V), which rises from ~1e-3 at
0.7·V_c to P_max at 0.92·V_c; it is the analogue of a learning rate: scale it ∝ 1/(typical |g|) of
the network. ``kappa`` = 0.5 raises x by κ|g| ≈ 0.007 per agreeing step there (mean x ≈ 0.52 after
200 steps). Measured on that check (5 seeds, 200 steps, training loop as in the test): test
accuracy 1.0 in 5/5 with the defaults, also 5/5 with κ = 0 (this stationary task does not need
consolidation; its role is to protect old tasks in continual learning), 0.66–0.75 with
volt_per_grad = 20 (too plastic: the binary weights keep flipping), 0.81–1.0 with b = 2. With
b = 2 the same V gives (1 − V/V_c)² ≪ 1 − V/V_c, so P_sw(V_max) ≈ 1 even when consolidated: b = 2
needs a larger Δ range or a lower V_max to keep metaplasticity.

Kernel and cost: blocks of 16384 synapses, branch-free float32, vectorised for b ∈ {1, 2} (for
other b the ``pow`` call keeps it scalar, ~6× slower); bit-equal to :func:`mtj_step_torch` for
b ∈ {1, 2}.
The Gumbel draw (float64 uniform, two logs, in torch, stored as float32) costs more than the kernel:
measured here ≈ 300 ms vs ≈ 20 ms per 10⁷ synapses on one core (CPU time, shared machine).
Probabilities below ~1e-16 per pulse are not resolved (float64 uniform).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import torch

from .base import Backend, SynapseModel, check_range


@dataclass(frozen=True)
class MTJParams:
    """Parameters of :class:`MetaplasticMTJ` (units and sources in the module docstring)."""

    delta_min: float = 30.0        # k_BT
    delta_max: float = 80.0        # k_BT
    delta_spread: float = 0.05     # relative σ of the per-device Δ factor
    tau0_ns: float = 1.0           # ns
    t_pulse_ns: float = 10.0       # ns
    v_c: float = 0.5               # V
    v_c_spread: float = 0.02       # relative σ of the per-device V_c
    v_max: float = 0.46            # V
    v_min: float = 0.25            # V
    volt_per_grad: float = 10.0    # V per unit |∂L/∂w|
    b: float = 1.0                 # Néel–Brown exponent, 1 ≤ b ≤ 2
    kappa: float = 0.5             # consolidation rate per unit |∂L/∂w|
    tau_ret: float = 1.0e4         # retention time constant [update steps], inf = none
    x_rest: float = 0.0
    x_init: float = 0.0
    r_p_ohm: float = 2000.0        # Ω
    tmr: float = 1.5               # (R_AP − R_P)/R_P
    read_noise: float = 0.02       # relative σ of the conductance read
    eval_noise: bool = False
    scale: float = 1.0             # weight magnitude
    seed: int = 0                  # generator: initial s, device spread, read noise, switching draws

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"MTJParams.seed must be an int in [0, inf), got {self.seed!r}")
        if not isinstance(self.eval_noise, bool):
            raise ValueError(f"MTJParams.eval_noise must be a bool, got {self.eval_noise!r}")
        check_range(self, "delta_min", 0.0, 1e3, lo_open=True)
        check_range(self, "delta_max", self.delta_min, 1e3)
        check_range(self, "delta_spread", 0.0, 0.3)
        check_range(self, "tau0_ns", 0.0, 1e6, lo_open=True)
        check_range(self, "t_pulse_ns", 0.0, 1e9, lo_open=True)
        check_range(self, "v_c", 0.0, 1e3, lo_open=True)
        check_range(self, "v_c_spread", 0.0, 0.3)
        check_range(self, "v_max", 0.0, 1e3, lo_open=True)
        check_range(self, "v_min", 0.0, self.v_max)
        check_range(self, "volt_per_grad", 0.0, 1e12)
        check_range(self, "b", 1.0, 2.0)
        check_range(self, "kappa", 0.0, 1e30)
        check_range(self, "tau_ret", 1.0, None, allow_inf=True)
        check_range(self, "x_rest", 0.0, 1.0)
        check_range(self, "x_init", 0.0, 1.0)
        check_range(self, "r_p_ohm", 0.0, 1e12, lo_open=True)
        check_range(self, "tmr", 0.0, 1e3, lo_open=True)
        check_range(self, "read_noise", 0.0, 1.0)
        check_range(self, "scale", 0.0, 1e6, lo_open=True)

    @property
    def r_ap_ohm(self) -> float:
        return self.r_p_ohm * (1.0 + self.tmr)


def barrier(x: torch.Tensor | float, p: MTJParams, factor: torch.Tensor | float = 1.0):
    """Δ(x) = factor·(Δ_min + (Δ_max − Δ_min)·x) [k_BT]."""
    return factor * (p.delta_min + (p.delta_max - p.delta_min) * x)


def neel_brown_tau(delta: torch.Tensor, v: torch.Tensor, v_c: torch.Tensor | float,
                   tau0_ns: float, b: float) -> torch.Tensor:
    """τ = τ₀·exp[Δ·(1 − V/V_c)^b] [ns] for V < V_c, τ₀ for V ≥ V_c (float64)."""
    r = torch.clamp(1.0 - v.double() / v_c, min=0.0)
    return tau0_ns * torch.exp(delta.double() * r ** b)


def switch_probability(delta: torch.Tensor, v: torch.Tensor, v_c: torch.Tensor | float,
                       p: MTJParams) -> torch.Tensor:
    """P_sw = 1 − exp(−t_p/τ) with τ from :func:`neel_brown_tau` (float64)."""
    tau = neel_brown_tau(delta, v, v_c, p.tau0_ns, p.b)
    return -torch.expm1(-p.t_pulse_ns / tau)


_JIT = dict(cache=True, error_model="numpy")  # no fastmath: bit-equality with the torch reference
_BLOCK = 16384  # synapses per block (slices: vectorised loops; per-block overhead amortised)


@numba.njit(**_JIT)
def _mtj_loop(mode, g, gum, s, x, dfac, vc, n_pulse, n_switch, n_consol, energy, dmin, dmax,
              ln_ratio, vmax, vmin, vpg, b, kappa, inv_tau_ret, x_rest, e_p, e_ap):  # pragma: no cover
    """Branch-free float32 loop over one block; ``mode`` 1: b = 1, 2: b = 2, else r**b (a literal
    at each call site, so LLVM drops the pow call from the b = 1 and b = 2 loops and vectorises)."""
    f = np.float32
    kappa32, inv32, rest32, one32, zero32 = f(kappa), f(inv_tau_ret), f(x_rest), f(1.0), f(0.0)
    dmin32, drange32, lnr32, vmax32, vmin32, vpg32 = f(dmin), f(dmax - dmin), f(ln_ratio), f(vmax), f(vmin), f(vpg)
    ep32, eap32, b32 = f(e_p), f(e_ap), f(b)
    for i in range(g.size):
        gi = g[i]
        si = s[i]
        xi = x[i]
        t = np.int8(-1) if gi > 0 else np.int8(1)  # target state −sign(g)
        nz = gi != 0
        agree = nz & (si == t)
        v = min(vpg32 * abs(gi), vmax32)
        pulse = nz & (si != t) & (v >= vmin32)
        r = max(one32 - v / vc[i], zero32)
        if mode == 1:
            rb = r
        elif mode == 2:
            rb = r * r
        else:
            rb = r ** b32
        delta = dfac[i] * (dmin32 + drange32 * xi)
        flip = pulse & (delta * rb < lnr32 + gum[i])
        e = v * v * (ep32 if si > 0 else eap32)
        energy[i] += e if pulse else zero32
        n_pulse[i] += np.int32(pulse)
        n_switch[i] += np.int32(flip)
        n_consol[i] += np.int32(agree)
        s[i] = t if flip else si
        c = min(kappa32 * abs(gi), one32)
        xa = xi + c * (one32 - xi)
        xi = xa if agree else xi
        x[i] = xi - (xi - rest32) * inv32


@numba.njit(**_JIT)
def _mtj_block(g, gum, s, x, dfac, vc, n_pulse, n_switch, n_consol, energy, dmin, dmax, ln_ratio,
               vmax, vmin, vpg, b, kappa, inv_tau_ret, x_rest, e_p, e_ap):  # pragma: no cover
    """One block (array slices index from 0, so LLVM vectorises the loop); see :func:`mtj_kernel`."""
    if b == 1.0:
        _mtj_loop(1, g, gum, s, x, dfac, vc, n_pulse, n_switch, n_consol, energy, dmin, dmax,
                  ln_ratio, vmax, vmin, vpg, b, kappa, inv_tau_ret, x_rest, e_p, e_ap)
    elif b == 2.0:
        _mtj_loop(2, g, gum, s, x, dfac, vc, n_pulse, n_switch, n_consol, energy, dmin, dmax,
                  ln_ratio, vmax, vmin, vpg, b, kappa, inv_tau_ret, x_rest, e_p, e_ap)
    else:
        _mtj_loop(0, g, gum, s, x, dfac, vc, n_pulse, n_switch, n_consol, energy, dmin, dmax,
                  ln_ratio, vmax, vmin, vpg, b, kappa, inv_tau_ret, x_rest, e_p, e_ap)


@numba.njit(**_JIT)
def mtj_kernel(g, gum, s, x, dfac, vc, n_pulse, n_switch, n_consol, energy, dmin, dmax, ln_ratio,
               vmax, vmin, vpg, b, kappa, inv_tau_ret, x_rest, e_p, e_ap):
    """Fused in-place MTJ step over flat arrays (serial), one pass.

    Arrays: g (float32 ∂L/∂w), gum (float32 standard-Gumbel noise, one per synapse), s (int8),
    x, dfac, vc (float32), n_pulse, n_switch, n_consol (int32), energy (float32, pJ).
    Scalars: Δ_min, Δ_max [k_BT], ln_ratio = ln(t_p/τ₀), V_max, V_min [V], volt_per_grad, b, κ,
    1/τ_ret, x_rest, e_p = t_p·1e3/R_P and e_ap = t_p·1e3/R_AP [pJ/V²].

    Switching: with G ~ Gumbel(0, 1), P[Δ·r^b < ln(t_p/τ₀) + G] = 1 − exp(−(t_p/τ₀)·e^{−Δ·r^b})
    = 1 − exp(−t_p/τ), τ = τ₀·e^{Δ·r^b}, r = max(1 − V/V_c, 0) — the Néel–Brown probability, decided
    without a transcendental call (the noise is drawn by the caller). All arithmetic is float32 (the
    threshold Δ·r^b ≤ ~200 carries an absolute rounding error ≲ 2e-5, i.e. a relative error ≲ 2e-5
    on P_sw), in the same order as :func:`mtj_step_torch`."""
    n = g.size
    for k in range((n + _BLOCK - 1) // _BLOCK):
        lo = k * _BLOCK
        hi = min(n, lo + _BLOCK)
        _mtj_block(g[lo:hi], gum[lo:hi], s[lo:hi], x[lo:hi], dfac[lo:hi], vc[lo:hi], n_pulse[lo:hi],
                   n_switch[lo:hi], n_consol[lo:hi], energy[lo:hi], dmin, dmax, ln_ratio, vmax, vmin,
                   vpg, b, kappa, inv_tau_ret, x_rest, e_p, e_ap)


@numba.njit(parallel=True, **_JIT)
def mtj_kernel_parallel(g, gum, s, x, dfac, vc, n_pulse, n_switch, n_consol, energy, dmin, dmax,
                        ln_ratio, vmax, vmin, vpg, b, kappa, inv_tau_ret, x_rest, e_p, e_ap):
    """Same as :func:`mtj_kernel`, multithreaded over blocks."""
    n = g.size
    for k in numba.prange((n + _BLOCK - 1) // _BLOCK):
        lo = k * _BLOCK
        hi = min(n, lo + _BLOCK)
        _mtj_block(g[lo:hi], gum[lo:hi], s[lo:hi], x[lo:hi], dfac[lo:hi], vc[lo:hi], n_pulse[lo:hi],
                   n_switch[lo:hi], n_consol[lo:hi], energy[lo:hi], dmin, dmax, ln_ratio, vmax, vmin,
                   vpg, b, kappa, inv_tau_ret, x_rest, e_p, e_ap)


def mtj_step_torch(g: torch.Tensor, gum: torch.Tensor, s: torch.Tensor, x: torch.Tensor,
                   dfac: torch.Tensor, vc: torch.Tensor, n_pulse: torch.Tensor, n_switch: torch.Tensor,
                   n_consol: torch.Tensor, energy: torch.Tensor, dmin: float, dmax: float,
                   ln_ratio: float, vmax: float, vmin: float, vpg: float, b: float, kappa: float,
                   inv_tau_ret: float, x_rest: float, e_p: float, e_ap: float) -> None:
    """Torch reference of :func:`mtj_kernel`, in place, any device (same arguments, tensors; the
    arithmetic in the state's dtype). Bit-equal to the kernel for float32 state and b ∈ {1, 2}; for
    other b, ``pow`` may differ by an ulp."""
    t = torch.where(g > 0, -1, 1).to(s.dtype)
    nz = g != 0
    agree = nz & (s == t)
    v = torch.clamp(g.abs() * vpg, max=vmax)
    pulse = nz & (s != t) & (v >= vmin)
    r = torch.clamp(1.0 - v / vc, min=0.0)
    rb = r if b == 1.0 else (r * r if b == 2.0 else r ** b)
    delta = dfac * (dmin + (dmax - dmin) * x)
    flip = pulse & (delta * rb < ln_ratio + gum)
    vv = v * v
    e = torch.where(s > 0, vv * e_p, vv * e_ap)
    energy.add_(torch.where(pulse, e, torch.zeros_like(e)))
    n_pulse.add_(pulse.to(n_pulse.dtype))
    n_switch.add_(flip.to(n_switch.dtype))
    n_consol.add_(agree.to(n_consol.dtype))
    s.copy_(torch.where(flip, t, s))
    c = torch.clamp(g.abs() * kappa, max=1.0)
    xa = torch.where(agree, x + c * (1.0 - x), x)
    x.copy_(xa - (xa - x_rest) * inv_tau_ret)


class MetaplasticMTJ(SynapseModel):
    """Binary MTJ with a magneto-ionic barrier-setting hidden variable (module docstring).

    Buffers (in ``state_dict``): ``s`` (int8 ±1), ``x`` (float32 ∈ [0, 1]), ``delta_factor``,
    ``v_c`` [V] (per-device, fixed), counters ``n_pulse``, ``n_switch``, ``n_consolidate`` (int32) and
    ``energy_pj`` (float32, write energy in pJ). The generator state is saved as ``extra_state``.
    """

    def __init__(self, shape: tuple[int, ...] | torch.Size, params: MTJParams | None = None,
                 backend: Backend = "auto", parallel: bool = False) -> None:
        params = MTJParams() if params is None else params
        if not isinstance(params, MTJParams):
            raise TypeError(f"MetaplasticMTJ: params must be MTJParams, got {type(params).__name__}")
        super().__init__(shape, params, backend)
        p = params
        self.parallel = bool(parallel)
        # CPU generator; draws are moved to the state's device, so every device sees the same numbers.
        self._gen = torch.Generator().manual_seed(p.seed)
        s = torch.where(torch.rand(self.shape, generator=self._gen) < 0.5, 1, -1).to(torch.int8)
        dz = torch.randn(self.shape, generator=self._gen).clamp_(-3.0, 3.0)
        vz = torch.randn(self.shape, generator=self._gen).clamp_(-3.0, 3.0)
        self.register_buffer("s", s)
        self.register_buffer("x", torch.full(self.shape, float(p.x_init)))
        self.register_buffer("delta_factor", (1.0 + p.delta_spread * dz).float())
        self.register_buffer("v_c", (p.v_c * (1.0 + p.v_c_spread * vz)).float())
        self.register_buffer("n_pulse", torch.zeros(self.shape, dtype=torch.int32))
        self.register_buffer("n_switch", torch.zeros(self.shape, dtype=torch.int32))
        self.register_buffer("n_consolidate", torch.zeros(self.shape, dtype=torch.int32))
        self.register_buffer("energy_pj", torch.zeros(self.shape, dtype=torch.float32))

    # ---- generator in the state_dict ----------------------------------------------------------
    def get_extra_state(self) -> Any:
        return {"generator": self._gen.get_state()}

    def set_extra_state(self, state: Any) -> None:
        self._gen.set_state(state["generator"])

    def _gumbel(self) -> torch.Tensor:
        """Standard-Gumbel noise of one update, ``−ln(−ln u)``, u ~ U[0, 1) in float64 from the model's
        generator (so switching probabilities down to ~1e-16 are resolved), stored as float32; the
        same numbers go to the kernel and to the reference."""
        u = torch.rand(self.shape, generator=self._gen, dtype=torch.float64)
        return (-torch.log(-torch.log(u))).float()

    def kernel_scalars(self) -> tuple[float, ...]:
        """The scalar arguments of :func:`mtj_kernel` / :func:`mtj_step_torch` for these params."""
        p: MTJParams = self.params
        return (float(p.delta_min), float(p.delta_max), math.log(p.t_pulse_ns / p.tau0_ns),
                float(p.v_max), float(p.v_min), float(p.volt_per_grad), float(p.b), float(p.kappa),
                float(np.float32(1.0 / p.tau_ret)), float(p.x_rest),
                p.t_pulse_ns * 1e3 / p.r_p_ohm, p.t_pulse_ns * 1e3 / p.r_ap_ohm)

    # ---- model --------------------------------------------------------------------------------
    def conductance_levels(self) -> tuple[float, float, float]:
        """(G_P/G_P, G_mid/G_P, G_half/G_P): normalised read levels."""
        gap = 1.0 / (1.0 + self.params.tmr)
        return 1.0, (1.0 + gap) / 2.0, (1.0 - gap) / 2.0

    def _compute_weight(self, sample: bool) -> torch.Tensor:
        """``scale·(Ĝ − G_mid)/G_half`` written as ``scale·(s + σ_r·ε·G_s/G_half)`` (the same
        expression, exactly ±scale without noise)."""
        p: MTJParams = self.params
        _, _, half = self.conductance_levels()
        w = self.s.to(self.x.dtype)
        if (sample or p.eval_noise) and p.read_noise > 0:
            eps = torch.randn(self.shape, generator=self._gen).to(device=self.s.device, dtype=w.dtype)
            gs = torch.where(self.s > 0, 1.0, 1.0 / (1.0 + p.tmr)).to(w.dtype)
            w = w + (p.read_noise / half) * gs * eps
        return w * p.scale

    def switch_probability(self, grad: torch.Tensor) -> torch.Tensor:
        """P_sw each synapse would have for a write pulse driven by ``grad`` (0 where no pulse)."""
        p: MTJParams = self.params
        g = grad.to(self.x.device).double()
        v = torch.clamp(g.abs() * p.volt_per_grad, max=p.v_max)
        pulse = (g != 0) & (self.s.double() != -torch.sign(g)) & (v >= p.v_min)
        psw = switch_probability(barrier(self.x.double(), p, self.delta_factor.double()), v,
                                 self.v_c.double(), p)
        return torch.where(pulse, psw, torch.zeros_like(psw))

    _STATE = ("s", "x", "delta_factor", "v_c", "n_pulse", "n_switch", "n_consolidate", "energy_pj")

    def _update_torch(self, grad: torch.Tensor) -> None:
        gum = self._gumbel().to(self.x.device)
        g = grad.to(device=self.x.device, dtype=self.x.dtype)
        mtj_step_torch(g, gum, *(getattr(self, n) for n in self._STATE), *self.kernel_scalars())

    def _update_numba(self, grad: torch.Tensor) -> None:
        gum = self._gumbel()
        for name in self._STATE:
            t = getattr(self, name)
            if t.device.type != "cpu" or not t.is_contiguous():
                raise ValueError(f"MetaplasticMTJ: numba backend needs contiguous CPU state, "
                                 f"buffer {name} is on {t.device} (contiguous={t.is_contiguous()})")
        kern = mtj_kernel_parallel if self.parallel else mtj_kernel
        kern(grad.reshape(-1).numpy(), gum.view(-1).numpy(),
             *(getattr(self, n).view(-1).numpy() for n in self._STATE), *self.kernel_scalars())

    def hidden(self) -> torch.Tensor:
        """The ionic state x ∈ [0, 1] (0 = plastic, 1 = consolidated)."""
        return self.x

    def total_switches(self) -> int:
        return int(self.n_switch.sum().item())

    def total_pulses(self) -> int:
        return int(self.n_pulse.sum().item())

    def total_energy_pj(self) -> float:
        return float(self.energy_pj.double().sum().item())


__all__ = ["MTJParams", "MetaplasticMTJ", "barrier", "mtj_kernel", "mtj_kernel_parallel",
           "mtj_step_torch", "neel_brown_tau", "switch_probability"]
