"""Non-spiking neurons (``neuron="relu"`` / ``"sign"``), ``norm_params``, and stacked Monte-Carlo
synapse samples (weights ``[S, out, in]``), each checked against an independently written formula."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from metaspin_snn.networks import SpikingConvNet, SpikingMLP, SynapticLinear, fold_norm
from metaspin_snn.networks.models import SignSTE
from metaspin_snn.synapses.mesu import MESU, MESUParams
from metaspin_snn.synapses.metaplastic import MetaplasticBinary


# ---- hand-written reference networks ---------------------------------------------------------------
def _weights(model):
    """(W, b) per stage: W = gain · raw weight, computed here (not via ``scaled_weight``)."""
    out = []
    for layer in model.layers():
        raw = layer.weight if layer.synapse is None else layer.synapse.effective_weight()
        out.append((float(layer.gain) * raw, layer.bias))
    return out


def _bn_batch(cur, bn, eps):
    """Batch norm with the batch's own statistics (biased variance), written out."""
    mean = cur.mean(0)
    var = ((cur - mean) ** 2).mean(0)
    y = (cur - mean) / torch.sqrt(var + eps)
    return y * bn.weight + bn.bias if bn.affine else y


def _hand_forward(model, x, act, norm=None, eps=1e-5):
    """Static MLP: per stage F.linear (+ norm), ``act`` between stages, none at the output;
    logits = output current averaged over T. Returns (logits, hidden activities [T, B, n])."""
    T, B = x.shape[:2]
    h = x.reshape(T * B, -1)
    acts = []
    ws = _weights(model)
    for i, (w, b) in enumerate(ws):
        cur = F.linear(h, w, b)
        if norm is not None:
            cur = norm(cur, model.stages[i].norms[0], eps)
        if i < len(ws) - 1:
            h = act(cur)
            acts.append(h.reshape(T, B, -1))
        else:
            out = cur.reshape(T, B, -1)
    return out.mean(0), acts


def _relu(z):
    return torch.where(z > 0, z, torch.zeros_like(z))


# ---- relu --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [1, 3])
@pytest.mark.parametrize("kind", ["real", "toy"])
def test_relu_mlp_equals_hand_written_mlp(T, kind, toy_sign):
    torch.manual_seed(0)
    model = SpikingMLP([12, 9, 7, 5], neuron="relu", synapse=toy_sign if kind == "toy" else None)
    if kind == "toy":
        assert all(float(l.gain) != 1.0 for l in model.layers())  # the gain must be applied
    x = torch.randn(T, 6, 12)
    out = model(x)
    ref, acts = _hand_forward(model, x, _relu)
    assert out.logits.shape == (6, 5)
    torch.testing.assert_close(out.logits, ref, rtol=1e-6, atol=1e-6)
    assert (out.logits < 0).any()                     # no activation at the output
    assert (acts[0] == 0).any() and (acts[0] > 0).any()  # the relu did cut something
    for got, a in zip(out.spikes[:-1], acts):         # activity Σ_t act per hidden stage
        torch.testing.assert_close(got, a.sum(0), rtol=1e-6, atol=1e-6)
    if T > 1:  # T steps of different inputs: the mean over T, not the last step or the sum
        last, _ = _hand_forward(model, x[-1:], _relu)
        assert not torch.allclose(out.logits, last)
    model.eval()
    torch.testing.assert_close(model(x).logits, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("T", [1, 3])
def test_relu_batch_norm_without_running_stats_uses_batch_statistics(T):
    torch.manual_seed(1)
    eps = 1e-3
    model = SpikingMLP([10, 8, 4], neuron="relu", norm="batch",
                       norm_params={"track_running_stats": False, "eps": eps})
    for st in model.stages:
        bn = st.norms[0]
        assert bn.eps == eps and bn.track_running_stats is False and bn.running_mean is None
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-1.0, 1.0)
    x = 2.0 * torch.randn(T, 16, 10) + 1.0
    ref, _ = _hand_forward(model, x, _relu, norm=_bn_batch, eps=eps)
    torch.testing.assert_close(model(x).logits, ref, rtol=1e-5, atol=1e-5)
    model.eval()  # batch statistics at evaluation too (Laborieux et al.'s code)
    torch.testing.assert_close(model(x).logits, ref, rtol=1e-5, atol=1e-5)


