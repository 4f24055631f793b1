"""results/targets.json agrees with the run folders it points at (the quick headline of issue 12)."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "results"


def _acc_bwt(folder: str, seed: int) -> tuple[float, float]:
    d = json.loads((ROOT.parent / folder.replace("seedS", f"seed{seed}") / "results.json").read_text())
    return round(100 * d["metrics"]["acc"], 1), round(100 * d["metrics"]["bwt"], 1)


@pytest.mark.parametrize("key", ["best", "si", "metaplastic", "finetune"])
def test_quick_headline_numbers_are_those_of_the_runs(key):
    row = json.loads((ROOT / "targets.json").read_text())["quick_pmnist3"][key]
    got = [_acc_bwt(row["results"], s)[0] for s in row["seeds"]]
    assert got == row["values"]
    assert row["mean"] == round(statistics.mean(got), 1) and row["std"] == round(statistics.stdev(got), 1)


def test_quick_headline_is_reached_in_the_runs():
    """The Bayesian learner has the highest ACC and the smallest forgetting on every seed."""
    q = json.loads((ROOT / "targets.json").read_text())["quick_pmnist3"]
    rows = {k: q[k] for k in ("best", "si", "metaplastic", "finetune")}
    for s in q["best"]["seeds"]:
        acc = {k: _acc_bwt(r["results"], s)[0] for k, r in rows.items()}
        bwt = {k: _acc_bwt(r["results"], s)[1] for k, r in rows.items()}
        assert max(acc, key=acc.get) == "best" and max(bwt, key=bwt.get) == "best", s
    assert q["reached"] and max(q["wall_s"]) <= q["target"]["wall_s_max"]


@pytest.mark.parametrize("key", ["best", "si", "metaplastic", "finetune"])
def test_pmnist10_table_numbers_are_those_of_the_runs(key):
    row = json.loads((ROOT / "targets.json").read_text())["pmnist10_domain"][key]
    assert [_acc_bwt(row["results"], s) for s in row["seeds"]] == list(zip(row["values"], row["bwt"]))
    assert row["mean"] == round(statistics.mean(row["values"]), 1)
