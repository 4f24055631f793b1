"""Checkpoints, norm folding, task-specific heads/norms, and clear errors."""
from __future__ import annotations

import pytest
import torch

from metaspin_snn.networks import (SpikingConvNet, SpikingMLP, SynapticConv2d, SynapticLinear, fold_norm,
                                   leaky_scan, load_checkpoint, make_leaky, make_optimizer, save_checkpoint,
                                   train_step)
from metaspin_snn.synapses.registry import synapse_factory
from metaspin_snn.seed import seed_everything


def _train_a_bit(model, n_in, steps=3, task=None, T=6, B=16):
    opt = make_optimizer(model, lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = (torch.rand(T, B, n_in, generator=g) < 0.3).to(model.stages[0].layers[0].gain.dtype)
        y = torch.randint(0, 4, (B,), generator=g)
        train_step(model, opt, x, y, task=task)
    return opt


@pytest.mark.parametrize("kind", ["toy", "metaplastic", "mesu"])
def test_checkpoint_roundtrip_identical_outputs(tmp_path, toy_sign, kind):
    def build(seed):
        seed_everything(seed)
        fac = toy_sign if kind == "toy" else synapse_factory(kind, seed=seed)
        return SpikingMLP([30, 20, 4], synapse=fac, norm="batch", threshold=0.5)

    model = build(0)
    opt = _train_a_bit(model, 30)
    path = save_checkpoint(tmp_path / "ck.pt", model, opt, note="x")
    fresh = build(7)
    opt2 = make_optimizer(fresh, lr=1e-2)
    assert load_checkpoint(path, fresh, opt2)["note"] == "x"
    sa, sb = model.state_dict(), fresh.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:  # hidden synapse state included (tensors, and extra state such as generator states)
        assert torch.equal(sa[k], sb[k]) if isinstance(sa[k], torch.Tensor) else repr(sa[k]) == repr(sb[k]), k
    hid = [l.synapse.hidden() for l in model.layers()]
    assert all(torch.equal(h, l.synapse.hidden()) for h, l in zip(hid, fresh.layers()))
    model.eval(), fresh.eval()
    x = (torch.rand(6, 8, 30) < 0.3).float()
    o1, o2 = model(x), fresh(x)
    assert torch.equal(o1.logits, o2.logits)
    assert all(torch.equal(a, b) for a, b in zip(o1.spikes, o2.spikes))
    assert not list(tmp_path.glob("*.tmp"))


def test_load_checkpoint_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt", SpikingMLP([3, 2]))


def _run_folded(layers, x):
    h = x
    for fl in layers:
        cur = h @ fl.weight.t() + fl.bias
        lif = make_leaky(0.5, 1.0, fl.reset)
        lif.beta = fl.beta
        lif.threshold = fl.threshold
        h, _ = leaky_scan(cur, lif)
    return h


@pytest.mark.parametrize("mode", ["weights", "threshold"])
def test_fold_norm_reproduces_eval_spikes(mode):
    seed_everything(0)
    model = SpikingMLP([40, 30, 4], norm="batch", beta=0.8).double()
    _train_a_bit(model, 40, steps=4)
    for st in model.stages:  # make the affine part non-trivial but keep γ > 0 for threshold mode
        st.norms[0].weight.data.uniform_(0.5, 2.0)
        st.norms[0].bias.data.uniform_(-0.3, 0.3)
    model.eval()
    x = (torch.rand(10, 32, 40, dtype=torch.float64) < 0.3).double()
    ref = model(x)
    folded = fold_norm(model, mode=mode)
    assert [f.kind for f in folded] == ["linear", "linear"]
    out = _run_folded(folded, x)
    assert torch.equal(out.sum(0), ref.spikes[-1])
    assert ref.spikes[0].sum() > 0
    if mode == "threshold":
        assert torch.equal(folded[0].weight, model.layers()[0].effective_weight())


def test_fold_norm_errors():
    m = SpikingMLP([5, 3], norm="layer")
    m.eval()
    with pytest.raises(ValueError, match="layer norm"):
        fold_norm(m)
    m = SpikingMLP([5, 3], norm="batch")
    with pytest.raises(ValueError, match="eval"):
        fold_norm(m)
    m.eval()
    m.stages[0].norms[0].weight.data[0] = -1.0
    with pytest.raises(ValueError, match="non-positive"):
        fold_norm(m, mode="threshold")
    fold_norm(m, mode="weights")


def test_heads_and_norm_sets_select_by_task():
    seed_everything(0)
    model = SpikingMLP([20, 16, 4], heads=2, norm="batch", n_norm_sets=2, threshold=0.5)
    assert len(model.stages[-1].layers) == 2 and len(model.stages[0].norms) == 2
    _train_a_bit(model, 20, steps=1, task=1)
    assert model.stages[-1].layers[0].weight.grad is None  # head 0 untouched by a task-1 step
    assert model.stages[-1].layers[1].weight.grad is not None
    model.eval()
    x = (torch.rand(6, 4, 20) < 0.4).float()
    a, b = model(x, task=0).logits, model(x, task=1).logits
    assert a.shape == b.shape == (4, 4)
    with pytest.raises(ValueError, match="task"):
        model(x)
    with pytest.raises(ValueError, match="task"):
        model(x, task=2)


def test_input_shape_and_dtype_errors():
    model = SpikingMLP([784, 10, 3])
    with pytest.raises(ValueError, match=r"\[T, B, features\].*784.*got shape \[5, 2, 100\]"):
        model(torch.zeros(5, 2, 100))
    with pytest.raises(ValueError, match=r"\[T, B, features\]"):
        model(torch.zeros(784))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(5, 2, 784, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0]])
    x = torch.zeros(5, 2, 784)
    x[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(x)
    assert model(torch.zeros(5, 2, 1, 28, 28)).logits.shape == (2, 3)  # image input is flattened
    conv = SpikingConvNet((2, 34, 34), 10, channels=(4,))
    with pytest.raises(ValueError, match=r"\[T, B, C, H, W\] = \[T, B, 2, 34, 34\]"):
        conv(torch.zeros(3, 2, 1, 28, 28))
    opt = make_optimizer(model)
    with pytest.raises(ValueError, match="targets must lie"):
        train_step(model, opt, torch.zeros(5, 2, 784), torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="integer"):
        train_step(model, opt, torch.zeros(5, 2, 784), torch.tensor([0.0, 1.0]))


def test_constructor_errors(toy_sign):
    with pytest.raises(ValueError, match="reset"):
        SpikingMLP([4, 2], reset="none")
    with pytest.raises(ValueError, match="beta"):
        SpikingMLP([4, 2], beta=1.5)
    with pytest.raises(ValueError, match="threshold"):
        SpikingMLP([4, 2], threshold=0.0)
    with pytest.raises(ValueError, match="one per layer"):
        SpikingMLP([4, 3, 2], synapse=[toy_sign])
    with pytest.raises(ValueError, match="n_norm_sets"):
        SpikingMLP([4, 2], n_norm_sets=2)
    with pytest.raises(ValueError, match="shape"):
        SynapticLinear(4, 3, synapse=lambda s: toy_sign((3, 5)))
    with pytest.raises(TypeError, match="SynapseModel"):
        SynapticLinear(4, 3, synapse=lambda s: torch.zeros(s))
    with pytest.raises(ValueError, match="gain"):
        SynapticConv2d(1, 2, 3, gain=-1.0)


def test_layers_with_synapse_model(toy_sign):
    torch.manual_seed(0)
    lin = SynapticLinear(50, 7, synapse=toy_sign)
    # auto gain: initial effective weight has the RMS of PyTorch's default init, 1/sqrt(3·fan_in)
    w = lin.effective_weight()
    assert torch.allclose(w.pow(2).mean().sqrt(), torch.tensor(1 / (3 * 50) ** 0.5), rtol=1e-5)
    x = torch.rand(9, 50)
    y = lin(x)
    torch.testing.assert_close(y, x @ w.t() + lin.bias)
    y.sum().backward()
    assert lin.synapse.weight.grad is not None and lin.synapse.weight.grad.shape == (7, 50)
    conv = SynapticConv2d(2, 3, 3, padding=1, synapse=toy_sign)
    out = conv(torch.rand(4, 2, 8, 8))
    assert out.shape == (4, 3, 8, 8)
    ref = torch.nn.functional.conv2d(torch.rand(1, 2, 8, 8), conv.effective_weight(), conv.bias, padding=1)
    assert ref.shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\[N, 2, H, W\]"):
        conv(torch.rand(4, 3, 8, 8))


def test_record_membrane_traces():
    model = SpikingMLP([10, 6, 3])
    model.record = True
    out = model(torch.rand(7, 2, 10))
    assert [m.shape for m in out.membrane] == [(7, 2, 6), (7, 2, 3)]
    assert out.out_spikes.shape == (7, 2, 3)
    model.record = False
    assert model(torch.rand(7, 2, 10)).membrane is None


def test_fold_norm_convnet_weights_mode():
    seed_everything(1)
    model = SpikingConvNet((1, 10, 10), 3, channels=(4,), kernel_size=3, pool=2, norm="batch",
                           threshold=0.5).double()
    opt = make_optimizer(model, lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = (torch.rand(5, 8, 1, 10, 10, generator=g) < 0.4).double()
        train_step(model, opt, x, torch.randint(0, 3, (8,), generator=g))
    for st in model.stages:
        st.norms[0].weight.data.uniform_(0.5, 2.0)
    model.eval()
    x = (torch.rand(5, 8, 1, 10, 10, generator=g) < 0.4).double()
    ref = model(x)
    f_conv, f_lin = fold_norm(model)
    assert f_conv.kind == "conv" and f_conv.pool == 2 and f_conv.padding == 1
    cur = torch.nn.functional.conv2d(x.reshape(40, 1, 10, 10), f_conv.weight, f_conv.bias, padding=f_conv.padding)
    cur = torch.nn.functional.max_pool2d(cur, f_conv.pool).reshape(5, 8, 4, 5, 5)
    s1, _ = leaky_scan(cur, model.stages[0].lif)
    cur2 = s1.reshape(5, 8, -1) @ f_lin.weight.t() + f_lin.bias
    s2, _ = leaky_scan(cur2, model.stages[1].lif)
    assert torch.equal(s1.sum(0).reshape(8, -1), ref.spikes[0])
    assert torch.equal(s2.sum(0), ref.spikes[1])
