"""Device physics shared by the nanodevice synapse models: units, the switchable non-idealities, closed
forms (Néel–Brown, Arrhenius, two-state thermal relaxation) and the presets.

* :class:`NonIdeal` — each non-ideality is one switch (config ``synapse_params.nonideal.<name> =
  true|false``) and draws from its own seeded generator, so turning one off leaves the random
  numbers of the others unchanged. With all switches off a device model is its ideal rule
  (``NonIdeal.ideal()``; tests/synapses/test_device_physics.py holds them equal bit for bit).
* Closed forms used by the models and written out again in the tests:

  - Néel–Brown / thermal activation: τ = τ₀·exp[Δ·(1 − V/V_c)^b] (Brown, Phys. Rev. 130, 1677
    (1963); b = 1: Koch, Katine & Sun, PRL 92, 088302 (2004)), switching probability of a pulse of
    width t_p: P_sw = 1 − exp(−t_p/τ); write error rate WER = 1 − P_sw.
  - Δ(T) = E_b/(k_B·T): a barrier given in k_BT at T_ref = 300 K scales as Δ(T) = Δ_300·300/T
    (the temperature dependence of M_s and K is neglected — an assumption).
  - Arrhenius ion migration: k(V_g, T) = k_ref·exp[(V_g − V_ref)/V_0]·exp[−(E_a/k_B)(1/T − 1/T_ref)];
    the voltage dependence is the exponential bias dependence of oxygen drift reported by
    arXiv:2108.11263 (switching time varied over 5 decades, minutes to ms, with
    the gate bias), the temperature dependence the Arrhenius law of thermally activated hopping.
  - Two-state telegraph process (a free layer at zero bias): with escape rates a (P→AP) and b
    (AP→P), P[state changed after t | start P] = a/(a+b)·(1 − e^{−(a+b)t}); survival without any
    flip exp(−a·t) = exp(−t/τ).

* Presets (:data:`PRESETS`): published devices, each value with its source (paper, figure/table or
  abstract) or marked as an assumption; ``metaspin devices`` lists them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

K_B_EV = 8.617333262e-5  #: Boltzmann constant [eV/K]
T_REF_K = 300.0          #: reference temperature of barriers and rates [K]

#: The non-idealities, in the order of :class:`NonIdeal`'s fields.
NONIDEAL_NAMES = ("d2d", "c2c", "read_noise", "retention", "finite_levels", "asymmetry")


@dataclass(frozen=True)
class NonIdeal:
    """Switches of the non-idealities of a device model (all on by default).

    ``d2d``: device-to-device spread (fixed at construction); ``c2c``: cycle-to-cycle variation of
    each pulse or gating event; ``read_noise``: noise of every conductance read (training and
    evaluation); ``retention``: thermal flips at zero bias and ion relaxation over simulated time;
    ``finite_levels``: the ionic state takes ``levels`` discrete values; ``asymmetry``: P→AP and
    AP→P switching differ (critical voltage, barrier)."""

    d2d: bool = True
    c2c: bool = True
    read_noise: bool = True
    retention: bool = True
    finite_levels: bool = True
    asymmetry: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if not isinstance(getattr(self, f.name), bool):
                raise ValueError(f"nonideal.{f.name} must be true or false, got {getattr(self, f.name)!r}")

    @classmethod
    def ideal(cls) -> "NonIdeal":
        """Every non-ideality off."""
        return cls(**{n: False for n in NONIDEAL_NAMES})

    @classmethod
    def coerce(cls, value: Any, owner: str) -> "NonIdeal":
        """A :class:`NonIdeal` from itself, a dict of switches (missing ones stay on) or None."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            bad = sorted(set(value) - set(NONIDEAL_NAMES))
            if bad:
                raise ValueError(f"{owner}.nonideal: unknown non-ideality {bad[0]!r} "
                                 f"(known: {', '.join(NONIDEAL_NAMES)})")
            return cls(**value)
        raise ValueError(f"{owner}.nonideal must be a table of switches "
                         f"({', '.join(NONIDEAL_NAMES)}), got {value!r}")


# ---- closed forms --------------------------------------------------------------------------------
def delta_at(delta_300: torch.Tensor | float, temperature_k: float):
    """Δ(T) = Δ_300·300/T: a fixed energy barrier E_b = Δ_300·k_B·300 K in units of k_BT."""
    return delta_300 * (T_REF_K / temperature_k)


def arrhenius(ea_ev: float, temperature_k: float) -> float:
    """exp[−(E_a/k_B)(1/T − 1/T_ref)]: a thermally activated rate at T relative to T_ref."""
    return math.exp(-(ea_ev / K_B_EV) * (1.0 / temperature_k - 1.0 / T_REF_K))


def ion_rate(k_ref_hz: float, v_g: float, v_ref: float, v0: float, ea_ev: float, temperature_k: float) -> float:
    """k(V_g, T) = k_ref·exp[(V_g − V_ref)/V_0]·Arrhenius(T) [1/s]."""
    return k_ref_hz * math.exp((v_g - v_ref) / v0) * arrhenius(ea_ev, temperature_k)


