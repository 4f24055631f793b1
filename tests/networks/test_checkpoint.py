"""The one checkpoint format: loadable with weights_only=True at both levels, a digest that catches
damage, a schema version, a spec that rebuilds the network, atomic writes."""
from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch

from metaspin_snn.networks import (CheckpointError, build_model, load_model, make_optimizer, model_spec,
                                   read_checkpoint, save_checkpoint, train_step)
from metaspin_snn.networks.checkpoint import FORMAT, SCHEMA_VERSION, rng_state, set_rng_state


@pytest.fixture
def saved(tmp_path):
    spec = model_spec("mlp", (12,), 4, hidden=(10,), synapse="metaplastic", synapse_params={"m": 2.0}, seed=3,
                      norm="batch", bias=False)
    torch.manual_seed(0)
    model = build_model(spec)
    opt = make_optimizer(model, lr=1e-2)
    for _ in range(3):
        train_step(model, opt, (torch.rand(5, 8, 12) < 0.4).float(), torch.randint(0, 4, (8,)))
    path = save_checkpoint(tmp_path / "ck.pt", model, opt, spec=spec, note="x", rng=rng_state())
    return path, model, spec


def test_both_levels_load_with_weights_only(saved):
    path, model, spec = saved
    env = torch.load(path, weights_only=True)
    assert env["format"] == FORMAT and env["schema_version"] == SCHEMA_VERSION and len(env["sha256"]) == 64
    payload = torch.load(io.BytesIO(env["payload"].numpy().tobytes()), weights_only=True)
    assert payload["spec"] == spec and payload["note"] == "x" and payload["schema_version"] == SCHEMA_VERSION


def test_load_model_rebuilds_the_trained_network(saved):
    path, model, spec = saved
    model.eval()
    m2, ck = load_model(path.parent / "ck.pt")
    assert m2.spec == spec and not m2.training
    x = (torch.rand(5, 6, 12) < 0.4).float()
    assert torch.equal(model(x).logits, m2(x).logits)
    hid = [s.hidden() for s in model.modules() if hasattr(s, "hidden") and callable(s.hidden)]
    hid2 = [s.hidden() for s in m2.modules() if hasattr(s, "hidden") and callable(s.hidden)]
    assert all(torch.equal(a, b) for a, b in zip(hid, hid2)) and hid


def test_run_folder_is_accepted(tmp_path, saved):
    path, _, _ = saved
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(path.read_bytes())
    load_model(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="without checkpoint.pt"):
        load_model(tmp_path)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "random", "foreign"])
def test_damaged_files_are_one_clear_error(saved, tmp_path, damage):
    path, _, _ = saved
    data = bytearray(path.read_bytes())
    bad = tmp_path / f"{damage}.pt"
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) // 3]
    elif damage == "empty":
        data = bytearray()
    elif damage == "random":
        data = bytearray(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    else:
        buf = io.BytesIO()
        torch.save({"model": {}}, buf)              # a torch file that is not ours
        data = bytearray(buf.getvalue())
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(bad)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    if damage == "flip":
        assert "damaged" in str(e.value)


def test_rng_state_round_trip_is_plain_data(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    st = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    buf = io.BytesIO()
    torch.save(st, buf)
    st2 = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    set_rng_state(st2)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_write_is_atomic_on_error(tmp_path, monkeypatch, saved):
    path, model, spec = saved
    before = path.read_bytes()
    import os

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, model, None, spec=spec)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]
