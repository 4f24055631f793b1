"""From continual training to the chip in one pipeline: ``metaspin run … --out D`` then ``metaspin export
D --to lava --verify N`` (float: spike-exact against the float64 reference of the trained network;
fixed point: the emulator equals Lava), output folders that are never overwritten silently."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from metaspin_snn.cli import main
from metaspin_snn.export.ir import extract_ir, simulate_snntorch
from metaspin_snn.networks import load_model

SMALL = ["--set", "train_subset=500", "--set", "test_subset=200", "--epochs", "1", "--jobs", "1"]
LEARNERS = ("finetune-real", "si-real", "metaplastic-m10.0", "mesu")


def _reports(text: str) -> list[dict]:
    """The JSON reports ``metaspin export --verify`` prints."""
    dec, out, i = json.JSONDecoder(), [], 0
    while (i := text.find("\n{", i)) >= 0:
        obj, end = dec.raw_decode(text, i + 1)
        out.append(obj)
        i = end
    return out


def _snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """``metaspin run pmnist --quick --tasks 2`` (the quick network: 784-256-256-10, T = 4, direct-current
    input; fine-tuning, SI, metaplastic and MESU learners) on a smaller data subset."""
    d = tmp_path_factory.mktemp("pipe") / "D"
    assert main(["run", "pmnist", "--quick", "--tasks", "2", "--no-progress", "--out", str(d), *SMALL]) == 0
    return d


def test_run_then_export_every_learner_spike_exact(run_dir, capsys):
    capsys.readouterr()
    assert main(["export", str(run_dir), "--to", "lava", "--verify", "50"]) == 0
    out = capsys.readouterr().out
    reps = _reports(out)
    assert len(reps) == 4 and out.count("graded input, float") == 4   # all four learners, in order
    for r in reps:
        assert r["n_samples"] == 50 and r["input_kind"] == "graded" and r["num_steps"] == 4
        assert r["spike_agreement"] == [1.0, 1.0, 1.0] and r["prediction_agreement"] == 1.0
        assert r["rate_reference"][0] > 0.01                            # the network is not silent
    for name in LEARNERS:
        assert (run_dir / name / "checkpoint.lava.npz").is_file()


def test_export_reads_the_trained_network_not_a_rebuilt_one(run_dir):
    """The exported IR is the trained network: its float64 simulation gives the network's own output
    spikes on the run's test inputs (so 100 % Lava agreement means the deployed learner is the trained one)."""
    from metaspin_snn.cli.export import Source
    ck_path = run_dir / "metaplastic-m10.0" / "checkpoint.pt"
    model, ck = load_model(ck_path)
    src = Source(ck, ck_path, None, 0)
    x, y = src.inputs(1, 40)
    assert x.dtype == np.float64 and x.shape == (4, 40, 784) and 0 <= x.min() and x.max() <= 1
    ir = extract_ir(model, None, input="graded")
    ref = simulate_snntorch(ir, x)
    with torch.no_grad():
        own = model.double()(torch.from_numpy(x)).out_spikes.numpy()
    np.testing.assert_array_equal(ref[-1], own)
    syn = [m for m in model.modules() if hasattr(m, "hidden")]
    assert syn and all(torch.unique(s.weight.detach().abs()).numel() == 1 for s in syn)   # binary ±scale weights


def test_fixed_point_emulator_equals_lava(run_dir, capsys):
    capsys.readouterr()
    assert main(["export", str(run_dir), "--run", "metaplastic-m10.0", "--to", "lava", "--fixed-point",
                 "--verify", "50"]) == 0
    (r,) = _reports(capsys.readouterr().out)
    assert r["fixed_point"] and r["emulator_equals_lava"] is True and r["input_bits"] == 8
    assert min(r["spike_agreement_vs_dequantized"]) > 0.99                # 8-bit input, 8-bit weights
    with np.load(run_dir / "metaplastic-m10.0" / "checkpoint-fixed.lava.npz") as f:
        assert str(f["kind"]) == "fixed" and str(f["input_kind"]) == "graded"
    with np.load(run_dir / "metaplastic-m10.0" / "checkpoint.lava.npz") as f:   # the float export is kept
        assert str(f["kind"]) == "float"


