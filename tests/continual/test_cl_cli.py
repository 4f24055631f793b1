"""``metaspin run`` argument handling: shorthand comparison set, TOML + overrides, errors exit 2."""
import argparse

import pytest

from metaspin_snn.cli.run import add_args as add_run_args, build_configs
from metaspin_snn.cli.run import main as run_cli


def _args(*argv):
    p = argparse.ArgumentParser()
    add_run_args(p)
    return p.parse_args(list(argv))


def test_quick_pmnist_compares_finetuning_si_metaplastic_and_mesu(tmp_path):
    cfgs = build_configs(_args("pmnist", "--quick", "--out", str(tmp_path)))
    assert [c.name for c in cfgs] == ["finetune-real", "si-real", "metaplastic-m10.0", "mesu"]
    assert [c.synapse for c in cfgs] == ["real", "real", "metaplastic", "mesu"]
    assert [c.plugin for c in cfgs] == ["naive", "si", "naive", "naive"] and cfgs[1].plugin_params == {"c": 3.0}
    assert cfgs[2].synapse_params == {"m": 10.0, "eps": 2e-5}
    mesu = cfgs[3]
    assert mesu.synapse_params == {"antithetic": True, "shrink_only": True, "lr_mu": 48.0, "lr_sigma": 16.0}
    assert (mesu.gain, mesu.train_samples, mesu.eval_samples) == (0.25, 2, 0)
    # one network for every learner: same sizes, steps, data, epochs, readout
    assert all(c.n_tasks == 3 and c.train_subset == 10000 and c.epochs == 2 and c.encoding == "direct"
               and not c.bias and c.output == "count" and c.hidden == (256, 256) and c.num_steps == 4
               for c in cfgs)
    assert len({c.out for c in cfgs}) == 4


def test_single_learner_and_overrides(tmp_path):
    (c,) = build_configs(_args("split-mnist", "--synapse", "metaplastic", "--m", "1,2,3", "--plugin", "si",
                               "--scenario", "task", "--seed", "4", "--epochs", "2", "--out", str(tmp_path)))
    assert c.synapse_params == {"m": [1.0, 2.0, 3.0]} and c.plugin == "si" and c.scenario == "task"
    assert c.seed == 4 and c.epochs == 2 and c.stream == "split-mnist"
    toml = tmp_path / "c.toml"
    toml.write_text('stream = "pmnist"\nn_tasks = 4\nsynapse = "metaplastic"\n[synapse_params]\nm = 1.0\nlr = 0.01\n')
    (c,) = build_configs(_args(str(toml), "--m", "3", "--tasks", "2"))
    assert c.synapse_params == {"m": 3.0, "lr": 0.01} and c.n_tasks == 2


def test_errors_exit_2_and_name_the_key(tmp_path, capsys):
    toml = tmp_path / "bad.toml"
    toml.write_text('stream = "pmnist"\nepochz = 1\n')
    assert run_cli(_args(str(toml))) == 2
    assert "'epochz'" in capsys.readouterr().err
    assert run_cli(_args("pmnist", "--tasks", "0")) == 2
    assert "'n_tasks'" in capsys.readouterr().err
    assert run_cli(_args("mnist-xyz")) == 2
    assert run_cli(_args("pmnist", "--m", "abc")) == 2
    assert run_cli(_args("sequence")) == 2                         # needs --sequence-dirs


def test_run_cli_end_to_end_prints_summary(tmp_path, capsys):
    toml = tmp_path / "tiny.toml"
    toml.write_text(f'stream = "pmnist"\nn_tasks = 2\ntrain_subset = 100\ntest_subset = 100\nhidden = [16]\n'
                    f'num_steps = 2\nbatch_size = 50\nprogress = false\nout = "{tmp_path / "o"}"\n')
    assert run_cli(_args(str(toml))) == 0
    out = capsys.readouterr().out
    assert "| run |" in out and "ACC" in out
    assert (tmp_path / "o" / "results.json").is_file()


def test_set_overrides_any_key(tmp_path):
    (c,) = build_configs(_args("pmnist", "--quick", "--synapse", "metaplastic", "--set", "norm=\"batch\"", "--set",
                               "hidden=[64, 32]", "--set", "synapse_params.lr=0.02", "--set", "scenario=task",
                               "--set", "task_il=norm", "--out", str(tmp_path)))
    assert c.norm == "batch" and c.hidden == (64, 32) and c.synapse_params == {"lr": 0.02, "m": 10.0, "eps": 2e-5}
    assert c.scenario == "task" and c.task_il == "norm"
    cfgs = build_configs(_args("pmnist", "--quick", "--set", "synapse_params.lr=0.02", "--out", str(tmp_path)))
    assert [c.synapse_params for c in cfgs][:3] == [{}, {}, {"eps": 2e-5, "lr": 0.02, "m": 10.0}]  # the metaplastic one
    assert run_cli(_args("pmnist", "--set", "hiddn=[3]")) == 2


def test_full_defaults(tmp_path):
    cfgs = build_configs(_args("pmnist", "--out", str(tmp_path)))
    assert [c.synapse_params.get("m") for c in cfgs] == [None, None, 3.0, None]
    assert all(c.hidden == (512, 512) and c.num_steps == 8 and c.epochs == 3 and c.train_subset is None
               and c.n_tasks == 5 for c in cfgs)


def test_mesu_shorthand_reads_membrane_without_norm(tmp_path):
    """MESU without normalisation gets the membrane readout and gain 1 (its count readout dies, §8 of
    results/README.md) unless the command line says otherwise; other synapses keep the defaults."""
    (c,) = build_configs(_args("pmnist", "--quick", "--synapse", "mesu", "--out", str(tmp_path)))
    assert (c.output, c.gain) == ("membrane", 1.0)
    (c,) = build_configs(_args("pmnist", "--quick", "--synapse", "mesu", "--set", 'output="count"',
                               "--set", "gain=0.5", "--out", str(tmp_path)))
    assert (c.output, c.gain) == ("count", 0.5)
    (c,) = build_configs(_args("pmnist", "--quick", "--synapse", "mesu", "--set", 'norm="batch"',
                               "--out", str(tmp_path)))
    assert (c.output, c.gain) == ("count", None)
    (c,) = build_configs(_args("pmnist", "--quick", "--synapse", "bayesbinn", "--out", str(tmp_path)))
    assert (c.output, c.gain) == ("count", None)
