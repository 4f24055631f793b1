"""The fast path (hoisted products + fused LIF scan) equals the plain snnTorch per-step loop."""
from __future__ import annotations

import json

import numpy as np
import pytest
import snntorch as snn
import torch
import torch.nn.functional as F

from metaspin_snn.networks import SpikingConvNet, SpikingMLP, leaky_scan, leaky_steps, make_leaky


def _run(model, x, y, fast):
    model.fast = fast
    model.zero_grad()
    out = model(x)
    loss = F.cross_entropy(out.logits, y) + 0.01 * sum(s.sum() for s in out.spikes) / x.shape[1]
    loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_same(model, x, y, exact_mem=True):
    o1, g1 = _run(model, x, y, True)
    o2, g2 = _run(model, x, y, False)
    assert torch.equal(o1.out_spikes, o2.out_spikes)
    for a, b in zip(o1.spikes, o2.spikes):
        assert torch.equal(a, b)
    assert 0 < float(o1.spikes[0].detach().sum()) < o1.spikes[0].numel() * x.shape[0]  # non-trivial activity
    if exact_mem:
        assert torch.equal(o1.logits, o2.logits)
    if model.record:  # the recorded membrane traces [T, B, n] of every stage, fast path vs snn.Leaky steps
        assert o1.membrane is not None and o2.membrane is not None and len(o1.membrane) == len(o2.membrane) > 0
        for a, b in zip(o1.membrane, o2.membrane):
            assert a.shape == b.shape == (x.shape[0], x.shape[1], a.shape[-1])
            torch.testing.assert_close(a, b, rtol=0, atol=0) if exact_mem else \
                torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
            assert a.abs().max() > 0
    assert g1.keys() == g2.keys() and len(g1) > 0
    for k in g1:
        scale = g2[k].abs().max().clamp_min(1e-12)
        assert (g1[k] - g2[k]).abs().max() / scale < 1e-4, k
        assert g2[k].abs().max() > 0, k


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("output", ["count", "membrane"])
def test_mlp_dense_fast_equals_snntorch_bitwise(reset, output):
    torch.manual_seed(0)
    model = SpikingMLP([120, 80, 10], reset=reset, beta=0.85, threshold=0.6, output=output, sparse=False)
    x = (torch.rand(25, 32, 120) < 0.15).float()
    y = torch.randint(0, 10, (32,))
    model.record = True
    _assert_same(model, x, y)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_mlp_event_driven_fast_equals_snntorch_float64(reset):
    """The event-driven product sums in another order: spikes equal in float64, grads to tolerance."""
    torch.manual_seed(1)
    model = SpikingMLP([200, 160, 10], reset=reset, beta=0.9, threshold=0.5, sparse=True).double()
    x = (torch.rand(20, 16, 200) < 0.1).double()
    y = torch.randint(0, 10, (16,))
    model.record = True
    _assert_same(model, x, y, exact_mem=False)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_mlp_learnable_beta_threshold_and_norm(reset):
    torch.manual_seed(2)
    model = SpikingMLP([60, 40, 5], reset=reset, learn_beta=True, learn_threshold=True, norm="layer",
                       sparse=False)
    x = (torch.rand(12, 8, 60) < 0.3).float()
    y = torch.randint(0, 5, (8,))
    _assert_same(model, x, y)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_convnet_fast_equals_snntorch(reset):
    torch.manual_seed(3)
    model = SpikingConvNet((2, 12, 12), 4, channels=(4,), kernel_size=3, reset=reset, threshold=0.5)
    x = (torch.rand(10, 6, 2, 12, 12) < 0.2).float()
    y = torch.randint(0, 4, (6,))
    _assert_same(model, x, y)


