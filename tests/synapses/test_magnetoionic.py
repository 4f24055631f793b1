"""MagnetoIonicPair: equations of kellian-cottart/magnetoionic-simulations, kernel ≡ reference,
physical bounds, refresh, noise placement, state_dict, learning (step-by-step agreement with the
authors' optimizer: test_authors_code_magnetoionic.py)."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metaspin_snn.synapses.magnetoionic import (MagnetoIonicPair, MagnetoIonicParams, backward_read_conv2d,
                                                backward_read_linear, f_inv_torch, f_torch)

STATE = ("x1", "x2", "n_pulse", "n_refresh")


def f_lin(x):  # repository readme, linear device
    return -0.021 * x + 2.742


def f_exp(x):  # repository readme, exponential device
    return 1.530 * math.exp(-x / 9.741) + 0.750


def pair(shape=(64,), backend="torch", **kw) -> MagnetoIonicPair:
    return MagnetoIonicPair(shape, MagnetoIonicParams(**kw), backend=backend)


def set_state(m: MagnetoIonicPair, x1, x2) -> None:
    m.x1.copy_(torch.as_tensor(x1, dtype=torch.float32).expand(m.shape))
    m.x2.copy_(torch.as_tensor(x2, dtype=torch.float32).expand(m.shape))


@pytest.mark.parametrize("response,f", [("linear", f_lin), ("exponential", f_exp)])
def test_response_and_weight_formula(response, f):
    p = MagnetoIonicParams(response=response, gain=2.0)
    xs = torch.tensor([0.0, 1.5, 13.0, 27.0], dtype=torch.float64)
    assert torch.allclose(f_torch(xs, p), torch.tensor([f(float(v)) for v in xs], dtype=torch.float64),
                          rtol=0, atol=1e-12)
    assert p.f_range() == pytest.approx(f(0.0) - f(27.0), abs=1e-12)
    # f_inv inverts f over the range
    assert torch.allclose(f_inv_torch(f_torch(xs, p), p), xs, atol=1e-9)
    m = MagnetoIonicPair((4,), p)
    set_state(m, [3.0, 27.0, 0.0, 10.0], [20.0, 0.0, 0.0, 5.5])
    w = m.refresh(sample=False)
    want = [2.0 * (f(b) - f(a)) for a, b in [(3.0, 20.0), (27.0, 0.0), (0.0, 0.0), (10.0, 5.5)]]
    assert torch.allclose(w, torch.tensor(want), atol=1e-5)


@pytest.mark.parametrize("response", ["linear", "exponential"])
@pytest.mark.parametrize("min_dx", [0.0, 0.3])
@pytest.mark.parametrize("parallel", [False, True])
def test_kernel_equals_reference(response, min_dx, parallel):
    kw = dict(response=response, min_dx=min_dx, lr=20.0, init_range=0.25, seed=5)
    a = MagnetoIonicPair((2, 12001), MagnetoIonicParams(**kw), backend="numba", parallel=parallel)
    b = MagnetoIonicPair((2, 12001), MagnetoIonicParams(**kw), backend="torch")
    gen = torch.Generator().manual_seed(1)
    for _ in range(40):
        g = torch.randn((2, 12001), generator=gen) * 0.3
        g[torch.rand((2, 12001), generator=gen) < 0.1] = 0.0
        a.update(g)
        b.update(g)
    assert a.total_refreshes() > 100  # the refresh path was exercised
    assert torch.equal(a.n_pulse, b.n_pulse) and torch.equal(a.n_refresh, b.n_refresh)
    torch.testing.assert_close(a.x1, b.x1, rtol=0, atol=1e-5)
    torch.testing.assert_close(a.x2, b.x2, rtol=0, atol=1e-5)


@pytest.mark.parametrize("response", ["linear", "exponential"])
def test_kernel_equals_reference_from_bound_states(response):
    """States with devices sitting at 0 / x_max, pulsed or not (the refresh checks every synapse)."""
    kw = dict(response=response, lr=5.0, seed=2)
    a = MagnetoIonicPair((3, 7001), MagnetoIonicParams(**kw), backend="numba")
    b = MagnetoIonicPair((3, 7001), MagnetoIonicParams(**kw), backend="torch")
    gen = torch.Generator().manual_seed(4)
    for m in (a, b):
        g2 = torch.Generator().manual_seed(9)
        for name in ("x1", "x2"):
            x = torch.rand(m.shape, generator=g2) * 27.0
            pick = torch.rand(m.shape, generator=g2)
            x[pick < 0.3] = 27.0
            x[(pick >= 0.3) & (pick < 0.6)] = 0.0
            getattr(m, name).copy_(x)
    for _ in range(30):
        g = torch.randn((3, 7001), generator=gen) * 0.5
        g[torch.rand((3, 7001), generator=gen) < 0.3] = 0.0
        a.update(g)
        b.update(g)
        # after every step no pair is left at a bound, except (x_max, 0) and (0, x_max)
        for m in (a, b):
            at1, at2 = m.x1 >= 27.0, m.x2 >= 27.0
            assert not (at1 & (m.x2 != 0)).any() and not (at2 & (m.x1 != 0)).any()
    assert torch.equal(a.n_pulse, b.n_pulse) and torch.equal(a.n_refresh, b.n_refresh)
    torch.testing.assert_close(a.x1, b.x1, rtol=0, atol=1e-5)
    torch.testing.assert_close(a.x2, b.x2, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_one_way_moves_and_pulse_size(backend):
    p = MagnetoIonicParams(lr=2.0, init_range=0.0)
    m = MagnetoIonicPair((1000,), p, backend=backend)
    gen = torch.Generator().manual_seed(2)
    for _ in range(5):
        g = torch.randn(1000, generator=gen) * 0.2
        x1, x2 = m.x1.clone(), m.x2.clone()
        w0 = m.refresh(sample=False).clone()
        m.update(g)
        w1 = m.refresh(sample=False)
        assert m.total_refreshes() == 0
        assert (m.x1 >= x1).all() and (m.x2 >= x2).all()  # devices only move forward
        up, down = g < 0, g > 0
        # g < 0 pulses device 1 by lr·|g|·ν₁ and raises w; g > 0 pulses device 2 and lowers w
        torch.testing.assert_close(m.x1[up], x1[up] + 2.0 * g[up].abs() * m.nu1[up], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(m.x2[down], x2[down] + 2.0 * g[down].abs() * m.nu2[down],
                                   rtol=1e-6, atol=1e-6)
        assert torch.equal(m.x2[up], x2[up]) and torch.equal(m.x1[down], x1[down])
        assert (w1[up] > w0[up]).all() and (w1[down] < w0[down]).all()
    assert m.total_pulses() == 5 * 1000


def test_min_dx_drops_small_pulses():
    m = pair((3,), lr=1.0, min_dx=0.5, device_variability=0.0, init_range=0.0)
    assert m.x1.tolist() == [0.0] * 3 and m.x2.tolist() == [0.0] * 3
    m.update(torch.tensor([-0.4, -0.6, 0.0]))
    assert m.x1.tolist() == pytest.approx([0.0, 0.6, 0.0])
    assert m.n_pulse.tolist() == [0, 1, 0]


@pytest.mark.parametrize("response", ["linear", "exponential"])
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_refresh_preserves_weight_and_counts(response, backend):
    p = MagnetoIonicParams(response=response, lr=1.0, device_variability=0.0, init_range=0.0)
    f = f_lin if response == "linear" else f_exp
    m = MagnetoIonicPair((2,), p, backend=backend)
    # synapse 0: device 1 at 26.5, pushed by +1 pulse past 27 (saturates); synapse 1: device 2 at 26.0
    set_state(m, [26.5, 3.0], [8.0, 26.0])
    m.update(torch.tensor([-1.0, 1.0]))
    want = [f(8.0) - f(27.0), f(27.0) - f(3.0)]
    w = m.refresh(sample=False).clone()
    assert w.tolist() == pytest.approx(want, abs=2e-5)
    assert m.n_refresh.tolist() == [1, 1] and m.n_pulse.tolist() == [1, 1]
    # least range used: the device that must read higher is back at x = 0
    assert m.x2[0].item() == 0.0 and m.x1[1].item() == 0.0
    assert 0.0 <= m.x1[0].item() < 27.0 and 0.0 <= m.x2[1].item() < 27.0
    # linear response: the repository's rule (x_other ← x_max − x_kept)
    if response == "linear":
        assert m.x1[0].item() == pytest.approx(27.0 - 8.0, abs=1e-4)
    # a second push in the same direction moves the refreshed device again (range was freed)
    m.update(torch.tensor([-1.0, 1.0]))
    assert m.n_refresh.tolist() == [1, 1]
    assert m.refresh(sample=False)[0].item() > w[0].item()


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_refresh_of_an_unpulsed_device_at_its_bound(backend):
    """The authors' refresh checks every device after the step (MID:98-105), not only the pulsed
    one: (0, 27) + pulse 1.94 on device 1 → (0, 25.06), not (1.94, 27) (whose next pulse on device 2
    would be lost at the bound). The fixed pairs (27, 0), (0, 27) are not counted as refreshes."""
    p = MagnetoIonicParams(lr=1.0, device_variability=0.0, init_range=0.0)
    m = MagnetoIonicPair((3,), p, backend=backend)
    set_state(m, [0.0, 27.0, 0.0], [27.0, 0.0, 27.0])
    m.update(torch.tensor([-1.94, 0.0, 0.0]))
    assert m.x1.tolist() == [0.0, 27.0, 0.0]
    assert m.x2.tolist() == pytest.approx([25.06, 0.0, 27.0], abs=2e-5)
    assert m.n_refresh.tolist() == [1, 0, 0]
    w = m.refresh(sample=False).clone()
    m.update(torch.tensor([1.0, 0.0, 0.0]))  # the freed range takes a pulse on device 2
    assert m.x2[0].item() == pytest.approx(26.06, abs=2e-5)
    assert m.refresh(sample=False)[0].item() == pytest.approx(w[0].item() - 0.021, abs=1e-5)


def test_noise_default_backward_forward_read_clean():
    """Default placement (theirs, NDL:56-84): the training forward read is noise-free."""
    m = MagnetoIonicPair((1000,), MagnetoIonicParams(read_noise=0.015))
    assert m.params.noise_placement == "backward"
    clean = m.refresh(sample=False).clone()
    assert torch.equal(m.refresh(sample=True), clean)
    m.train()
    assert m.backward_noise_active() and m.backward_read() is not None
    m.eval()
    assert not m.backward_noise_active() and m.backward_read() is None
    assert MagnetoIonicPair((4,), MagnetoIonicParams(read_noise=0.0)).backward_read() is None
    assert MagnetoIonicPair((4,), MagnetoIonicParams(noise_placement="forward")).backward_read() is None


def test_read_noise_train_vs_eval():
    p = MagnetoIonicParams(read_noise=0.015, gain=3.0, noise_placement="forward")
    m = MagnetoIonicPair((200_000,), p)
    clean = m.refresh(sample=False).clone()
    noisy = m.refresh(sample=True)
    sd = (noisy - clean).std().item()
    want = math.sqrt(2) * 0.015 * 3.0
    assert abs(sd - want) < 5 * want / math.sqrt(2 * 200_000)
    m.eval()
    assert torch.equal(m.effective_weight(), clean)
    m2 = MagnetoIonicPair((1000,), MagnetoIonicParams(eval_noise=True, noise_placement="forward")).eval()
    f1, f2 = m2.device_read()
    assert (m2.effective_weight() - (f2 - f1)).abs().max().item() > 0.01


def test_device_variability_drawn_per_device():
    m = pair((100_000,), device_variability=0.2)
    for nu in (m.nu1, m.nu2):
        assert (nu >= 0).all()
        assert nu.mean().item() == pytest.approx(1.0, abs=0.005)
        assert nu.std().item() == pytest.approx(0.2, abs=0.005)
    assert not torch.equal(m.nu1, m.nu2)
    # fixed: an update does not redraw it
    nu = m.nu1.clone()
    m.update(torch.ones(100_000))
    assert torch.equal(nu, m.nu1)


finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=40, deadline=None)
@given(grads=st.lists(hnp.arrays(np.float32, (24,), elements=finite32), min_size=1, max_size=4),
       response=st.sampled_from(["linear", "exponential"]), backend=st.sampled_from(["numba", "torch"]))
def test_state_stays_physical(grads, response, backend):
    m = pair((24,), backend=backend, response=response, lr=5.0)
    for g in grads:
        m.update(torch.from_numpy(g.copy()))
        for name in ("x1", "x2"):
            x = getattr(m, name)
            assert torch.isfinite(x).all() and (x >= 0).all() and (x <= 27.0).all()
        h = m.hidden()
        assert (h >= 0).all() and (h <= 1).all()
        w = m.refresh(sample=False)
        assert (w.abs() <= m.params.w_max() + 1e-5).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_gradient_raises_state_untouched(bad):
    m = pair((5,), backend="numba")
    m.update(torch.full((5,), -0.1))
    before = {k: v.clone() for k, v in m.state_dict().items() if torch.is_tensor(v)}
    g = torch.zeros(5)
    g[2] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        m.update(g)
    for k, v in m.state_dict().items():
        if torch.is_tensor(v):
            assert torch.equal(v, before[k]), k


def test_state_dict_round_trip():
    kw = dict(lr=10.0, seed=3, noise_placement="both")
    a = pair((20, 10), **kw)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        a.refresh(sample=True)
        a.update(torch.randn(20, 10, generator=gen))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = pair((20, 10), lr=10.0, seed=99, noise_placement="both")
    b.load_state_dict(torch.load(buf, weights_only=False))
    for k in STATE + ("nu1", "nu2"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    # generator state travelled too: the same noisy reads and the same future
    assert torch.equal(a.refresh(sample=True), b.refresh(sample=True))
    assert torch.equal(a.backward_weight(), b.backward_weight())
    g = torch.randn(20, 10, generator=gen)
    a.update(g)
    b.update(g)
    for k in STATE:
        assert torch.equal(getattr(a, k), getattr(b, k)), k


@pytest.mark.parametrize("field,value", [
    ("lr", -1.0), ("lr", math.inf), ("x_max", 0.0), ("lin_slope", 0.01), ("exp_amp", -1.0),
    ("exp_tau", 0.0),
    ("device_variability", 2.0), ("read_noise", -0.1), ("gain", 0.0), ("min_dx", -1.0),
    ("init_range", 1.0), ("init_range", 0.29), ("lr", float("nan")),
])
def test_bad_params_name_the_field(field, value):
    with pytest.raises(ValueError, match=rf"MagnetoIonicParams\.{field} must be a number in"):
        MagnetoIonicParams(**{field: value})


def test_bad_choice_params():
    with pytest.raises(ValueError, match="MagnetoIonicParams.response"):
        MagnetoIonicParams(response="cubic")
    with pytest.raises(ValueError, match="MagnetoIonicParams.seed"):
        MagnetoIonicParams(seed=-1)
    with pytest.raises(ValueError, match="MagnetoIonicParams.eval_noise"):
        MagnetoIonicParams(eval_noise=1)
    with pytest.raises(ValueError, match="MagnetoIonicParams.noise_placement"):
        MagnetoIonicParams(noise_placement="layer")
    with pytest.raises(ValueError, match="MagnetoIonicParams.init_mode"):
        MagnetoIonicParams(init_mode="zero")
    MagnetoIonicParams(init_range=0.29, init_mode="least_range")  # the least-range init allows f_range
    with pytest.raises(ValueError, match="grad shape"):
        pair((4,)).update(torch.zeros(5))
    with pytest.raises(ValueError, match="backend='numba'"):
        pair((4,), backend="numba").update(torch.zeros(4, dtype=torch.float64))


def _toy_task(seed: int = 0, d: int = 32):
    """Linearly separable 2-class task: y = [x·u > 0], u ~ N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=g)
    X = torch.randn(1500, d, generator=g)
    y = (X @ u > 0).float()
    return X[:1000], y[:1000], X[1000:], y[1000:]


