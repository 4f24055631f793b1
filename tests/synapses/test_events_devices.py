"""Spike-triggered write pulses on the device synapse models through the event engine."""
import math

import pytest
import torch

from metaspin_snn.synapses.base import SynapseModel
from metaspin_snn.synapses.events import SpikeEvents, spike_triggered_writes, trace_decay
from metaspin_snn.synapses.magnetoionic import MagnetoIonicPair
from metaspin_snn.synapses.mtj import MetaplasticMTJ, MTJParams


class _Recorder(SynapseModel):
    """A synapse model that records the gradients its update receives."""

    def __init__(self, shape):
        super().__init__(shape, MTJParams())
        self.grads = []

    def _compute_weight(self, sample):
        return torch.zeros(self.shape)

    def _update_torch(self, grad):
        self.grads.append(grad.clone())

    _update_numba = _update_torch

    def hidden(self):
        return torch.zeros(self.shape)


def _events(seed, T, n_post, n_pre):
    g = torch.Generator().manual_seed(seed)
    pre = (torch.rand(T, n_pre, generator=g) < 0.2).float()
    psi = torch.rand(T, n_post, generator=g) * (torch.rand(T, n_post, generator=g) < 0.15)
    L = torch.randn(T, n_post, generator=g)
    return pre, psi, L


@pytest.mark.parametrize("window", [None, 1, 7])
def test_writes_carry_the_event_driven_gradient(window):
    """Each window's update gets g = gain·Σ_t L_i ψ_i x_pre_j (dense formula), zero where no event."""
    T, n_post, n_pre, gain = 30, 5, 8, 0.7
    pre, psi, L = _events(0, T, n_post, n_pre)
    rec = _Recorder((n_post, n_pre))
    spike_triggered_writes(rec, pre, SpikeEvents.from_dense(psi, graded=True), L, tau_pre=6.0, gain=gain,
                           window=window)
    lam = trace_decay(6.0)
    x = torch.zeros(n_pre, dtype=torch.float64)
    win = T if window is None else window
    expected = []
    for a in range(0, T, win):
        g = torch.zeros(n_post, n_pre, dtype=torch.float64)
        for t in range(a, min(a + win, T)):
            x = lam * x + pre[t].double()
            g += gain * torch.outer(L[t].double() * psi[t].double(), x)
        if (g != 0).any():
            expected.append(g)
    assert len(rec.grads) == len(expected) > 0
    for got, want in zip(rec.grads, expected):
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
        assert ((got != 0) <= (want != 0)).all()


def _row_events(T, n_post, n_pre, rows):
    pre = torch.zeros(T, n_pre); pre[::2, :] = 1.0
    post = torch.zeros(T, n_post); post[3, rows] = 1.0; post[9, rows] = 1.0
    return pre, post


def test_mtj_pulses_only_at_event_rows():
    n_post, n_pre, T = 6, 10, 12
    m = MetaplasticMTJ((n_post, n_pre), MTJParams(seed=3, tau_relax_s=math.inf))
    s0 = m.s.clone()
    pre, post = _row_events(T, n_post, n_pre, [1, 4])
    L = torch.ones(T, n_post)  # positive error → target state −1
    spike_triggered_writes(m, pre, post, L, tau_pre=5.0, gain=1.0)
    touched = torch.zeros(n_post, dtype=torch.bool); touched[[1, 4]] = True
    assert (m.n_pulse[~touched] == 0).all() and (m.n_gate[~touched] == 0).all()
    assert torch.equal(m.s[~touched], s0[~touched])
    # in the touched rows: devices at −1 consolidate, devices at +1 get exactly one pulse
    assert torch.equal(m.n_pulse[touched] == 1, s0[touched] == 1)
    assert torch.equal(m.n_gate[touched] == 1, s0[touched] == -1)
    assert (m.x[touched][s0[touched] == -1] > 0).all()
    assert (m.s[touched] <= s0[touched]).all()  # switches only toward −1


def test_magnetoionic_pulses_only_at_event_rows():
    n_post, n_pre, T = 6, 10, 12
    m = MagnetoIonicPair((n_post, n_pre))
    x1, x2 = m.x1.clone(), m.x2.clone()
    pre, post = _row_events(T, n_post, n_pre, [0, 5])
    L = torch.full((T, n_post), -1.0)  # negative error → w should rise → device 1 pulsed
    spike_triggered_writes(m, pre, post, L, tau_pre=5.0, gain=0.5, window=4)
    touched = torch.zeros(n_post, dtype=torch.bool); touched[[0, 5]] = True
    assert (m.n_pulse[~touched] == 0).all()
    assert torch.equal(m.x1[~touched], x1[~touched]) and torch.equal(m.x2, x2)
    assert (m.n_pulse[touched] == 2).all()  # post events in two of the three 4-step windows
    assert (m.x1[touched] > x1[touched]).all()


def test_write_bad_inputs():
    m = MagnetoIonicPair((3, 4))
    with pytest.raises(ValueError, match="third factor"):
        spike_triggered_writes(m, torch.zeros(5, 4), torch.zeros(5, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="gain"):
        spike_triggered_writes(m, torch.zeros(5, 4), torch.zeros(5, 3), torch.zeros(5, 3), gain=0.0)
    with pytest.raises(ValueError, match="window"):
        spike_triggered_writes(m, torch.zeros(5, 4), torch.zeros(5, 3), torch.zeros(5, 3), window=0)
    with pytest.raises(ValueError, match="neurons"):
        spike_triggered_writes(m, torch.zeros(5, 7), torch.zeros(5, 3), torch.zeros(5, 3))
    with pytest.raises(TypeError):
        spike_triggered_writes(torch.nn.Linear(4, 3), torch.zeros(5, 4), torch.zeros(5, 3), torch.zeros(5, 3))
