"""``train_classifier`` / ``metaspin train``: a tiny run writes a complete JSON result and a checkpoint
in the library's one format (rebuilt by ``load_model``) into a fresh run folder, atomically."""
from __future__ import annotations

import argparse
import importlib.metadata
import json

import pytest

from metaspin_snn.cli.train import add_args as add_train_args
from metaspin_snn.cli.train import main as run_train
from metaspin_snn.networks import SpikingMLP, load_model
from metaspin_snn.networks.classifier import train_classifier


def test_train_classifier_writes_json_and_checkpoint(tmp_path, data_root):
    out = tmp_path / "run"
    res = train_classifier("mnist", synapse="real", epochs=1, batch_size=50, num_steps=4, lr=5e-3, seed=3,
                           data_root=data_root, out=out, hidden=(32,), n_train=600, n_test=200,
                           encoding="direct", progress=False)
    on_disk = json.loads((out / "results.json").read_text())
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    for key in ("config", "seed", "versions", "test_accuracy", "wall_time_s", "spikes_per_sample",
                "spike_rate_per_neuron_step", "history"):
        assert key in on_disk
    assert on_disk["seed"] == 3 and on_disk["config"]["n_train"] == 600 and on_disk["config"]["norm"] is None
    assert on_disk["versions"]["torch"] == importlib.metadata.version("torch")
    assert on_disk["test_accuracy"] == res["test_accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert len(on_disk["spike_rate_per_neuron_step"]) == 2
    # the run folder rebuilds the trained network (spec + weights), with the train config beside it
    model, ck = load_model(out)
    assert isinstance(model, SpikingMLP) and ck["seed"] == 3 and ck["train_config"]["hidden"] == [32]
    # the same folder again is refused before any data loads; overwrite replaces it
    with pytest.raises(ValueError, match="not empty"):
        train_classifier("mnist", out=out, data_root=data_root)
    assert json.loads((out / "results.json").read_text()) == on_disk


def test_run_train_cli_and_synapse_param_parsing(tmp_path, data_root, capsys):
    p = argparse.ArgumentParser()
    add_train_args(p)
    args = p.parse_args(["--synapse", "metaplastic", "--num-steps", "3", "--hidden", "16", "--n-train", "200",
                         "--n-test", "100", "--batch-size", "50", "--out", str(tmp_path / "r"), "--data-root",
                         str(data_root), "--no-progress", "--synapse-param", "m=0.5", "--seed", "1"])
    assert run_train(args) == 0
    out = json.loads((tmp_path / "r" / "results.json").read_text())
    assert out["config"]["synapse_params"] == {"m": 0.5} and out["config"]["norm"] == "batch"
    assert "test accuracy" in capsys.readouterr().out


def test_default_folders_differ_by_config(tmp_path, monkeypatch):
    """A sweep over m or lr never overwrites itself: the default folder carries a config hash."""
    from metaspin_snn.networks.classifier import default_train_out
    base = dict(dataset="mnist", arch="mlp", synapse="metaplastic", synapse_params={"m": 1.0}, lr=1e-3)
    a, b = default_train_out(base), default_train_out({**base, "synapse_params": {"m": 2.0}})
    c = default_train_out({**base, "lr": 2e-3})
    assert a.parent == b.parent == c.parent and len({a.name[-8:], b.name[-8:], c.name[-8:]}) == 3


def test_train_classifier_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="dataset"):
        train_classifier("cifar", out=tmp_path)
    with pytest.raises(ValueError, match="encoding"):
        train_classifier("mnist", encoding="latency", out=tmp_path)
    with pytest.raises(ValueError, match="epochs"):
        train_classifier("mnist", epochs=0, out=tmp_path)
    with pytest.raises(ValueError, match="unknown synapse"):
        train_classifier("mnist", synapse="nope", out=tmp_path)
