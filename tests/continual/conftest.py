"""Fixtures of the continual-learning tests."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch

from metaspin_snn.continual.config import RunConfig
from metaspin_snn.continual.runner import Results, run_stream


@pytest.fixture
def killed_and_resumed(tmp_path) -> Callable[[dict], tuple[Results, Results, RunConfig]]:
    """``f(config_kwargs) -> (uninterrupted, resumed, config)``: runs the stream once in full, once
    stopped after task 0's checkpoint (as if killed there), disturbs the process RNGs, resumes, and
    asserts the resumed run ends with the uninterrupted run's accuracy matrix and random-init row, and
    with a byte-identical results.json (both runs write into the same folder, the first moved aside)."""
    def run(kw: dict) -> tuple[Results, Results, RunConfig]:
        cfg = RunConfig(**kw, out=str(tmp_path / "run"))
        full = run_stream(cfg)
        want = (tmp_path / "run" / "results.json").read_bytes()
        (tmp_path / "run").rename(tmp_path / "full")
        part = run_stream(cfg, stop_after=0)
        assert len(part.matrix) == 1 and not part.complete
        torch.manual_seed(999)
        np.random.seed(999)
        resumed = run_stream(cfg, resume=True)
        assert resumed.complete and resumed.matrix == full.matrix and resumed.random_init == full.random_init
        assert (tmp_path / "run" / "results.json").read_bytes() == want
        return full, resumed, cfg
    return run
