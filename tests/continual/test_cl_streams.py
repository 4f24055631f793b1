"""Streams: permutations are permutations, split tasks hold the right classes, sequences accept any
MNIST-format directory, rotations rotate, batching covers every sample once."""
import gzip
import struct

import numpy as np
import pytest
import torch

from metaspin_snn.continual import streams as S
from metaspin_snn.data import load_mnist


def _write_idx(path, arr: np.ndarray, gz: bool) -> None:
    magic = 2051 if arr.ndim == 3 else 2049
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def make_idx_dir(d, n_train: int, n_test: int, n_classes: int, hw: int = 8, seed: int = 0, gz: bool = True):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(d / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, hw, hw)), gz)
        _write_idx(d / f"{split}-labels-idx1-ubyte", np.arange(n) % n_classes, gz)
    return d


def test_permuted_mnist_permutations():
    tasks = S.permuted_mnist(4, seed=3, train_subset=50, test_subset=20)
    perms = [t.transform.perm for t in tasks]
    assert torch.equal(perms[0], torch.arange(784))                      # identity first
    for p in perms:
        assert torch.equal(p.sort().values, torch.arange(784))          # a permutation
    assert all(not torch.equal(perms[i], perms[j]) for i in range(4) for j in range(i + 1, 4))
    again = S.permuted_mnist(4, seed=3, train_subset=50, test_subset=20)
    assert all(torch.equal(a.transform.perm, b.transform.perm) for a, b in zip(tasks, again))
    assert all(torch.equal(a.train_x, b.train_x) for a, b in zip(tasks, again))
    other = S.permuted_mnist(2, seed=4, identity_first=False, train_subset=50, test_subset=20)
    assert not torch.equal(other[0].transform.perm, torch.arange(784))
    # the permutation is applied to the pixels: x'[:, i] = x[:, perm[i]]
    t = tasks[2]
    idx = torch.arange(5)
    x = t.inputs("train", idx).reshape(5, -1)
    base = t.train_x[idx].float().div(255).reshape(5, -1)
    assert torch.equal(x, base[:, t.transform.perm])
    assert t.classes == tuple(range(10)) and t.global_classes == tuple(range(20, 30))


def test_split_mnist_classes():
    mn = load_mnist(None, "train")
    tasks = S.split_mnist(seed=0)
    assert [t.classes for t in tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    for t in tasks:
        sel = torch.isin(mn.labels, torch.tensor(t.classes))
        assert t.size("train") == int(sel.sum())
        assert torch.equal(t.train_x, mn.images[sel])
        assert torch.equal(torch.tensor(t.classes)[t.train_y], mn.labels[sel])
        assert set(t.test_y.tolist()) == {0, 1}
    sh = S.split_mnist(seed=5, shuffle_classes=True, train_subset=30, test_subset=10)
    assert sorted(c for t in sh for c in t.classes) == list(range(10))
    assert [t.classes for t in sh] != [t.classes for t in tasks]
    with pytest.raises(ValueError, match="classes_per_task"):
        S.split_mnist(classes_per_task=3)


def test_sequence_accepts_any_mnist_format_dir(tmp_path):
    a = make_idx_dir(tmp_path / "a", 30, 12, 3, gz=True)
    b = make_idx_dir(tmp_path / "b", 20, 8, 4, gz=False, seed=1)
    tasks = S.dataset_sequence([a, b], seed=0)
    assert [t.classes for t in tasks] == [(0, 1, 2), (0, 1, 2, 3)]
    assert tasks[1].global_classes == (3, 4, 5, 6)                       # class-IL offset
    assert tasks[0].input_shape == (1, 8, 8) and tasks[1].size("train") == 20
    x, y = next(S.iter_batches(tasks[1], "test", 8, shuffle=False))
    assert x.shape == (8, 8, 8) and float(x.max()) <= 1.0 and torch.equal(y, torch.arange(8) % 4)
    c = make_idx_dir(tmp_path / "c", 10, 5, 2, hw=6)
    with pytest.raises(ValueError, match="images"):
        S.dataset_sequence([a, c])
    with pytest.raises(Exception, match="missing"):
        S.dataset_sequence([tmp_path / "nope"])


def test_rotation_by_90_degrees_is_rot90():
    x = torch.rand(3, 28, 28)
    r = S.Rotation(90.0)(x)
    ref = torch.rot90(x, k=1, dims=(1, 2))
    ref2 = torch.rot90(x, k=-1, dims=(1, 2))
    err = min(float((r - ref).abs().max()), float((r - ref2).abs().max()))
    assert err < 1e-5
    assert torch.equal(S.Rotation(0.0)(x), x)
    tasks = S.rotated_mnist(3, train_subset=10, test_subset=10)
    assert [t.transform.degrees for t in tasks] == [0.0, 60.0, 120.0]


def test_batches_cover_each_sample_once_and_encode():
    t = S.permuted_mnist(1, train_subset=37, test_subset=10)[0]
    g = torch.Generator().manual_seed(0)
    ys = []
    n = 0
    for x, y in S.iter_batches(t, "train", 10, shuffle=True, generator=g):
        ys.append(y)
        n += len(y)
        e = S.encode_batch(t, x, num_steps=3, encoding="direct", flatten=True)
        assert e.shape == (3, len(y), 784)
    assert n == 37 and sorted(torch.cat(ys).tolist()) == sorted(t.train_y.tolist())
    assert sum(len(y) for _, y in S.iter_batches(t, "train", 10, shuffle=True, limit=15)) == 15


def test_split_nmnist_events():
    tasks = S.split_nmnist(train_subset=6, test_subset=3, num_steps=5, dt_us=20_000)
    assert len(tasks) == 5 and tasks[2].classes == (4, 5)
    t = tasks[0]
    assert t.kind == "events" and t.train_x.shape == (6, 5, 2, 34, 34) and t.input_shape == (2, 34, 34)
    x, y = next(S.iter_batches(t, "train", 4, shuffle=False))
    e = S.encode_batch(t, x, num_steps=99, encoding="rate", flatten=True)
    assert e.shape == (5, 4, 2 * 34 * 34) and set(e.unique().tolist()) <= {0.0, 1.0}


def test_holdout_validation_is_disjoint_from_training(tmp_path):
    d = make_idx_dir(tmp_path / "a", n_train=60, n_test=20, n_classes=3)
    tasks = S.dataset_sequence([d, d], seed=0)
    val = S.holdout_validation(tasks, 15, seed=4)
    for t, v in zip(tasks, val):
        assert v.size("train") == 45 and v.size("test") == 15 and v.meta["eval_split"] == "validation"
        train_rows = {tuple(r.flatten().tolist()) for r in v.train_x}
        val_rows = [tuple(r.flatten().tolist()) for r in v.test_x]
        assert not train_rows & set(val_rows)                        # nothing trained on is evaluated
        assert sorted(train_rows | set(val_rows)) == sorted({tuple(r.flatten().tolist()) for r in t.train_x})
    assert torch.equal(S.holdout_validation(tasks, 15, seed=4)[1].test_y, val[1].test_y)   # seeded
    with pytest.raises(ValueError, match="cannot hold out 60"):
        S.holdout_validation(tasks, 60)
    with pytest.raises(ValueError, match="positive int"):
        S.holdout_validation(tasks, 0)