@pytest.mark.parametrize("response", ["linear", "exponential"])
def test_learns_a_linear_classifier(response):
    X, y, Xt, yt = _toy_task()
    m = MagnetoIonicPair((32,), MagnetoIonicParams(response=response, lr=20.0, seed=1))
    gen = torch.Generator().manual_seed(2)
    acc0 = ((Xt @ m.refresh(sample=False) > 0).float() == yt).float().mean().item()
    m.train()
    for _ in range(100):
        idx = torch.randint(0, 1000, (50,), generator=gen)
        logit = X[idx] @ m.effective_weight() * 2.0
        torch.nn.functional.binary_cross_entropy_with_logits(logit, y[idx]).backward()
        m.update()
    m.eval()
    acc = ((Xt @ m.effective_weight() > 0).float() == yt).float().mean().item()
    assert acc > 0.85 and acc > acc0 + 0.2, (acc0, acc)
    assert m.total_pulses() > 0


def test_trains_through_synaptic_optimizer_and_dtype_moves():
    from metaspin_snn.synapses import SynapticOptimizer

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.syn = MagnetoIonicPair((2, 8), MagnetoIonicParams(lr=10.0, seed=1))

        def forward(self, x):
            return x @ self.syn.effective_weight().t()

    net = Net()
    opt = SynapticOptimizer(net)
    x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    assert net.syn.total_pulses() > 0
    net.double()
    assert net.syn.effective_weight().dtype == torch.float64
    net.syn.update(torch.randn(2, 8, dtype=torch.float64))
    assert (net.syn.x1 <= 27).all() and (net.syn.x2 <= 27).all()
    with pytest.raises(ValueError, match="float32 state on the CPU"):
        MagnetoIonicPair((3,), backend="numba").double().update(torch.zeros(3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_reference_equals_cpu_kernel():
    kw = dict(lr=20.0, init_range=0.25, seed=5, noise_placement="both")
    a = MagnetoIonicPair((50, 40), MagnetoIonicParams(**kw), backend="numba")
    b = MagnetoIonicPair((50, 40), MagnetoIonicParams(**kw), backend="torch").cuda()
    gen = torch.Generator().manual_seed(1)
    for _ in range(40):
        g = torch.randn((50, 40), generator=gen) * 0.3
        a.update(g)
        b.update(g.cuda())
    assert a.total_refreshes() > 0
    assert torch.equal(a.n_pulse, b.n_pulse.cpu()) and torch.equal(a.n_refresh, b.n_refresh.cpu())
    torch.testing.assert_close(a.x1, b.x1.cpu(), rtol=0, atol=1e-5)
    torch.testing.assert_close(a.x2, b.x2.cpu(), rtol=0, atol=1e-5)
    assert torch.equal(a.refresh(sample=True).clone(), b.refresh(sample=True).cpu())
    torch.testing.assert_close(a.backward_weight(), b.backward_weight().cpu(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("response", ["linear", "exponential"])
def test_init_modes(response):
    p = MagnetoIonicParams(response=response, init_range=0.05, seed=3)
    m = MagnetoIonicPair((5000,), p)
    f1, f2 = m.device_read()
    # repository (NDL:38-41): f(x₁) = f(0) − init for all, w = f(x₂) − f(x₁) ~ U(−init, init)
    torch.testing.assert_close(f1, torch.full_like(f1, p.f(0.0) - 0.05), rtol=0, atol=1e-5)
    w = m.refresh(sample=False)
    assert w.abs().max().item() <= 0.05 + 1e-5 and w.std().item() == pytest.approx(0.1 / math.sqrt(12), rel=0.05)
    # least range: the same w distribution, one device at 0
    q = MagnetoIonicParams(response=response, init_range=0.05, seed=3, init_mode="least_range")
    k = MagnetoIonicPair((5000,), q)
    assert ((k.x1 == 0) | (k.x2 == 0)).all()
    assert k.refresh(sample=False).abs().max().item() <= 0.05 + 1e-5


def _noisy_net(placement: str, read_noise: float = 0.015):
    m = MagnetoIonicPair((4, 6), MagnetoIonicParams(read_noise=read_noise, noise_placement=placement,
                                                    init_range=0.2, gain=2.0, seed=8))
    return m.train()


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_backward_read_linear_gradients(scale):
    """Input gradient through scale·(w + gain·(ε₂ − ε₁)) with a fresh ε per backward (NDL:76-81);
    weight and bias gradients exact (NDL:82-83); forward = F.linear."""
    m = _noisy_net("backward")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, generator=gen, requires_grad=True)
    bias = torch.randn(4, generator=gen, requires_grad=True)
    gy = torch.randn(2, 3, 4, generator=gen)
    w = m.effective_weight() * scale
    clean = (m.device_read()[1] - m.device_read()[0]) * 2.0
    state = m._gen.get_state()
    y = backward_read_linear(x, w, bias, m.backward_read(scale))
    assert torch.equal(y, torch.nn.functional.linear(x, w, bias))
    y.backward(gy)
    eps = torch.randn((2, 4, 6), generator=torch.Generator().set_state(state))
    w_read = (clean + 2.0 * 0.015 * (eps[1] - eps[0])) * scale
    torch.testing.assert_close(x.grad, gy @ w_read, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.weight.grad, scale * gy.reshape(-1, 4).t() @ x.detach().reshape(-1, 6),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bias.grad, gy.reshape(-1, 4).sum(0))
    # a second backward draws again
    x.grad = None
    m.weight.grad = None
    backward_read_linear(x, m.effective_weight() * scale, bias, m.backward_read(scale)).backward(gy)
    assert not torch.allclose(x.grad, gy @ w_read)
    # no read: the plain product
    assert torch.equal(backward_read_linear(x, w, bias, None), torch.nn.functional.linear(x, w, bias))


def test_backward_read_conv2d_gradients():
    m = MagnetoIonicPair((3, 2, 3, 3), MagnetoIonicParams(read_noise=0.015, init_range=0.2, seed=1)).train()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, 7, 7, generator=gen, requires_grad=True)
    bias = torch.randn(3, generator=gen, requires_grad=True)
    w = m.effective_weight()
    state = m._gen.get_state()
    y = backward_read_conv2d(x, w, bias, m.backward_read(), stride=2, padding=1)
    gy = torch.randn(y.shape, generator=gen)
    y.backward(gy)
    f1, f2 = m.device_read()
    eps = torch.randn((2,) + m.shape, generator=torch.Generator().set_state(state))
    w_read = (f2 + 0.015 * eps[1] - f1 - 0.015 * eps[0]).detach()
    # the reference: autograd through a convolution with w_read for ∂L/∂x and w for ∂L/∂w
    xr = x.detach().clone().requires_grad_(True)
    torch.nn.functional.conv2d(xr, w_read, None, stride=2, padding=1).backward(gy)
    wr = w.detach().clone().requires_grad_(True)
    br = bias.detach().clone().requires_grad_(True)
    torch.nn.functional.conv2d(x.detach(), wr, br, stride=2, padding=1).backward(gy)
    assert torch.equal(y, torch.nn.functional.conv2d(x, w, bias, stride=2, padding=1))
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.weight.grad, wr.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bias.grad, br.grad, rtol=1e-5, atol=1e-6)


def test_noise_placement_both_and_forward():
    """"both" (their device_noise=True, NDL:61-66): a noisy forward read and an independent noisy
    read for ∂L/∂x; "forward": one noisy read, no separate backward read."""
    m = _noisy_net("both")
    clean = m.refresh(sample=False).clone()
    fwd = m.refresh(sample=True).clone()
    back = m.backward_weight()
    assert (fwd - clean).abs().max().item() > 1e-3 and (back - clean).abs().max().item() > 1e-3
    assert (back - fwd).abs().max().item() > 1e-3
    assert m.backward_read() is not None
    f = _noisy_net("forward")
    assert (f.refresh(sample=True).clone() - f.refresh(sample=False)).abs().max().item() > 1e-3
    assert f.backward_read() is None and not f.backward_noise_active()
    # σ_r = 0: every placement is noise-free
    for placement in ("backward", "forward", "both"):
        z = _noisy_net(placement, read_noise=0.0)
        assert torch.equal(z.refresh(sample=True).clone(), z.refresh(sample=False)) and z.backward_read() is None
