"""Event datasets through tonic (data/events.py): N-MNIST in tonic's layout (the shared subset's real
recordings), DVS Gesture and SHD (generated files in their real on-disk formats); binning written out
independently; the split event streams; downloads of the archives through a loopback mirror."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from metaspin_snn.cli import main as cli_main
from metaspin_snn.continual.config import RunConfig
from metaspin_snn.continual.runner import build_stream
from metaspin_snn.continual.streams import split_nmnist
from metaspin_snn.data import load_nmnist
from metaspin_snn.data.events import EVENT_DATASETS, PackedFrames, load_events, present
from metaspin_snn.data.idx import DatasetError


def _bins(t_us: np.ndarray, chan: np.ndarray, n_chan: int, dt: int, T: int, t0: int = 0) -> np.ndarray:
    """Binary frames written out by hand: bin k holds the events with t0 + k·dt <= t < t0 + (k+1)·dt."""
    out = np.zeros((T, n_chan), dtype=np.uint8)
    for t, c in zip(t_us.tolist(), chan.tolist()):
        k = (t - t0) // dt
        if 0 <= k < T:
            out[k, c] = 1
    return out


def test_packed_frames_round_trip_and_indexing():
    rng = np.random.default_rng(0)
    x = (rng.random((7, 3, 2, 5, 5)) < 0.3).astype(np.uint8)
    p = PackedFrames.pack(x)
    assert p.shape == torch.Size(x.shape) and len(p) == 7 and p.nbytes() == 7 * ((3 * 2 * 25 + 7) // 8)
    assert np.array_equal(p.unpack().numpy(), x)
    idx = torch.tensor([5, 0, 5])
    assert np.array_equal(p[idx].unpack().numpy(), x[[5, 0, 5]])
    assert np.array_equal(p[2:4].unpack().numpy(), x[2:4])
    assert np.array_equal(PackedFrames.pack(x * 3).unpack().numpy(), x)      # counts are clipped to spikes
    with pytest.raises(ValueError):
        PackedFrames(np.zeros((2, 3), np.uint8), (3, 2, 5, 5))


def test_full_nmnist_through_tonic_equals_the_subset_reader(event_root, data_root):
    """tonic's reader + ToFrame on NMNIST/Train/<d>/<k>.bin gives, recording by recording, the frames
    of our own decoder of the same bytes (two implementations of the N-MNIST format and the binning)."""
    ev = load_events("n-mnist", event_root, "train")
    sub = load_nmnist(data_root, "train")
    assert len(ev) == len(sub) == 1000
    pos = {k: i for i, k in enumerate(sub.ids)}
    order = [pos[int(Path(f).stem)] for f in ev.dataset.data]           # tonic lists Train/<digit>/<k>.bin
    assert torch.equal(ev.labels, sub.labels[order])
    pick = [0, 1, 500, 999]
    mine = sub.frames(10_000, 30, binary=True, indices=[order[i] for i in pick]).to(torch.uint8)
    assert torch.equal(ev.frames(pick).unpack(), mine)
    assert ev.frames(pick).shape == torch.Size((4, 30, 2, 34, 34))


def test_shd_bins_written_out_by_hand(tmp_path):
    """SHD: spikes at t [s] on unit u land in bin ⌊t·10⁶/dt⌋, channel u; spikes after T·dt are dropped;
    tonic's Downsample(0.2) maps unit u to ⌊0.2·u⌋."""
    import h5py
    times = [np.array([0.0, 0.015, 0.0151, 0.2, 2.5], np.float16), np.array([0.05], np.float16)]
    units = [np.array([5, 699, 699, 10, 3], np.uint16), np.array([42], np.uint16)]
    (tmp_path / "SHD").mkdir()
    for split in ("train", "test"):
        with h5py.File(tmp_path / "SHD" / f"shd_{split}.h5", "w") as f:
            f.create_dataset("spikes/times", data=np.array(times, dtype=object), dtype=h5py.vlen_dtype(np.float16))
            f.create_dataset("spikes/units", data=np.array(units, dtype=object), dtype=h5py.vlen_dtype(np.uint16))
            f.create_dataset("labels", data=np.array([3, 17], np.uint16))
            f.create_dataset("extra/keys", data=[b"k"] * 20)
            f.create_dataset("extra/speaker", data=np.array([0, 1], np.uint16))
    ds = load_events("shd", tmp_path, "train", dt_us=10_000, steps=30)
    assert ds.labels.tolist() == [3, 17]
    got = ds.frames([0, 1]).unpack()
    assert got.shape == (2, 30, 1, 700)
    for i in range(2):
        t_us = (times[i].astype(np.float64) * 1e6).astype(np.int64)   # tonic: float16 s → µs
        assert np.array_equal(got[i, :, 0].numpy(), _bins(t_us, units[i].astype(np.int64), 700, 10_000, 30))
    down = load_events("shd", tmp_path, "test", dt_us=10_000, steps=30, spatial_factor=0.2).frames([0]).unpack()
    assert down.shape == (1, 30, 1, 140)
    t_us = (times[0].astype(np.float64) * 1e6).astype(np.int64)
    assert np.array_equal(down[0, :, 0].numpy(), _bins(t_us, (units[0] * 0.2).astype(np.int64), 140, 10_000, 30))