@pytest.mark.parametrize("case", ["per-neuron", "atan", "fast_sigmoid", "sigmoid"])
def test_leaky_scan_matches_snn_leaky(case):
    """Per-neuron β/θ: torch recursion; scalar β/θ: Numba kernels (atan / fast_sigmoid backward in the
    kernel, any other surrogate through autograd)."""
    torch.manual_seed(4)
    for reset in ("zero", "subtract", "none"):
        if case == "per-neuron":
            beta, thr, surr = torch.rand(30) * 0.6 + 0.3, torch.rand(30) + 0.5, None
        else:
            beta, thr = 0.8, 0.9
            surr = {"atan": snn.surrogate.atan(alpha=3.0), "fast_sigmoid": snn.surrogate.fast_sigmoid(slope=10),
                    "sigmoid": snn.surrogate.sigmoid(slope=5)}[case]
        lif = make_leaky(beta, thr, reset, surr, learn_beta=True, learn_threshold=True)
        cur = (torch.randn(40, 5, 30) * 0.7 + 0.3).requires_grad_(True)
        w1, w2 = torch.randn(40, 5, 30), torch.randn(40, 5, 30)
        grads = []
        for fn in (leaky_scan, leaky_steps):
            cur.grad = None
            for p in lif.parameters():
                p.grad = None
            s, m = fn(cur, lif)
            ((s * w1).sum() + (m * w2).sum()).backward()
            grads.append((s.detach(), m.detach(), cur.grad.clone(), [p.grad.clone() for p in lif.parameters()]))
        (s1, m1, gc1, gp1), (s2, m2, gc2, gp2) = grads
        assert torch.equal(s1, s2) and torch.equal(m1, m2)
        assert 0 < s1.mean() < 1
        torch.testing.assert_close(gc1, gc2, rtol=1e-5, atol=1e-5)
        for a, b in zip(gp1, gp2):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_leaky_scan_equations_by_hand():
    """Check the recursion against the written equations (snnTorch Leaky, reset_delay=True)."""
    cur = torch.tensor([[0.6], [0.6], [0.6], [0.0], [1.5]])
    beta, thr = 0.5, 1.0
    for reset in ("zero", "subtract"):
        lif = make_leaky(beta, thr, reset)
        s, m = leaky_scan(cur.reshape(5, 1, 1), lif)
        mm, r, exp_m, exp_s = 0.0, 0.0, [], []
        for t in range(5):
            i = float(cur[t, 0])
            mm = beta * (1 - r) * mm + i if reset == "zero" else beta * mm + i - thr * r
            exp_m.append(mm)
            r = float(mm > thr)
            exp_s.append(r)
        torch.testing.assert_close(m.flatten(), torch.tensor(exp_m))
        assert s.flatten().tolist() == exp_s


def test_make_leaky_does_not_grow_global_instances():
    n0 = len(snn.SpikingNeuron.instances)
    for _ in range(5):
        SpikingMLP([10, 5, 2])
    assert len(snn.SpikingNeuron.instances) == n0


def test_hidden_state_reset_between_calls():
    torch.manual_seed(5)
    model = SpikingMLP([30, 20, 3], threshold=0.3)
    x = (torch.rand(8, 4, 30) < 0.5).float()
    for fast in (True, False):
        model.fast = fast
        a = model(x).logits
        model(torch.ones(8, 4, 30))
        b = model(x).logits
        assert torch.equal(a, b)


def test_event_driven_product_matches_dense_linear():
    """y = b + Σ_{k: x_k ≠ 0} x_k·W[:, k] and its gradients, for binary and analog sparse inputs."""
    from metaspin_snn.networks.sparse import sparse_linear, use_sparse

    torch.manual_seed(6)
    w = torch.randn(150, 70, requires_grad=True)
    b = torch.randn(150, requires_grad=True)
    # binary at 3 % and 10 %, analog at 3 % and 20 % (event-driven weight gradient), binary at 40 %
    # (forced: the dense weight gradient above SPARSE_WGRAD_MAX_DENSITY)
    for x in ((torch.rand(40, 70) < 0.03).float(), (torch.rand(40, 70) < 0.1).float(),
              torch.rand(40, 70) * (torch.rand(40, 70) < 0.03), torch.rand(40, 70) * (torch.rand(40, 70) < 0.2),
              (torch.rand(40, 70) < 0.4).float()):
        x = x.requires_grad_(True)
        g = torch.randn(40, 150)
        y1 = sparse_linear(x, w, b)
        grads1 = torch.autograd.grad(y1, (x, w, b), g)
        y2 = F.linear(x, w, b)
        grads2 = torch.autograd.grad(y2, (x, w, b), g)
        torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
        for a, c in zip(grads1, grads2):
            torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-4)
    assert use_sparse((torch.rand(100, 70) < 0.1).float(), 150, "auto")
    assert not use_sparse((torch.rand(100, 70) < 0.5).float(), 150, "auto")  # too dense
    assert not use_sparse((torch.rand(100, 70) < 0.1).float(), 10, "auto")  # too narrow
    with pytest.raises(ValueError, match="CPU"):
        use_sparse(torch.zeros(3, 4, dtype=torch.float16), 200, True)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_state_continuation_equals_one_sequence(fast, reset):
    """Running x[:6] then x[6:] from out.state gives the same spikes as running x at once."""
    torch.manual_seed(7)
    model = SpikingMLP([50, 30, 5], reset=reset, threshold=0.5, fast=fast, sparse=False)
    x = (torch.rand(15, 4, 50) < 0.3).float()
    whole = model(x)
    a = model(x[:6])
    b = model(x[6:], state=a.state)
    for s_w, s_a, s_b in zip(whole.spikes, a.spikes, b.spikes):
        assert torch.equal(s_w, s_a + s_b)
    assert all(torch.equal(m1, m2) for m1, m2 in zip(whole.state, b.state))
    with pytest.raises(ValueError, match="state"):
        model(x, state=a.state[:1])


