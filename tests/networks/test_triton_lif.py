"""The Triton LIF scan (networks/triton_lif.py), checked without a GPU in two ways:

* run under Triton's interpreter on the CPU, where it must equal the torch recursion that CUDA used
  before it (spikes, membrane and ∂L/∂I to the bit; β/θ gradients, summed in another order, to
  tolerance) and snnTorch's own ``Leaky`` stepping;
* compiled ahead of time for an sm_90 GPU (Triton needs no device for that), where the PTX must hold
  no fused multiply-add and only correctly rounded divisions — what makes the GPU results equal the
  eager torch ops they replace (``tests/test_cuda.py`` checks that on a device).
"""
from __future__ import annotations

import itertools
import re

import pytest
import snntorch as snn
import torch

from metaspin_snn.networks import leaky_scan, leaky_steps, make_leaky
from metaspin_snn import gpu
from metaspin_snn.networks import triton_lif
from metaspin_snn.networks.lif import scan_backend

pytestmark = pytest.mark.skipif(not gpu.available(), reason="Triton is not installed")

SURROGATES = {"atan": lambda: snn.surrogate.atan(alpha=3.0),
              "fast_sigmoid": lambda: snn.surrogate.fast_sigmoid(slope=10),
              "sigmoid": lambda: snn.surrogate.sigmoid(slope=5)}  # sigmoid: σ' by autograd, then the kernel


def _run(fn, cur, lif, w1, w2, mem0=None, use=("s", "m"), **kw):
    cur.grad = None
    for p in lif.parameters():
        p.grad = None
    s, m = fn(cur, lif, mem0, **kw)
    loss = 0
    if "s" in use:
        loss = loss + (s * w1).sum()
    if "m" in use:
        loss = loss + (m * w2).sum()
    loss.backward()
    return s.detach(), m.detach(), cur.grad.clone(), [p.grad.clone() for p in lif.parameters()]


@pytest.mark.parametrize("case", ["per-neuron", *SURROGATES])
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
def test_triton_scan_equals_torch_recursion(interpret, case, reset):
    torch.manual_seed(7)
    if case == "per-neuron":
        beta, thr, surr = torch.rand(300) * 0.6 + 0.3, torch.rand(300) + 0.5, None
    else:
        beta, thr, surr = 0.8, 0.9, SURROGATES[case]()
    lif = make_leaky(beta, thr, reset, surr, learn_beta=True, learn_threshold=True)
    # 3·300 = 900 neurons per step: four programs of BLOCK = 256, the last one masked
    cur = (torch.randn(30, 3, 300) * 0.7 + 0.3).requires_grad_(True)
    w1, w2 = torch.randn(30, 3, 300), torch.randn(30, 3, 300)
    assert scan_backend(cur, lif.beta, lif.threshold, "triton") == "triton"
    tri = _run(leaky_scan, cur, lif, w1, w2, backend="triton")
    ref = _run(leaky_scan, cur, lif, w1, w2, backend="torch")
    snt = _run(leaky_steps, cur, lif, w1, w2)
    assert 0.02 < float(tri[0].mean()) < 0.9
    for a, b in zip(tri[:3], ref[:3]):  # spikes, membrane, ∂L/∂I
        assert torch.equal(a, b)
    assert torch.equal(tri[0], snt[0]) and torch.equal(tri[1], snt[1])
    torch.testing.assert_close(tri[2], snt[2], rtol=1e-5, atol=1e-5)
    for a, b, c in zip(tri[3], ref[3], snt[3]):  # ∂L/∂β, ∂L/∂θ
        assert a.shape == b.shape and a.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("use", [("s",), ("m",)])
