"""Event datasets read with tonic (Lenz et al., tonic, doi:10.5281/zenodo.5079802) from local files in
tonic's own layout, binned with tonic's transforms and kept bit-packed in memory.

Datasets (``EVENT_DATASETS``) and the files tonic reads under the data root ``R``:

* ``n-mnist`` — N-MNIST (Orchard et al., Front. Neurosci. 9:437, 2015), all 60,000 / 10,000
  recordings: ``R/NMNIST/Train/<digit>/<k>.bin``, ``R/NMNIST/Test/<digit>/<k>.bin``
  (the extracted ``train.zip`` / ``test.zip``); 34×34 pixels × 2 polarities.
* ``dvsgesture`` — IBM DVS Gesture (Amir et al., CVPR 2017), in tonic's pre-cut version:
  ``R/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy`` (columns x, y, p, t [ms]);
  128×128 × 2, 11 classes.
* ``shd`` — Spiking Heidelberg Digits (Cramer et al., IEEE TNNLS 2020): ``R/SHD/shd_train.h5``,
  ``R/SHD/shd_test.h5`` (``spikes/times`` [s], ``spikes/units``, ``labels``); 700 channels, 20 classes.

Frames: tonic's ``Downsample(spatial_factor)`` (when ≠ 1) then ``ToFrame(sensor_size,
time_window=dt_us, start_time=t₀, end_time=t₀ + T·dt_us)``: bin k counts the events with
t₀ + k·dt ≤ t < t₀ + (k+1)·dt, events after T·dt are dropped; t₀ = 0 for N-MNIST and SHD (their
clocks start at the stimulus), the first event for DVS Gesture (cut recordings keep the session
clock). Counts are clipped to 1 (spike / no spike) and bit-packed (:class:`PackedFrames`): full
N-MNIST at T = 30 holds 0.5 GB instead of 4.2 GB.

Nothing is downloaded here: a missing file raises :class:`~metaspin_snn.data.idx.DatasetError`
naming it and ``metaspin data download NAME`` (tonic's own download is switched off).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .idx import DatasetError, resolve_root


@dataclass(frozen=True)
class EventSpec:
    """One event dataset: tonic class and folder, sensor ``(x, y, p)``, classes, default binning."""

    name: str
    tonic_class: str
    folder: str                      # tonic's location under the data root (its class name)
    sensor: tuple[int, int, int]
    n_classes: int
    dt_us: int                       # default bin width
    steps: int                       # default number of bins T
    spatial_factor: float            # default tonic Downsample factor
    origin: str                      # "zero": bins start at t = 0; "first": at the first event
    split_paths: dict[str, str]      # split -> what must exist under root/folder (dir of samples or file)
    sample_suffix: str               # ".bin" | ".npy" | "" (a single HDF5 file)
    source: str


EVENT_DATASETS: dict[str, EventSpec] = {
    "n-mnist": EventSpec("n-mnist", "NMNIST", "NMNIST", (34, 34, 2), 10, 10_000, 30, 1.0, "zero",
                         {"train": "Train", "test": "Test"}, ".bin",
                         "Orchard et al. 2015, N-MNIST (Front. Neurosci. 9:437)"),
    "dvsgesture": EventSpec("dvsgesture", "DVSGesture", "DVSGesture", (128, 128, 2), 11, 50_000, 30, 0.25,
                            "first", {"train": "ibmGestureTrain", "test": "ibmGestureTest"}, ".npy",
                            "Amir et al. 2017, IBM DVS Gesture (CVPR), tonic's pre-cut recordings"),
    "shd": EventSpec("shd", "SHD", "SHD", (700, 1, 1), 20, 10_000, 100, 1.0, "zero",
                     {"train": "shd_train.h5", "test": "shd_test.h5"}, "",
                     "Cramer et al. 2020, Spiking Heidelberg Digits (IEEE TNNLS)"),
}


def event_sensor(spec: EventSpec, spatial_factor: float) -> tuple[int, int, int]:
    """Sensor ``(x, y, p)`` after tonic's ``Downsample(spatial_factor)`` (its rule: ⌊size·factor⌋)."""
    x, y, p = spec.sensor
    return (max(1, int(x * spatial_factor)), max(1, int(y * spatial_factor)) if y > 1 else 1, p)


