import numpy as np
import pytest

from metaspin_snn.data import DatasetError, decode_events, events_to_frames, load_nmnist
from metaspin_snn.data.nmnist import SENSOR


def test_real_subset_counts_ranges_labels(data_root):
    tr, te = load_nmnist(data_root, "train"), load_nmnist(data_root, "test")
    assert len(tr) == 1000 and len(te) == 100
    assert tr.ids[0] == 1 and te.ids[0] == 60001
    assert tr.labels.bincount().tolist() == [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]
    assert te.labels.bincount().tolist() == [8, 14, 8, 11, 14, 7, 10, 15, 2, 11]
    n = [e.size for e in tr.events + te.events]
    assert sum(n) == 4_518_827 and min(n) == 1069 and max(n) == 7152  # SOURCE.md
    for e in tr.events[:50]:
        assert e["x"].min() >= 0 and e["x"].max() < SENSOR and e["y"].max() < SENSOR
        assert np.all(np.diff(e["t"]) >= 0) and set(np.unique(e["p"])) <= {0, 1}


def test_labels_match_mnist(data_root):
    from metaspin_snn.data import load_mnist
    tr, mn = load_nmnist(data_root, "train"), load_mnist(data_root, "train")
    assert tr.labels.tolist() == mn.labels[:1000].tolist()


def test_decode_known_bytes_and_binning():
    # x=3, y=33, ON, t=0x12345 ; x=0, y=1, OFF, t=2500
    raw = bytes([3, 33, 0x80 | 0x01, 0x23, 0x45, 0, 1, 0x00, 0x09, 0xC4])
    ev = decode_events(raw)
    assert ev["x"].tolist() == [3, 0] and ev["y"].tolist() == [33, 1]
    assert ev["p"].tolist() == [1, 0] and ev["t"].tolist() == [0x12345, 2500]
    f = events_to_frames(np.concatenate([ev, ev[1:]]), dt_us=1000, num_steps=3)
    assert f.shape == (3, 2, SENSOR, SENSOR) and f.sum() == 2  # t=0x12345 lies beyond T*dt
    assert f[2, 0, 1, 0] == 2
    assert events_to_frames(ev[1:].repeat(3), 1000, 3, binary=True).max() == 1


def test_frames_total_equals_events(data_root):
    tr = load_nmnist(data_root, "train")
    f = tr.frames(dt_us=5000, indices=[0, 5])
    assert f.shape[1:] == (f.shape[1], 2, 34, 34) and f.shape[1] >= 60
    assert f[0].sum() == tr.events[0].size and f[1].sum() == tr.events[5].size


def test_corrupt_and_missing(tmp_path):
    with pytest.raises(DatasetError, match="not a multiple of 5"):
        decode_events(b"\0" * 7, "s.bs2")
    with pytest.raises(DatasetError, match="coordinates"):
        decode_events(bytes([40, 0, 0, 0, 0]))
    with pytest.raises(DatasetError, match="nmnist-small"):
        load_nmnist(tmp_path, "train")
    (tmp_path / "nmnist-small").mkdir()
    (tmp_path / "nmnist-small" / "nmnist-small-bs2.tar.gz").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="MEMBERS.sha256"):
        load_nmnist(tmp_path, "train")
    with pytest.raises(DatasetError, match="corrupt file: .*nmnist-small-bs2.tar.gz"):
        load_nmnist(tmp_path, "train", verify=False)