def test_same_out_again_is_refused_and_changes_nothing(run_dir, capsys):
    before = _snapshot(run_dir)
    capsys.readouterr()
    assert main(["run", "pmnist", "--quick", "--tasks", "2", "--no-progress", "--out", str(run_dir), *SMALL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0] and "--resume" in err[0] and "--overwrite" in err[0]
    assert _snapshot(run_dir) == before
    # --resume of the finished runs trains nothing and leaves the numbers as they were
    names = ("finetune-real", "metaplastic-m10.0")
    matrices = {n: json.loads((run_dir / n / "results.json").read_text())["matrix"] for n in names}
    assert main(["run", "pmnist", "--quick", "--tasks", "2", "--no-progress", "--resume", "--out", str(run_dir),
                 *SMALL]) == 0
    assert "resumed from" in capsys.readouterr().out
    for n in names:
        assert json.loads((run_dir / n / "results.json").read_text())["matrix"] == matrices[n]


def test_results_record_provenance(run_dir):
    d = json.loads((run_dir / "metaplastic-m10.0" / "results.json").read_text())
    info = json.loads((run_dir / "metaplastic-m10.0" / "run_info.json").read_text())
    import metaspin_snn
    p = info["provenance"]
    assert d["schema_version"] == 3 and info["schema_version"] == 3 and p["package_version"] == metaspin_snn.__version__
    assert "provenance" not in d and "wall_time_s" not in d and "train_time_s" not in d["metrics"]   # results.json: numbers only
    assert info["wall_time_s"] > 0 and len(info["per_task"]) == 2 and info["per_task"][0]["train_time_s"] > 0
    assert p["command"] and p["started_utc"].endswith("Z") and p["finished_utc"] >= p["started_utc"]
    assert "git_commit" in p
    rows = (run_dir / "metaplastic-m10.0" / "epochs.csv").read_text().splitlines()
    assert len(rows) == 3 and "train_accuracy" in rows[0] and "hidden_mean_abs" in rows[0]   # 2 tasks × 1 epoch


def test_export_errors_are_one_line(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--to", "lava", "--verify", "-3"]) == 2
    assert "--verify" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", str(bad), "--to", "lava"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
    flipped = tmp_path / "flipped.pt"
    data = bytearray((run_dir / "finetune-real" / "checkpoint.pt").read_bytes())
    data[len(data) // 2] ^= 0x10
    flipped.write_bytes(bytes(data))
    assert main(["export", str(flipped), "--to", "nir", "--out", str(tmp_path / "x.nir")]) == 2
    assert "damaged" in capsys.readouterr().err
    assert not (tmp_path / "x.nir").exists()


@pytest.mark.slow
def test_readme_command_then_export(tmp_path, capsys):
    """The issue's check verbatim: ``metaspin run pmnist --quick --tasks 2 --out D`` then ``metaspin export
    D --to lava --verify 50`` and ``--fixed-point`` (minutes: full quick subsets)."""
    d = tmp_path / "D"
    assert main(["run", "pmnist", "--quick", "--tasks", "2", "--no-progress", "--out", str(d)]) == 0
    capsys.readouterr()
    assert main(["export", str(d), "--to", "lava", "--verify", "50"]) == 0
    assert all(r["spike_agreement"] == [1.0, 1.0, 1.0] for r in _reports(capsys.readouterr().out))
    assert main(["export", str(d), "--to", "lava", "--fixed-point", "--verify", "50"]) == 0
    assert all(r["emulator_equals_lava"] for r in _reports(capsys.readouterr().out))


@pytest.mark.parametrize("case", ["heads-rate", "norm-sets-latency", "nmnist-events", "shd-events"])
def test_export_task_il_and_every_input_encoding(tmp_path, capsys, case, request):
    """Task-IL heads, per-task normalisation sets, spike encodings and N-MNIST / SHD events export and
    deploy spike-exactly; ``--task k`` picks head / norm set k and task k's test data."""
    from metaspin_snn.continual import RunConfig, run_stream
    base = dict(n_tasks=2, train_subset=120, test_subset=40, hidden=[24], num_steps=6, batch_size=40,
                eval_batch_size=40, progress=False, reference="none", synapse="metaplastic",
                synapse_params={"m": 1.0}, bias=False, out=str(tmp_path / "r"))
    kw = {"heads-rate": dict(stream="split-mnist", n_tasks=5, scenario="task", task_il="heads", encoding="rate"),
          "norm-sets-latency": dict(stream="pmnist", scenario="task", task_il="norm", norm="batch", encoding="latency"),
          "nmnist-events": dict(stream="split-nmnist", n_tasks=5, train_subset=None, test_subset=None,
                                event_steps=8, event_dt_us=30_000)}.get(case)
    if case == "shd-events":   # SHD read with tonic from generated files (tests/conftest.py)
        kw = dict(stream="split-shd", n_tasks=5, classes_per_task=4, train_subset=None, test_subset=None,
                  event_steps=20, event_dt_us=30_000, data_root=str(request.getfixturevalue("event_root")))
    run_stream(RunConfig(**{**base, **kw}))
    capsys.readouterr()
    k = 1
    assert main(["export", str(tmp_path / "r"), "--to", "lava", "--task", str(k), "--verify", "12"]) == 0
    out = capsys.readouterr().out
    (r,) = _reports(out)
    assert r["input_kind"] == "spikes" and r["spike_agreement"] == [1.0] * 2
    assert f"task {k}" in out and (tmp_path / "r" / f"checkpoint-task{k}.lava.npz").is_file()
    if not case.endswith("events"):
        assert f"head/norm set {k}" in out
    # the head / norm set of task k is the one exported: task 0's differs
    model, ck = load_model(tmp_path / "r")
    w0 = extract_ir(model, 0).layers[-1].weight
    w1 = extract_ir(model, 1).layers[-1].weight
    assert case.endswith("events") == np.array_equal(w0, w1)
    assert main(["export", str(tmp_path / "r"), "--to", "lava", "--task", "7"]) == 2


def test_train_output_exports(tmp_path, data_root, capsys):
    """``metaspin train --out D`` then ``metaspin export D``: the single-task run folder deploys too
    (rate-coded spikes here)."""
    d = tmp_path / "T"
    assert main(["train", "--synapse", "metaplastic", "--hidden", "32", "--num-steps", "6", "--n-train", "300",
                 "--n-test", "50", "--batch-size", "50", "--no-progress", "--data-root", str(data_root),
                 "--out", str(d)]) == 0
    capsys.readouterr()
    assert main(["export", str(d), "--to", "lava", "--verify", "10", "--data-root", str(data_root)]) == 0
    (r,) = _reports(capsys.readouterr().out)
    assert r["input_kind"] == "spikes" and r["spike_agreement"] == [1.0, 1.0]


def test_learners_in_parallel_processes_give_the_sequential_numbers(tmp_path, capfd):
    """``--jobs 2``: the four learners in two worker processes (one torch thread each) write the same
    results.json bytes as ``--jobs 1`` in this process with one thread (both into one folder)."""
    d = tmp_path / "D"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["run", "pmnist", "--quick", "--tasks", "2", "--no-progress", "--out", str(d), *SMALL]) == 0
    finally:
        torch.set_num_threads(threads)
    seq = {n: (d / n / "results.json").read_bytes() for n in LEARNERS}
    d.rename(tmp_path / "seq")
    capfd.readouterr()
    args = SMALL[:-2]                                             # without "--jobs 1"
    assert main(["run", "pmnist", "--quick", "--tasks", "2", "--no-progress", "--out", str(d), *args,
                 "--jobs", "2"]) == 0
    out = capfd.readouterr().out
    assert "4 learners, 2 at a time (1 thread(s) each)" in out
    assert all(f"[{n}] ACC" in out for n in LEARNERS)               # each worker's lines carry its name
    for n in LEARNERS:
        assert (d / n / "results.json").read_bytes() == seq[n], n
    assert (d / "summary.md").read_text().count("\n| ") == len(LEARNERS) + 1   # header + one row each


def test_jobs_must_be_positive(tmp_path, capsys):
    assert main(["run", "pmnist", "--quick", "--no-progress", "--out", str(tmp_path / "j"), "--jobs", "0"]) == 2
    err = capsys.readouterr().err
    assert "--jobs" in err and not (tmp_path / "j").exists()
