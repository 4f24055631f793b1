"""Fused Numba synapse updates vs torch eager, torch.compile and the memory floor, on CPU.

For each model (``--models``) at ``--n`` synapses (default 10⁷), at one thread and at all threads, times
one optimisation step of

* ``fused``  — the model's fused ``@njit`` kernel (serial at 1 thread, ``prange`` at all threads),
* ``eager``  — the torch reference of the same step (the model's ``*_step_torch``),
* ``compile``— ``torch.compile`` of that reference (recompiled per thread count; if it fails here the
  reason is printed and the column shows ``n/a``),
* ``floor``  — a trivial Numba kernel with the same memory traffic (reads every array the fused kernel
  reads, writes every array it writes, no arithmetic beyond one add): the memory floor,

each on its own copy of the state, interleaved, best of ``--repeat`` after a warm-up, and prints ms and the ratios
fused/floor (target ≤ 1.2) and compile/fused (target ≥ 2) measured in this run.

Cases are built by functions ``case_<model>(n) -> Case`` listed in ``CASES``; to add a model, write
one more such function (state tensors, fused kernel pair, torch reference, floor kernel pair) and add
it to ``CASES``.

    python bench/synapses.py [--n 10000000] [--models metaplastic,mesu,bayesbinn] [--repeat 7]
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np
import torch
from numba import njit, prange

from metaspin_snn.synapses.bayesbinn import (bayesbinn_kernel, bayesbinn_kernel_parallel, bayesbinn_step_torch,
                                           code_variance)
from metaspin_snn.synapses.mesu import mesu_kernel, mesu_kernel_parallel, mesu_step_torch
from metaspin_snn.synapses.triton_updates import mesu_step as mesu_step_triton
from metaspin_snn.synapses.triton_updates import bayesbinn_step as bayesbinn_step_triton
from metaspin_snn.synapses.triton_updates import metaplastic_step as metaplastic_step_triton
from metaspin_snn.synapses.magnetoionic import (MagnetoIonicParams, mi_kernel, mi_kernel_parallel,
                                                mi_step_torch)
from metaspin_snn.synapses.mtj import MetaplasticMTJ, MTJParams, mtj_kernel, mtj_kernel_parallel, mtj_step_torch
from metaspin_snn.synapses.metaplastic import (metaplastic_kernel, metaplastic_kernel_parallel,
                                               metaplastic_step_torch)

F = np.float32


@dataclass
class Case:
    """One benchmark case. ``make_state()`` returns fresh float32 CPU tensors (state and inputs, in
    the positional order the functions take). ``fused(parallel)`` / ``floor(parallel)`` return a
    callable on the numpy views of those tensors; ``reference`` takes the tensors themselves, and so
    does ``triton`` (the model's fused GPU kernel, where it has one; bench/synapses_gpu.py)."""

    name: str
    make_state: Callable[[], list[torch.Tensor]]
    fused: Callable[[bool], Callable[..., None]]
    reference: Callable[..., None]
    floor: Callable[[bool], Callable[..., None]]
    triton: Callable[..., None] | None = None


def _pair(py):
    """Serial and prange-parallel compilations of one floor kernel (not cached: bench only)."""
    return (njit(error_model="numpy")(py), njit(parallel=True, error_model="numpy")(py))


def _floor_3rw_1r(a, b, c, d):       # MetaplasticBinary: W_h, m, v read+written; g read
    for i in prange(a.size):
        x, y, z, t = a[i], b[i], c[i], d[i]
        a[i] = y
        b[i] = z
        c[i] = x + t


def _floor_2rw_2r(a, b, c, d):        # MESU from one sample: μ, σ read+written; g, ε read
    for i in prange(a.size):
        x, y = a[i], b[i]
        a[i] = y + c[i]
        b[i] = x + d[i]


def _floor_2rw_3r(a, b, c, d, e):     # BayesBiNN: λ, m read+written; λ_prior, w, g read
    for i in prange(a.size):
        x, y = a[i], b[i]
        a[i] = y + c[i] + e[i]
        b[i] = x + d[i]


FLOOR_3RW_1R = _pair(_floor_3rw_1r)
FLOOR_2RW_2R = _pair(_floor_2rw_2r)
FLOOR_2RW_3R = _pair(_floor_2rw_3r)


def _randn(n: int, gen: torch.Generator, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, generator=gen) * scale + shift


def case_metaplastic(n: int) -> Case:
    """MetaplasticBinary (Adam_meta) at step t = 10, m = 1.3."""
    lr, b1, b2, eps, meta, wd, clip, t = 0.005, 0.9, 0.999, 1e-8, 1.3, 0.0, 1e15, 10
    step_size, bc2 = lr / (1 - b1 ** t), (1 - b2 ** t) ** 0.5

    def make_state():
        gen = torch.Generator().manual_seed(0)
        return [_randn(n, gen, 0.1), _randn(n, gen, 0.01), _randn(n, gen).abs() * 1e-3, _randn(n, gen)]

    def fused(parallel):
        k = metaplastic_kernel_parallel if parallel else metaplastic_kernel
        sc = (F(step_size), F(1 - b1), F(b2), F(1 - b2), F(bc2), F(eps), F(meta), F(wd), F(clip))
        return lambda w, m, v, g: k(w, m, v, g, *sc)

    def reference(w, m, v, g):
        metaplastic_step_torch(w, m, v, g, step_size, b1, b2, bc2, eps, meta, wd, clip)

    def triton(w, m, v, g):
        metaplastic_step_triton(w, m, v, g, step_size, b1, b2, bc2, eps, meta, wd, clip)

    return Case("MetaplasticBinary", make_state, fused, reference, lambda p: FLOOR_3RW_1R[p], triton)


def _mesu_case(n: int, name: str, scalar_prior_ref: bool) -> Case:
    """MESU, one step from one sample's ∂C/∂w and its ε, with the default (uniform) prior, as the
    model runs it: the kernel forms g·ε itself and reads the prior as one value. Reference: the
    model's torch path (g·ε, then the step on per-synapse prior buffers) — or, ``scalar_prior_ref``,
    the same path given the prior as scalars too."""
    lr_mu, lr_s, big_n, smin, smax, mmax = 1.0, 1.0, 1e5, 1e-6, 10.0, 1e6

    def make_state():
        gen = torch.Generator().manual_seed(1)
        return [_randn(n, gen, 0.05), torch.full((n,), 0.1), _randn(n, gen, 0.01), _randn(n, gen),
                torch.zeros(n), torch.full((n,), 0.1)]

    def fused(parallel):
        k = mesu_kernel_parallel if parallel else mesu_kernel
        sc = (F(lr_mu), F(lr_s), F(big_n), F(smin), F(smax), F(mmax))
        return lambda mu, s, g, e, mp, sp: k(mu, s, g, e, mp[:1], sp[:1], True, False, *sc)

    def reference(mu, s, g, e, mp, sp):
        if scalar_prior_ref:
            mp, sp = mp[:1], sp[:1]
        mesu_step_torch(mu, s, g, g * e, mp, sp, lr_mu, lr_s, big_n, smin, smax, mmax)

    def triton(mu, s, g, e, mp, sp):  # as the model runs it on CUDA: g·ε in the kernel, the prior as one value
        mesu_step_triton(mu, s, g, e, mp, sp, True, True, False, lr_mu, lr_s, big_n, smin, smax, mmax)

    return Case(name, make_state, fused, reference,
                lambda p: (lambda mu, s, g, e, mp, sp: FLOOR_2RW_2R[p](mu, s, g, e)), triton)


def case_mesu(n: int) -> Case:
    return _mesu_case(n, "MESU", False)


def case_mesu_scalar_ref(n: int) -> Case:
    return _mesu_case(n, "MESU (ref: scalar prior)", True)


def case_bayesbinn(n: int) -> Case:
    """BayesianBinary (BayesBiNN) on a relaxed sample, momentum β = 0.9, step t = 10, the authors'
    lagged μ (``lam_mu``) and the code's 1 − μ² (``v``, precomputed once per step as the model does)."""
    lr, beta, tau, n_data, rw, dmax, lmax, t = 1e-3, 0.9, 1e-2, 6e4, 1.0, 1e30, 1e30, 10
    bc = 1 - beta ** t

    def make_state():
        gen = torch.Generator().manual_seed(2)
        lam = _randn(n, gen, 2.0)
        w = torch.tanh(lam + 0.5 * _randn(n, gen))
        return [lam, torch.zeros(n), torch.zeros(n), lam.clone(), code_variance(lam), w, _randn(n, gen, 1e-6)]

    def fused(parallel):
        k = bayesbinn_kernel_parallel if parallel else bayesbinn_kernel
        sc = (True, True, F(tau), F(n_data), F(rw), F(beta), F(1 - beta), F(lr), F(bc), F(dmax), F(lmax))
        return lambda lam, m, l0, lmu, v, w, g: k(lam, m, l0, lmu, v, w, g, *sc)

    def reference(lam, m, l0, lmu, v, w, g):
        bayesbinn_step_torch(lam, m, l0, lmu, v, w, g, True, True, tau, n_data, rw, beta, lr, bc, dmax, lmax)

    def triton(lam, m, l0, lmu, v, w, g):
        bayesbinn_step_triton(lam, m, l0, lmu, v, w, g, True, True, tau, n_data, rw, beta, lr, bc, dmax, lmax)

    # floor: the 2-rw-3-read pass of the pre-reproduction kernel (lam_mu and v add traffic beyond it)
    return Case("BayesianBinary", make_state, fused, reference,
                lambda p: (lambda lam, m, l0, lmu, v, w, g: FLOOR_2RW_3R[p](lam, m, l0, w, g)), triton)


def _floor_mi(g, x1, x2, nu1, nu2, n_pulse):  # MagnetoIonicPair: x₁, x₂, pulse count rw; g, ν₁, ν₂ read
    for i in prange(g.size):
        a, b = x1[i], x2[i]
        x1[i] = b + g[i]
        x2[i] = a + nu1[i] + nu2[i]
        n_pulse[i] += 1


def _floor_mtj(g, gum, s, x, dfac, vc, n_pulse, n_switch, n_consol, energy):  # MetaplasticMTJ: 6 rw, 4 r
    for i in prange(g.size):
        a, b = x[i], energy[i]
        x[i] = b + g[i] + gum[i]
        energy[i] = a + dfac[i] + vc[i]
        s[i] = -s[i]
        n_pulse[i] += 1
        n_switch[i] += 1
        n_consol[i] += 1


FLOOR_MI = _pair(_floor_mi)
FLOOR_MTJ = _pair(_floor_mtj)


def case_magnetoionic(n: int) -> Case:
    """MagnetoIonicPair, linear response, lr = 1 pulse per unit |g|, |g| ~ 0.05: most steps pulse one
    device by ~0.05 pulse; refreshes are rare (the fix-up pass runs only in blocks that saturate)."""
    p = MagnetoIonicParams(lr=1.0)
    sc = (float(p.lr), float(p.min_dx), float(p.x_max), p.kind(), *p.coeffs())

    def make_state():
        gen = torch.Generator().manual_seed(3)
        return [_randn(n, gen, 0.05), torch.rand(n, generator=gen) * 20.0, torch.rand(n, generator=gen) * 20.0,
                _randn(n, gen, 0.2, 1.0).abs(), _randn(n, gen, 0.2, 1.0).abs(),
                torch.zeros(n, dtype=torch.int32), torch.zeros(n, dtype=torch.int32)]

    def fused(parallel):
        k = mi_kernel_parallel if parallel else mi_kernel
        return lambda g, x1, x2, nu1, nu2, npu, nre: k(g, x1, x2, nu1, nu2, npu, nre, *sc)

    def reference(g, x1, x2, nu1, nu2, npu, nre):
        mi_step_torch(g, x1, x2, nu1, nu2, npu, nre, *sc)

    def floor(parallel):
        k = FLOOR_MI[parallel]
        return lambda g, x1, x2, nu1, nu2, npu, nre: k(g, x1, x2, nu1, nu2, npu)

    return Case("MagnetoIonicPair", make_state, fused, reference, floor)


def case_mtj(n: int) -> Case:
    """MetaplasticMTJ with default parameters, |g| ~ 0.05, x ~ U(0, 1), random states. The per-step
    draws (Gumbel noise, gate fractions, cycle-to-cycle factors, level draws) are inputs drawn by the
    model before the kernel, like MESU's ε; the step's scalars are those of a default model's step."""
    model = MetaplasticMTJ((1,), MTJParams())
    _, sc, lnk, _ = model.step_inputs(torch.full((1,), 0.05))
    i32 = torch.int32

    def make_state():
        gen = torch.Generator().manual_seed(4)
        u = torch.rand(n, generator=gen, dtype=torch.float64)
        s = torch.where(torch.rand(n, generator=gen) < 0.5, 1, -1).to(torch.int8)
        return [_randn(n, gen, 0.05), (-torch.log(-torch.log(u))).float(), torch.rand(n, generator=gen) * 0.1,
                torch.ones(n), torch.zeros(n), s, torch.rand(n, generator=gen), _randn(n, gen, 0.05, 1.0),
                _randn(n, gen, 0.01, 0.5), torch.zeros(n, dtype=i32), torch.zeros(n, dtype=i32),
                torch.zeros(n, dtype=i32), torch.zeros(n)]

    def fused(parallel):
        k = mtj_kernel_parallel if parallel else mtj_kernel
        return lambda *a: k(*a, sc, lnk)

    def reference(*a):
        mtj_step_torch(*a, sc, lnk)

    def floor(parallel):
        k = FLOOR_MTJ[parallel]
        return lambda g, gum, cg, vcj, u, s, x, dfac, vc, npu, nsw, ngate, energy: k(
            g, gum, s, x, dfac, vc, npu, nsw, ngate, energy)

    return Case("MetaplasticMTJ", make_state, fused, reference, floor)


CASES: dict[str, Callable[[int], Case]] = {
    "metaplastic": case_metaplastic,
    "mesu": case_mesu,
    "mesu-scalar-ref": case_mesu_scalar_ref,
    "bayesbinn": case_bayesbinn,
    "magnetoionic": case_magnetoionic,
    "mtj": case_mtj,
}


def run_case(case: Case, threads: int, repeat: int) -> dict[str, float | str]:
    """Times the four variants on their own state copies, interleaved round by round (so load bursts
    on a shared machine hit all of them alike); returns the best time of each in ms."""
    numba.set_num_threads(threads)
    torch.set_num_threads(threads)
    parallel = threads > 1
    fns: dict[str, Callable[[], None]] = {}
    st_f = case.make_state()
    v_f = [t.numpy() for t in st_f]
    fused = case.fused(parallel)
    fns["fused"] = lambda: fused(*v_f)
    st_fl = case.make_state()
    v_fl = [t.numpy() for t in st_fl]
    floor = case.floor(parallel)
    fns["floor"] = lambda: floor(*v_fl)
    st_e = case.make_state()
    fns["eager"] = lambda: case.reference(*st_e)
    out: dict[str, float | str] = {}
    try:
        torch._dynamo.reset()  # inductor bakes the thread count in at compile time
        comp = torch.compile(case.reference, dynamic=False)
        st_c = case.make_state()
        with torch.no_grad():
            comp(*st_c)  # compile now, so a failure is reported here
        fns["compile"] = lambda: comp(*st_c)
    except Exception as exc:  # noqa: BLE001 — report and continue, as the brief asks
        print(f"  torch.compile failed for {case.name} at {threads} thread(s): {type(exc).__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''}")
        out["compile"] = "n/a"
    best = {k: float("inf") for k in fns}
    with torch.no_grad():
        for fn in fns.values():
            fn()  # warm-up: compilation, first-touch page faults
        for _ in range(repeat):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t0)
    out.update({k: 1e3 * v for k, v in best.items()})
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000, help="synapses per model")
    ap.add_argument("--models", default=",".join(CASES), help=f"comma list from {','.join(CASES)}")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", default="", help="comma list of thread counts (default: 1 and all)")
    args = ap.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in CASES]
    if unknown:
        raise SystemExit(f"bench/synapses.py: unknown model(s) {unknown}; choose from {list(CASES)}")
    if args.n <= 0:
        raise SystemExit("bench/synapses.py: --n must be positive")
    all_threads = numba.config.NUMBA_NUM_THREADS
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, all_threads})

    print(f"N = {args.n:,} synapses, float32, best of {args.repeat}; torch {torch.__version__}, "
          f"numba {numba.__version__}, cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} "
          "(timings on a loaded machine are upper bounds; ratios are measured in the same rounds)")
    hdr = (f"{'model':<18}{'thr':>4}{'fused ms':>10}{'floor ms':>10}{'eager ms':>10}{'compile ms':>11}"
           f"{'fused/floor':>12}{'eager/fused':>12}{'compile/fused':>14}")
    rows = []
    for name in names:
        case = CASES[name](args.n)
        for th in threads:
            r = run_case(case, th, args.repeat)
            comp = r["compile"]
            comp_s = f"{comp:>11.2f}" if isinstance(comp, float) else f"{comp:>11}"
            ratio_c = f"{comp / r['fused']:>14.2f}" if isinstance(comp, float) else f"{'n/a':>14}"
            rows.append(f"{case.name:<18}{th:>4}{r['fused']:>10.2f}{r['floor']:>10.2f}{r['eager']:>10.2f}{comp_s}"
                        f"{r['fused'] / r['floor']:>12.2f}{r['eager'] / r['fused']:>12.1f}{ratio_c}")
            print(rows[-1] if len(rows) > 1 else hdr + "\n" + rows[-1], flush=True)
    print("\n" + hdr)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