def test_truncated_bptt_step():
    from metaspin_snn.networks import make_optimizer, train_step

    torch.manual_seed(8)
    x = (torch.rand(12, 8, 40) < 0.3).float()
    y = torch.randint(0, 4, (8,))
    grads = {}
    for k in (None, 12, 4):
        torch.manual_seed(0)
        model = SpikingMLP([40, 20, 4], threshold=0.5)
        opt = make_optimizer(model, kind="sgd", lr=1e-9)
        train_step(model, opt, x, y, tbptt=k)
        grads[k] = [p.grad.clone() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(grads[None], grads[12]))  # k >= T is plain BPTT
    assert any(not torch.allclose(a, b) for a, b in zip(grads[None], grads[4]))  # truncated differs
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads[4])
    with pytest.raises(ValueError, match="tbptt"):
        train_step(model, opt, x, y, tbptt=0)


def test_event_product_sums_in_event_order_to_the_bit():
    """Binary and analog inputs: the forward is b + Σ over the row's events in column order and the
    weight gradient Σ over the column's rows in ascending order, each added one at a time in float32
    (the order the published runs used); a wrong order or a dropped event changes bits."""
    from metaspin_snn.networks.sparse import sparse_linear

    gen = torch.Generator().manual_seed(3)
    for analog in (False, True):
        x = (torch.rand(37, 300, generator=gen) < 0.15).float()  # ≥ 8 events per row and column: both loops
        if analog:
            x = x * torch.rand(37, 300, generator=gen)
        w = torch.randn(200, 300, generator=gen, requires_grad=True)
        b = torch.randn(200, generator=gen, requires_grad=True)
        g = torch.randn(37, 200, generator=gen)
        y = sparse_linear(x, w, b)
        (gw,) = torch.autograd.grad(y, (w,), g)
        xn, wt, gn = x.numpy(), w.detach().t().contiguous().numpy(), g.numpy()
        ref_y = np.empty((37, 200), np.float32)
        for r in range(37):
            acc = b.detach().numpy().copy()
            for k in np.flatnonzero(xn[r]):
                acc = acc + (wt[k] if not analog else xn[r, k] * wt[k])
            ref_y[r] = acc
        ref_gwt = np.zeros((300, 200), np.float32)
        for k in range(300):
            acc = np.zeros(200, np.float32)
            for r in np.flatnonzero(xn[:, k]):
                acc = acc + (gn[r] if not analog else xn[r, k] * gn[r])
            ref_gwt[k] = acc
        assert np.array_equal(y.detach().numpy(), ref_y)
        assert np.array_equal(gw.t().numpy(), ref_gwt)


