"""kill −9 at 20 seeded moments of a 3-task run (mid-batch, mid-evaluation, mid-write, between tasks):
every ``--resume`` ends with a results.json byte-identical to the uninterrupted run's (all runs use one
output folder, moved aside after each) and leaves no temporary file. Wall-clock times and provenance
live in run_info.json, which differs between two runs by design."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ARGS = ["run", "pmnist", "--tasks", "3", "--synapse", "metaplastic", "--set", "train_subset=300", "--set",
        "test_subset=100", "--set", "hidden=[16]", "--set", "num_steps=3", "--set", "batch_size=25", "--epochs", "1",
        "--no-progress", "--set", "loggers=[\"csv\"]"]


def _cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "metaspin_snn.cli", *ARGS, "--out", str(out), *extra]


@pytest.mark.slow  # ~4 min on 2 cores (41 processes); .ci/run runs it as its own step
def test_twenty_kills_resume_to_the_same_numbers(tmp_path, data_root):
    env = {**os.environ, "METASPIN_DATA": str(data_root), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"                      # every run in this folder: config.out is the same
    t0 = time.perf_counter()
    subprocess.run(_cmd(out), check=True, env=env, capture_output=True)
    duration = time.perf_counter() - t0
    want = (out / "results.json").read_bytes()
    assert (out / "run_info.json").is_file()
    out.rename(tmp_path / "full")
    rng = np.random.default_rng(14)
    delays = np.sort(rng.uniform(0.3 * duration, 0.95 * duration, 20))
    killed = 0
    for k, delay in enumerate(delays):
        p = subprocess.Popen(_cmd(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(delay))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            killed += 1
        p.wait()
        r = subprocess.run(_cmd(out, "--resume") if out.exists() else _cmd(out), env=env, capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        assert (out / "results.json").read_bytes() == want, f"kill point {k} ({delay:.2f} s)"
        assert not [f for f in out.rglob("*") if f.name.endswith(".tmp")], f"kill point {k}: temporary file left"
        out.rename(tmp_path / f"k{k}")
    assert killed >= 15                              # the kills did land inside the run