def test_relu_batch_norm_running_stats_and_momentum():
    torch.manual_seed(2)
    mom, eps = 0.5, 1e-5
    model = SpikingMLP([10, 8, 4], neuron="relu", norm="batch", norm_params={"momentum": mom})
    x = torch.randn(2, 12, 10) + 0.5
    model.train()
    model(x)
    # first stage: its current is F.linear of the input
    w, b = _weights(model)[0]
    cur = F.linear(x.reshape(24, -1), w, b).detach()
    bn = model.stages[0].norms[0]
    torch.testing.assert_close(bn.running_mean, mom * cur.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var, (1 - mom) + mom * cur.var(0, unbiased=True), rtol=1e-5, atol=1e-6)
    model.eval()  # running statistics in evaluation

    def run_norm(c, n, e):
        return (c - n.running_mean) / torch.sqrt(n.running_var + e) * n.weight + n.bias

    ref, _ = _hand_forward(model, x, _relu, norm=run_norm, eps=eps)
    torch.testing.assert_close(model(x).logits, ref, rtol=1e-5, atol=1e-5)


# ---- sign --------------------------------------------------------------------------------------------
def test_sign_ste_forward_and_straight_through_backward():
    x = torch.tensor([-3.0, -1.0000001, -1.0, -0.4, 0.0, 0.3, 1.0, 1.0000001, 2.5], requires_grad=True)
    y = SignSTE.apply(x)
    assert torch.equal(y.detach(), torch.tensor([-1.0, -1, -1, -1, 0, 1, 1, 1, 1]))  # sign(0) = 0
    g = torch.arange(1.0, 10.0)
    (y * g).sum().backward()
    # Laborieux's SignActivation: grad_input[|x| > 1] = 0, identity elsewhere (|x| = 1 included)
    assert torch.equal(x.grad, torch.tensor([0.0, 0, 3, 4, 5, 6, 7, 0, 0]))