def test_triton_scan_float64_from_a_state_one_output_used(interpret, use):
    """float64, a given initial membrane (r[0] = H(m[−1] − θ) included), one output's gradient absent
    (the kernel's HAS_GS / HAS_GM cases) and β/θ not learned (NEED_B / NEED_T off)."""
    torch.manual_seed(8)
    for reset, learn in itertools.product(("zero", "subtract"), (False, True)):
        lif = make_leaky(0.7, 0.6, reset, snn.surrogate.atan(alpha=2.0), learn_beta=learn,
                         learn_threshold=learn).double()
        cur = (torch.randn(20, 4, 50, dtype=torch.float64) * 0.5 + 0.25).requires_grad_(True)
        mem0 = torch.rand(4, 50, dtype=torch.float64) * 1.2  # some start above threshold
        w1, w2 = torch.randn_like(cur), torch.randn_like(cur)
        tri = _run(leaky_scan, cur, lif, w1, w2, mem0, use=use, backend="triton")
        ref = _run(leaky_scan, cur, lif, w1, w2, mem0, use=use, backend="torch")
        assert tri[1].dtype == torch.float64
        assert torch.equal(tri[0], ref[0]) and torch.equal(tri[1], ref[1])
        if use == ("m",):
            assert torch.equal(tri[2], ref[2])
        else:  # snnTorch's surrogate returns float32 spikes, so autograd rounds ∂L/∂s to float32 there
            torch.testing.assert_close(tri[2], ref[2], rtol=1e-6, atol=1e-7)
        assert len(tri[3]) == len(ref[3]) == (2 if learn else 0)
        for a, b in zip(tri[3], ref[3]):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_triton_backward_by_hand(interpret):
    """δ[t] = (∂L/∂m[t] + ∂L/∂s[t]·σ'(m[t] − θ)) + β(1 − s[t])·δ[t+1] (zero reset), σ' of ATan written
    out here: (α/2)/(1 + (π/2·α·u)²); ∂L/∂β = Σ δ[t]·(1 − r[t])·m[t−1]; ∂L/∂θ = −Σ ∂L/∂s·σ'."""
    import math
    torch.manual_seed(9)
    T, n, b, th, al = 6, 4, 0.75, 0.5, 2.0
    lif = make_leaky(b, th, "zero", snn.surrogate.atan(alpha=al), learn_beta=True, learn_threshold=True)
    cur = (torch.rand(T, 1, n, dtype=torch.float64) * 0.8).requires_grad_(True)
    lif = lif.double()
    gs, gm = torch.randn(T, 1, n, dtype=torch.float64), torch.randn(T, 1, n, dtype=torch.float64)
    s, m = leaky_scan(cur, lif, backend="triton")
    ((s * gs).sum() + (m * gm).sum()).backward()
    mm, ss = m.detach()[:, 0], s.detach()[:, 0]
    d = torch.zeros(T, n, dtype=torch.float64)
    gbeta, gthr = 0.0, 0.0
    for t in range(T - 1, -1, -1):
        u = mm[t] - th
        sg = gs[t, 0] * (al / 2) / (1 + (math.pi / 2 * al * u) ** 2)
        d[t] = gm[t, 0] + sg + (b * (1 - ss[t]) * d[t + 1] if t < T - 1 else 0)
        prev = mm[t - 1] if t > 0 else torch.zeros(n, dtype=torch.float64)
        r = ss[t - 1] if t > 0 else torch.zeros(n, dtype=torch.float64)
        gbeta += float((d[t] * (1 - r) * prev).sum())
        gthr -= float(sg.sum())
    torch.testing.assert_close(cur.grad[:, 0], d, rtol=1e-12, atol=1e-12)
    assert 0 < float(ss.mean()) < 1
    torch.testing.assert_close(lif.beta.grad, torch.tensor(gbeta, dtype=torch.float64), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(lif.threshold.grad, torch.tensor(gthr, dtype=torch.float64), rtol=1e-10, atol=1e-12)


def test_scan_backend_choice(monkeypatch):
    lif = make_leaky(0.8, 1.0, "zero")
    x = torch.zeros(3, 2, 4)
    assert scan_backend(x, lif.beta, lif.threshold) == "numba"
    assert scan_backend(x, torch.rand(4), lif.threshold) == "torch"  # per-neuron β on the CPU
    assert scan_backend(x.half(), lif.beta, lif.threshold) == "torch"
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="backend 'triton' cannot run"):
        leaky_scan(x, lif, backend="triton")
    with pytest.raises(ValueError, match="backend 'numba' needs"):
        scan_backend(x, torch.rand(4), lif.threshold, "numba")
    with pytest.raises(ValueError, match="backend must be one of"):
        leaky_scan(x, lif, backend="cuda")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert scan_backend(x, lif.beta, lif.threshold) == "numba"  # auto takes Triton for CUDA tensors only
    assert scan_backend(x, lif.beta, lif.threshold, "triton") == "triton"


def _ptx(kernel, sig: dict, constexprs: dict, dtype: str) -> str:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    sig = {k: (f"*{dtype}" if v == "*" else v) for k, v in sig.items()}
    sig.update({k: "constexpr" for k in constexprs})
    k = triton.compile(ASTSource(kernel, sig, constexprs=constexprs), target=GPUTarget("cuda", 90, 32),
                       options=dict(gpu.LAUNCH_OPTIONS, num_warps=triton_lif.NUM_WARPS))
    return k.asm["ptx"]


@pytest.mark.parametrize("dtype", ["fp32", "fp64"])
def test_kernels_compile_for_sm90_without_fma_or_approximate_division(dtype):
    """Every kernel variant the scan can launch compiles for sm_90 (no GPU needed) with the options
    :func:`metaspin_snn.gpu.launch` passes; no ``fma`` (the eager ops round after each multiply) and every
    division and reciprocal correctly rounded (``div.rn``), never ``div.full``/``div.approx``/``rcp.approx``."""
    triton_lif._kernels.cache_clear()
    k = triton_lif._kernels()
    fwd, bwd = k["_fwd"], k["_bwd"]
    fsig = {"cur": "*", "m0": "*", "s0": "*", "beta": "*", "thr": "*", "mem": "*", "spk": "*", "T": "i32", "N": "i32"}
    bsig = {k: "*" for k in ("mem", "spk", "m0", "s0", "gs", "gm", "beta", "thr", "consts", "delta", "gbv", "gtv")}
    bsig.update({"T": "i32", "N": "i32"})
    ptxs = [_ptx(fwd, fsig, {"MODE": mode, "BLOCK": triton_lif.BLOCK}, dtype) for mode in (0, 1, 2)]
    for mode, surr in itertools.product((0, 1, 2), (triton_lif.SURR_AUTOGRAD, triton_lif.SURR_ATAN,
                                                    triton_lif.SURR_FAST_SIGMOID)):
        ptx = _ptx(bwd, bsig, {"MODE": mode, "SURR": surr, "HAS_GS": True, "HAS_GM": True, "NEED_B": True,
                               "NEED_T": True, "BLOCK": triton_lif.BLOCK}, dtype)
        divs = set(re.findall(r"\b(?:div|rcp)\.[a-z0-9.]+", ptx))
        if surr == triton_lif.SURR_AUTOGRAD:
            assert not divs
        else:
            assert divs == {f"div.rn.{dtype.replace('fp', 'f')}"}, divs
        ptxs.append(ptx)
    for ptx in ptxs:
        assert ".target sm_90" in ptx
        assert not re.search(r"\bfma\.", ptx)
        assert re.search(r"\bmul\.rn\.", ptx)  # the multiplies are there, each rounded on its own
