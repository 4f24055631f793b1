"""Loggers: CSV per epoch and every N steps (loss, accuracy, spike rates, hidden-state statistics),
TensorBoard as an optional extra, one console line per epoch off a terminal, and resume-consistent files."""
from __future__ import annotations

import csv
import importlib.util

import pytest

from metaspin_snn.continual import CSVLogger, Learner, RunConfig, run_stream
from metaspin_snn.continual.loggers import TensorBoardLogger, make_loggers

TINY = dict(stream="pmnist", n_tasks=2, train_subset=200, test_subset=100, hidden=[16], num_steps=2,
            batch_size=50, eval_batch_size=100, progress=False, output="membrane", reference="none",
            synapse="metaplastic", synapse_params={"m": 1.0})


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_files_per_epoch_and_step(tmp_path):
    cfg = RunConfig(**TINY, epochs=2, log_every=3, out=str(tmp_path / "r"))
    run_stream(cfg)
    ep = _rows(tmp_path / "r" / "epochs.csv")
    assert [(r["task"], r["epoch"]) for r in ep] == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
    for r in ep:
        assert 0 <= float(r["train_accuracy"]) <= 1 and float(r["loss"]) > 0
        assert float(r["spikes_layer0"]) > 0
        assert float(r["stages.0.layers.0.synapse.hidden_mean_abs"]) > 0
    st = _rows(tmp_path / "r" / "steps.csv")
    assert [int(r["step"]) for r in st if r["task"] == "0"] == [0, 3, 6]   # 8 steps per task, every 3rd
    assert all(r["batch_accuracy"] != "" for r in st)


def test_resume_keeps_rows_of_checkpointed_tasks_only(tmp_path):
    cfg = RunConfig(**TINY, out=str(tmp_path / "r"))
    run_stream(cfg, stop_after=0)
    (tmp_path / "r" / "epochs.csv").write_text((tmp_path / "r" / "epochs.csv").read_text()
                                               + "1,pmnist-1,0,9.9,0.5\n")   # a row of the killed task 1
    run_stream(cfg, resume=True)
    ep = _rows(tmp_path / "r" / "epochs.csv")
    assert [r["task"] for r in ep] == ["0", "1"] and float(ep[1]["loss"]) != 9.9


def test_console_logger_off_a_terminal(tmp_path, capsys):
    lines = []
    run_stream(RunConfig(**TINY, out=str(tmp_path / "r")), log=lines.append)
    epoch_lines = [s for s in lines if " epoch 1/1: loss " in s]
    assert len(epoch_lines) == 2                      # one line per epoch, no progress bar (not a TTY)
    assert "\r" not in capsys.readouterr().err


def test_logger_list_from_config_and_api(tmp_path):
    cfg = RunConfig(**TINY, loggers=["csv"], out=str(tmp_path / "a"))
    assert [type(lg) for lg in make_loggers(cfg, print)] == [CSVLogger]
    with pytest.raises(ValueError, match="'loggers'"):
        RunConfig(**TINY, loggers=["wandb"])
    learner = Learner.from_config(cfg, loggers=[CSVLogger(tmp_path / "elsewhere", every=1)])
    learner.fit()
    assert len(_rows(tmp_path / "elsewhere" / "steps.csv")) == 8 and not (tmp_path / "a" / "steps.csv").exists()


def test_tensorboard_logger(tmp_path):
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(ValueError, match="tensorboard"):
            TensorBoardLogger(tmp_path)
        return
    run_stream(RunConfig(**TINY, loggers=["tensorboard"], log_every=2, out=str(tmp_path / "r")))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    assert {"train/loss", "accuracy/task0", "accuracy/task1"} <= tags
    assert len(ea.Scalars("accuracy/task0")) == 2