def test_sign_mlp_forward_and_gradient_match_manual_formula():
    torch.manual_seed(3)
    T, B = 2, 7
    model = SpikingMLP([6, 10, 3], neuron="sign")
    l1, l2 = model.layers()
    with torch.no_grad():
        l1.weight.mul_(4.0)  # pre-activations on both sides of |x| = 1
        l1.bias[:2] = 0.0
    x = torch.randn(T, B, 6)
    x[:, 0] = 0.0  # sample 0: pre-activation exactly 0 in units 0, 1 → sign 0
    out = model(x)
    h = x.reshape(T * B, 6)
    pre = F.linear(h, l1.weight, l1.bias).detach()
    hid = torch.sign(pre)
    assert (hid == 0).any()
    ref = F.linear(hid, l2.weight, l2.bias).reshape(T, B, 3).mean(0)
    torch.testing.assert_close(out.logits, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out.spikes[0], hid.reshape(T, B, -1).sum(0))
    mask = (pre.abs() <= 1).float()
    assert 0 < mask.mean() < 1
    c = torch.randn(B, 3)
    (out.logits * c).sum().backward()
    # dL/dlogits = c; logits = mean_t → each step's output current gets c/T
    d_out = (c / T).repeat(T, 1)                       # [T·B, 3] (t-major, as x.reshape)
    d_hid = d_out @ l2.weight.detach()
    d_pre = d_hid * mask
    torch.testing.assert_close(l1.weight.grad, d_pre.t() @ h, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(l1.bias.grad, d_pre.sum(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(l2.weight.grad, d_out.t() @ hid, rtol=1e-5, atol=1e-6)


# ---- bad values ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,args", [(SpikingMLP, ([8, 4],)), (SpikingConvNet, ((1, 8, 8), 3))])
def test_bad_neuron_and_norm_params_raise_naming_the_key(cls, args):
    kw = dict(channels=[2]) if cls is SpikingConvNet else {}
    with pytest.raises(ValueError, match="neuron"):
        cls(*args, neuron="tanh", **kw)
    bad = [({"foo": 1}, "foo"), ({"eps": 0}, "eps"), ({"eps": 1.0}, "eps"), ({"eps": True}, "eps"),
           ({"momentum": 2}, "momentum"), ({"momentum": 0}, "momentum"), ({"affine": 1}, "affine"),
           ({"track_running_stats": "no"}, "track_running_stats")]
    for params, key in bad:
        with pytest.raises(ValueError, match=key):
            cls(*args, norm="batch", norm_params=params, **kw)
    for norm in (None, "layer"):
        with pytest.raises(ValueError, match="norm_params"):
            cls(*args, norm=norm, norm_params={"eps": 1e-3}, **kw)
    ok = cls(*args, norm="batch", norm_params={"eps": 1e-3, "momentum": 1, "affine": False}, **kw)
    assert all(n.eps == 1e-3 and n.momentum == 1 and not n.affine for st in ok.stages for n in st.norms)


def test_fold_norm_refuses_non_lif_and_batch_statistics():
    for neuron in ("relu", "sign"):
        m = SpikingMLP([6, 4, 3], neuron=neuron).eval()
        with pytest.raises(ValueError, match="neuron"):
            fold_norm(m)
    m = SpikingMLP([6, 4, 3], norm="batch", norm_params={"track_running_stats": False}).eval()
    with pytest.raises(ValueError, match="running statistics"):
        fold_norm(m)
    assert len(fold_norm(SpikingMLP([6, 4, 3], norm="batch").eval())) == 2  # the ordinary case folds


# ---- stacked Monte-Carlo samples ---------------------------------------------------------------------
def _mesu(seed_base=0):
    count = iter(range(100))
    return lambda shape: MESU(shape, MESUParams(seed=seed_base + next(count)))


def test_mesu_set_mc_samples_gives_stacked_weights():
    layer = SynapticLinear(5, 3, synapse=_mesu(4))
    s = layer.synapse
    s.set_mc_samples(4)
    w = layer.scaled_weight()
    assert w.shape == (4, 3, 5) and s.noise.shape == (4, 3, 5)
    torch.testing.assert_close(s.weight.detach(), s.mu + s.sigma * s.noise, rtol=0, atol=0)
    assert not torch.equal(s.noise[0], s.noise[1])                     # S different draws
    x = torch.randn(7, 5)
    y = layer(x)
    assert y.shape == (4, 7, 3)
    for k in range(4):
        torch.testing.assert_close(y[k], F.linear(x, float(layer.gain) * s.weight[k], layer.bias))
    layer.eval()
    torch.testing.assert_close(layer.scaled_weight().detach(), layer.gain * s.mu)
    assert torch.equal(s.weight, s.mu)                                  # evaluation: w = μ
    assert layer.scaled_weight().shape == (3, 5)
    s.set_mc_samples(0)
    layer.train()
    assert layer.scaled_weight().shape == (3, 5)
    with pytest.raises(ValueError, match="batch of samples"):
        MetaplasticBinary((3, 5)).set_mc_samples(4)


def _per_sample_forward(model, x, k):
    """Hand forward of the relu MLP with sample k's weight slice of every layer."""
    T, B = x.shape[:2]
    h = x.reshape(T * B, -1)
    layers = model.layers()
    for i, layer in enumerate(layers):
        cur = F.linear(h, float(layer.gain) * layer.synapse.weight[k], layer.bias)
        h = _relu(cur) if i < len(layers) - 1 else cur
    return h.reshape(T, B, -1).mean(0)


def test_stacked_network_equals_separate_forwards():
    torch.manual_seed(5)
    S, T, B = 4, 2, 5
    model = SpikingMLP([20, 16, 4], neuron="relu", synapse=_mesu())
    for s in (l.synapse for l in model.layers()):
        s.set_mc_samples(S)
    x = torch.randn(T, B, 20)
    out = model(x)
    assert out.logits.shape == (S, B, 4)
    for k in range(S):
        torch.testing.assert_close(out.logits[k], _per_sample_forward(model, x, k), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out.logits[0], out.logits[1])
    # hidden activity: Σ_t act averaged over the S networks
    l1 = model.layers()[0]
    acts = torch.stack([_relu(F.linear(x, float(l1.gain) * l1.synapse.weight[k], l1.bias)).sum(0) for k in range(S)])
    torch.testing.assert_close(out.spikes[0], acts.mean(0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="stacked"):  # normalisation cannot see S networks
        m2 = SpikingMLP([20, 16, 4], neuron="relu", synapse=_mesu(), norm="layer")
        for s in (l.synapse for l in m2.layers()):
            s.set_mc_samples(S)
        m2(x)


@pytest.mark.parametrize("output", ["membrane", "count"])
def test_stacked_lif_network_equals_separate_forwards_and_gradients(output):
    # S networks in one pass of the LIF scan (batch S·B, sample-major) = S forwards with one weight each
    torch.manual_seed(7)
    S, T, B = 3, 4, 5
    model = SpikingMLP([20, 16, 4], synapse=_mesu(20), bias=False, output=output, threshold=0.5)
    syn = [l.synapse for l in model.layers()]
    for s in syn:
        s.set_mc_samples(S)
    x = torch.rand(T, B, 20) * 2.0
    y = torch.randint(0, 4, (B,))
    out = model(x)
    assert out.logits.shape == (S, B, 4) and out.spikes[0].shape == (S * B, 16)
    F.cross_entropy(out.logits.reshape(S * B, -1), y.repeat(S), reduction="sum").backward()
    W = [s.weight.detach().clone() for s in syn]
    G = [s.weight.grad.clone() for s in syn]
    assert sum(float(o.detach().sum()) for o in out.spikes) > 0  # the networks spike
    single = copy.deepcopy(model)
    ssyn = [l.synapse for l in single.layers()]
    for s in ssyn:
        s.set_mc_samples(0)
    for k in range(S):
        for s, w in zip(ssyn, W):                               # sample k's weights, as a plain pass
            s.refresh()
            with torch.no_grad():
                s.weight.copy_(w[k])
            s._stale = False
        o = single(x)
        torch.testing.assert_close(o.logits, out.logits[k], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(o.spikes[1], out.spikes[1][k * B:(k + 1) * B], rtol=0, atol=0)
        F.cross_entropy(o.logits, y, reduction="sum").backward()
        for s, g in zip(ssyn, G):
            torch.testing.assert_close(s.weight.grad, g[k], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(out.logits[0], out.logits[1])
    with pytest.raises(ValueError, match="zero state"):
        model(x, state=[m[:B] for m in out.state])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_stacked_update_equals_accumulated_samples_and_mesu_formula(reduction):
    torch.manual_seed(6)
    S, T, B = 4, 1, 8
    model = SpikingMLP([20, 16, 4], neuron="relu", synapse=_mesu(10))
    twin = copy.deepcopy(model)       # the same state: the per-sample (accumulate) route
    syn = [l.synapse for l in model.layers()]
    syn2 = [l.synapse for l in twin.layers()]
    mu0 = [s.mu.clone() for s in syn]
    sig0 = [s.sigma.clone() for s in syn]
    for s in syn:
        s.set_mc_samples(S)
    x = torch.randn(T, B, 20)
    y = torch.randint(0, 4, (B,))
    out = model(x)
    loss = F.cross_entropy(out.logits.reshape(S * B, -1), y.repeat(S), reduction=reduction)
    loss = loss / S if reduction == "sum" else loss  # loss averaged over samples
    loss.backward()
    G = [s.weight.grad.clone() for s in syn]
    noise = [s.noise.clone() for s in syn]
    W = [s.weight.detach().clone() for s in syn]
    assert all(g.shape == (S, *s.shape) for g, s in zip(G, syn))

    # per-sample gradients from separate single-weight forwards (loss_s / S each)
    per = [[None] * S for _ in syn]
    for k in range(S):
        ws = [W[i][k].clone().requires_grad_(True) for i in range(len(syn))]
        h = x.reshape(T * B, -1)
        for i, layer in enumerate(model.layers()):
            cur = F.linear(h, float(layer.gain) * ws[i], layer.bias)
            h = _relu(cur) if i < len(syn) - 1 else cur
        lk = F.cross_entropy(h.reshape(T, B, -1).mean(0), y, reduction=reduction) / S
        lk.backward()
        for i in range(len(syn)):
            per[i][k] = ws[i].grad.clone()
            torch.testing.assert_close(G[i][k], per[i][k], rtol=1e-5, atol=1e-8)

    for s in syn:
        s.update()
    # the twin: S accumulate() calls with the stacked gradient's slices (same noise), then update()
    for i, s in enumerate(syn2):
        for k in range(S):
            s.noise = noise[i][k].clone()
            s.accumulate(G[i][k])
        assert s.n_accumulated == S
        s.update()
    for a, b in zip(syn, syn2):
        assert torch.equal(a.mu, b.mu)
        assert torch.equal(a.sigma, b.sigma)

    # the MESU step written out, on the independently computed per-sample gradients
    for i, s in enumerate(syn):
        p = s.params
        gmu = sum(per[i])
        gsig = sum(per[i][k] * noise[i][k] for k in range(S))
        mu, sg = mu0[i], sig0[i]
        inv = 1.0 / (p.N * p.sigma_prior ** 2)
        mu_ref = mu + p.lr_mu * (-sg ** 2 * gmu + sg ** 2 * (p.mu_prior - mu) * inv)
        sig_ref = sg + p.lr_sigma * 0.5 * (-sg ** 2 * gsig + sg * (p.sigma_prior ** 2 - sg ** 2) * inv)
        torch.testing.assert_close(s.mu, mu_ref, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(s.sigma, sig_ref, rtol=1e-5, atol=1e-7)
        # the gradient terms matter (a step that ignored ḡ_μ or ḡ_σ would fail)
        mu_prior_only = mu + p.lr_mu * sg ** 2 * (p.mu_prior - mu) * inv
        sig_prior_only = sg + p.lr_sigma * 0.5 * sg * (p.sigma_prior ** 2 - sg ** 2) * inv
        assert (s.mu - mu_prior_only).abs().max() > 100 * 1e-7
        assert (s.sigma - sig_prior_only).abs().max() > 100 * 1e-7
