import gzip
import shutil

import numpy as np
import pytest
import torch

from metaspin_snn.data import DatasetError, load_idx_dataset, load_mnist, read_idx


def _write_idx(path, arr, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def _make_dir(d, n=12, rows=28, cols=28, seed=0):
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, (n, rows, cols))
    labs = rng.integers(0, 10, n)
    for split, (i, l) in {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}.items():
        _write_idx(d / f"{i}.gz", imgs, 2051)
        _write_idx(d / f"{l}.gz", labs, 2049)
    return imgs, labs


def test_real_mnist_counts_and_stats(data_root):
    tr, te = load_mnist(data_root, "train"), load_mnist(data_root, "test")
    assert tr.images.shape == (60000, 28, 28) and tr.images.dtype == torch.uint8
    assert te.labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert tr.labels.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    x = tr.float_images()
    assert abs(x.mean().item() - 0.1307) < 1e-3 and abs(x.std().item() - 0.3081) < 1e-3


def test_any_mnist_format_directory(tmp_path):
    imgs, labs = _make_dir(tmp_path)
    ds = load_idx_dataset(tmp_path, "train")
    assert np.array_equal(ds.images.numpy(), imgs) and np.array_equal(ds.labels.numpy(), labs)


def test_corrupted_copy_of_real_file_is_named(tmp_path, data_root):
    d = tmp_path / "mnist"
    shutil.copytree(data_root / "mnist", d)
    raw = bytearray((d / "t10k-labels-idx1-ubyte.gz").read_bytes())
    raw[100] ^= 0xFF
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz.*sha256"):
        load_mnist(tmp_path, "test")
    load_mnist(tmp_path, "train")  # the untouched split still loads


def test_bad_magic_truncation_and_missing(tmp_path):
    _make_dir(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(5), 2051)
    with pytest.raises(DatasetError, match="magic 2051, expected 2049"):
        load_idx_dataset(tmp_path, "test")
    p = tmp_path / "x.gz"
    with gzip.open(p, "wb") as fh:
        fh.write((2051).to_bytes(4, "big") + (3).to_bytes(4, "big") + (2).to_bytes(4, "big") * 2 + b"\0" * 5)
    with pytest.raises(DatasetError, match="bytes, expected"):
        read_idx(p)
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="missing file: .*train-images-idx3-ubyte"):
        load_idx_dataset(tmp_path, "train")
    with pytest.raises(DatasetError, match="missing dataset directory"):
        load_mnist(tmp_path / "nowhere", "train")
    with pytest.raises(ValueError, match="split"):
        load_idx_dataset(tmp_path, "valid")