def test_dvsgesture_bins_start_at_the_first_event_and_downsample(tmp_path):
    """DVS Gesture (.npy x, y, p, t[ms]): bins start at the recording's first event (cut recordings keep
    the session clock), and x, y are downsampled by ¼ by default (128 → 32)."""
    d = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_led"
    d.mkdir(parents=True)
    ev = np.array([[127, 0, 1, 90_000], [4, 8, 0, 90_049], [4, 8, 0, 90_050], [64, 64, 1, 91_600]], np.int64)
    np.save(d / "7.npy", ev)
    ds = load_events("dvsgesture", tmp_path, "train")
    assert ds.labels.tolist() == [7] and ds.dt_us == 50_000 and ds.steps == 30
    f = ds.frames([0]).unpack()[0]
    assert f.shape == (30, 2, 32, 32)
    want = np.zeros((30, 2, 32, 32), np.uint8)
    want[0, 1, 0, 31] = 1       # t = 0 ms after the first event: bin 0, ON, y = 0, x = 127 // 4
    want[0, 0, 2, 1] = 1        # 49 ms: bin 0
    want[1, 0, 2, 1] = 1        # 50 ms: bin 1; the event 1,600 ms in is past 30 · 50 ms: dropped
    assert np.array_equal(f.numpy(), want)


def test_missing_event_data_names_the_path_and_the_download_command(tmp_path, monkeypatch):
    import tonic.download_utils as du

    def no_network(*a, **k):
        raise AssertionError("tonic tried to download")
    monkeypatch.setattr(du, "download_and_extract_archive", no_network)
    for name, spec in EVENT_DATASETS.items():
        with pytest.raises(DatasetError) as e:
            load_events(name, tmp_path, "train")
        msg = str(e.value)
        assert str(tmp_path / spec.folder / spec.split_paths["train"]) in msg
        assert f"metaspin data download {name}" in msg
        assert not present(name, tmp_path, "train")
    with pytest.raises(ValueError, match="unknown event dataset"):
        load_events("cifar10-dvs", tmp_path, "train")


def test_out_of_range_labels_are_refused(tmp_path):
    d = tmp_path / "DVSGesture" / "ibmGestureTest" / "user24_led"
    d.mkdir(parents=True)
    np.save(d / "11.npy", np.array([[1, 1, 1, 0]], np.int64))
    with pytest.raises(DatasetError, match="expected 0..10"):
        load_events("dvsgesture", tmp_path, "test")


def test_split_nmnist_reads_the_full_set_when_present_else_the_subset(event_root, data_root):
    """Same recordings either way (event_root's N-MNIST is the subset's files in the full layout):
    each task holds the same set of frames, read by tonic or by the subset reader."""
    full = split_nmnist(root=event_root)
    sub = split_nmnist(root=data_root)
    assert [t.meta["data"] for t in (full[0], sub[0])] == ["n-mnist (tonic)", "nmnist-small (subset)"]
    for a, b in zip(full, sub):
        assert a.name == b.name and a.classes == b.classes
        for split in ("train", "test"):
            xa, xb = getattr(a, f"{split}_x"), getattr(b, f"{split}_x")
            assert isinstance(xa, PackedFrames) and isinstance(xb, PackedFrames)
            ya, yb = getattr(a, f"{split}_y"), getattr(b, f"{split}_y")
            key = lambda bits, y: sorted((bytes(r), int(c)) for r, c in zip(bits, y))  # noqa: E731
            assert key(xa.bits, ya) == key(xb.bits, yb)


def test_event_streams_tasks_shapes_and_names(event_root):
    shd = build_stream(RunConfig(stream="split-shd", n_tasks=5, classes_per_task=4, data_root=str(event_root),
                                 progress=False))
    assert [t.name for t in shd][:2] == ["split-shd-0/1/2/3", "split-shd-4/5/6/7"]
    assert all(t.input_shape == (1, 700) and t.n_steps_native == 100 and t.kind == "events" for t in shd)
    assert shd[0].size("train") == 32 and shd[0].size("test") == 12
    x = shd[1].inputs("train", torch.arange(3))
    assert x.dtype == torch.float32 and x.shape == (3, 100, 1, 700) and set(x.unique().tolist()) <= {0.0, 1.0}
    dvs = build_stream(RunConfig(stream="split-dvsgesture", n_tasks=5, data_root=str(event_root), progress=False,
                                 event_steps=10, event_dt_us=100_000))
    assert [t.classes for t in dvs] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]      # class 10 ("other") left out
    assert dvs[0].input_shape == (2, 32, 32) and dvs[0].n_steps_native == 10
    assert dvs[0].meta["dt_us"] == 100_000 and dvs[0].meta["spatial_factor"] == 0.25
    val = build_stream(RunConfig(stream="split-shd", n_tasks=5, classes_per_task=4, data_root=str(event_root),
                                 validation=8, progress=False))
    assert val[0].size("train") == 24 and val[0].size("test") == 8 and isinstance(val[0].test_x, PackedFrames)