def telegraph_change(a: torch.Tensor, b: torch.Tensor, start_p: torch.Tensor, t: float) -> torch.Tensor:
    """P[the two-state process is in the other state after t], rates a (P→AP), b (AP→P) [1/s],
    ``start_p`` True where it starts in P (float64)."""
    tot = a + b
    frac = torch.where(start_p, a, b) / torch.where(tot > 0, tot, torch.ones_like(tot))
    return torch.where(tot > 0, frac * -torch.expm1(-tot * t), torch.zeros_like(tot))


def parse_duration(text: str) -> float:
    """'1s', '10ms', '2h', '1d', '30d', '1y' (365.25 d), or a number of seconds → seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0,
             "w": 7 * 86400.0, "y": 365.25 * 86400.0}
    t = text.strip().lower()
    for u in sorted(units, key=len, reverse=True):
        if t.endswith(u):
            num = t[: -len(u)]
            break
    else:
        u, num = "s", t
    try:
        v = float(num) * units[u]
    except ValueError:
        raise ValueError(f"duration {text!r}: expected a number with a unit (ns, us, ms, s, min, h, d, w, y)") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"duration {text!r}: must be finite and >= 0")
    return v


# ---- presets -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    """A device preset: parameter values and, for each, where it comes from."""
    name: str
    family: str               # registry synapse name ("mtj", "magnetoionic")
    title: str
    values: dict[str, Any]
    sources: dict[str, str]   # parameter → "paper, figure/table: value read" or "assumption: why"
    references: tuple[str, ...]


_IKEDA = ("S. Ikeda et al., A perpendicular-anisotropy CoFeB–MgO magnetic tunnel junction, "
          "Nat. Mater. 9, 721 (2010)")
_HAYAKAWA = ("J. Hayakawa, S. Ikeda et al., Current-induced magnetization switching in MgO barrier magnetic "
             "tunnel junctions with CoFeB-based synthetic ferrimagnetic free layers, IEEE Trans. Magn. (2008)")
_ION_KINETICS = ("Kinetics of ion migration in the electric field-driven manipulation of magnetic anisotropy "
                 "of Pt/Co/oxide multilayers, arXiv:2108.11263 (2021)")
_BAUER = "U. Bauer et al., Magneto-ionic control of interfacial magnetism, Nat. Mater. 14, 174 (2015)"
_TAN = ("A. J. Tan et al., Magneto-ionic control of magnetism using a solid-state proton pump, "
        "Nat. Mater. 18, 35 (2019)")
_DEROJAS = ("J. de Rojas et al., Voltage-driven motion of nitrogen ions: a new paradigm for magneto-ionics, "
            "Nat. Commun. 11, 5871 (2020)")
_COTTART = ("kellian-cottart/magnetoionic-simulations (commit 8cf78c27), readme.md and "
            "optimizers/magnetoionicDouble.py")

PRESETS: dict[str, Preset] = {}


def _add(p: Preset) -> None:
    PRESETS[p.name] = p


_add(Preset(
    "generic-o", "mtj", "Generic CoFeB/MgO MTJ with an oxygen (O²⁻) magneto-ionic gate (library defaults)",
    {},
    {"delta_min": "assumption: 30 kT, τ₀e³⁰ ≈ 3 h, a deliberately volatile unconsolidated state",
     "delta_max": "assumption: 80 kT consolidated",
     "tmr": "assumption: 150 %, in the 100–200 % range of CoFeB/MgO junctions",
     "r_p_ohm": "assumption: 2 kΩ",
     "v_c": "assumption: 0.5 V",
     "ion": "O²⁻, the ion of " + _BAUER,
     "gate_rate_hz": "assumption: 300 /s at the gate voltage, the fast (ms) end of the 5-decade range of "
                     + _ION_KINETICS + " (abstract: minutes to a few ms)",
     "gate_v0": "assumption: 0.26 V, 5 decades of rate over 3 V of bias (the decades from the abstract of "
                + _ION_KINETICS + ", the 3 V span an assumption)",
     "gate_ea_ev": "assumption: 1.0 eV, typical of oxygen-vacancy hopping in oxides",
     "tau_relax_s": "assumption: 10⁴ s back-diffusion of the ions at zero gate voltage",
     "gate_cap_f": "assumption: 0.1 fF, ε_r ≈ 10 GdOx, 10 nm thick, 100 nm × 100 nm gate"},
    (_BAUER, _ION_KINETICS)))

_add(Preset(
    "ikeda2010-o", "mtj", "Perpendicular CoFeB–MgO MTJ, 40 nm (Ikeda 2010) with an oxygen gate",
    {"delta_min": 40.0, "delta_max": 80.0, "tmr": 1.2, "r_p_ohm": 8000.0, "v_c": 0.39, "v_max": 0.36,
     "v_min": 0.2, "t_pulse_ns": 10.0},
    {"delta_min": _IKEDA + ", abstract (quoted from memory; the paper could not be opened here): thermal stability factor ≈ 40 at 40 nm diameter (the ungated state)",
     "delta_max": "assumption: 80 kT when the gate has raised the interfacial anisotropy",
     "tmr": _IKEDA + ", abstract (from memory): TMR ratio over 120 %",
     "r_p_ohm": "assumption: RA = 10 Ω·µm² over a 40 nm disc (1.26·10⁻³ µm²) → 8 kΩ",
     "v_c": _IKEDA + ", abstract (from memory): I_c0 = 49 µA; V_c = I_c0·R_P = 0.39 V with the assumed R_P",
     "v_max": "assumption: 0.92·V_c as in the defaults", "v_min": "assumption",
     "t_pulse_ns": "assumption: 10 ns write pulses",
     "gate_rate_hz": "as generic-o (oxygen, " + _ION_KINETICS + ")"},
    (_IKEDA, _ION_KINETICS, _BAUER)))

_add(Preset(
    "hayakawa2008-h", "mtj", "CoFeB synthetic-ferrimagnet free layer (Hayakawa 2008) with a proton (H⁺) gate",
    {"delta_min": 60.0, "delta_max": 90.0, "tmr": 1.0, "r_p_ohm": 640.0, "v_c": 0.30, "v_max": 0.28,
     "v_min": 0.15, "ion": "H", "gate_v": 2.0, "gate_v_ref": 2.0, "gate_rate_hz": 1.0e4, "gate_ea_ev": 0.5, "tau_relax_s": 1.0e3},
    {"delta_min": _HAYAKAWA + ", abstract (arXiv version): E/k_BT over 60",
     "delta_max": "assumption: 90 kT gated",
     "tmr": "assumption: 100 %",
     "r_p_ohm": "assumption: RA = 10 Ω·µm² over a 100 nm × 200 nm ellipse (1.57·10⁻² µm²)",
     "v_c": _HAYAKAWA + ", abstract (arXiv version): J_c0 = 2–4·10⁶ A/cm²; 3·10⁶ A/cm² × 1.57·10⁻¹⁰ cm² × R_P = 0.30 V",
     "v_max": "assumption: 0.93·V_c", "v_min": "assumption",
     "ion": "H⁺ as in " + _TAN,
     "gate_v": "assumption: 2 V, proton pumps gate at a few volts (" + _TAN + ")",
     "gate_v_ref": "the rate below is given at the gate voltage",
     "gate_rate_hz": "assumption: 10⁴ /s, protons are light and fast compared with oxygen (" + _TAN + ")",
     "gate_ea_ev": "assumption: 0.5 eV, proton hopping",
     "tau_relax_s": "assumption: 10³ s, hydrogen leaves the Co layer faster than oxygen"},
    (_HAYAKAWA, _TAN)))

_add(Preset(
    "generic-n", "mtj", "Generic MTJ with a nitrogen (N³⁻) magneto-ionic gate (de Rojas 2020)",
    {"ion": "N", "gate_v": 4.0, "gate_v_ref": 4.0, "gate_rate_hz": 100.0, "gate_v0": 0.5, "gate_ea_ev": 0.8,
     "tau_relax_s": 1.0e5, "levels": 16},
    {"ion": "N³⁻ as in " + _DEROJAS,
     "gate_v": "assumption: 4 V, the low end of the gating voltages of " + _DEROJAS,
     "gate_v_ref": "the rate below is given at the gate voltage",
     "gate_rate_hz": "assumption: 100 /s", "gate_v0": "assumption", "gate_ea_ev": "assumption",
     "tau_relax_s": "assumption: 10⁵ s, nitrogen is less mobile at zero bias",
     "levels": "assumption: 16 distinguishable ionic states"},
    (_DEROJAS,)))

_add(Preset(
    "cottart-linear", "magnetoionic", "C2N magneto-ionic Hall device, linear response (Cottart et al. code)",
    {"response": "linear"},
    {"response": _COTTART + ": f(x) = −0.021·x + 2.742 V over 27 pulses",
     "device_variability": _COTTART + ": σ = 0.2", "read_noise": _COTTART + ": 0.015 V"},
    (_COTTART,)))

_add(Preset(
    "cottart-exponential", "magnetoionic", "C2N magneto-ionic Hall device, exponential response",
    {"response": "exponential"},
    {"response": _COTTART + ": f(x) = 1.530·exp(−x/9.741) + 0.750 V over 27 pulses",
     "device_variability": _COTTART + ": σ = 0.2", "read_noise": _COTTART + ": 0.015 V"},
    (_COTTART,)))


def presets_for(family: str) -> dict[str, Preset]:
    """The presets of one registry synapse name."""
    return {k: p for k, p in PRESETS.items() if p.family == family}


def resolve_preset(family: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``preset = NAME`` expanded: the preset's values, then the explicit keys."""
    name = params.get("preset")
    if name in (None, ""):
        return dict(params)
    known = presets_for(family)
    if name not in known:
        raise ValueError(f"unknown {family} preset {name!r} (known: {', '.join(known) or 'none'})")
    return {**known[name].values, **params}


__all__ = ["K_B_EV", "NONIDEAL_NAMES", "NonIdeal", "PRESETS", "Preset", "T_REF_K", "arrhenius", "delta_at",
           "ion_rate", "parse_duration", "presets_for", "resolve_preset", "telegraph_change"]
