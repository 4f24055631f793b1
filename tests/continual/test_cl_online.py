"""learner = "online" in the continual-learning runner: OnlineSNN trained one sample at a time on a
real split-MNIST subset, outputs, validation naming the key, resume-exactness."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from metaspin_snn.continual.config import RunConfig
from metaspin_snn.continual.online import OnlineLearner
from metaspin_snn.continual.runner import Results, build_stream, run_stream
from metaspin_snn.continual.scenarios import Scenario

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# split MNIST in two tasks (digits 0-4, 5-9), domain-IL: 5 shared outputs, chance = 20 %
TINY = dict(stream="split-mnist", n_tasks=2, classes_per_task=5, train_subset=300, test_subset=200,
            learner="online", num_steps=15, eval_batch_size=100, progress=False,
            online_params={"n_hidden": 64})


def test_two_task_online_run_writes_json_and_pngs(tmp_path):
    out = tmp_path / "r"
    res = run_stream(RunConfig(**TINY, out=str(out)))
    for f in ("results.json", "checkpoint.pt", "accuracy_matrix.png", "accuracy_stream.png", "hidden_hist.png",
              "report.md"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert (out / "hidden_hist.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = json.loads((out / "results.json").read_text())
    assert d["complete"] and d["config"]["learner"] == "online"
    R = np.array(d["matrix"])
    assert R.shape == (2, 2)
    assert R[0, 0] > 0.2 + 0.25                                   # well above chance (5 classes) after one pass
    assert d["metrics"]["acc"] == pytest.approx(R[-1].mean())
    assert d["metrics"]["bwt"] == pytest.approx(R[1, 0] - R[0, 0])
    assert [t["steps"] for t in d["per_task"]] == [300, 300]       # samples presented, one at a time
    assert d["per_task"][0]["spikes_per_sample"] > 0
    assert len(d["per_task"][0]["spikes_per_sample_per_layer"]) == 2
    hh = d["hidden_hists"]
    assert len(hh) == 2 and set(hh[0]) == {"hidden.m", "out.m"}
    assert hh[1]["hidden.m"]["mean_abs"] >= hh[0]["hidden.m"]["mean_abs"] > 0   # m only grows
    from metaspin_snn.networks import read_checkpoint
    ck = read_checkpoint(out / "checkpoint.pt")     # loads with weights_only=True, digest checked
    assert ck["model"]["samples_seen"] == 600 and ck["model"]["w_hidden"].shape == (64, 784)
    assert Results.load(out / "results.json").matrix == res.matrix
    assert "online" in res.title


def test_online_evaluation_matches_predict():
    cfg = RunConfig(**{**TINY, "train_subset": 60, "test_subset": 80})
    tasks = build_stream(cfg)
    sc = Scenario("domain")
    model = OnlineLearner.build(cfg, tasks, sc)
    assert (model.net.config.n_in, model.net.config.n_out, model.net.config.num_steps) == (784, 5, 15)
    model.train_task(tasks[0], sc, [torch.arange(60)])
    ev = model.evaluate(tasks[1], sc, batch_size=30)
    x = tasks[1].inputs("test", torch.arange(80))
    acc = float((model.net.predict(x, batch_size=30) == tasks[1].test_y).float().mean())
    assert ev.accuracy == pytest.approx(acc) and ev.n == 80


@pytest.mark.parametrize("changes, key", [
    ({"learner": "sgd"}, "'learner'"),
    ({"online_params": {"n_hiden": 10}}, "online_params.n_hiden"),
    ({"online_params": {"beta": 2.0}}, "online_params.beta"),
    ({"online_params": {"n_in": 10}}, "online_params.n_in"),
    ({"online_params": {"pmp_out.dmm": 0.1}}, "online_params.pmp_out.dmm"),
    ({"online_params": {"rule": "hebb"}}, "online_params.rule"),
    ({"plugin": "ewc"}, "'plugin'"),
    ({"scenario": "task"}, "'scenario'"),
    ({"learner": "bptt"}, "online_params.n_hidden"),            # online_params only with learner online
])
def test_bad_online_config_names_the_key(changes, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        RunConfig(**{**TINY, **changes})


def test_online_params_reach_the_learner():
    cfg = RunConfig(**{**TINY, "train_subset": 20, "test_subset": 20,
                       "online_params": {"n_hidden": 16, "rule": "pmp", "pmp_hidden.dm": 0.0}})
    model = OnlineLearner.build(cfg, build_stream(cfg), Scenario("class"))
    c = model.net.config
    assert (c.n_hidden, c.n_out, c.pmp_hidden.dm, c.pmp_out.dm) == (16, 10, 0.0, 0.02)


def test_online_resume_equals_uninterrupted(killed_and_resumed):
    full, resumed, _ = killed_and_resumed(dict(TINY, train_subset=120, test_subset=60))
    assert resumed.hidden_hists == full.hidden_hists


def test_cli_learner_online(tmp_path):
    import argparse

    from metaspin_snn.cli.run import add_args as add_run_args, build_configs
    p = argparse.ArgumentParser()
    add_run_args(p)
    (cfg,) = build_configs(p.parse_args(["split-mnist", "--learner", "online", "--set", "train_subset=2000",
                                         "--set", "online_params.n_hidden=100", "--out", str(tmp_path)]))
    assert (cfg.learner, cfg.epochs, cfg.num_steps, cfg.train_subset, cfg.online_params) == (
        "online", 1, 25, 2000, {"n_hidden": 100})
    with pytest.raises(ValueError, match="--learner online"):
        build_configs(p.parse_args(["split-mnist", "--learner", "online", "--synapse", "mtj"]))
    with pytest.raises(ValueError, match="'plugin'"):
        build_configs(p.parse_args(["split-mnist", "--learner", "online", "--plugin", "si"]))
    toml = str(CONFIGS / "split_mnist_online.toml")
    (t,) = build_configs(p.parse_args([toml, "--out", str(tmp_path)]))
    assert t.learner == "online" and t.online_params["rule"] == "pmp"
    with pytest.raises(ValueError, match="online_params"):
        build_configs(p.parse_args([toml, "--learner", "bptt"]))
    (n,) = build_configs(p.parse_args([str(CONFIGS / "split_nmnist_online.toml"), "--out", str(tmp_path)]))
    assert n.learner == "online" and n.stream == "split-nmnist"
