"""Offline reader for N-MNIST recordings (Orchard et al., Front. Neurosci. 9:437, 2015).

Each sample is a binary stream of 5-byte big-endian events (the original N-MNIST ``.bin`` encoding):
bits 39-32 x (0..33), 31-24 y (0..33), bit 23 polarity (1 = ON), bits 22-0 timestamp [µs].
The shared subset ``nmnist-small`` packs the first 1,000 training and 100 test recordings as
``NMNISTsmall/<k>.bs2`` inside ``nmnist-small-bs2.tar.gz`` with label lists ``train1K.txt`` /
``test100.txt`` and a ``MEMBERS.sha256`` list.
"""
from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .idx import DatasetError, resolve_root

SENSOR = 34
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", np.int8), ("t", np.int64)])
ARCHIVE = "nmnist-small-bs2.tar.gz"
LABEL_FILES = {"train": "NMNISTsmall/train1K.txt", "test": "NMNISTsmall/test100.txt"}


def decode_events(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode N-MNIST 5-byte events into a structured array (x, y, p, t[µs])."""
    if len(raw) % 5:
        raise DatasetError(f"corrupt N-MNIST sample {name}: {len(raw)} bytes is not a multiple of 5")
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    ev = np.empty(b.shape[0], dtype=EVENT_DTYPE)
    ev["x"], ev["y"] = b[:, 0], b[:, 1]
    ev["p"] = b[:, 2] >> 7
    ev["t"] = ((b[:, 2] & 0x7F) << 16) | (b[:, 3] << 8) | b[:, 4]
    if ev.size and (ev["x"].max() >= SENSOR or ev["y"].max() >= SENSOR):
        raise DatasetError(f"corrupt N-MNIST sample {name}: coordinates outside 0..{SENSOR - 1}")
    return ev


def events_to_frames(events: np.ndarray, dt_us: int, num_steps: int, binary: bool = False) -> torch.Tensor:
    """Bin events into ``[T, 2, 34, 34]`` counts: bin = t // dt_us; events at or after T·dt_us are
    dropped; channel 0 = OFF, 1 = ON. ``binary`` clips counts to 1 (spike / no spike)."""
    if dt_us <= 0 or num_steps <= 0:
        raise ValueError(f"dt_us and num_steps must be positive, got {dt_us}, {num_steps}")
    step = events["t"] // dt_us
    keep = step < num_steps
    flat = ((step[keep] * 2 + events["p"][keep]) * SENSOR + events["y"][keep]) * SENSOR + events["x"][keep]
    counts = np.bincount(flat, minlength=num_steps * 2 * SENSOR * SENSOR).astype(np.float32)
    out = torch.from_numpy(counts.reshape(num_steps, 2, SENSOR, SENSOR))
    return out.clamp_(max=1.0) if binary else out


@dataclass(frozen=True)
class NMNISTDataset:
    """Events per sample (structured arrays), labels ``int64 [N]`` and sample ids."""

    events: list[np.ndarray]
    labels: torch.Tensor
    ids: list[int]

    def __len__(self) -> int:
        return len(self.events)

    def duration_us(self) -> int:
        return int(max(int(e["t"].max()) for e in self.events if e.size) + 1)

    def frames(self, dt_us: int = 1000, num_steps: int | None = None, binary: bool = False,
               indices: list[int] | None = None) -> torch.Tensor:
        """Binned spike tensors ``float32 [N, T, 2, 34, 34]`` (T defaults to cover every recording)."""
        if num_steps is None:
            num_steps = -(-self.duration_us() // dt_us)
        idx = range(len(self)) if indices is None else indices
        return torch.stack([events_to_frames(self.events[i], dt_us, num_steps, binary) for i in idx])


def _read_labels(text: str, name: str) -> list[tuple[int, int]]:
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DatasetError(f"corrupt label list {name}: line {line!r}, expected 'k<TAB>label'")
        rows.append((int(parts[0]), int(parts[1])))
    return rows


@lru_cache(maxsize=2)
def _load(directory: Path, verify: bool) -> dict[str, NMNISTDataset]:
    archive = directory / ARCHIVE
    if not archive.is_file():
        raise DatasetError(f"missing file: {archive} (N-MNIST subset archive)")
    expected: dict[str, str] = {}
    if verify:
        members = directory / "MEMBERS.sha256"
        if not members.is_file():
            raise DatasetError(f"missing file: {members} (checksums of the archive members)")
        for lineno, line in enumerate(members.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdef" for c in parts[0].lower()):
                raise DatasetError(f"corrupt file: {members}, line {lineno}: expected '<sha256 hex> <member name>', "
                                   f"got {line.strip()[:60]!r}")
            expected[parts[1].strip()] = parts[0].lower()
        if not expected:
            raise DatasetError(f"corrupt file: {members}: no checksums in it, nothing to verify the archive against")
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for m in tar:
                if m.isfile():
                    files[m.name] = tar.extractfile(m).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetError(f"corrupt file: {archive}: {e}") from e
    for name, digest in expected.items():
        if name not in files:
            raise DatasetError(f"corrupt file: {archive}: member {name} missing")
        if hashlib.sha256(files[name]).hexdigest() != digest:
            raise DatasetError(f"corrupt file: {archive}: member {name} fails its sha256 in MEMBERS.sha256")
    if verify:  # every member this reader uses must have been checked
        used = set(LABEL_FILES.values()) | {f"NMNISTsmall/{k}.bs2" for label_name in LABEL_FILES.values()
                                            if label_name in files
                                            for k, _ in _read_labels(files[label_name].decode(), label_name)}
        unlisted = sorted(n for n in used if n in files and n not in expected)
        if unlisted:
            raise DatasetError(f"corrupt file: {directory / 'MEMBERS.sha256'}: no checksum for archive member "
                               f"{unlisted[0]} ({len(unlisted)} unlisted)")
    out = {}
    for split, label_name in LABEL_FILES.items():
        if label_name not in files:
            raise DatasetError(f"corrupt file: {archive}: label list {label_name} missing")
        rows = _read_labels(files[label_name].decode(), label_name)
        events = []
        for k, _ in rows:
            member = f"NMNISTsmall/{k}.bs2"
            if member not in files:
                raise DatasetError(f"corrupt file: {archive}: sample {member} listed in {label_name} is missing")
            events.append(decode_events(files[member], member))
        out[split] = NMNISTDataset(events, torch.tensor([lab for _, lab in rows], dtype=torch.int64),
                                   [k for k, _ in rows])
    return out


def load_nmnist(root: str | Path | None = None, split: str = "train", verify: bool = True) -> NMNISTDataset:
    """Load the N-MNIST subset from ``root/nmnist-small`` (1,000 train / 100 test recordings),
    checking every archive member against ``MEMBERS.sha256`` when ``verify``."""
    if split not in LABEL_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = resolve_root(root) / "nmnist-small"
    if not directory.is_dir():
        raise DatasetError(f"missing dataset directory: {directory} (set --data-root or METASPIN_DATA)")
    return _load(directory.resolve(), verify)[split]
