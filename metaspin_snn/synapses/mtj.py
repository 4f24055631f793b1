"""Metaplastic magnetic tunnel junction (the METASPIN concept): a binary MTJ whose switching barrier
is set by a magneto-ionic gate, in physical units (V, s, K, Ω, J).

State per synapse: free-layer magnetisation ``s ∈ {−1, +1}`` (+1 = parallel, low resistance R_P;
−1 = antiparallel, R_AP = R_P·(1 + TMR(V))) and ionic state ``x ∈ [0, 1]`` (the fraction of the
gate's ion budget moved to the free-layer interface); a simulated clock ``time_s``.

* **Barrier (x → Δ).** The ions set the interfacial anisotropy (Bauer et al., Nat. Mater. 14, 174
  (2015)), taken linear in x: ``Δ(x) = d_i·(Δ_min + (Δ_max − Δ_min)·x)·(300 K/T)`` [k_BT], ``d_i``
  the device's spread factor. Asymmetry (stray field h = H_s/H_k): ``Δ_P = Δ·(1 + h)²``,
  ``Δ_AP = Δ·(1 − h)²``. A flip of the free layer does not move ions, so x is kept when s flips;
  ``on_flip = "reset"`` models a controller that reads the device after the pulse and gates x back
  to ``x_rest`` on a flip (one reverse gating event, energy counted).
* **Write (Néel–Brown).** For ``g = ∂L/∂w ≠ 0`` (divided by its RMS over the array with
  ``grad_norm = "rms"``) the target is ``t = −sign(g)``; where ``s ≠ t`` a voltage pulse of amplitude
  ``V = min(volt_per_grad·|g|, V_max)`` (``write_drive = "linear"``; ``"calibrated"``: the V at which a
  plastic nominal device switches with P = p_per_grad·|g|, :meth:`MetaplasticMTJ.kernel_grad`) and
  width t_p (skipped below V_min)
  switches s with ``P_sw = 1 − exp(−t_p/τ)``, ``τ = τ₀·exp[Δ_s·(1 − V/V_c,dir)^b]`` (Brown, Phys. Rev.
  130, 1677 (1963); b = 1: Koch, Katine & Sun, PRL 92, 088302 (2004); b = 2: Sharrock, J. Appl.
  Phys. 76, 6413 (1994)); write error rate 1 − P_sw. ``V_c,dir = V_c,i·√a`` for P→AP and ``V_c,i/√a``
  for AP→P (a = ``vc_asym``), times ``1 + σ_c2c·z`` per pulse. ``polarity_drive`` (default, as
  STT-MRAM write drivers do): the pulse amplitude is scaled the same way, √a·V for P→AP and V/√a
  for AP→P (so the nominal switching probability is the same in both directions; the energy and
  the barrier asymmetry remain). ``write_scheme = "verify"``: up to
  ``verify_max`` pulses, each followed by a read, until the device has switched (K pulses have the
  hazard K·t_p/τ). The decision uses a standard-Gumbel draw G: switched within k pulses ⇔
  ``Δ_s·r^b < ln(k·t_p/τ₀) + G``, r = max(1 − V/V_c,dir, 0), which has probability
  ``1 − exp(−k·(t_p/τ₀)·e^{−Δ_s r^b})`` exactly, with no transcendental call in the kernel.
* **Thermal flips** (``retention``): a synapse that receives no pulse in a step of duration dt flips
  with ``1 − exp(−dt/τ_th)``, ``τ_th = τ₀·e^{Δ_s}`` (same Gumbel trick, with ln(dt/τ₀)); the thermal
  hazard of a pulsed synapse during the rest of its step is neglected. Idle time (:meth:`advance`)
  uses the exact two-state telegraph solution (:func:`~metaspin_snn.synapses.devices.telegraph_change`)
  on a grid of intervals over which x relaxes.
* **Gate (magneto-ionic consolidation).** Where the gradient agrees with the state (``s == t``) the
  controller applies a gate pulse of voltage V_g and width ``t_g = κ·|g|/k_nom`` (clipped to
  [t_g,min, t_g,max]; none below t_g,min), with ``k(V_g, T) = k_ref·exp[(V_g − V_ref)/V_0]·
  exp[−(E_a/k_B)(1/T − 1/T_ref)]`` the ion-migration rate (k_nom: its value at V_g, 300 K, no spread).
  First-order saturating kinetics: ``x ← x + (1 − x)·(1 − exp(−k·ρ_i·ε·t_g))``, ρ_i the device's
  rate factor (log-normal d2d), ε a log-normal cycle-to-cycle factor. At 300 K without spread this
  is ``x ← x + (1 − x)(1 − e^{−κ|g|})`` (≈ κ|g|(1 − x) for small steps). ``gate_mode =
  "bidirectional"``: where the gradient opposes the state, a reverse gate pulse of the same width
  pulls ions back, ``x ← x·exp(−k·ρ_i·ε·t_g)`` (x then plays the role of |W_h| in Laborieux et
  al. 2021: opposing gradients first erode the consolidation, then flip the free layer). Finite levels: x is
  stochastically rounded to ``levels`` values after every step. Relaxation (``retention``): over
  time dt, ``x ← x_rest + (x − x_rest)·exp(−dt/τ_relax(T))``, τ_relax Arrhenius with the same E_a.
* **Read.** Conductance ``G_s`` at read bias V_read (TMR(V) = TMR₀/(1 + (V/V_h)²)) with relative
  noise ``Ĝ = G_s(1 + σ_r ε)`` against a mid-point reference: ``w = scale·(Ĝ − G_mid)/G_half``; noise
  free this is ``scale·s``. ``read_noise`` on: every read is noisy (training; evaluation too with
  ``eval_noise``).
* **Time.** Every update advances ``time_s`` by its schedule: the read cycles of the forward passes
  since the last update (``count_reads``) × t_read, plus one write slot (t_p, or
  verify_max·(t_p + t_read)) for every bit line (weight row) with a pulse (rows are written one after
  another, a row's devices in parallel), plus the gating: the longest gate pulse of the array
  (``gate_schedule = "array"``: every device has its own gate line, all pulsed at once) or the sum
  over rows of each row's longest (``"row"``).
  ``step_time_s > 0`` replaces the schedule by a fixed clock.
* **Energy [J].** Write: every attempted pulse ``V²/R_s(V)·t_p + E_driver`` (+ a verify read per
  pulse); read: ``V_read²·G_s·t_read`` per synapse read (an input row driven with amplitude |u|
  costs u² times that) + ``E_sense`` per column per read cycle; gate: ``C_g·V_g²`` per gating event.

Non-idealities (:class:`~metaspin_snn.synapses.devices.NonIdeal`, each its own seeded generator):
d2d (Δ, V_c and ion-rate spread), c2c (V_c per pulse, ion rate per gating event), read_noise,
retention (thermal flips, relaxation), finite_levels, asymmetry (vc_asym, delta_asym). With all off
the model is the ideal rule: nominal Δ(x), symmetric V_c, exact reads, no thermal flips, no
relaxation, continuous x.

Defaults: the ``generic-o`` preset of :mod:`metaspin_snn.synapses.devices`, where each value's
source or assumption is listed (``metaspin devices``). ``volt_per_grad`` (or ``p_per_grad``) and κ
play the role of learning rates; the runner's controller defaults for networks (RMS drive,
calibrated write, bidirectional gating) are in ``registry.default_synapse_params``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import torch

from .base import Backend, SynapseModel, check_range
from .devices import NONIDEAL_NAMES, T_REF_K, NonIdeal, arrhenius, telegraph_change

_IONS = ("O", "H", "N")
_SCHEMES = ("blind", "verify")
_ON_FLIP = ("keep", "reset")
_GRAD_NORMS = ("none", "rms")


@dataclass(frozen=True)
class MTJParams:
    """Parameters of :class:`MetaplasticMTJ` (units in the names or comments; sources of the default
    values: the ``generic-o`` preset)."""

    # free layer
    delta_min: float = 30.0        # k_BT at 300 K, x = 0
    delta_max: float = 80.0        # k_BT at 300 K, x = 1
    delta_spread: float = 0.05     # d2d: relative σ of the per-device Δ factor (clipped ±3σ)
    delta_asym: float = 0.05       # asymmetry: h, Δ_P = Δ(1 + h)², Δ_AP = Δ(1 − h)²
    temperature_k: float = 300.0   # K
    tau0_ns: float = 1.0           # attempt time, ns
    t_pulse_ns: float = 10.0       # write pulse width, ns
    v_c: float = 0.5               # critical voltage (geometric mean of both directions), V
    vc_asym: float = 1.2           # asymmetry: V_c(P→AP)/V_c(AP→P)
    v_c_spread: float = 0.02       # d2d: relative σ of the per-device V_c
    v_c_c2c: float = 0.01          # c2c: relative σ of V_c per pulse
    v_max: float = 0.46            # V
    v_min: float = 0.25            # V
    volt_per_grad: float = 10.0    # V per unit |∂L/∂w| (per unit |∂L/∂w|/rms with grad_norm = "rms")
    grad_norm: str = "none"        # none | rms: the controller divides ∂L/∂w by its RMS over the array
    write_drive: str = "linear"    # linear: V = min(volt_per_grad·|g|, V_max) | calibrated: P_sw(x=0) = p_per_grad·|g|
    p_per_grad: float = 0.01       # calibrated drive: target switching probability of a plastic device per unit |g|
    b: float = 1.0                 # Néel–Brown exponent, 1 ≤ b ≤ 2
    write_scheme: str = "blind"    # blind | verify
    polarity_drive: bool = True    # the driver scales V by √a for P→AP and 1/√a for AP→P (asymmetry)
    verify_max: int = 4            # pulses at most with "verify"
    e_driver_pj: float = 0.0       # peripheral write-driver energy per pulse, pJ
    # resistance and read
    r_p_ohm: float = 2000.0        # Ω
    tmr: float = 1.5               # (R_AP − R_P)/R_P at zero bias
    v_half: float = 0.5            # TMR(V) = tmr/(1 + (V/v_half)²), V
    v_read: float = 0.1            # V
    t_read_ns: float = 10.0        # ns
    e_sense_pj: float = 0.01       # sense-amplifier energy per column per read cycle, pJ
    read_noise: float = 0.02       # relative σ of the conductance read
    eval_noise: bool = True        # reads in evaluation noisy too (when read_noise is on)
    # magneto-ionic gate
    ion: str = "O"                 # O (O²⁻) | H (H⁺) | N (N³⁻): a label of the preset
    gate_v: float = 3.0            # gate pulse voltage V_g, V
    gate_v_ref: float = 3.0        # voltage at which gate_rate_hz is given, V
    gate_rate_hz: float = 300.0    # k_ref: ion-migration rate at gate_v_ref and 300 K, 1/s
    gate_v0: float = 0.26          # k ∝ exp(V_g/V_0), V
    gate_ea_ev: float = 1.0        # activation energy of migration and relaxation, eV
    gate_rate_spread: float = 0.1  # d2d: σ of ln(rate factor)
    gate_c2c: float = 0.1          # c2c: σ of ln(rate) per gating event
    gate_t_min_s: float = 1e-6     # shorter gate pulses are skipped, s
    gate_t_max_s: float = 1.0      # longest gate pulse, s
    gate_cap_f: float = 1e-16      # gate capacitance, F
    gate_schedule: str = "array"   # array: all gates pulsed at once | row: one weight row after another
    gate_mode: str = "agree"       # agree: gate up where ∂L/∂w agrees with s | bidirectional: also down where not
    kappa: float = 0.5             # ionic fraction per unit |∂L/∂w| (nominal rate; sets t_g)
    levels: int = 32               # finite_levels: distinct values of x (≥ 2)
    tau_relax_s: float = 1e4       # relaxation of x at zero gate voltage and 300 K, s (inf = none)
    x_rest: float = 0.0
    x_init: float = 0.0
    on_flip: str = "keep"          # keep | reset (gate x back to x_rest after a pulse-driven flip)
    step_time_s: float = 0.0       # > 0: fixed simulated time per update instead of the schedule, s
    scale: float = 1.0             # weight magnitude
    seed: int = 0                  # generators of every random stream (one per non-ideality)
    preset: str = ""               # name of the preset the values came from (provenance)
    nonideal: NonIdeal = field(default_factory=NonIdeal)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"MTJParams.seed must be an int in [0, inf), got {self.seed!r}")
        for name in ("eval_noise", "polarity_drive"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"MTJParams.{name} must be a bool, got {getattr(self, name)!r}")
        for name, options in (("ion", _IONS), ("write_scheme", _SCHEMES), ("on_flip", _ON_FLIP),
                              ("grad_norm", _GRAD_NORMS), ("gate_schedule", ("array", "row")),
                              ("gate_mode", ("agree", "bidirectional")),
                              ("write_drive", ("linear", "calibrated"))):
            if getattr(self, name) not in options:
                raise ValueError(f"MTJParams.{name} must be one of {options}, got {getattr(self, name)!r}")
        for name in ("verify_max", "levels"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= (64 if name == "verify_max" else 1 << 20):
                raise ValueError(f"MTJParams.{name} must be an int in [1, {64 if name == 'verify_max' else 1 << 20}], got {v!r}")
        if self.levels < 2:
            raise ValueError(f"MTJParams.levels must be >= 2, got {self.levels!r}")
        if not isinstance(self.preset, str):
            raise ValueError(f"MTJParams.preset must be a string, got {self.preset!r}")
        object.__setattr__(self, "nonideal", NonIdeal.coerce(self.nonideal, "MTJParams"))
        check_range(self, "delta_min", 0.0, 1e3, lo_open=True)
        check_range(self, "delta_max", self.delta_min, 1e3)
        check_range(self, "delta_spread", 0.0, 0.3)
        check_range(self, "delta_asym", -0.5, 0.5)
        check_range(self, "temperature_k", 1.0, 2000.0)
        check_range(self, "tau0_ns", 0.0, 1e6, lo_open=True)
        check_range(self, "t_pulse_ns", 0.0, 1e9, lo_open=True)
        check_range(self, "v_c", 0.0, 1e3, lo_open=True)
        check_range(self, "vc_asym", 0.2, 5.0)
        check_range(self, "v_c_spread", 0.0, 0.3)
        check_range(self, "v_c_c2c", 0.0, 0.3)
        check_range(self, "v_max", 0.0, 1e3, lo_open=True)
        check_range(self, "v_min", 0.0, self.v_max)
        check_range(self, "volt_per_grad", 0.0, 1e12)
        check_range(self, "b", 1.0, 2.0)
        check_range(self, "p_per_grad", 0.0, 1e6)
        check_range(self, "e_driver_pj", 0.0, 1e6)
        check_range(self, "r_p_ohm", 0.0, 1e12, lo_open=True)
        check_range(self, "tmr", 0.0, 1e3, lo_open=True)
        check_range(self, "v_half", 0.0, 1e3, lo_open=True)
        check_range(self, "v_read", 0.0, 1e3)
        check_range(self, "t_read_ns", 0.0, 1e9)
        check_range(self, "e_sense_pj", 0.0, 1e6)
        check_range(self, "read_noise", 0.0, 1.0)
        check_range(self, "gate_v", 0.0, 1e3)
        check_range(self, "gate_v_ref", 0.0, 1e3)
        check_range(self, "gate_rate_hz", 0.0, 1e15, lo_open=True)
        check_range(self, "gate_v0", 0.0, 1e3, lo_open=True)
        check_range(self, "gate_ea_ev", 0.0, 10.0)
        check_range(self, "gate_rate_spread", 0.0, 2.0)
        check_range(self, "gate_c2c", 0.0, 2.0)
        check_range(self, "gate_t_min_s", 0.0, 1e6)
        check_range(self, "gate_t_max_s", self.gate_t_min_s, 1e6, lo_open=self.gate_t_min_s == 0.0)
        check_range(self, "gate_cap_f", 0.0, 1.0)
        check_range(self, "kappa", 0.0, 1e30)
        check_range(self, "tau_relax_s", 0.0, None, lo_open=True, allow_inf=True)
        check_range(self, "x_rest", 0.0, 1.0)
        check_range(self, "x_init", 0.0, 1.0)
        check_range(self, "step_time_s", 0.0, 1e9)
        check_range(self, "scale", 0.0, 1e6, lo_open=True)

    # ---- derived quantities ----------------------------------------------------------------------
    @property
    def r_ap_ohm(self) -> float:
        """R_AP at zero bias."""
        return self.r_p_ohm * (1.0 + self.tmr)

    def tmr_at(self, v: float) -> float:
        """TMR(V) = TMR₀/(1 + (V/V_h)²)."""
        return self.tmr / (1.0 + (v / self.v_half) ** 2)

    def gate_rate(self, temperature_k: float | None = None) -> float:
        """k(V_g, T) [1/s] (nominal device)."""
        t = self.temperature_k if temperature_k is None else temperature_k
        return (self.gate_rate_hz * math.exp((self.gate_v - self.gate_v_ref) / self.gate_v0)
                * arrhenius(self.gate_ea_ev, t))

    def tau_relax(self) -> float:
        """τ_relax(T) = τ_relax,300·exp[(E_a/k_B)(1/T − 1/T_ref)] (in s)."""
        return self.tau_relax_s / arrhenius(self.gate_ea_ev, self.temperature_k)

    @property
    def tscale(self) -> float:
        """300 K / T: Δ(T) = Δ_300·tscale."""
        return T_REF_K / self.temperature_k

    def on(self, name: str) -> bool:
        return bool(getattr(self.nonideal, name))


def barrier(x: torch.Tensor | float, p: MTJParams, factor: torch.Tensor | float = 1.0):
    """Δ(x) = factor·(Δ_min + (Δ_max − Δ_min)·x)·(300 K/T) [k_BT] (symmetric part)."""
    return factor * (p.delta_min + (p.delta_max - p.delta_min) * x) * p.tscale


def neel_brown_tau(delta: torch.Tensor, v: torch.Tensor, v_c: torch.Tensor | float,
                   tau0_ns: float, b: float) -> torch.Tensor:
    """τ = τ₀·exp[Δ·(1 − V/V_c)^b] (in ns) for V < V_c, τ₀ for V ≥ V_c (float64)."""
    r = torch.clamp(1.0 - v.double() / v_c, min=0.0)
    return tau0_ns * torch.exp(delta.double() * r ** b)


def switch_probability(delta: torch.Tensor, v: torch.Tensor, v_c: torch.Tensor | float,
                       p: MTJParams, pulses: int = 1) -> torch.Tensor:
    """P_sw = 1 − exp(−k·t_p/τ) for k pulses, τ from :func:`neel_brown_tau` (float64)."""
    tau = neel_brown_tau(delta, v, v_c, p.tau0_ns, p.b)
    return -torch.expm1(-pulses * p.t_pulse_ns / tau)


def write_error_rate(delta: torch.Tensor, v: torch.Tensor, v_c: torch.Tensor | float, p: MTJParams,
                     pulses: int = 1) -> torch.Tensor:
    """WER = 1 − P_sw = exp(−k·t_p/τ)."""
    tau = neel_brown_tau(delta, v, v_c, p.tau0_ns, p.b)
    return torch.exp(-pulses * p.t_pulse_ns / tau)


# ---- the fused kernel ------------------------------------------------------------------------------
_JIT = dict(cache=True, error_model="numpy")  # no fastmath: bit-equality with the torch reference
_BLOCK = 16384
# scalar slots of the kernel's float64 argument array
(_DMIN, _DRANGE, _TSC, _HP, _HA, _VCP, _VCA, _LNR, _LNDT, _VMAX, _VMIN, _VPG, _B, _EP, _TPR, _TMR, _IVH2,
 _EDRV, _EVRP, _EVRA, _KEEP, _XREST, _LEVELS, _THERMAL, _RELAX, _RESET, _VERIFY, _VDP, _VDA, _NSC) = range(30)


@numba.njit(**_JIT)
def _mtj_loop(mode, g, gum, cg, vcj, u, s, x, dfac, vc, n_pulse, n_switch, n_gate, energy, sc,
              lnk):  # pragma: no cover - compiled
    """Branch-free float32 loop over one block; ``mode`` 1: b = 1, 2: b = 2, else r**b."""
    f = np.float32
    one, zero = f(1.0), f(0.0)
    dmin, drange, tsc, hp, ha = f(sc[_DMIN]), f(sc[_DRANGE]), f(sc[_TSC]), f(sc[_HP]), f(sc[_HA])
    vcp, vca, lnr, lndt = f(sc[_VCP]), f(sc[_VCA]), f(sc[_LNR]), f(sc[_LNDT])
    vmax, vmin, vpg, b32 = f(sc[_VMAX]), f(sc[_VMIN]), f(sc[_VPG]), f(sc[_B])
    ep, tpr, tmr, ivh2, edrv = f(sc[_EP]), f(sc[_TPR]), f(sc[_TMR]), f(sc[_IVH2]), f(sc[_EDRV])
    evrp, evra, keep, xrest, lv = f(sc[_EVRP]), f(sc[_EVRA]), f(sc[_KEEP]), f(sc[_XREST]), f(sc[_LEVELS])
    thermal, relax, reset, verify = sc[_THERMAL] > 0, sc[_RELAX] > 0, sc[_RESET] > 0, sc[_VERIFY] > 0
    vdp, vda = f(sc[_VDP]), f(sc[_VDA])
    kmax = lnk.size
    lnK = f(lnk[kmax - 1])
    lv1 = lv - one
    for i in range(g.size):
        gi = g[i]
        si = s[i]
        xi = x[i]
        p_state = si > 0
        t = np.int8(-1) if gi > 0 else np.int8(1)
        nz = gi != 0
        v0 = min(vpg * abs(gi), vmax)
        pulse = nz & (si != t) & (v0 >= vmin)
        v = v0 * (vdp if p_state else vda)
        vcd = vc[i] * (vcp if p_state else vca) * vcj[i]
        r = max(one - v / vcd, zero)
        if mode == 1:
            rb = r
        elif mode == 2:
            rb = r * r
        else:
            rb = r ** b32
        dstate = dfac[i] * (dmin + drange * xi) * tsc * (hp if p_state else ha)
        thr = dstate * rb
        gm = gum[i]
        flip_p = pulse & (thr < lnr + lnK + gm)
        att = np.int32(0)
        for j in range(1, kmax):
            att += np.int32(thr >= lnr + f(lnk[j - 1]) + gm)
        att = att + np.int32(1) if pulse else np.int32(0)
        flip_t = thermal & (not pulse) & (dstate < lndt + gm)
        flip = flip_p | flip_t
        vv = v * v
        e_ap = tpr / (one + tmr / (one + vv * ivh2))
        e_one = vv * (ep if p_state else e_ap) + edrv + ((evrp if p_state else evra) if verify else zero)
        energy[i] += f(att) * e_one
        n_pulse[i] += att
        n_switch[i] += np.int32(flip)
        c = cg[i]
        gated = c != zero
        xa = xi + c * ((one - xi) if c > zero else xi)
        rst = reset & flip_p
        xa = xrest if rst else xa
        n_gate[i] += np.int32(gated) + np.int32(rst)
        xr = xrest + (xa - xrest) * keep
        xa = xr if relax else xa
        if lv > zero:
            xq = np.floor(xa * lv1 + u[i]) / lv1
            xa = min(max(xq, zero), one)
        x[i] = xa
        s[i] = -si if flip else si


@numba.njit(**_JIT)
def _mtj_block(g, gum, cg, vcj, u, s, x, dfac, vc, n_pulse, n_switch, n_gate, energy, sc,
               lnk):  # pragma: no cover - compiled
    b = sc[_B]
    if b == 1.0:
        _mtj_loop(1, g, gum, cg, vcj, u, s, x, dfac, vc, n_pulse, n_switch, n_gate, energy, sc, lnk)
    elif b == 2.0:
        _mtj_loop(2, g, gum, cg, vcj, u, s, x, dfac, vc, n_pulse, n_switch, n_gate, energy, sc, lnk)
    else:
        _mtj_loop(0, g, gum, cg, vcj, u, s, x, dfac, vc, n_pulse, n_switch, n_gate, energy, sc, lnk)


@numba.njit(**_JIT)
def mtj_kernel(g, gum, cg, vcj, u, s, x, dfac, vc, n_pulse, n_switch, n_gate, energy, sc, lnk):
    """Fused in-place MTJ step over flat arrays (serial), one pass (equations: module docstring).

    Per step (float32): g (∂L/∂w), gum (standard-Gumbel draw), cg (gate fraction
    1 − exp(−k·ρ·ε·t_g), 0 where no gating), vcj (c2c factor of V_c), u (uniforms of the level
    rounding; unused when ``sc[_LEVELS] == 0``). State: s (int8), x, dfac, vc (float32), n_pulse,
    n_switch, n_gate (int32), energy (float32, write pJ). ``sc``: float64 scalars (slots ``_DMIN``…),
    ``lnk``: float64 ln(1..K) of the verify scheme (K = 1: blind)."""
    n = g.size
    for k in range((n + _BLOCK - 1) // _BLOCK):
        lo = k * _BLOCK
        hi = min(n, lo + _BLOCK)
        _mtj_block(g[lo:hi], gum[lo:hi], cg[lo:hi], vcj[lo:hi], u[lo:hi], s[lo:hi], x[lo:hi], dfac[lo:hi],
                   vc[lo:hi], n_pulse[lo:hi], n_switch[lo:hi], n_gate[lo:hi], energy[lo:hi], sc, lnk)


@numba.njit(parallel=True, **_JIT)
def mtj_kernel_parallel(g, gum, cg, vcj, u, s, x, dfac, vc, n_pulse, n_switch, n_gate, energy, sc, lnk):
    """Same as :func:`mtj_kernel`, multithreaded over blocks."""
    n = g.size
    for k in numba.prange((n + _BLOCK - 1) // _BLOCK):
        lo = k * _BLOCK
        hi = min(n, lo + _BLOCK)
        _mtj_block(g[lo:hi], gum[lo:hi], cg[lo:hi], vcj[lo:hi], u[lo:hi], s[lo:hi], x[lo:hi], dfac[lo:hi],
                   vc[lo:hi], n_pulse[lo:hi], n_switch[lo:hi], n_gate[lo:hi], energy[lo:hi], sc, lnk)


def mtj_step_torch(g: torch.Tensor, gum: torch.Tensor, cg: torch.Tensor, vcj: torch.Tensor, u: torch.Tensor,
                   s: torch.Tensor, x: torch.Tensor, dfac: torch.Tensor, vc: torch.Tensor, n_pulse: torch.Tensor,
                   n_switch: torch.Tensor, n_gate: torch.Tensor, energy: torch.Tensor, sc: np.ndarray,
                   lnk: np.ndarray) -> None:
    """Torch reference of :func:`mtj_kernel`, in place, any device (same arguments; float32 state
    gives the kernel's bits for b ∈ {1, 2})."""
    dt = x.dtype

    def f(v: float) -> torch.Tensor:  # a scalar rounded to the state dtype, as the kernel's f32(...)
        return torch.tensor(float(v), dtype=torch.float64).to(dt).to(x.device)

    one = f(1.0)
    p_state = s > 0
    t = torch.where(g > 0, -1, 1).to(s.dtype)
    nz = g != 0
    v0 = torch.clamp(g.abs() * f(sc[_VPG]), max=float(f(sc[_VMAX])))
    pulse = nz & (s != t) & (v0 >= f(sc[_VMIN]))
    v = v0 * torch.where(p_state, f(sc[_VDP]), f(sc[_VDA]))
    vcd = vc * torch.where(p_state, f(sc[_VCP]), f(sc[_VCA])) * vcj
    r = torch.clamp(one - v / vcd, min=0.0)
    b = float(sc[_B])
    rb = r if b == 1.0 else (r * r if b == 2.0 else r ** f(b))
    dstate = dfac * (f(sc[_DMIN]) + f(sc[_DRANGE]) * x) * f(sc[_TSC]) * torch.where(p_state, f(sc[_HP]), f(sc[_HA]))
    thr = dstate * rb
    lnr, lnK = f(sc[_LNR]), f(lnk[-1])
    flip_p = pulse & (thr < lnr + lnK + gum)
    att = torch.zeros_like(n_pulse)
    for j in range(1, lnk.size):
        att += (thr >= lnr + f(lnk[j - 1]) + gum).to(att.dtype)
    att = torch.where(pulse, att + 1, torch.zeros_like(att))
    flip_t = (~pulse) & (dstate < f(sc[_LNDT]) + gum) if sc[_THERMAL] > 0 else torch.zeros_like(pulse)
    flip = flip_p | flip_t
    vv = v * v
    e_ap = f(sc[_TPR]) / (one + f(sc[_TMR]) / (one + vv * f(sc[_IVH2])))
    e_one = vv * torch.where(p_state, f(sc[_EP]), e_ap) + f(sc[_EDRV])
    if sc[_VERIFY] > 0:
        e_one = e_one + torch.where(p_state, f(sc[_EVRP]), f(sc[_EVRA]))
    energy.add_(att.to(dt) * e_one)
    n_pulse.add_(att)
    n_switch.add_(flip.to(n_switch.dtype))
    gated = cg != 0
    xa = x + cg * torch.where(cg > 0, one - x, x)
    rst = flip_p if sc[_RESET] > 0 else torch.zeros_like(flip_p)
    xrest = f(sc[_XREST])
    xa = torch.where(rst, xrest, xa)
    n_gate.add_(gated.to(n_gate.dtype) + rst.to(n_gate.dtype))
    if sc[_RELAX] > 0:
        xa = xrest + (xa - xrest) * f(sc[_KEEP])
    if sc[_LEVELS] > 0:
        lv1 = f(sc[_LEVELS]) - one
        xa = torch.clamp(torch.floor(xa * lv1 + u) / lv1, 0.0, 1.0)
    x.copy_(xa)
    s.copy_(torch.where(flip, -s, s))


# ---- the model --------------------------------------------------------------------------------------
_STREAMS = ("init", "switch", *NONIDEAL_NAMES)  # one generator each; seeds seed·16 + index


class MetaplasticMTJ(SynapseModel):
    """Binary MTJ with a magneto-ionic barrier-setting gate, in physical units (module docstring).

    Buffers (in ``state_dict``): ``s`` (int8 ±1), ``x`` (float32 ∈ [0, 1]), per-device ``delta_factor``,
    ``v_c`` [V], ``rate_factor``; counters ``n_pulse`` (attempted pulses), ``n_switch``, ``n_gate``
    (gating events) (int32), ``energy_write_pj`` (float32); float64 scalars ``time_s`` (simulated
    time), ``energy_read_j``, ``read_cycles``. Every generator's state is saved as ``extra_state``."""

    COUNTS_READS = True

    def __init__(self, shape: tuple[int, ...] | torch.Size, params: MTJParams | None = None,
                 backend: Backend = "auto", parallel: bool = False) -> None:
        params = MTJParams() if params is None else params
        if not isinstance(params, MTJParams):
            raise TypeError(f"MetaplasticMTJ: params must be MTJParams, got {type(params).__name__}")
        super().__init__(shape, params, backend)
        p = params
        self.parallel = bool(parallel)
        # CPU generators, one per random stream; draws are moved to the state's device.
        self._gens = {name: torch.Generator().manual_seed(p.seed * 16 + k) for k, name in enumerate(_STREAMS)}
        s = torch.where(torch.rand(self.shape, generator=self._gens["init"]) < 0.5, 1, -1).to(torch.int8)
        gd = self._gens["d2d"]
        dz = torch.randn(self.shape, generator=gd).clamp_(-3.0, 3.0)
        vz = torch.randn(self.shape, generator=gd).clamp_(-3.0, 3.0)
        rz = torch.randn(self.shape, generator=gd).clamp_(-3.0, 3.0)
        d2d = p.on("d2d")
        self.register_buffer("s", s)
        self.register_buffer("x", torch.full(self.shape, float(p.x_init)))
        self.register_buffer("delta_factor", (1.0 + p.delta_spread * dz).float() if d2d else torch.ones(self.shape))
        self.register_buffer("v_c", (p.v_c * (1.0 + p.v_c_spread * vz)).float() if d2d
                             else torch.full(self.shape, float(p.v_c)))
        self.register_buffer("rate_factor", torch.exp(p.gate_rate_spread * rz).float() if d2d
                             else torch.ones(self.shape))
        self.register_buffer("n_pulse", torch.zeros(self.shape, dtype=torch.int32))
        self.register_buffer("n_switch", torch.zeros(self.shape, dtype=torch.int32))
        self.register_buffer("n_gate", torch.zeros(self.shape, dtype=torch.int32))
        self.register_buffer("energy_write_pj", torch.zeros(self.shape, dtype=torch.float32))
        self.register_buffer("time_s", torch.zeros((), dtype=torch.float64))
        self.register_buffer("energy_read_j", torch.zeros((), dtype=torch.float64))
        self.register_buffer("read_cycles", torch.zeros((), dtype=torch.float64))
        self._pending_cycles = 0.0  # read cycles since the last update (time of the next step)

    # ---- generators in the state_dict ----------------------------------------------------------
    def get_extra_state(self) -> Any:
        return {"generators": {k: g.get_state() for k, g in self._gens.items()},
                "pending_cycles": self._pending_cycles}

    def set_extra_state(self, state: Any) -> None:
        for k, st in state["generators"].items():
            self._gens[k].set_state(st)
        self._pending_cycles = float(state.get("pending_cycles", 0.0))

    def generator(self, stream: str) -> torch.Generator:
        """The generator of one random stream (``"init"``, ``"switch"`` or a non-ideality's name)."""
        return self._gens[stream]

    # ---- read levels and weights ---------------------------------------------------------------
    def conductance_levels(self) -> tuple[float, float, float]:
        """(G_P/G_P, G_mid/G_P, G_half/G_P) at the read bias."""
        gap = 1.0 / (1.0 + self.params.tmr_at(self.params.v_read))
        return 1.0, (1.0 + gap) / 2.0, (1.0 - gap) / 2.0

    def read_conductance(self) -> torch.Tensor:
        """G_s [S] of every device at the read bias (float64)."""
        p: MTJParams = self.params
        g_ap = 1.0 / (p.r_p_ohm * (1.0 + p.tmr_at(p.v_read)))
        return torch.where(self.s > 0, 1.0 / p.r_p_ohm, g_ap).double()

    def _compute_weight(self, sample: bool) -> torch.Tensor:
        """``scale·(Ĝ − G_mid)/G_half`` written as ``scale·(s + σ_r·ε·G_s/G_half)`` (exactly ±scale
        without noise)."""
        p: MTJParams = self.params
        _, _, half = self.conductance_levels()
        w = self.s.to(self.x.dtype)
        if p.on("read_noise") and p.read_noise > 0 and (sample or p.eval_noise):
            eps = torch.randn(self.shape, generator=self._gens["read_noise"]).to(device=self.s.device, dtype=w.dtype)
            gs = torch.where(self.s > 0, 1.0, 1.0 / (1.0 + p.tmr_at(p.v_read))).to(w.dtype)
            w = w + (p.read_noise / half) * gs * eps
        return w * p.scale

    def programmed_weight(self) -> torch.Tensor:
        """``scale·s``: the stored magnetisation states, without read noise (export)."""
        return self.s.to(self.x.dtype) * self.params.scale

    def count_reads(self, inputs: torch.Tensor) -> None:
        """Charge the read energy of one crossbar product with ``inputs [N, fan_in]`` (linear) or
        ``[N, C, H, W]`` (conv, each input pixel driving every kernel position: boundaries ignored):
        Σ_n Σ_i u_ni²·V_read²·t_read·Σ_j G_ji + E_sense·(columns)·(read cycles), and remember the N
        read cycles as time of the next update (training)."""
        p: MTJParams = self.params
        with torch.no_grad():
            u = inputs.detach()
            G = self.read_conductance()  # [out, in] or [out, in, kh, kw]
            if G.dim() == 2:
                u = u.reshape(-1, u.shape[-1])
            if u.dim() < 2:
                return
            n_cycles = float(u.shape[0])
            if u.dim() == 2:
                drive = (u.double() ** 2).sum(0)                       # [in]
                gsum = G.sum(0)                                        # [in]
                cols = float(G.shape[0])
            else:
                drive = (u.double() ** 2).sum(dim=(0, 2, 3))           # [C]
                gsum = G.sum(dim=(0, 2, 3))
                cols = float(G.shape[0])
            e = p.v_read ** 2 * p.t_read_ns * 1e-9 * float((drive * gsum).sum())
            e += p.e_sense_pj * 1e-12 * cols * n_cycles
            self.energy_read_j += e
            self.read_cycles += n_cycles
            if self.training:
                self._pending_cycles += n_cycles

    # ---- one update ----------------------------------------------------------------------------
    def _schedule(self, g: torch.Tensor, t: torch.Tensor, t_gate: torch.Tensor, v_per_g: float) -> float:
        """Simulated duration of this update [s] (module docstring, "Time"); ``g`` the kernel's drive,
        ``t`` the target state −sign(g)."""
        p: MTJParams = self.params
        if p.step_time_s > 0:
            return float(p.step_time_s)
        v = torch.clamp(g.abs() * v_per_g, max=p.v_max)
        pulse = (g != 0) & (self.s != t) & (v >= p.v_min)
        rows = pulse.reshape(self.shape[0], -1).any(1)
        slot = p.t_pulse_ns * 1e-9 if p.write_scheme == "blind" else p.verify_max * (p.t_pulse_ns + p.t_read_ns) * 1e-9
        if p.gate_schedule == "row":
            t_g = float(t_gate.reshape(self.shape[0], -1).amax(1).double().sum())
        else:
            t_g = float(t_gate.max()) if t_gate.numel() else 0.0
        return self._pending_cycles * p.t_read_ns * 1e-9 + float(rows.sum()) * slot + t_g

    def kernel_grad(self, g: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(g_k, v_per_g): the kernel applies V = min(v_per_g·|g_k|, V_max) toward −sign(g_k). Linear drive:
        (g, volt_per_grad). Calibrated drive: the controller inverts the nominal switching curve of a
        plastic device (x = 0, no spread) so that P_sw = min(p_per_grad·|g|, P_sw(V_max)):
        r = [ln(t_p/τ₀) − ln(−ln(1 − P))]/Δ(0), V = V_c·(1 − r^{1/b}); g_k = sign(g)·V, v_per_g = 1
        (V = 0 where P = 0: no pulse)."""
        p: MTJParams = self.params
        if p.write_drive == "linear":
            return g, float(p.volt_per_grad)
        P = (p.p_per_grad * g.double().abs()).clamp(max=1.0 - 1e-12)
        d0 = float(barrier(0.0, p))
        lnr = math.log(p.t_pulse_ns / p.tau0_ns)
        hz = -torch.log1p(-P)                       # −ln(1 − P) = t_p/τ
        r = ((lnr - torch.log(hz.clamp(min=1e-300))) / d0).clamp(0.0, 1.0)
        v = (p.v_c * (1.0 - r ** (1.0 / p.b))).clamp(max=p.v_max)
        v = torch.where(P > 0, v, torch.zeros_like(v))
        return (torch.sign(g.double()) * v).to(g.dtype), 1.0

    def step_inputs(self, grad: torch.Tensor, gk: torch.Tensor | None = None,
                    v_per_g: float | None = None) -> tuple[list[torch.Tensor], np.ndarray, np.ndarray, float]:
        """The per-step draws and scalars of one update: ([gum, cg, vcj, u], sc, lnk, dt). Shared by both
        backends, so they take identical decisions. ``grad``: the (normalised) gradient, which sets the
        gating; ``gk``/``v_per_g``: the kernel's write drive (default :meth:`kernel_grad`)."""
        p: MTJParams = self.params
        dev = self.x.device
        g = grad.to(device=dev, dtype=self.x.dtype)
        if gk is None:
            gk, v_per_g = self.kernel_grad(g)
        u64 = torch.rand(self.shape, generator=self._gens["switch"], dtype=torch.float64)
        gum = (-torch.log(-torch.log(u64))).float().to(dev)
        c2c = p.on("c2c")
        if c2c and p.v_c_c2c > 0:
            vcj = (1.0 + p.v_c_c2c * torch.randn(self.shape, generator=self._gens["c2c"]).clamp_(-3.0, 3.0)).to(dev)
        else:
            vcj = torch.ones(self.shape, device=dev)
        # gate pulses where the gradient agrees with the state
        t = torch.where(g > 0, -1, 1).to(self.s.dtype)
        agree = (g != 0) & (self.s == t)
        k_nom = p.gate_rate(T_REF_K)
        t_g = (p.kappa * g.double().abs() / k_nom)
        drive = agree | (g != 0) if p.gate_mode == "bidirectional" else agree
        gated = drive & (t_g >= p.gate_t_min_s) & (t_g > 0)
        t_g = torch.where(gated, torch.clamp(t_g, max=p.gate_t_max_s), torch.zeros_like(t_g))
        k = p.gate_rate() * self.rate_factor.double()
        if c2c and p.gate_c2c > 0:
            k = k * torch.exp(p.gate_c2c * torch.randn(self.shape, generator=self._gens["c2c"],
                                                        dtype=torch.float64).to(dev))
        cg = torch.where(gated, -torch.expm1(-k * t_g), torch.zeros_like(t_g))
        if p.gate_mode == "bidirectional":  # a reverse gate pulse where the gradient opposes the state
            cg = torch.where(agree, cg, -cg)
        cg = cg.to(self.x.dtype)
        levels = p.on("finite_levels")
        u = (torch.rand(self.shape, generator=self._gens["finite_levels"]).to(dev) if levels
             else torch.zeros(self.shape, device=dev))
        dt = self._schedule(gk, t, t_g, v_per_g)  # gk has the sign of g: the same target t
        retention = p.on("retention")
        asym = p.on("asymmetry")
        h = p.delta_asym if asym else 0.0
        a = p.vc_asym if asym else 1.0
        tau_r = p.tau_relax()
        sc = np.zeros(_NSC, dtype=np.float64)
        sc[_DMIN], sc[_DRANGE], sc[_TSC] = p.delta_min, p.delta_max - p.delta_min, p.tscale
        sc[_HP], sc[_HA] = (1.0 + h) ** 2, (1.0 - h) ** 2
        sc[_VCP], sc[_VCA] = math.sqrt(a), 1.0 / math.sqrt(a)
        comp = p.polarity_drive and a != 1.0  # the driver scales each polarity by its critical voltage
        sc[_VDP], sc[_VDA] = (math.sqrt(a), 1.0 / math.sqrt(a)) if comp else (1.0, 1.0)
        sc[_LNR] = math.log(p.t_pulse_ns / p.tau0_ns)
        sc[_THERMAL] = 1.0 if retention and dt > 0 else 0.0
        sc[_LNDT] = math.log(dt * 1e9 / p.tau0_ns) if dt > 0 else 0.0
        sc[_VMAX], sc[_VMIN], sc[_VPG], sc[_B] = p.v_max, p.v_min, v_per_g, p.b
        sc[_EP] = p.t_pulse_ns * 1e3 / p.r_p_ohm       # pJ/V²: V²/R·t_p with t_p in ns → pJ·1e-3·1e3
        sc[_TPR], sc[_TMR], sc[_IVH2] = p.t_pulse_ns * 1e3 / p.r_p_ohm, p.tmr, 1.0 / p.v_half ** 2
        sc[_EDRV] = p.e_driver_pj
        g_ap_read = 1.0 / (p.r_p_ohm * (1.0 + p.tmr_at(p.v_read)))
        sc[_EVRP] = p.v_read ** 2 * p.t_read_ns * 1e3 / p.r_p_ohm
        sc[_EVRA] = p.v_read ** 2 * p.t_read_ns * 1e3 * g_ap_read
        relax = retention and math.isfinite(tau_r) and dt > 0
        sc[_RELAX] = 1.0 if relax else 0.0
        sc[_KEEP] = math.exp(-dt / tau_r) if relax else 1.0
        sc[_XREST] = p.x_rest
        sc[_LEVELS] = float(p.levels) if levels else 0.0
        sc[_RESET] = 1.0 if p.on_flip == "reset" else 0.0
        sc[_VERIFY] = 1.0 if p.write_scheme == "verify" else 0.0
        kk = p.verify_max if p.write_scheme == "verify" else 1
        lnk = np.log(np.arange(1, kk + 1, dtype=np.float64))
        return [gum, cg, vcj.float(), u.float()], sc, lnk, dt

    _STATE = ("s", "x", "delta_factor", "v_c", "n_pulse", "n_switch", "n_gate", "energy_write_pj")

    def _after_step(self, dt: float) -> None:
        self.time_s += dt
        self._pending_cycles = 0.0

    def drive(self, grad: torch.Tensor) -> torch.Tensor:
        """The gradient the write and gate drivers see: ∂L/∂w, or ∂L/∂w / RMS(∂L/∂w) with
        ``grad_norm = "rms"`` (float32, contiguous)."""
        g = grad.to(device=self.x.device, dtype=self.x.dtype)
        if self.params.grad_norm == "rms":
            rms = g.double().pow(2).mean().sqrt()
            g = (g.double() / rms).to(g.dtype) if float(rms) > 0 else g  # float64: a float32 rms may underflow to 0
        return g.contiguous()

    def _update_torch(self, grad: torch.Tensor) -> None:
        grad = self.drive(grad)
        gk, vpg = self.kernel_grad(grad)
        arrays, sc, lnk, dt = self.step_inputs(grad, gk, vpg)
        mtj_step_torch(gk, *arrays, *(getattr(self, n) for n in self._STATE), sc, lnk)
        self._after_step(dt)

    def _update_numba(self, grad: torch.Tensor) -> None:
        grad = self.drive(grad)
        gk, vpg = self.kernel_grad(grad)
        arrays, sc, lnk, dt = self.step_inputs(grad, gk, vpg)
        for name in self._STATE:
            t = getattr(self, name)
            if t.device.type != "cpu" or not t.is_contiguous():
                raise ValueError(f"MetaplasticMTJ: numba backend needs contiguous CPU state, "
                                 f"buffer {name} is on {t.device} (contiguous={t.is_contiguous()})")
        kern = mtj_kernel_parallel if self.parallel else mtj_kernel
        kern(gk.contiguous().reshape(-1).numpy(), *(a.contiguous().view(-1).numpy() for a in arrays),
             *(getattr(self, n).view(-1).numpy() for n in self._STATE), sc, lnk)
        self._after_step(dt)

    # ---- idle time -------------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of idle time pass (no reads, no writes): with ``retention`` on, thermal flips
        of the free layer (two-state telegraph process with the state-dependent barriers Δ_P(x),
        Δ_AP(x)) while x relaxes towards x_rest, on log-spaced intervals (rates at each interval's
        mid-time x, exact when x does not move); finite levels: x rounded at the end. Seeded by the
        ``retention`` and ``finite_levels`` generators."""
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"MetaplasticMTJ.advance: seconds must be finite and >= 0, got {seconds!r}")
        p: MTJParams = self.params
        self.time_s += float(seconds)
        if seconds == 0 or not p.on("retention"):
            return
        tau_r = p.tau_relax()
        if math.isfinite(tau_r):
            lo = min(seconds, tau_r * 1e-3)
            n = int(min(64, max(1, math.ceil(4 * math.log10(seconds / lo)) + 1)))
            edges = [0.0] + [lo * (seconds / lo) ** (k / max(n - 1, 1)) for k in range(n)] if n > 1 else [0.0, seconds]
        else:
            edges = [0.0, seconds]
        asym = p.on("asymmetry")
        h = p.delta_asym if asym else 0.0
        with torch.no_grad():
            x0 = self.x.double()
            dev = self.x.device
            s = self.s.clone()
            for t0, t1 in zip(edges[:-1], edges[1:]):
                tm = 0.5 * (t0 + t1)
                xm = p.x_rest + (x0 - p.x_rest) * math.exp(-tm / tau_r) if math.isfinite(tau_r) else x0
                d = barrier(xm, p, self.delta_factor.double())
                a = torch.exp(-d * (1.0 + h) ** 2) / (p.tau0_ns * 1e-9)   # P → AP
                b = torch.exp(-d * (1.0 - h) ** 2) / (p.tau0_ns * 1e-9)   # AP → P
                prob = telegraph_change(a, b, s > 0, t1 - t0)
                uu = torch.rand(self.shape, generator=self._gens["retention"], dtype=torch.float64).to(dev)
                s = torch.where(uu < prob, -s, s)
            xe = p.x_rest + (x0 - p.x_rest) * math.exp(-seconds / tau_r) if math.isfinite(tau_r) else x0
            if p.on("finite_levels"):
                lv1 = p.levels - 1
                uu = torch.rand(self.shape, generator=self._gens["finite_levels"], dtype=torch.float64).to(dev)
                xe = torch.clamp(torch.floor(xe * lv1 + uu) / lv1, 0.0, 1.0)
            self.n_switch += (s != self.s).to(self.n_switch.dtype)
            self.s.copy_(s)
            self.x.copy_(xe.to(self.x.dtype))
        self._stale = True

    # ---- analysis --------------------------------------------------------------------------------
    def switch_probability(self, grad: torch.Tensor) -> torch.Tensor:
        """P_sw each synapse would have for a write pulse driven by ``grad`` (nominal, no c2c; 0 where
        no pulse)."""
        p: MTJParams = self.params
        gk, vpg = self.kernel_grad(self.drive(grad))
        g = gk.double()
        v = torch.clamp(g.abs() * vpg, max=p.v_max)
        pulse = (g != 0) & (self.s.double() != -torch.sign(g)) & (v >= p.v_min)
        asym = p.on("asymmetry")
        h, a = (p.delta_asym, p.vc_asym) if asym else (0.0, 1.0)
        pst = self.s > 0
        dstate = barrier(self.x.double(), p, self.delta_factor.double()) * torch.where(pst, (1 + h) ** 2, (1 - h) ** 2)
        vcd = self.v_c.double() * torch.where(pst, math.sqrt(a), 1 / math.sqrt(a))
        if p.polarity_drive and a != 1.0:
            v = v * torch.where(pst, math.sqrt(a), 1 / math.sqrt(a))
        k = p.verify_max if p.write_scheme == "verify" else 1
        psw = switch_probability(dstate, v, vcd, p, pulses=k)
        return torch.where(pulse, psw, torch.zeros_like(psw))

    def hidden(self) -> torch.Tensor:
        """The ionic state x ∈ [0, 1] (0 = plastic, 1 = consolidated)."""
        return self.x

    def energy_j(self) -> dict[str, float]:
        """Energy so far [J]: write (pulses, drivers, verify reads), read, gate."""
        p: MTJParams = self.params
        return {"write": float(self.energy_write_pj.double().sum()) * 1e-12,
                "read": float(self.energy_read_j),
                "gate": float(self.n_gate.double().sum()) * p.gate_cap_f * p.gate_v ** 2}

    def total_switches(self) -> int:
        return int(self.n_switch.sum().item())

    def total_pulses(self) -> int:
        return int(self.n_pulse.sum().item())

    def total_gate_events(self) -> int:
        return int(self.n_gate.sum().item())

    def total_energy_pj(self) -> float:
        """Write energy [pJ] (pulses, drivers, verify reads)."""
        return float(self.energy_write_pj.double().sum().item())

    def total_time_s(self) -> float:
        return float(self.time_s)


__all__ = ["MTJParams", "MetaplasticMTJ", "barrier", "mtj_kernel", "mtj_kernel_parallel", "mtj_step_torch",
           "neel_brown_tau", "switch_probability", "write_error_rate"]