def test_input_events_stops_past_the_density_budget():
    from metaspin_snn.networks import sparse

    gen = torch.Generator().manual_seed(4)
    sparse_x = (torch.rand(64, 200, generator=gen) < 0.1).float()
    dense_x = (torch.rand(64, 200, generator=gen) < 0.5).float()
    ev = sparse.input_events(sparse_x, 150, "auto")
    full = sparse.Events(sparse_x.numpy())
    assert ev is not None and ev.nnz == int(sparse_x.count_nonzero()) and ev.binary
    assert np.array_equal(ev.ptr, full.ptr) and np.array_equal(ev.idx[:ev.nnz], full.idx[:full.nnz])
    assert sparse.input_events(dense_x, 150, "auto") is None  # denser than SPARSE_MAX_DENSITY
    assert sparse.input_events(sparse_x, 10, "auto") is None  # too narrow a layer
    assert sparse.input_events(dense_x, 150, True).nnz == int(dense_x.count_nonzero())  # forced
    assert sparse.input_events(sparse_x, 150, False) is None
    # the budget is exact: one non-zero above it is refused, at it accepted
    x = torch.zeros(10, 100)
    x.view(-1)[:int(sparse.SPARSE_MAX_DENSITY * 1000)] = 1.0
    assert sparse.input_events(x, 150, "auto") is not None
    x.view(-1)[int(sparse.SPARSE_MAX_DENSITY * 1000)] = 1.0
    assert sparse.input_events(x, 150, "auto") is None
    assert not sparse.Events(torch.tensor([[0.0, 0.5, 1.0]]).numpy()).binary


def test_calibrated_policy_follows_the_cost_model(monkeypatch):
    """"calibrated": the event product exactly when its modelled cost scan·M·K + 2·event·nnz·N is
    below the dense 2·dense·M·K·N (the inequality written out here, not ProductCosts.max_density)."""
    from metaspin_snn.networks import SpikingMLP, sparse

    costs = sparse.ProductCosts(dense=2e-11, event=5e-11, scan=3e-9)
    monkeypatch.setattr(sparse, "_costs", costs)
    M, K = 40, 100
    gen = torch.Generator().manual_seed(8)
    for n_out in (10, 64, 1000):
        for density in (0.0, 0.05, 0.2, 0.3, 0.38, 0.39, 0.45, 0.6):
            x = torch.zeros(M * K)
            x[torch.randperm(M * K, generator=gen)[:int(density * M * K)]] = 1.0
            x = x.reshape(M, K)
            nnz = int(x.count_nonzero())
            event_cost = costs.scan * M * K + 2 * costs.event * nnz * n_out
            dense_cost = 2 * costs.dense * M * K * n_out
            chosen = sparse.input_events(x, n_out, "calibrated") is not None
            # at the exact boundary either is right; elsewhere the cheaper one
            if abs(event_cost - dense_cost) > 2 * costs.event * n_out:
                assert chosen == (event_cost < dense_cost), (n_out, density)
    m = SpikingMLP((100, 200, 10), sparse="calibrated")
    m(torch.zeros(4, 3, 100))  # the policy runs inside the network
    with pytest.raises(ValueError, match="sparse must be one of"):
        SpikingMLP((100, 200, 10), sparse="fast")
    with pytest.raises(ValueError, match="event must be > 0"):
        sparse.ProductCosts(dense=1e-11, event=0.0, scan=0.0)


def test_product_costs_are_calibrated_once_and_kept_per_machine(tmp_path, monkeypatch):
    from metaspin_snn.networks import sparse

    monkeypatch.setenv("METASPIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sparse, "_costs", None)
    calls = []
    fixed = sparse.ProductCosts(dense=1e-11, event=4e-11, scan=2e-9)
    monkeypatch.setattr(sparse, "calibrate", lambda: calls.append(1) or fixed)
    assert sparse.product_costs() == fixed and len(calls) == 1
    table = json.loads(sparse.costs_file().read_text())
    assert table == {sparse._machine_key(): {"dense": 1e-11, "event": 4e-11, "scan": 2e-9}}
    sparse.set_product_costs(None)  # a new process: read back, not measured again
    assert sparse.product_costs() == fixed and len(calls) == 1
    sparse.costs_file().write_text("{not json")  # corrupt: measured again and rewritten
    sparse.set_product_costs(None)
    assert sparse.product_costs() == fixed and len(calls) == 2
    assert json.loads(sparse.costs_file().read_text())
    sparse.set_product_costs(None)
    monkeypatch.setenv("METASPIN_CACHE_DIR", "/proc/no-such-dir")  # unwritable: this process only
    assert sparse.product_costs() == fixed and len(calls) == 3
    with pytest.raises(TypeError):
        sparse.set_product_costs(0.1)


def test_calibrate_measures_positive_costs():
    from metaspin_snn.networks import sparse

    c = sparse.calibrate(M=128, K=128, N=128, repeat=1)
    assert c.dense > 0 and c.event > 0 and c.scan >= 0
    assert 0.0 <= c.max_density(1000) <= 1.0
