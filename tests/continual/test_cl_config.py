"""RunConfig validation: unknown keys, wrong types and impossible values fail with the key named;
shipped example configs load."""
from pathlib import Path

import pytest

from metaspin_snn.continual.config import RunConfig, load_config
from metaspin_snn.continual.runner import check_synapse_params

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _toml(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,key", [
    ('stream = "pmnist"\nepoch = 3\n', "epoch"),                       # unknown key (typo)
    ('epochs = "three"\n', "epochs"),                                  # wrong type
    ('epochs = 2.5\n', "epochs"),
    ('lr = -0.1\n', "lr"),                                             # impossible value
    ('n_tasks = 0\n', "n_tasks"),
    ('hidden = [512, 0]\n', "hidden"),
    ('beta = 1.5\n', "beta"),
    ('scenario = "task-il"\n', "scenario"),
    ('synapse = "memristor"\n', "synapse"),
    ('progress = 1\n', "progress"),
    ('stream = "split-mnist"\nn_tasks = 4\n', "n_tasks"),
    ('stream = "stream"\nepochs = 2\n', "epochs"),
    ('stream = "sequence"\nn_tasks = 1\nsequence_dirs = ["/no/such/dir"]\n', "sequence_dirs"),
    ('scenario = "task"\ntask_il = "norm"\n', "task_il"),
    ('plugin = "ewc"\n[plugin_params]\nlamda = 3.0\n', "plugin_params.lamda"),
    ('plugin = "si"\n[plugin_params]\nc = -1.0\n', "plugin_params.c"),
    ('[network]\nhidden = [3]\n', "network"),
])
def test_bad_config_names_the_key(tmp_path, text, key):
    with pytest.raises(ValueError, match=f"'{key}'"):
        load_config(_toml(tmp_path, text))


def test_bad_synapse_params_fail_before_training():
    c = RunConfig(synapse="metaplastic", synapse_params={"mm": 1.0})
    with pytest.raises(ValueError, match="synapse_params.mm"):
        check_synapse_params(c)
    with pytest.raises(ValueError, match="synapse_params"):
        check_synapse_params(RunConfig(synapse="metaplastic", synapse_params={"m": -1.0}))
    with pytest.raises(ValueError, match="synapse_params.m"):
        check_synapse_params(RunConfig(synapse="metaplastic", synapse_params={"m": [1.0, 2.0]}))  # 3 layers
    check_synapse_params(RunConfig(synapse="metaplastic", synapse_params={"m": [0.0, 1.0, 2.0], "betas": [0.9, 0.99]}))


def test_types_coerced_and_round_trip(tmp_path):
    c = load_config(_toml(tmp_path, 'lr = 1\nhidden = [10, 20]\nname = "x"\n[synapse_params]\nm = 2\n'), epochs=2)
    assert c.lr == 1.0 and isinstance(c.lr, float) and c.hidden == (10, 20) and c.epochs == 2
    assert RunConfig.from_dict(c.to_dict()) == c
    with pytest.raises(Exception):
        c.epochs = 5  # frozen


def test_shipped_configs_are_valid():
    files = sorted(CONFIGS.glob("*.toml"))
    assert {"pmnist.toml", "split_mnist.toml"} <= {f.name for f in files}
    for f in files:
        c = load_config(f)
        check_synapse_params(c)
