"""Bad files, bad values, failed writes: one clear line, exit 2, nothing half-written (issue 14's rows)."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from metaspin_snn.cli import main
from metaspin_snn.continual import RunConfig, run_stream

TINY = dict(stream="pmnist", n_tasks=2, train_subset=100, test_subset=50, hidden=[12], num_steps=2, batch_size=50,
            eval_batch_size=50, progress=False, reference="none", synapse="metaplastic", loggers=["csv"])
RUN = ["run", "pmnist", "--tasks", "2", "--synapse", "metaplastic", "--set", "train_subset=100", "--set",
       "test_subset=50", "--set", "hidden=[12]", "--set", "num_steps=2", "--epochs", "1", "--no-progress"]


def _no_temp(d: Path) -> bool:
    return not [p for p in d.rglob("*") if ".tmp" in p.name or p.name.startswith(".write-test")]


# ---- data --------------------------------------------------------------------------------------------
def test_raw_idx_files_are_hashed_too(tmp_path, data_root, capsys):
    d = tmp_path / "mnist"
    d.mkdir()
    for f in (data_root / "mnist").glob("*.gz"):
        raw = gzip.decompress(f.read_bytes())
        if f.name.startswith("t10k-labels"):
            raw = raw[:8] + bytes([7]) * (len(raw) - 8)            # every test label set to 7
        (d / f.name[:-3]).write_bytes(raw)
    assert main(["data", "check", "--data-root", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "t10k-labels-idx1-ubyte" in out and "sha256" in out and "train OK" in out


def _nmnist_copy(tmp_path: Path, data_root: Path, members: str | None) -> Path:
    d = tmp_path / "nmnist-small"
    shutil.copytree(data_root / "nmnist-small", d)
    if members is not None:
        (d / "MEMBERS.sha256").write_text(members)
    return tmp_path


@pytest.mark.parametrize("members,msg", [("", "nothing to verify"), ("\n\n", "nothing to verify"),
                                         ("garbage\n", "line 1"), (None, "line 3")])
def test_nmnist_members_list_is_checked(tmp_path, data_root, members, msg):
    from metaspin_snn.data import DatasetError, load_nmnist
    root = _nmnist_copy(tmp_path, data_root, members)
    if members is None:  # one garbage line in the middle of the real list
        lines = (root / "nmnist-small" / "MEMBERS.sha256").read_text().splitlines()
        (root / "nmnist-small" / "MEMBERS.sha256").write_text("\n".join(lines[:2] + ["not a checksum"] + lines[2:]))
    with pytest.raises(DatasetError, match=msg) as e:
        load_nmnist(root, "test")
    assert "MEMBERS.sha256" in str(e.value)


def test_nmnist_member_without_checksum_is_refused(tmp_path, data_root):
    from metaspin_snn.data import DatasetError, load_nmnist
    root = _nmnist_copy(tmp_path, data_root, None)
    lines = (root / "nmnist-small" / "MEMBERS.sha256").read_text().splitlines()
    (root / "nmnist-small" / "MEMBERS.sha256").write_text("\n".join(l for l in lines if "test100" not in l))
    with pytest.raises(DatasetError, match="no checksum for archive member"):
        load_nmnist(root, "test")


# ---- run folders, checkpoints and writes -------------------------------------------------------------
def test_flipped_bit_refuses_resume_before_training(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    assert main([*RUN, "--out", str(out)]) == 0
    ck = out / "checkpoint.pt"
    data = bytearray(ck.read_bytes())
    data[len(data) // 2] ^= 0x20
    ck.write_bytes(bytes(data))
    from metaspin_snn.continual import learner as L
    monkeypatch.setattr(L.Learner, "train_task", lambda *a, **k: pytest.fail("trained before refusing"))
    capsys.readouterr()
    assert main([*RUN, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged" in err[0] and str(ck) in err[0]


def test_unwritable_out_is_refused_before_any_data_loads(tmp_path, capsys, monkeypatch):
    import pathlib
    real = pathlib.Path.write_bytes

    def deny(self, data):
        if self.name.startswith(".write-test"):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, data)
    monkeypatch.setattr(pathlib.Path, "write_bytes", deny)
    from metaspin_snn.continual import runner
    monkeypatch.setattr(runner, "build_stream", lambda *a, **k: pytest.fail("data loaded"))
    assert main([*RUN, "--out", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert "not writable" in err and "Traceback" not in err


@pytest.mark.parametrize("fail_at", [1, 2, 3, 5, 8])
def test_disk_full_at_any_write_point_keeps_a_consistent_state(tmp_path, monkeypatch, fail_at):
    """ENOSPC at the k-th file write: a clear error, no temporary files, and results.json and
    checkpoint.pt always describe the same number of tasks."""
    import metaspin_snn.files as F
    calls = {"n": 0}
    real = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError(28, "No space left on device")
        return real(fd)
    monkeypatch.setattr(F.os, "fsync", fsync)
    out = tmp_path / "r"
    with pytest.raises(OSError, match="No space left"):
        run_stream(RunConfig(**TINY, out=str(out)))
    assert _no_temp(out)
    res, ck = out / "results.json", out / "checkpoint.pt"
    assert res.exists() == ck.exists() == (out / "run_info.json").exists()
    if res.exists():
        from metaspin_snn.networks import read_checkpoint
        assert len(json.loads(res.read_text())["matrix"]) == int(read_checkpoint(ck)["next_task"])


def test_files_get_the_usual_mode(tmp_path, data_root):
    from metaspin_snn.networks.classifier import train_classifier
    res = train_classifier("mnist", hidden=(8,), num_steps=2, n_train=100, n_test=50, batch_size=50,
                           data_root=data_root, out=tmp_path / "t", progress=False)
    mask = os.umask(0)
    os.umask(mask)
    for f in (Path(res["json"]), Path(res["checkpoint"])):
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~mask


# ---- values ------------------------------------------------------------------------------------------
def test_infinite_parameter_is_refused_naming_the_key(capsys, tmp_path):
    assert main([*RUN, "--set", "synapse_params.lr=inf", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "synapse_params" in err and "lr" in err and "inf" in err
    from metaspin_snn.synapses.mtj import MTJParams
    assert MTJParams(tau_relax_s=float("inf")).tau_relax_s == float("inf")  # "inf = none" is allowed where it means so


def test_nan_in_layer_1_changes_no_state():
    from metaspin_snn.networks import SpikingMLP, make_optimizer
    from metaspin_snn.synapses.registry import synapse_factory
    torch.manual_seed(0)
    model = SpikingMLP([6, 5, 3], synapse=synapse_factory("metaplastic"), bias=True)
    opt = make_optimizer(model)
    out = model(torch.rand(2, 4, 6))
    out.logits.sum().backward()
    syn = [m for m in model.modules() if hasattr(m, "hidden_weight")]
    syn[1].weight.grad[0, 0] = float("nan")
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    with pytest.raises(ValueError, match="synapse model 1"):
        opt.step()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_traceback_on_request(tmp_path, monkeypatch):
    monkeypatch.setenv("METASPIN_TRACEBACK", "1")
    with pytest.raises(ValueError, match="n_tasks"):
        main(["run", "pmnist", "--tasks", "0", "--out", str(tmp_path / "t")])


# ---- export ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rel") / "r"
    assert main([*RUN, "--out", str(d)]) == 0
    return d


def test_export_verify_negative_writes_nothing(small_run, capsys):
    before = sorted(p.name for p in small_run.iterdir())
    assert main(["export", str(small_run), "--to", "lava", "--verify", "-3"]) == 2
    assert sorted(p.name for p in small_run.iterdir()) == before


@pytest.mark.parametrize("target,name", [("lava", "checkpoint.lava.npz"), ("nir", "checkpoint.nir")])
def test_export_on_a_full_disk_leaves_no_file(small_run, capsys, monkeypatch, target, name):
    """ENOSPC while an export file is written: one line, exit 2, neither the file nor a temporary one."""
    import metaspin_snn.files as F
    monkeypatch.setattr(F.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    before = sorted(p.name for p in small_run.iterdir())
    code = main(["export", str(small_run), "--to", target])
    err = capsys.readouterr().err
    assert code == 2 and "No space left" in err and name in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in small_run.iterdir()) == before and not (small_run / name).exists()


def test_netx_write_on_a_full_disk_leaves_no_file(tmp_path, monkeypatch):
    import metaspin_snn.files as F
    from metaspin_snn.export.ir import LayerIR, NetworkIR
    from metaspin_snn.export.netx import write_netx
    rng = np.random.default_rng(0)
    ir = NetworkIR((LayerIR(rng.normal(size=(6, 8)), None, 0.9, 1.0, name="l0"),
                    LayerIR(rng.normal(size=(3, 6)), None, 0.9, 1.0, name="l1")), input_kind="spikes")
    write_netx(ir, tmp_path / "ok.net")                              # the same network writes normally
    monkeypatch.setattr(F.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space left.*full.net"):
        write_netx(ir, tmp_path / "full.net")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.net"]


def test_lava_timeout_is_one_line_and_leaves_no_worker(small_run, capsys, monkeypatch):
    import functools

    from metaspin_snn.export import lava
    from metaspin_snn.export.lava import _shm_names, session_processes
    # the worker hangs once its Lava run has started (test hook), so the timeout fires however fast
    # this machine starts a worker (a 5-sample run can finish within 0.5 s)
    monkeypatch.setattr(lava, "run_lava", functools.partial(lava.run_lava, _fail="hang", term_grace=1.0))
    shm = _shm_names()
    capsys.readouterr()
    assert main(["export", str(small_run), "--to", "lava", "--verify", "5", "--timeout", "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "timed out after 0.5 s" in err[0] and "Traceback" not in err[0]
    assert _shm_names() <= shm and session_processes(os.getpid()) == []


def test_recurrent_neurons_are_named_in_the_export_error():
    import snntorch as snn
    from torch import nn

    from metaspin_snn.export.ir import ExportError, extract_ir
    with pytest.raises(ExportError, match="RLeaky \\(recurrent\\) is not supported"):
        extract_ir(nn.Sequential(nn.Linear(4, 3), snn.RLeaky(beta=0.9, linear_features=3)))


def test_float64_input_into_synaptic_layers():
    from metaspin_snn.networks import SynapticConv2d, SynapticLinear
    lin = SynapticLinear(4, 3)
    x = torch.rand(2, 4, dtype=torch.float64)
    assert torch.allclose(lin(x), lin(x.float()))
    conv = SynapticConv2d(1, 2, 3)
    xi = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    assert torch.allclose(conv(xi), conv(xi.float()))
