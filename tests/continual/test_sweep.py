"""``metaspin sweep``: grid × seeds through submitit's local executor (real worker processes), skip of
finished points, resume of a killed one, aggregation (mean ± sample std written out by hand), errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from metaspin_snn.cli import main as cli_main
from metaspin_snn.continual.runner import run_stream
from metaspin_snn.continual.sweep import aggregate, load_sweep, mean_std

BASE = """
[base]
stream = "pmnist"
n_tasks = 2
hidden = [16]
num_steps = 2
epochs = 1
batch_size = 50
train_subset = 300
test_subset = 100
synapse = "metaplastic"
bias = false
"""
GRID = """
[grid]
"synapse_params.m" = [0.0, 3.0]
seed = [0, 1]
"""
LOCAL = """
[executor]
kind = "local"
max_parallel = 2
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sweep.toml"
    p.write_text(text)
    return p


def test_two_values_by_two_seeds_run_locally_then_aggregate(tmp_path, capsys):
    """The issue's done-when: a 2-seed × 2-value sweep with the local executor, then --aggregate
    prints mean ± std (checked against the per-run results.json, sample std written out)."""
    f = _write(tmp_path, BASE + GRID + LOCAL)
    out = tmp_path / "out"
    assert cli_main(["sweep", str(f), "--out", str(out)]) == 0
    sweep = load_sweep(f)
    pts = sweep.points(out)
    assert len(pts) == 4 and all(p.status() == "done" for p in pts)
    assert {(p.values["synapse_params.m"], p.values["seed"]) for p in pts} == {(0.0, 0), (0.0, 1), (3.0, 0), (3.0, 1)}
    res = {p.id: json.loads((p.folder / "results.json").read_text()) for p in pts}
    for p in pts:                                                # each point ran its own config
        c = res[p.id]["config"]
        assert c["synapse_params"]["m"] == p.values["synapse_params.m"] and c["seed"] == p.values["seed"]
        assert c["out"] == str(p.folder) and c["hidden"] == [16]
    capsys.readouterr()
    assert cli_main(["sweep", str(f), "--out", str(out), "--aggregate"]) == 0
    text = capsys.readouterr().out
    for m in (0.0, 3.0):
        accs = [100 * res[p.id]["metrics"]["acc"] for p in pts if p.values["synapse_params.m"] == m]
        mean = sum(accs) / 2
        std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (2 - 1))
        assert f"| {m} | 0, 1 | {mean:.1f} ± {std:.1f} |" in text
    table = json.loads((out / "aggregate.json").read_text())
    assert [r["n"] for r in table["rows"]] == [2, 2] and table["missing"] == []
    assert (out / "aggregate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "sweep.json").read_text())["points"][0]["values"] == {"synapse_params.m": 0.0, "seed": 0}


def test_rerun_skips_finished_points_and_resumes_a_killed_one(tmp_path, capsys):
    f = _write(tmp_path, BASE + '[grid]\nseed = [0, 1]\n' + LOCAL)
    out = tmp_path / "out"
    sweep = load_sweep(f)
    done, killed = sweep.points(out)
    run_stream(done.config, progress=False)                           # finished earlier
    part = run_stream(killed.config, stop_after=0, progress=False)     # killed after task 0's checkpoint
    assert not part.complete and killed.status() == "partial" and done.status() == "done"
    before = (done.folder / "results.json").stat().st_mtime_ns
    capsys.readouterr()
    assert cli_main(["sweep", str(f), "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert "2 points, 1 done, 1 to resume, 0 new" in log and "1 already done, 1 ran, 0 failed" in log
    assert (done.folder / "results.json").stat().st_mtime_ns == before  # not run again
    resumed = json.loads((killed.folder / "results.json").read_text())
    full = run_stream(killed.config.replace(out=str(tmp_path / "uninterrupted")), progress=False)
    assert resumed["complete"] and resumed["matrix"] == full.matrix    # resumed = uninterrupted
    assert cli_main(["sweep", str(f), "--out", str(out), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("done     ") == 2


def test_aggregate_lists_points_not_finished(tmp_path):
    f = _write(tmp_path, BASE + '[grid]\nseed = [0, 1, 2]\n')
    out = tmp_path / "out"
    sweep = load_sweep(f)
    pts = sweep.points(out)
    for p in pts[:2]:
        run_stream(p.config, progress=False)
    table = aggregate(sweep, out)
    assert table["missing"] == [pts[2].id] and table["rows"][0]["seeds"] == [0, 1]
    accs = table["rows"][0]["acc"]["values"]
    assert table["rows"][0]["acc"]["std"] == pytest.approx(abs(accs[0] - accs[1]) / math.sqrt(2))
    assert "2 of 3 points complete; not complete: " + pts[2].id in table["markdown"]


def test_mean_std_is_the_sample_std():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 3)))
    assert mean_std([7.0]) == (7.0, 0.0)


@pytest.mark.parametrize("text, msg", [
    (BASE + GRID + '[executor]\nkind = "pbs"\n', "kind must be one of local, slurm"),
    (BASE + GRID + '[executor]\nkind = "local"\npartition = "gpu"\n', "'partition' is not an option of the local"),
    (BASE + GRID + '[executor]\nkind = "slurm"\narray_parallelism = 0\n', "array_parallelism must be a positive"),
    (BASE + '[grid]\nseed = 3\n', "'seed' must be a non-empty list"),
    (BASE, "[grid] is empty"),
    (BASE + '[grid]\n"synapse_params.m" = [1.0]\nlr = [-1.0]\n', "[grid synapse_params.m=1.0,lr=-1.0]"),
    (BASE + '[grid]\nnope = [1]\n', "unknown key 'nope'"),
    (BASE + GRID + '[extra]\nx = 1\n', "unknown table or key 'extra'"),
    ('[base]\nout = "x"\n' + GRID, "'out' is set per point"),
    ("[base\n", "not valid TOML"),
])
def test_bad_sweep_files_exit_2_naming_the_problem(tmp_path, capsys, text, msg):
    f = _write(tmp_path, text)
    assert cli_main(["sweep", str(f), "--out", str(tmp_path / "o")]) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "o").exists()                              # nothing written


def test_slurm_options_map_to_submitit_parameters():
    from metaspin_snn.continual.sweep import _slurm_parameters
    par = _slurm_parameters({"kind": "slurm", "partition": "gpu", "time_min": 90, "gpus_per_node": 1,
                             "mem_gb": 16, "array_parallelism": 8, "cpus_per_task": 4, "qos": "normal",
                             "setup": ["module load cuda"], "additional": {"exclusive": True}}, 12)
    assert par == {"job_name": "metaspin-sweep", "array_parallelism": 8, "cpus_per_task": 4, "time": 90,
                   "partition": "gpu", "qos": "normal", "gpus_per_node": 1, "mem": "16GB",
                   "setup": ["module load cuda"], "additional_parameters": {"exclusive": True}}
    from submitit.slurm.slurm import _make_sbatch_string        # what submitit writes for the array
    text = _make_sbatch_string(command="python -c pass", folder="/tmp/unused-submitit", map_count=12, **par)
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --gpus-per-node=1", "#SBATCH --mem=16GB",
                 "#SBATCH --array=0-11%8", "#SBATCH --cpus-per-task=4", "#SBATCH --qos=normal",
                 "#SBATCH --exclusive", "module load cuda"):
        assert line in text, line
