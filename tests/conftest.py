"""Shared fixtures: the real offline data root (../shared/data beside the checkout)."""
from __future__ import annotations

import pytest

from metaspin_snn.data import default_data_root


@pytest.fixture(scope="session")
def data_root():
    root = default_data_root()
    if not (root / "mnist").is_dir():
        pytest.fail(f"real data not found at {root} (tests read ../shared/data or $METASPIN_DATA)")
    return root


@pytest.fixture
def interpret(monkeypatch):
    """The Triton kernels decorated for Triton's interpreter (CPU tensors); they are decorated again,
    for the GPU, on their next use after the test."""
    from metaspin_snn.networks import triton_lif
    from metaspin_snn.synapses import triton_updates
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    caches = (triton_lif._kernels, triton_updates._kernels)
    for c in caches:
        c.cache_clear()
    yield
    for c in caches:
        c.cache_clear()


# One torch thread: on 2 shared cores OpenMP oversubscription made element-wise ops 5-10x slower.
import torch  # noqa: E402

torch.set_num_threads(1)


# ---- event datasets in tonic's on-disk layout, written once per session ---------------------------
import tarfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def write_nmnist_full(root: Path, data_root: Path, n_train: int | None = None) -> None:
    """N-MNIST in tonic's layout (``NMNIST/Train/<digit>/<k:05d>.bin``): the real recordings of the
    shared subset, byte for byte, under the names the full archive gives them (SOURCE.md)."""
    with tarfile.open(data_root / "nmnist-small" / "nmnist-small-bs2.tar.gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    for split, labels, folder, offset in (("train", "NMNISTsmall/train1K.txt", "Train", 0),
                                          ("test", "NMNISTsmall/test100.txt", "Test", 60000)):
        rows = [line.split() for line in files[labels].decode().splitlines() if line and not line.startswith("#")]
        if split == "train" and n_train is not None:
            rows = rows[:n_train]
        for k, lab in rows:
            d = root / "NMNIST" / folder / lab
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{int(k) - offset:05d}.bin").write_bytes(files[f"NMNISTsmall/{k}.bs2"])


def write_dvsgesture(root: Path, users: dict[str, list[str]], seed: int = 0) -> None:
    """DVS Gesture in tonic's pre-cut layout: ``DVSGesture/ibmGesture<Split>/user<NN>_<lighting>/<label>.npy``
    = int64 ``[N, 4]`` columns x, y, p, t [ms] on a 128×128 sensor, one recording per gesture and
    user session. Generated: gesture c is a blob moving along direction 2πc/11 for 1.5 s, from a
    session clock that does not start at 0 (as in the cut recordings)."""
    rng = np.random.default_rng(seed)
    for split, sessions in users.items():
        for sess in sessions:
            d = root / "DVSGesture" / f"ibmGesture{split.capitalize()}" / sess
            d.mkdir(parents=True, exist_ok=True)
            t_start = int(rng.integers(5_000, 50_000))
            for c in range(11):
                n = 20000
                t = np.sort(rng.integers(0, 1500, n))
                a = 2 * np.pi * c / 11
                x = 64 + np.cos(a) * (t / 1500 * 80 - 40) + rng.normal(0, 8, n)
                y = 64 + np.sin(a) * (t / 1500 * 80 - 40) + rng.normal(0, 8, n)
                ev = np.stack([np.clip(x, 0, 127).astype(np.int64), np.clip(y, 0, 127).astype(np.int64),
                               rng.integers(0, 2, n), t + t_start], axis=1).astype(np.int64)
                np.save(d / f"{c}.npy", ev)


def write_shd(root: Path, n_per_class: dict[str, int], seed: int = 0) -> None:
    """SHD in its released HDF5 format (``SHD/shd_<split>.h5``): ragged ``spikes/times`` (float16, s)
    and ``spikes/units`` (uint16, 0..699), ``labels`` (uint16, 0..19), ``extra/keys`` and
    ``extra/speaker``. Generated: class c fires 3,000–6,000 spikes sweeping over channels 35c..35c+35 in 0.1–0.7 s."""
    import h5py
    rng = np.random.default_rng(seed)
    (root / "SHD").mkdir(parents=True, exist_ok=True)
    for split, n in n_per_class.items():
        labels = np.repeat(np.arange(20), n).astype(np.uint16)
        times, units = [], []
        for c in labels:
            k = int(rng.integers(3000, 6000))
            t = np.sort(rng.uniform(0.1, 0.7, k))
            u = 35 * int(c) + (t - 0.1) / 0.6 * 34 + rng.normal(0, 6, k)
            times.append(t.astype(np.float16))
            units.append(np.clip(u, 0, 699).astype(np.uint16))
        with h5py.File(root / "SHD" / f"shd_{split}.h5", "w") as f:
            f.create_dataset("spikes/times", data=np.array(times, dtype=object), dtype=h5py.vlen_dtype(np.float16))
            f.create_dataset("spikes/units", data=np.array(units, dtype=object), dtype=h5py.vlen_dtype(np.uint16))
            f.create_dataset("labels", data=labels)
            f.create_dataset("extra/keys", data=[f"{lang}-{d}".encode() for lang in ("english", "german")
                                                 for d in range(10)])
            f.create_dataset("extra/speaker", data=rng.integers(0, 12, len(labels)).astype(np.uint16))


@pytest.fixture(scope="session")
def event_root(tmp_path_factory, data_root) -> Path:
    """A data root with full-layout N-MNIST (the subset's real recordings), DVS Gesture and SHD
    (generated, in the datasets' real on-disk formats)."""
    root = tmp_path_factory.mktemp("events")
    write_nmnist_full(root, data_root)
    write_dvsgesture(root, {"train": [f"user{u:02d}_{li}" for u in (1, 2, 3) for li in ("fluorescent", "led")],
                            "test": ["user24_fluorescent", "user24_led"]})
    write_shd(root, {"train": 8, "test": 3})
    return root
