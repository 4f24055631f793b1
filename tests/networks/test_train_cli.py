"""``train_classifier`` / ``metaspin train`` hooks: a tiny run writes a complete JSON result atomically."""
from __future__ import annotations

import argparse
import importlib.metadata
import json

import pytest

from metaspin_snn.networks import SpikingMLP, load_checkpoint
from metaspin_snn.networks.train import add_train_args, build_model, run_train, train_classifier


def test_train_classifier_writes_json_and_checkpoint(tmp_path, data_root):
    res = train_classifier("mnist", synapse="real", epochs=1, batch_size=50, num_steps=4, lr=5e-3, seed=3,
                           data_root=data_root, out_dir=tmp_path, hidden=(32,), n_train=600, n_test=200,
                           encoding="direct", progress=False)
    path = tmp_path / "train_mnist_mlp_real_seed3.json"
    on_disk = json.loads(path.read_text())
    assert not list(tmp_path.glob("*.tmp"))
    for key in ("config", "seed", "versions", "test_accuracy", "wall_time_s", "spikes_per_sample",
                "spike_rate_per_neuron_step", "history"):
        assert key in on_disk
    assert on_disk["seed"] == 3 and on_disk["config"]["n_train"] == 600 and on_disk["config"]["norm"] is None
    assert on_disk["versions"]["torch"] == importlib.metadata.version("torch")
    assert on_disk["test_accuracy"] == res["test_accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert len(on_disk["spike_rate_per_neuron_step"]) == 2
    # the checkpoint rebuilds from the JSON config
    cfg = on_disk["config"]
    model = build_model(cfg["arch"], tuple(cfg["in_shape"]), cfg["n_classes"], hidden=tuple(cfg["hidden"]),
                        synapse=cfg["synapse"], seed=on_disk["seed"], beta=cfg["beta"], threshold=cfg["threshold"],
                        reset=cfg["reset"], norm=cfg["norm"], output=cfg["output"])
    meta = load_checkpoint(res["checkpoint"], model)
    assert meta["seed"] == 3 and isinstance(model, SpikingMLP)


def test_run_train_cli_and_synapse_param_parsing(tmp_path, data_root, capsys):
    p = argparse.ArgumentParser()
    add_train_args(p)
    args = p.parse_args(["--synapse", "metaplastic", "--num-steps", "3", "--hidden", "16", "--n-train", "200",
                         "--n-test", "100", "--batch-size", "50", "--out-dir", str(tmp_path), "--data-root",
                         str(data_root), "--no-progress", "--synapse-param", "m=0.5", "--seed", "1"])
    assert run_train(args) == 0
    out = json.loads((tmp_path / "train_mnist_mlp_metaplastic_seed1.json").read_text())
    assert out["config"]["synapse_params"] == {"m": 0.5} and out["config"]["norm"] == "batch"
    assert "test accuracy" in capsys.readouterr().out


def test_train_classifier_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="dataset"):
        train_classifier("cifar", out_dir=tmp_path)
    with pytest.raises(ValueError, match="encoding"):
        train_classifier("mnist", encoding="latency", out_dir=tmp_path)
    with pytest.raises(ValueError, match="epochs"):
        train_classifier("mnist", epochs=0, out_dir=tmp_path)