def frame_shape(spec: EventSpec, steps: int, spatial_factor: float) -> tuple[int, ...]:
    """Per-sample frame shape tonic's ToFrame gives: ``(T, p, y, x)``, or ``(T, p, x)`` without y."""
    x, y, p = event_sensor(spec, spatial_factor)
    return (steps, p, x) if spec.sensor[1] == 1 else (steps, p, y, x)


def present(name: str, root: str | Path | None, split: str) -> bool:
    """Whether ``split`` of event dataset ``name`` is on disk in tonic's layout (not verified)."""
    spec = EVENT_DATASETS[name]
    return _has_samples(resolve_root(root) / spec.folder / spec.split_paths[split], spec)


def _has_samples(path: Path, spec: EventSpec) -> bool:
    if not spec.sample_suffix:
        return path.is_file()
    return path.is_dir() and next(path.rglob(f"*{spec.sample_suffix}"), None) is not None


def _offline_dataset(spec: EventSpec, root: Path, split: str):
    """tonic's reader for ``spec`` on ``root`` with its download switched off: a missing file raises
    DatasetError naming it (tonic would fetch the archive from the internet)."""
    import tonic.datasets as td

    base = getattr(td, spec.tonic_class)
    where = root / spec.folder / spec.split_paths[split]

    class Offline(base):  # type: ignore[misc, valid-type]
        def _check_exists(self) -> bool:
            return _has_samples(where, spec)

        def download(self) -> None:
            kind = f"{spec.sample_suffix} recordings under" if spec.sample_suffix else "file"
            raise DatasetError(f"missing {spec.name} {split} data: expected {kind} {where} (tonic's layout; "
                               f"`metaspin data download {spec.name} --root {root}`, or set --data-root / "
                               "METASPIN_DATA)")

    Offline.__name__ = base.__name__  # tonic's location on disk is root/<class name>
    try:
        return Offline(str(root), train=split == "train")
    except DatasetError:
        raise
    except (OSError, ValueError, KeyError) as e:
        raise DatasetError(f"corrupt {spec.name} {split} data under {where}: {e}") from e


def _targets(ds: Any, spec: EventSpec) -> np.ndarray:
    if spec.sample_suffix:  # file-per-sample readers list their targets
        return np.asarray(ds.targets, dtype=np.int64)
    import h5py
    path = Path(ds.location_on_system) / ds.data_filename
    try:
        with h5py.File(path, "r") as f:
            return np.asarray(f["labels"][()], dtype=np.int64)
    except (OSError, KeyError) as e:
        raise DatasetError(f"corrupt file: {path}: {e}") from e


class PackedFrames:
    """Binary frames ``[N, *frame]`` stored as packed bits (``numpy.packbits`` per sample).

    ``shape`` is the unpacked shape; ``x[idx]`` (int tensor / array / slice) is a PackedFrames of
    those samples (no copy of the other samples); :meth:`unpack` gives ``uint8 [n, *frame]``."""

    def __init__(self, bits: np.ndarray, frame: tuple[int, ...]) -> None:
        self.bits, self.frame = bits, tuple(int(s) for s in frame)
        n_bits = int(np.prod(self.frame))
        if bits.ndim != 2 or bits.shape[1] != (n_bits + 7) // 8:
            raise ValueError(f"PackedFrames: bits {bits.shape} do not hold frames {self.frame}")

    @classmethod
    def pack(cls, frames: np.ndarray | torch.Tensor) -> "PackedFrames":
        a = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
        return cls(np.packbits(a.reshape(a.shape[0], -1) > 0, axis=1), tuple(a.shape[1:]))

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.bits.shape[0], *self.frame))

    def __len__(self) -> int:
        return int(self.bits.shape[0])

    def __getitem__(self, idx: Any) -> "PackedFrames":
        if isinstance(idx, torch.Tensor):
            idx = idx.numpy()
        return PackedFrames(self.bits[idx].reshape(-1, self.bits.shape[1]), self.frame)

    def unpack(self) -> torch.Tensor:
        n_bits = int(np.prod(self.frame))
        flat = np.unpackbits(self.bits, axis=1, count=n_bits)
        return torch.from_numpy(flat.reshape(len(self), *self.frame))

    def nbytes(self) -> int:
        return int(self.bits.nbytes)


