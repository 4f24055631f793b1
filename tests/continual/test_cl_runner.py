"""End-to-end runs on real MNIST subsets: JSON + PNG outputs, kill-and-resume equality, scenarios."""
import json

import numpy as np
import pytest
import torch

from metaspin_snn.continual.config import RunConfig
from metaspin_snn.continual.runner import Results, build_stream, run_stream

TINY = dict(stream="pmnist", n_tasks=2, train_subset=300, test_subset=200, hidden=[32], num_steps=3,
            batch_size=50, eval_batch_size=200, progress=False, output="membrane")


def test_two_task_run_writes_json_and_pngs(tmp_path):
    cfg = RunConfig(**TINY, synapse="metaplastic", synapse_params={"m": 1.0, "lr": 0.02}, out=str(tmp_path / "r"))
    res = run_stream(cfg)
    out = tmp_path / "r"
    for f in ("results.json", "checkpoint.pt", "accuracy_matrix.png", "accuracy_stream.png", "hidden_hist.png",
              "report.md"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert (out / "accuracy_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = json.loads((out / "results.json").read_text())
    assert d["complete"] and d["seed"] == 0 and d["config"]["synapse"] == "metaplastic"
    assert set(d["versions"]) >= {"python", "torch", "numpy", "numba"}
    R = np.array(d["matrix"])
    assert R.shape == (2, 2) and len(d["random_init"]) == 2
    b = d["random_init"]
    assert R[0, 0] > b[0] + 0.15 and R[1, 1] > b[1] + 0.15       # learned something in one short pass
    assert d["metrics"]["acc"] == pytest.approx(R[-1].mean())
    assert d["metrics"]["bwt"] == pytest.approx(R[1, 0] - R[0, 0])
    assert d["metrics"]["fwt"] == pytest.approx(R[0, 1] - d["random_init"][1])
    assert len(d["hidden_hists"]) == 2 and len(d["hidden_hists"][0]) == 2      # 2 synapse layers
    assert d["per_task"][0]["spikes_per_sample"] > 0
    assert Results.load(out / "results.json").matrix == res.matrix
    assert "| ACC |" in (out / "report.md").read_text()


def test_kill_and_resume_equals_uninterrupted(tmp_path, killed_and_resumed):
    kw = dict(TINY, n_tasks=3, train_subset=150, test_subset=100, synapse="metaplastic", synapse_params={"m": 1.5}, encoding="rate",
              plugin="ewc", plugin_params={"lam": 50.0, "fisher_samples": 20, "fisher_batch": 10})
    full, resumed, _ = killed_and_resumed(kw)                     # bit-identical accuracies (asserted there)
    assert resumed.metrics["acc"] == full.metrics["acc"]
    # a resume with different numbers in the config is refused, naming the key
    with pytest.raises(ValueError, match="lr"):
        run_stream(RunConfig(**{**kw, "lr": 0.01}, out=str(tmp_path / "run")), resume=True)


def test_task_il_heads_with_si_on_split_mnist(tmp_path):
    cfg = RunConfig(**{**TINY, "stream": "split-mnist", "n_tasks": 5, "train_subset": 100, "test_subset": 50},
                    lr=0.01, scenario="task", task_il="heads", plugin="si", out=str(tmp_path / "s"),
                    checkpoint=False)
    res = run_stream(cfg)
    R = np.array(res.matrix)
    assert R.shape == (5, 5) and res.scenario_label == "task-IL (multi-head)"
    assert R.diagonal().mean() > 0.75                              # two-way choices given the task id
    assert not (tmp_path / "s" / "checkpoint.pt").exists()


def test_device_counters_and_hidden_histograms():
    from metaspin_snn.continual.runner import device_counters, hidden_histograms, synapse_factory
    from metaspin_snn.networks.layers import SynapticLinear
    (fac,) = synapse_factory("mtj", 1, seed=3)
    lay = SynapticLinear(6, 4, synapse=fac)
    assert device_counters(lay)["pulses"] == 0
    w = lay.synapse.effective_weight()
    lay.synapse.update(torch.full_like(w, 0.5))
    c = device_counters(lay)
    s = lay.synapse
    assert c["pulses"] == s.total_pulses() > 0 and c["switches"] == s.total_switches()
    assert c["energy_pj"] == pytest.approx(s.total_energy_pj()) and c["energy_pj"] > 0
    h = hidden_histograms(lay, bins=7)
    assert list(h) == ["synapse"] and sum(h["synapse"]["counts"]) == 24 and len(h["synapse"]["edges"]) == 8


def test_conv_network_on_split_nmnist_events(tmp_path):
    cfg = RunConfig(stream="split-nmnist", n_tasks=5, train_subset=8, test_subset=4, event_steps=4,
                    event_dt_us=50_000, network="conv", channels=[4], batch_size=8, progress=False,
                    checkpoint=False, out=str(tmp_path / "c"))
    res = run_stream(cfg)
    assert np.array(res.matrix).shape == (5, 5) and len(res.per_task[0]["spikes_per_sample_per_layer"]) == 2


def test_single_task_reference_for_intransigence(tmp_path):
    cfg = RunConfig(**{**TINY, "train_subset": 100, "test_subset": 100}, reference="single_task",
                    checkpoint=False, out=str(tmp_path / "ref"))
    res = run_stream(cfg)
    R = np.array(res.matrix)
    assert res.reference_kind == "single_task" and len(res.reference) == 2
    # task 0's single-task model is trained exactly like the stream's first task (same seeds)
    assert res.reference[0] == pytest.approx(R[0, 0])
    assert res.metrics["intransigence"] == pytest.approx(np.mean(np.array(res.reference) - R.diagonal()))


def test_validation_key_evaluates_on_held_out_training_samples(tmp_path):
    cfg = RunConfig(**TINY, validation=100, out=str(tmp_path / "v"), checkpoint=False)
    tasks = build_stream(cfg)
    assert all(t.size("train") == 200 and t.size("test") == 100 and t.name.endswith("[val]") for t in tasks)
    res = run_stream(cfg, tasks=tasks)
    assert np.array(res.matrix).shape == (2, 2)
    with pytest.raises(ValueError, match="config key 'validation'"):
        build_stream(RunConfig(**TINY, validation=300, out=str(tmp_path / "w")))
    with pytest.raises(ValueError, match="'validation'"):
        RunConfig(validation=0)


def test_results_json_holds_numbers_and_run_info_the_times(tmp_path):
    """results.json = Results.record() (no wall-clock time, no provenance): two runs of one config in one
    folder write the same bytes; run_info.json holds what differs, and Results.load joins the two."""
    cfg = RunConfig(**{**TINY, "n_tasks": 2, "train_subset": 80, "test_subset": 40}, out=str(tmp_path / "r"))
    res = run_stream(cfg)
    out = tmp_path / "r"
    first, info1 = (out / "results.json").read_bytes(), json.loads((out / "run_info.json").read_text())
    run_stream(cfg, overwrite=True)
    assert (out / "results.json").read_bytes() == first
    info2 = json.loads((out / "run_info.json").read_text())
    assert info2["provenance"]["started_utc"] >= info1["provenance"]["started_utc"]
    d = json.loads(first)
    flat = json.dumps(d)
    assert "provenance" not in d and "wall_time_s" not in d and "_time_s" not in flat
    assert [t["task"] for t in info1["per_task"]] == res.task_names
    loaded = Results.load(out / "results.json")
    assert loaded.provenance == info2["provenance"] and loaded.wall_time_s == info2["wall_time_s"]
    assert [t["train_time_s"] for t in loaded.per_task] == [t["train_time_s"] for t in info2["per_task"]]
    assert loaded.metrics["train_time_s"] == pytest.approx(sum(t["train_time_s"] for t in loaded.per_task))
    assert loaded.record() == d and loaded.matrix == res.matrix


def test_random_init_row_is_the_untrained_networks_test_accuracy(tmp_path):
    """b_j = accuracy of the network as built (before any training) on task j's test split, written out
    here with the model's own forward pass and an argmax (not the runner's evaluate)."""
    from metaspin_snn.continual import Learner
    cfg = RunConfig(**{**TINY, "n_tasks": 3, "train_subset": 60, "test_subset": 50, "encoding": "direct"},
                    out=str(tmp_path / "b"))
    learner = Learner.from_config(cfg)
    model = learner.model
    model.eval()
    hand = []
    with torch.no_grad():
        for task in learner.tasks:
            right = n = 0
            for x, y in learner.data.test_batches(task, 17):
                right += int((model(x).logits.argmax(1) == y).sum())
                n += len(y)
            assert n == 50
            hand.append(right / n)
    _, res = learner.fit()
    assert res.random_init == pytest.approx(hand, abs=0)
    assert res.matrix[0] != res.random_init          # trained: the first row is not the random-init row
