"""The one-sample-at-a-time spiking learner (event-driven plasticity, no BPTT)."""
import pytest
import torch

from metaspin_snn.networks.online import OnlineConfig, OnlineSNN
from metaspin_snn.synapses.events import ProbabilisticMetaplasticity


def _toy(n, seed, n_in=64):
    """Two classes: noisy copies of two random binary prototypes (each pixel flipped w.p. 0.15)."""
    g = torch.Generator().manual_seed(seed)
    protos = (torch.rand(2, n_in, generator=torch.Generator().manual_seed(99)) < 0.3).float()
    y = torch.randint(0, 2, (n,), generator=g)
    flip = (torch.rand(n, n_in, generator=g) < 0.15).float()
    x = (protos[y] - flip).abs()
    return x, y


def _cfg(rule):
    pmp = ProbabilisticMetaplasticity(n_levels=16, err_th=2.0, elig_th=0.5, pre_th=2.0, post_th=2.0, dm=0.01)
    return OnlineConfig(n_in=64, n_hidden=32, n_out=2, num_steps=15, gain_hidden=0.3, gain_out=0.2,
                        rule=rule, pmp_hidden=pmp, pmp_out=pmp, eta_hidden=0.002, eta_out=0.005, seed=1)


@pytest.mark.parametrize("rule", ["pmp", "three"])
def test_online_learner_learns_two_class_task(rule):
    x, y = _toy(150, 0)
    xt, yt = _toy(200, 1)
    net = OnlineSNN(_cfg(rule))
    before = net.accuracy(xt, yt)
    w0 = net.w_hidden.clone()
    net.fit_online(x, y)
    after = net.accuracy(xt, yt)
    assert after > 0.85, (rule, before, after)
    assert after > before + 0.15 or before < 0.6
    assert not torch.equal(w0, net.w_hidden)  # the hidden layer learned too
    if rule == "pmp":
        r = net.rule_hidden
        torch.testing.assert_close(net.w_hidden, r.quantize(net.w_hidden), atol=1e-6, rtol=0)  # on levels
        assert net.state_hidden.m.max() > 0 and net.state_hidden.m.max() <= r.m_max + 1e-6


def test_online_learner_is_reproducible_and_checks_input():
    x, y = _toy(40, 2)
    a = OnlineSNN(_cfg("pmp")).fit_online(x, y)
    b = OnlineSNN(_cfg("pmp")).fit_online(x, y)
    assert torch.equal(a.w_hidden, b.w_hidden) and torch.equal(a.w_out, b.w_out)
    assert a.predict(x).shape == (40,) and a.predict(x).dtype == torch.int64
    with pytest.raises(ValueError, match="features"):
        a.predict(torch.zeros(3, 10))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        a.fit_online(x * 3, y)
    with pytest.raises(ValueError, match="label"):
        a.fit_online(x[:2], torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="rule"):
        OnlineConfig(rule="bptt")


def test_online_learner_on_event_frames():
    """input='spikes': event frames [N, T, 2, 4, 8] (counts) are the input spikes directly."""
    import dataclasses
    x, y = _toy(150, 3)
    xt, yt = _toy(200, 4)
    g = torch.Generator().manual_seed(5)

    def frames(v):  # Bernoulli events at the pixel intensity, counts of 0/2 per bin
        return (2 * torch.bernoulli(v[:, None, :].expand(-1, 15, -1), generator=g)).reshape(-1, 15, 2, 4, 8)

    net = OnlineSNN(dataclasses.replace(_cfg("pmp"), input="spikes"))
    net.fit_online(frames(x), y)
    assert net.accuracy(frames(xt), yt) > 0.85
    with pytest.raises(ValueError, match="frames"):
        net.predict(x)


def test_online_learner_state_dict_resumes_exactly():
    x, y = _toy(60, 6)
    a = OnlineSNN(_cfg("pmp")).fit_online(x[:30], y[:30])
    b = OnlineSNN(_cfg("pmp"))
    b.load_state_dict(a.state_dict())
    a.fit_online(x[30:], y[30:]); b.fit_online(x[30:], y[30:])
    assert torch.equal(a.w_hidden, b.w_hidden) and torch.equal(a.state_out.m, b.state_out.m)
    with pytest.raises(ValueError, match="m_hidden"):
        OnlineSNN(_cfg("three")).load_state_dict(a.state_dict())
