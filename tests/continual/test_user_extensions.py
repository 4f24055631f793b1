"""A user's own synapse model and own plugin, through a config ("package.module:Class"), through the
registry, through the Python API (Learner with plugin objects) and through ``metaspin run``."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest
import torch

from metaspin_snn.cli import main as cli_main
from metaspin_snn.continual import Learner, RunConfig, build_stream, run_stream
from metaspin_snn.continual.plugins import SI, Plugin, SynapseBoundary, make_plugins
from metaspin_snn.networks import load_model
from metaspin_snn.synapses import register_synapse, synapse_names, unregister_synapse

TINY = dict(stream="pmnist", n_tasks=2, train_subset=500, test_subset=100, hidden=[24], num_steps=2,
            batch_size=50, eval_batch_size=100, progress=False, output="membrane", reference="none")

SYN = '''
from dataclasses import dataclass

import torch

from metaspin_snn.synapses.base import SynapseModel


@dataclass(frozen=True)
class ClippedSGDParams:
    """w ← clip(w − lr·g, −bound, bound); the effective weight is w itself."""
    lr: float = 0.05
    bound: float = 0.3
    seed: int = 0

    def __post_init__(self):
        if not self.lr > 0:
            raise ValueError(f"ClippedSGDParams.lr must be > 0, got {self.lr}")


class ClippedSGD(SynapseModel):
    Params = ClippedSGDParams
    UPDATES = 0

    def __init__(self, shape, params: ClippedSGDParams, backend="auto"):
        super().__init__(shape, params, backend)
        g = torch.Generator().manual_seed(params.seed)
        fan_in = shape[1] if len(shape) > 1 else 1
        self.register_buffer("w", (torch.rand(shape, generator=g) * 2 - 1) / fan_in ** 0.5)

    def _compute_weight(self, sample):
        return self.w.clone()

    def _update_torch(self, grad):
        type(self).UPDATES += 1
        self.w.sub_(self.params.lr * grad).clamp_(-self.params.bound, self.params.bound)

    def _update_numba(self, grad):
        self._update_torch(grad)

    def hidden(self):
        return self.w
'''

PLUGIN = '''
import torch

from metaspin_snn.continual.plugins import Plugin


class CountingL2(Plugin):
    """Adds lam·Σ w² of the synapse weights and counts every hook it sees (a user's plugin)."""

    def __init__(self, lam: float = 0.0):
        self.lam = float(lam)
        self.counts = {}

    def _n(self, hook):
        self.counts[hook] = self.counts.get(hook, 0) + 1

    def before_task(self, ctx):
        self._n("before_task")

    def after_step(self, ctx):
        assert ctx.loss is not None and ctx.task is not None and ctx.optimizer is not None
        self._n("after_step")

    def after_task(self, ctx):
        self._n("after_task")

    def after_eval(self, ctx):
        assert ctx.row is not None and len(ctx.row) == ctx.n_tasks
        self._n("after_eval")

    def extra_loss(self, ctx):
        if self.lam == 0:
            return None
        from metaspin_snn.synapses.base import synapse_models
        return self.lam * sum((s.weight ** 2).sum() for s in synapse_models(ctx.model))

    def state_dict(self):
        return {"counts": dict(self.counts)}

    def load_state_dict(self, state):
        self.counts = dict(state["counts"])
'''


@pytest.fixture
def mylab(tmp_path, monkeypatch):
    """An importable package ``mylab`` (outside the library) with a synapse model and a plugin."""
    pkg = tmp_path / "pkgs" / "mylab"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "syn.py").write_text(textwrap.dedent(SYN))
    (pkg / "plugins.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    yield pkg
    for m in [m for m in sys.modules if m == "mylab" or m.startswith("mylab.")]:
        del sys.modules[m]


def test_config_names_a_users_synapse_and_plugin(mylab, tmp_path):
    cfg = RunConfig(**TINY, synapse="mylab.syn:ClippedSGD", synapse_params={"lr": 1.0, "bound": 0.25},
                    plugin="mylab.plugins:CountingL2+si", plugin_params={"lam": 1e-3, "c": 0.1},
                    out=str(tmp_path / "r"))
    learner = Learner.from_config(cfg)
    user, si, boundary = learner.plugins
    assert type(user).__name__ == "CountingL2" and user.lam == 1e-3 and isinstance(si, SI) and si.c == 0.1
    assert isinstance(boundary, SynapseBoundary)
    import mylab.syn as S
    S.ClippedSGD.UPDATES = 0
    model, res = learner.fit()
    steps = sum(t["steps"] for t in res.per_task)
    assert steps == 20 and user.counts == {"before_task": 2, "after_step": 20, "after_task": 2, "after_eval": 2}
    assert S.ClippedSGD.UPDATES == 20 * 2                                  # every step updated both layers
    ws = [s.w for s in model.modules() if isinstance(s, S.ClippedSGD)]
    assert len(ws) == 2 and all(float(w.abs().max()) <= 0.25 + 1e-7 for w in ws)  # its own rule ran
    assert res.matrix[0][0] > 0.4                                          # and it learned
    # the checkpoint rebuilds the user's model by its import path, and resumes with the plugin's state
    m2, ck = load_model(tmp_path / "r")
    assert ck["spec"]["synapse"] == "mylab.syn:ClippedSGD"
    assert torch.equal(next(s.w for s in m2.modules() if isinstance(s, S.ClippedSGD)), ws[0])
    assert ck["plugins"][0] == {"counts": user.counts}
    # the plugin's penalty changes training (same seed without it ends elsewhere)
    plain = run_stream(cfg.replace(plugin="si", plugin_params={"c": 0.1}, out=str(tmp_path / "p")))
    assert plain.matrix != res.matrix


def test_registry_and_api_objects(mylab, tmp_path):
    import mylab.plugins as UP
    import mylab.syn as S
    register_synapse("clipped", S.ClippedSGD)
    try:
        assert "clipped" in synapse_names()
        with pytest.raises(ValueError, match="already registered"):
            register_synapse("clipped", S.ClippedSGD)
        with pytest.raises(ValueError, match="built-in"):
            register_synapse("mesu", S.ClippedSGD)
        cfg = RunConfig(**TINY, synapse="clipped", synapse_params={"lr": 0.1}, out=str(tmp_path / "a"))
        with pytest.raises(ValueError, match="synapse_params.nope"):  # before any data loads
            Learner.from_config(RunConfig(**TINY, synapse="clipped", synapse_params={"nope": 1}))
        mine = UP.CountingL2(lam=0.0)
        learner = Learner.from_config(cfg, plugins=[mine], loggers=[])
        model, res = learner.fit(build_stream(cfg))
        assert mine.counts["after_step"] == 20 and len(res.matrix) == 2
        assert not (tmp_path / "a" / "epochs.csv").exists()                 # loggers=[]: none
    finally:
        unregister_synapse("clipped")
    with pytest.raises(ValueError, match="unknown synapse 'clipped'"):
        RunConfig(**TINY, synapse="clipped")


def test_cli_runs_a_users_classes(mylab, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["run", "pmnist", "--tasks", "2", "--synapse", "mylab.syn:ClippedSGD", "--plugin",
            "mylab.plugins:CountingL2", "--set", "train_subset=100", "--set", "test_subset=100",
            "--set", "hidden=[16]", "--set", "num_steps=2", "--epochs", "1", "--no-progress", "--out", str(out)]
    assert cli_main(argv) == 0
    d = json.loads((out / "results.json").read_text())
    assert d["config"]["synapse"] == "mylab.syn:ClippedSGD" and d["config"]["plugin"] == "mylab.plugins:CountingL2"
    assert d["complete"] and len(d["matrix"]) == 2


def test_bad_user_names_fail_before_training(mylab):
    with pytest.raises(ValueError, match="cannot import module 'nolab.syn'"):
        RunConfig(**TINY, synapse="nolab.syn:X")
    with pytest.raises(ValueError, match="has no 'Nope'"):
        RunConfig(**TINY, plugin="mylab.plugins:Nope")
    with pytest.raises(ValueError, match="not a SynapseModel"):
        RunConfig(**TINY, synapse="mylab.plugins:CountingL2")
    with pytest.raises(ValueError, match="not a subclass"):
        RunConfig(**TINY, plugin="mylab.syn:ClippedSGD")
    with pytest.raises(ValueError, match="plugin_params.lamb"):
        RunConfig(**TINY, plugin="mylab.plugins:CountingL2", plugin_params={"lamb": 1.0})
    with pytest.raises(TypeError, match="Plugin instances"):
        Learner(torch.nn.Linear(2, 2), None, config=RunConfig(**TINY), plugins=[object()])
    assert isinstance(make_plugins("mylab.plugins:CountingL2")[0], Plugin)