def dense(x: torch.Tensor | PackedFrames) -> torch.Tensor:
    """``x`` as a tensor (unpacks :class:`PackedFrames`)."""
    return x.unpack() if isinstance(x, PackedFrames) else x


@dataclass(frozen=True)
class EventSplit:
    """One split of an event dataset: tonic's reader, its labels (``int64 [N]``) and the binning."""

    spec: EventSpec
    dataset: Any
    labels: torch.Tensor
    dt_us: int
    steps: int
    spatial_factor: float

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def transform(self):
        """tonic's transforms of one recording: Downsample (if ≠ 1), then ToFrame (see the module)."""
        import tonic.transforms as T
        parts = [] if self.spatial_factor == 1 else [T.Downsample(spatial_factor=self.spatial_factor)]
        return T.Compose(parts), event_sensor(self.spec, self.spatial_factor)

    def frames(self, indices: Sequence[int]) -> PackedFrames:
        """Binary frames of samples ``indices``, bit-packed."""
        import tonic.transforms as T
        pre, sensor = self.transform()
        shape = frame_shape(self.spec, self.steps, self.spatial_factor)
        n_bits = int(np.prod(shape))
        bits = np.zeros((len(indices), (n_bits + 7) // 8), dtype=np.uint8)
        for row, i in enumerate(indices):
            try:
                events, _ = self.dataset[int(i)]
            except (OSError, ValueError, KeyError, IndexError) as e:
                raise DatasetError(f"corrupt {self.spec.name} sample {i} ({_sample_name(self.dataset, i)}): {e}") from e
            events = pre(events)
            if events.size == 0:
                continue
            t0 = 0 if self.spec.origin == "zero" else int(events["t"].min())
            frame = T.ToFrame(sensor_size=sensor, time_window=self.dt_us, start_time=t0,
                              end_time=t0 + self.steps * self.dt_us)(events)
            if frame.shape != shape:
                raise DatasetError(f"{self.spec.name} sample {i} ({_sample_name(self.dataset, i)}): frames "
                                   f"{frame.shape}, expected {shape} (coordinates outside the sensor {sensor}?)")
            bits[row] = np.packbits(frame.reshape(-1) > 0)
        return PackedFrames(bits, shape)


def _sample_name(ds: Any, i: int) -> str:
    data = getattr(ds, "data", None)
    return str(data[int(i)]) if isinstance(data, list) and int(i) < len(data) else f"index {int(i)}"


def load_events(name: str, root: str | Path | None, split: str, *, dt_us: int | None = None,
                steps: int | None = None, spatial_factor: float | None = None) -> EventSplit:
    """Split ``split`` of event dataset ``name`` from ``root`` (tonic's layout), binned at ``dt_us``
    × ``steps`` after ``Downsample(spatial_factor)`` (each ``None``: the dataset's default)."""
    if name not in EVENT_DATASETS:
        raise ValueError(f"unknown event dataset {name!r}; known: {', '.join(EVENT_DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    spec = EVENT_DATASETS[name]
    dt = spec.dt_us if dt_us is None else int(dt_us)
    T = spec.steps if steps is None else int(steps)
    sf = spec.spatial_factor if spatial_factor is None else float(spatial_factor)
    if dt <= 0 or T <= 0:
        raise ValueError(f"dt_us and steps must be positive, got {dt}, {T}")
    if not 0 < sf <= 1:
        raise ValueError(f"spatial_factor must be in (0, 1], got {sf}")
    root = resolve_root(root)
    ds = _offline_dataset(spec, root, split)
    labels = _targets(ds, spec)
    if labels.size == 0:
        raise DatasetError(f"no {spec.name} {split} recordings under {root / spec.folder / spec.split_paths[split]}")
    if labels.min() < 0 or labels.max() >= spec.n_classes:
        raise DatasetError(f"corrupt {spec.name} {split} labels under {root / spec.folder}: values "
                           f"{int(labels.min())}..{int(labels.max())}, expected 0..{spec.n_classes - 1}")
    return EventSplit(spec, ds, torch.from_numpy(labels), dt, T, sf)


__all__ = ["EVENT_DATASETS", "EventSpec", "EventSplit", "PackedFrames", "dense", "event_sensor", "frame_shape",
           "load_events", "present"]
