"""Runner keys of the authors' protocols: resolve_protocol, Monte-Carlo training (stacked and loop
paths) and evaluation, synapse lr schedule, norm_carry, input_norm, shuffle, loss_reduction — each
checked against a formula written here, on tiny networks and real MNIST subsets."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metaspin_snn.continual import runner as R
from metaspin_snn.continual.config import RunConfig
from metaspin_snn.continual.learner import DataView, Learner
from metaspin_snn.continual.plugins import Context, Plugin
from metaspin_snn.continual.scenarios import Scenario
from metaspin_snn.networks import SpikingMLP, evaluate
from metaspin_snn.networks.training import _mc_forward
from metaspin_snn.seed import seed_everything
from metaspin_snn.synapses.base import synapse_models
from metaspin_snn.synapses.bayesbinn import BayesianBinary
from metaspin_snn.synapses.mesu import MESU, MESUParams

BASE = dict(stream="pmnist", n_tasks=1, train_subset=40, test_subset=20, hidden=[16], num_steps=2,
            batch_size=40, eval_batch_size=20, progress=False, checkpoint=False, reference="none")


@pytest.fixture(scope="module")
def tasks2():
    """Two permuted-MNIST tasks of 40 train / 20 test samples (real data)."""
    return R.build_stream(RunConfig(**{**BASE, "n_tasks": 2}))


def _setup(cfg: RunConfig, tasks, seed: int = 0):
    scenario = R.Scenario(cfg.scenario, cfg.task_il)
    seed_everything(seed)
    model = R.build_model(cfg, tasks, scenario)
    opt = R.build_optimizer(cfg, model)
    return model, opt, (cfg, scenario)


def _train_task(model, opt, plugin, task, i, ctx):
    """One task of the learner's loop with ``plugin`` (the loop's own train_task)."""
    cfg, scenario = ctx
    learner = Learner(model, opt, config=cfg, scenario=scenario, plugins=[plugin], progress=False)
    learner.ctx.task, learner.ctx.task_index = task, i
    return learner.train_task(task, i)


class _Recorder(Plugin):
    """Records, after every backward pass, the ordinary parameters' and synapse weights' gradients."""

    def __init__(self):
        self.grads: list[dict[str, torch.Tensor | None]] = []

    def after_backward(self, ctx):
        model = ctx.model
        d = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
        for i, s in enumerate(synapse_models(model)):
            d[f"syn{i}"] = None if s.weight.grad is None else s.weight.grad.clone()
        self.grads.append(d)


def _count_forwards(model):
    calls = []
    orig = model.forward

    def fwd(x, *a, **k):
        calls.append(x.detach().clone())
        return orig(x, *a, **k)

    model.forward = fwd
    return calls


# ---- resolve_protocol ---------------------------------------------------------------------------------
def test_resolve_protocol_defaults_and_overrides():
    rp = lambda **kw: R.resolve_protocol(RunConfig(progress=False, **kw))  # noqa: E731
    assert rp(synapse="mesu") == {"train_samples": 10, "eval_samples": 10, "eval_average": "log_softmax",
                                  "loss_reduction": "sum"}
    assert rp(synapse="bayesbinn") == {"train_samples": 1, "eval_samples": 100, "eval_average": "logits",
                                       "loss_reduction": "mean"}
    base = {"train_samples": 1, "eval_samples": 0, "eval_average": "logits", "loss_reduction": "mean"}
    for name in ("real", "metaplastic", "mtj", "magnetoionic"):
        assert rp(synapse=name) == base, name
    # config values win, also falsy ones (eval_samples = 0)
    assert rp(synapse="mesu", train_samples=3, eval_samples=0, eval_average="logits", loss_reduction="mean") == \
        {"train_samples": 3, "eval_samples": 0, "eval_average": "logits", "loss_reduction": "mean"}
    assert rp(synapse="mesu", eval_samples=0) == {"train_samples": 10, "eval_samples": 0,
                                                  "eval_average": "log_softmax", "loss_reduction": "sum"}
    assert rp(synapse="bayesbinn", loss_reduction="sum", eval_average="log_softmax") == \
        {"train_samples": 1, "eval_samples": 100, "eval_average": "log_softmax", "loss_reduction": "sum"}
    assert rp(synapse="real", train_samples=4, eval_samples=2)["train_samples"] == 4
    for key, bad in (("train_samples", 0), ("eval_samples", -1), ("eval_average", "mean"),
                     ("loss_reduction", "max")):
        with pytest.raises(ValueError, match=key):
            RunConfig(**{key: bad})


# ---- Monte-Carlo evaluation ---------------------------------------------------------------------------
def _mesu_mlp(seed=0):
    count = iter(range(100))
    torch.manual_seed(seed)
    return SpikingMLP([12, 16, 4], neuron="relu",
                      synapse=lambda shape: MESU(shape, MESUParams(seed=seed * 10 + next(count))))


def _hand_logits(model, x, weights):
    T, B = x.shape[:2]
    h = x.reshape(T * B, -1)
    layers = model.layers()
    for i, (layer, w) in enumerate(zip(layers, weights)):
        cur = F.linear(h, float(layer.gain) * w, layer.bias)
        h = torch.clamp_min(cur, 0.0) if i < len(layers) - 1 else cur
    return h.reshape(T, B, -1).mean(0)


def _hand_mc(model, x, S, average):
    """S posterior draws w = μ + σ ε, ε from a copy of each synapse's generator (drawn layer after
    layer for every sample); the mean of the logits or of their log-softmax."""
    syn = synapse_models(model)
    gens = []
    for s in syn:
        g = torch.Generator()
        g.set_state(s._rng.get(torch.device("cpu")).get_state().clone())
        gens.append(g)
    outs = []
    for _ in range(S):
        ws = [s.mu + s.sigma * torch.randn(s.shape, generator=g) for s, g in zip(syn, gens)]
        z = _hand_logits(model, x, ws)
        outs.append(z if average == "logits" else torch.log_softmax(z, dim=1))
    return torch.stack(outs).mean(0)


@pytest.mark.parametrize("average", ["logits", "log_softmax"])
def test_mc_evaluation_equals_hand_ensemble(average):
    S = 5
    model = _mesu_mlp(1)
    x = torch.rand(2, 9, 12)
    y = torch.randint(0, 4, (9,))
    twin = copy.deepcopy(model)
    ref = _hand_mc(model, x, S, average)
    mu = [s.mu.clone() for s in synapse_models(model)]
    model.eval()
    with torch.no_grad():
        got = _mc_forward(model, x, None, S, average).logits
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    one = _hand_mc(twin, x, 1, average)
    assert not torch.allclose(ref, one, atol=1e-4)   # S fresh draws, not one draw S times
    # evaluate(): loss and accuracy of the averaged output, same draws (the twin has the same state)
    res = evaluate(twin, [(x, y)], samples=S, average=average)
    assert res.n == 9
    assert res.loss == pytest.approx(float(F.cross_entropy(ref.detach(), y)), rel=1e-5)
    assert res.accuracy == pytest.approx(float((ref.argmax(1) == y).float().mean()))
    assert twin.training                              # mode restored
    assert all(torch.equal(a, s.mu) for a, s in zip(mu, synapse_models(model)))  # state untouched


def test_evaluation_with_zero_samples_uses_mu_and_draws_nothing():
    model = _mesu_mlp(2)
    x = torch.rand(2, 9, 12)
    y = torch.randint(0, 4, (9,))
    syn = synapse_models(model)
    st = [s._rng.get(torch.device("cpu")).get_state().clone() for s in syn]
    ref = _hand_logits(model, x, [s.mu for s in syn])
    res = evaluate(model, [(x, y)], samples=0)
    assert res.loss == pytest.approx(float(F.cross_entropy(ref.detach(), y)), rel=1e-6)
    assert all(torch.equal(a, s._rng.get(torch.device("cpu")).get_state()) for a, s in zip(st, syn))
    model.eval()
    torch.testing.assert_close(model(x).logits, ref, rtol=1e-6, atol=1e-6)
    assert all(torch.equal(s.weight, s.mu) for s in syn)
    with pytest.raises(ValueError, match="samples"):
        evaluate(model, [(x, y)], samples=-1)
    with pytest.raises(ValueError, match="average"):
        evaluate(model, [(x, y)], samples=2, average="mean")


# ---- Monte-Carlo training: stacked and loop paths -------------------------------------------------
def _mc_cfg(**kw):
    return RunConfig(**{**BASE, "synapse": "mesu", "neuron": "relu", "norm": "none", "train_samples": 3, **kw})


@pytest.mark.parametrize("variant,stacked", [({}, True), ({"norm": "layer"}, False),
                                             ({"neuron": "lif", "output": "membrane"}, True)])
def test_mc_training_path_choice(tasks2, variant, stacked):
    cfg = _mc_cfg(**variant)
    model, opt, ctx = _setup(cfg, tasks2[:1])
    rec = _Recorder()
    calls = _count_forwards(model)
    loss, n = _train_task(model, opt, rec, tasks2[0], 0, ctx)
    assert n == 1 and math.isfinite(loss) and loss > 0
    g = rec.grads[0]["syn0"]
    if stacked:  # one forward with weights [S, out, in]; the stacked gradient reaches the update
        assert len(calls) == 1 and g is not None and g.shape == (3, 16, 784)
    else:        # S forwards; each sample went into the sums, weight.grad = their summed gradient
        assert len(calls) == 3 and g is not None and g.shape == (16, 784)
    assert all(s.mc_samples == 0 for s in synapse_models(model))  # reset after the task
    model.train()
    assert model.layers()[0].scaled_weight().shape == (16, 784)


def _hand_mesu_step(model, x, y, noise, S, reduction="sum"):
    """μ, σ after one MESU step on S samples w_s = μ + σ ε_s: per-sample gradients of loss_s / S by
    autograd on a hand-written network, then the MESU equations."""
    syn = synapse_models(model)
    grads = [[None] * S for _ in syn]
    for k in range(S):
        ws = [(s.mu + s.sigma * noise[i][k]).requires_grad_(True) for i, s in enumerate(syn)]
        z = _hand_logits(model, x, ws)
        (F.cross_entropy(z, y, reduction=reduction) / S).backward()
        for i in range(len(syn)):
            grads[i][k] = ws[i].grad
    out = []
    for i, s in enumerate(syn):
        p = s.params
        gmu = sum(grads[i])
        gsig = sum(grads[i][k] * noise[i][k] for k in range(S))
        mu, sg = s.mu, s.sigma
        inv = 1.0 / (p.N * p.sigma_prior ** 2)
        out.append((mu + p.lr_mu * (-sg ** 2 * gmu + sg ** 2 * (p.mu_prior - mu) * inv),
                    sg + p.lr_sigma * 0.5 * (-sg ** 2 * gsig + sg * (p.sigma_prior ** 2 - sg ** 2) * inv)))
    return out


def test_stacked_and_loop_paths_make_the_same_step(tasks2, monkeypatch):
    S = 3
    cfg = _mc_cfg()
    task = tasks2[0]
    m_st, opt_st, ctx = _setup(cfg, [task])
    m_lp, opt_lp, _ = _setup(cfg, [task])
    m_lp.load_state_dict(m_st.state_dict())
    before = copy.deepcopy(m_st)
    # the data of the single batch (order does not matter for a summed loss over the batch)
    x = task.inputs("train", torch.arange(task.size("train"))).reshape(task.size("train"), -1)
    x = x.unsqueeze(0).expand(cfg.num_steps, -1, -1)
    y = task.train_y.clone()

    _train_task(m_st, opt_st, Plugin(), task, 0, ctx)
    noise = [s.noise.clone() for s in synapse_models(m_st)]
    assert all(n.shape[0] == S for n in noise)

    monkeypatch.setattr(MESU, "SAMPLE_BATCH", False)   # same network, loop path
    for s in synapse_models(m_lp):
        s._stale = True     # first loop sample drawn fresh, as the stacked path does
    calls = _count_forwards(m_lp)
    _train_task(m_lp, opt_lp, Plugin(), task, 0, ctx)
    assert len(calls) == S
    monkeypatch.undo()

    ref = _hand_mesu_step(before, x, y, noise, S)
    for a, b, (mu_ref, sig_ref) in zip(synapse_models(m_st), synapse_models(m_lp), ref):
        torch.testing.assert_close(a.mu, mu_ref, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(a.sigma, sig_ref, rtol=1e-5, atol=1e-7)
        assert torch.equal(b.noise, a.noise[-1])  # the loop drew the same ε (last sample kept)
        torch.testing.assert_close(b.mu, a.mu, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(b.sigma, a.sigma, rtol=1e-5, atol=1e-7)
    a0, b0 = synapse_models(before)[0], synapse_models(m_st)[0]
    assert (b0.mu - a0.mu).abs().max() > 1e-5    # a real step


@pytest.mark.parametrize("train_samples", [1, 3])
def test_loss_reduction_sum_is_batch_size_times_mean(tasks2, train_samples):
    B = 40
    grads = {}
    losses = {}
    for red in ("mean", "sum"):
        cfg = _mc_cfg(train_samples=train_samples, loss_reduction=red)
        model, opt, ctx = _setup(cfg, tasks2[:1])
        rec = _Recorder()
        losses[red], _ = _train_task(model, opt, rec, tasks2[0], 0, ctx)
        grads[red] = rec.grads[0]
    assert losses["sum"] == pytest.approx(B * losses["mean"], rel=1e-5)
    keys = [k for k, v in grads["mean"].items() if v is not None]
    # synapse gradients: one sample (train_samples 1) or the stacked [S, out, in] one (stacked path)
    assert {"stages.0.layers.0.bias", "syn0", "syn1"} <= set(keys)
    assert grads["mean"]["syn0"].shape == ((16, 784) if train_samples == 1 else (3, 16, 784))
    for k in keys:
        want = B * grads["mean"][k]
        assert want.abs().max() > 0
        torch.testing.assert_close(grads["sum"][k], want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))


def test_loss_reduction_real_weights(tasks2):
    grads = {}
    for red in ("mean", "sum"):
        cfg = RunConfig(**BASE, loss_reduction=red)
        model, opt, ctx = _setup(cfg, tasks2[:1])
        rec = _Recorder()
        _train_task(model, opt, rec, tasks2[0], 0, ctx)
        grads[red] = rec.grads[0]
    w = "stages.0.layers.0.weight"
    assert grads["mean"][w] is not None
    for k, v in grads["mean"].items():
        if v is not None:
            want = 40 * v
            torch.testing.assert_close(grads["sum"][k], want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))


# ---- synapse lr schedule ------------------------------------------------------------------------
def test_cosine_factor_formula():
    for E in (1, 3, 7):
        for e in range(0, E + 1):
            assert R.cosine_factor(e, E) == pytest.approx(0.5 * (1 + math.cos(math.pi * e / E)), abs=1e-15)
    assert R.cosine_factor(0, 5) == 1.0 and R.cosine_factor(5, 5) == pytest.approx(0.0, abs=1e-15)
    assert R.cosine_factor(2, 4) == pytest.approx(0.5)


def test_set_synapse_lr_scales_base_not_current():
    bb = BayesianBinary((4, 3))
    me = MESU((4, 3))
    mod = torch.nn.ModuleList([bb, me])
    base = {}
    lr0 = bb.params.lr
    R.set_synapse_lr(mod, base, 0.5)
    R.set_synapse_lr(mod, base, 0.5)       # base × factor, not compounded
    assert bb.params.lr == pytest.approx(0.5 * lr0) and base == {id(bb): lr0}
    assert bb.params.tau == type(bb.params)().tau  # the other fields kept
    assert me.params == MESUParams()              # no lr field: untouched
    R.set_synapse_lr(mod, base, 1.0)
    assert bb.params.lr == lr0


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_cosine_schedule_in_train_task(tasks2, monkeypatch, schedule):
    E = 3
    cfg = RunConfig(**{**BASE, "synapse": "bayesbinn", "synapse_params": {"lr": 0.01}, "epochs": E,
                       "batch_size": 20, "synapse_lr_schedule": schedule})
    model, opt, ctx = _setup(cfg, tasks2[:1])
    seen: list[tuple[int, float]] = []
    orig = BayesianBinary.update

    def spy(self, grad=None):
        seen.append((id(self), self.params.lr))
        return orig(self, grad)

    monkeypatch.setattr(BayesianBinary, "update", spy)
    _, n = _train_task(model, opt, Plugin(), tasks2[0], 0, ctx)
    assert n == 2 * E
    syn = synapse_models(model)
    assert len(seen) == len(syn) * n
    for step in range(n):
        e = step // 2 + 1  # epochs 1..E, two steps each
        f = 0.5 * (1 + math.cos(math.pi * e / E)) if schedule == "cosine" else 1.0
        for _, lr in seen[step * len(syn):(step + 1) * len(syn)]:
            assert lr == pytest.approx(0.01 * f, rel=1e-12, abs=1e-18)
    assert all(s.params.lr == 0.01 for s in syn)   # restored to the base after the task


# ---- norm_carry -------------------------------------------------------------------------------------
def _sd(mod):
    return {k: v.clone() for k, v in mod.state_dict().items()}


def _sd_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_carry_norm_set_copies_previous_set():
    torch.manual_seed(0)
    m = SpikingMLP([6, 5, 3], norm="batch", n_norm_sets=3, neuron="relu")
    fresh = [_sd(st.norms[2]) for st in m.stages]
    m.train()
    m(torch.randn(1, 8, 6) + 2.0, task=0)
    for st in m.stages:
        with torch.no_grad():
            st.norms[0].weight.uniform_(0.5, 1.5)
    R.carry_norm_set(m, 1)
    for st, f in zip(m.stages, fresh):
        assert _sd_equal(_sd(st.norms[1]), _sd(st.norms[0]))
        assert _sd_equal(_sd(st.norms[2]), f)                  # other sets untouched
        with torch.no_grad():
            st.norms[1].weight.add_(1.0)                        # a copy, not shared tensors
        assert not torch.equal(st.norms[1].weight, st.norms[0].weight)


@pytest.mark.parametrize("carry", [True, False])
def test_norm_carry_in_run_stream(tasks2, tmp_path, monkeypatch, carry):
    cfg = RunConfig(**{**BASE, "n_tasks": 2, "scenario": "task", "task_il": "norm", "norm": "batch",
                       "neuron": "relu", "norm_carry": carry, "out": str(tmp_path / "r")})
    snaps = []
    orig = Learner.train_task

    def spy(self, *a, **k):
        model = self.model
        before = [[_sd(n) for n in st.norms] for st in model.stages]
        out = orig(self, *a, **k)
        snaps.append((before, [[_sd(n) for n in st.norms] for st in model.stages]))
        return out

    monkeypatch.setattr(Learner, "train_task", spy)
    R.run_stream(cfg, tasks=tasks2)
    assert len(snaps) == 2
    (b0, a0), (b1, _) = snaps
    for st in range(len(b0)):
        assert not _sd_equal(a0[st][0], b0[st][0])           # task 1 trained its set
        assert _sd_equal(a0[st][1], b0[st][1])               # and left set 1 alone
        if carry:
            assert _sd_equal(b1[st][1], a0[st][0])
        else:
            assert _sd_equal(b1[st][1], b0[st][1])           # fresh initialisation
            assert float(b1[st][1]["running_mean"].abs().max()) == 0.0


def test_norm_carry_config_checks():
    for kw in (dict(scenario="task", task_il="heads", norm="batch"),
               dict(scenario="domain", task_il="norm", norm="batch")):
        with pytest.raises(ValueError, match="norm_carry"):
            RunConfig(norm_carry=True, **kw)
    RunConfig(norm_carry=True, scenario="task", task_il="norm", norm="batch")


# ---- input_norm, shuffle ----------------------------------------------------------------------------
def _np_stats(task, split):
    x = (task.train_x if split == "train" else task.test_x).numpy().astype(np.float64) / 255.0
    return float(x.mean()), float(x.std(ddof=1))


def test_input_norm_standardize_uses_each_splits_statistics(tasks2):
    cfg = RunConfig(**{**BASE, "n_tasks": 2, "input_norm": "standardize"})
    ctx = DataView(cfg, Scenario())
    g = torch.Generator().manual_seed(0)
    stats = {}
    for task in tasks2:
        for split in ("train", "test"):
            m, sd = _np_stats(task, split)
            stats[task.id, split] = (m, sd)
            x = task.inputs(split, torch.arange(7))
            got = ctx.encode(task, x, g, split)
            want = ((x.reshape(7, -1).double() - m) / sd).float().unsqueeze(0).expand(cfg.num_steps, -1, -1)
            assert got.shape == (cfg.num_steps, 7, 784)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert stats[0, "train"] != stats[0, "test"] and stats[0, "train"] != stats[1, "train"]
    x = tasks2[0].inputs("train", torch.arange(3))
    assert not torch.allclose(ctx.encode(tasks2[0], x, g, "train"), ctx.encode(tasks2[0], x, g, "test"))
    plain = DataView(RunConfig(**BASE), Scenario()).encode(tasks2[0], x, g)
    torch.testing.assert_close(plain, x.reshape(3, -1).unsqueeze(0).expand(cfg.num_steps, -1, -1))
    for enc in ("rate", "latency"):
        with pytest.raises(ValueError, match="input_norm"):
            RunConfig(input_norm="standardize", encoding=enc)


@pytest.mark.parametrize("shuffle", [False, True])
def test_shuffle_false_trains_in_file_order(tasks2, shuffle):
    cfg = RunConfig(**{**BASE, "batch_size": 10, "shuffle": shuffle, "input_norm": "standardize"})
    task = tasks2[0]
    model, opt, ctx = _setup(cfg, [task])
    calls = _count_forwards(model)
    _train_task(model, opt, Plugin(), task, 0, ctx)
    assert len(calls) == 4
    m, sd = _np_stats(task, "train")
    allx = ((task.inputs("train", torch.arange(40)).reshape(40, -1).double() - m) / sd).float()
    seen = []
    for c in calls:
        assert c.shape == (cfg.num_steps, 10, 784)
        # which training samples were in this batch
        d = torch.cdist(c[0].double(), allx.double())
        assert float(d.min(1).values.max()) < 1e-3
        seen.append(d.argmin(1))
    order = torch.cat(seen)
    assert sorted(order.tolist()) == list(range(40))     # every sample once per epoch
    if shuffle:
        assert order.tolist() != list(range(40))
    else:
        assert order.tolist() == list(range(40))
        torch.testing.assert_close(calls[0][0], allx[:10], rtol=1e-5, atol=1e-5)


# ---- Monte-Carlo samples with plugins and config checks of norm_params values ------------------------------
@pytest.mark.parametrize("params", [{"eps": 0}, {"momentum": 2.0}, {"affine": 1}])
def test_config_rejects_bad_norm_param_values(params):
    with pytest.raises(ValueError, match=f"config key 'norm_params.{next(iter(params))}'"):
        RunConfig(norm="batch", norm_params=params)


@pytest.mark.parametrize("plugin,params", [("replay", {"mem_per_task": 10, "replay_batch": 5}), ("si", {}),
                                           ("ewc", {"fisher_samples": 20})])
def test_plugins_use_the_sample_loop_not_stacked_weights(tasks2, tmp_path, plugin, params, monkeypatch):
    """With a plugin the runner takes one forward pass per sample (plugins read single weights), so
    replay's memory batch, SI's path integral and EWC's penalty see [out, in] weights; the run completes."""
    shapes = []
    orig = MESU.set_mc_samples
    monkeypatch.setattr(MESU, "set_mc_samples", lambda self, n: (shapes.append(n), orig(self, n))[1])
    cfg = _mc_cfg(n_tasks=2, train_samples=2, eval_samples=0, plugin=plugin, plugin_params=params,
                  out=str(tmp_path / "r"))
    res = R.run_stream(cfg, tasks=tasks2)
    assert res.complete and np.isfinite(np.asarray(res.matrix)).all()
    assert not any(n >= 2 for n in shapes)


def test_si_sees_the_mean_gradient_with_monte_carlo_samples(tasks2):
    """Loop path, S = 2: after the samples every synapse's weight.grad is the summed (mean) gradient, so
    SI's running path integral ω of the synapse weights is not zero (accumulate() alone clears the grads)."""
    from metaspin_snn.continual.plugins import make_plugin
    cfg = _mc_cfg(n_tasks=2, train_samples=2, eval_samples=0, plugin="si", synapse="metaplastic",
                  synapse_params={})
    model, opt, ctx = _setup(cfg, tasks2[:1])
    plugin = make_plugin("si")
    plugin.before_task(Context(model=model, task=tasks2[0]))
    _train_task(model, opt, plugin, tasks2[0], 0, ctx)
    om = {k: v for k, v in plugin.omega.items() if k.endswith("<w_eff>")}
    assert om, "SI keeps a path integral per synapse weight"
    assert all(float(v.abs().sum()) > 0 for v in om.values())