@pytest.mark.parametrize("kw, key", [
    (dict(stream="split-shd", n_tasks=5, classes_per_task=3), "classes_per_task"),
    (dict(stream="split-shd", n_tasks=10, classes_per_task=4), "n_tasks"),
    (dict(stream="pmnist", event_steps=10), "event_steps"),
    (dict(stream="split-nmnist", event_spatial_factor=2.0), "event_spatial_factor"),
    (dict(stream="split-shd", n_tasks=5, classes_per_task=4, network="conv"), "network"),
    (dict(stream="split-dvsgesture", event_dt_us=0), "event_dt_us"),
])
def test_event_config_errors_name_the_key(kw, key):
    with pytest.raises(ValueError, match=f"'{key}'"):
        RunConfig(**kw)


def test_old_nmnist_key_names_still_load():
    c = RunConfig.from_dict({"stream": "split-nmnist", "nmnist_steps": 12, "nmnist_dt_us": 5000})
    assert (c.event_steps, c.event_dt_us) == (12, 5000)


@pytest.mark.parametrize("stream", ["split-shd", "split-dvsgesture"])
def test_run_quick_on_generated_files(stream, event_root, tmp_path):
    """The issue's done-when: `metaspin run split-shd --quick` and `split-dvsgesture --quick` run (the
    four-learner comparison) on the generated files."""
    import json
    out = tmp_path / "o"
    assert cli_main(["run", stream, "--quick", "--data-root", str(event_root), "--out", str(out),
                     "--no-progress", "--jobs", "1"]) == 0
    runs = sorted(p.parent.name for p in out.glob("*/results.json"))
    assert runs == ["finetune-real", "mesu", "metaplastic-m10.0", "si-real"]
    res = json.loads((out / "si-real" / "results.json").read_text())
    assert len(res["matrix"]) == 5 and res["task_names"][0].startswith(stream)
    assert (out / "summary.md").is_file()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    return buf.getvalue()


def test_event_archive_download_verifies_unpacks_and_skips(event_root, tmp_path, monkeypatch, capsys):
    """`data download n-mnist` through a loopback mirror: archives verified (md5), unpacked into
    tonic's layout, read by load_events; a second call fetches and unpacks nothing; a corrupt archive
    exits 2 and keeps nothing."""
    import functools
    import http.server
    import threading

    import metaspin_snn.data.download as dl
    served = tmp_path / "served"
    served.mkdir()
    for split, folder in (("train", "Train"), ("test", "Test")):
        files = sorted((event_root / "NMNIST" / folder).rglob("*.bin"))[:40]
        (served / f"{split}.zip").write_bytes(
            _zip_bytes({f"{folder}/{f.parent.name}/{f.name}": f.read_bytes() for f in files}))
    md5 = {n: hashlib.md5((served / n).read_bytes()).hexdigest() for n in ("train.zip", "test.zip")}
    monkeypatch.setitem(dl.REMOTE, "n-mnist", dataclasses.replace(dl.REMOTE["n-mnist"], files=md5))
    log = []

    class H(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            log.append(a)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=str(served)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/"
    try:
        root = tmp_path / "R"
        assert cli_main(["data", "download", "n-mnist", "--root", str(root), "--mirror", url]) == 0
        assert sorted(p.name for p in (root / "NMNIST").iterdir()) == ["Test", "Train", "test.zip", "train.zip"]
        ev = load_events("n-mnist", root, "train")
        assert len(ev) == 40 and ev.frames([0]).shape == torch.Size((1, 30, 2, 34, 34))
        n = len(log)
        capsys.readouterr()
        assert cli_main(["data", "download", "n-mnist", "--root", str(root), "--mirror", url]) == 0
        assert len(log) == n and "already unpacked" in capsys.readouterr().out
        bad = bytearray((served / "test.zip").read_bytes())
        bad[50] ^= 0xFF
        (served / "test.zip").write_bytes(bytes(bad))
        root2 = tmp_path / "R2"
        assert cli_main(["data", "download", "n-mnist", "--root", str(root2), "--mirror", url]) == 2
        assert "md5" in capsys.readouterr().err
        assert sorted(p.name for p in (root2 / "NMNIST").iterdir()) == ["Train", "train.zip"]   # no test.zip, no .part
    finally:
        srv.shutdown()
        srv.server_close()


def test_unpack_refuses_unsafe_member_paths(tmp_path):
    from metaspin_snn.data.download import unpack
    a = tmp_path / "evil.zip"
    a.write_bytes(_zip_bytes({"../outside.txt": b"x", "Train/0/1.bin": b""}))
    (tmp_path / "d").mkdir()
    with pytest.raises(DatasetError, match="unsafe member path"):
        unpack(a, tmp_path / "d", "Train")
    assert not (tmp_path / "outside.txt").exists() and list((tmp_path / "d").iterdir()) == []
