"""Atomic file writes: the one writer every module uses for results, checkpoints and exports."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` (fsync'd), then ``os.replace``: readers see
    the old file or the new one, never a partial one; the temporary file is removed on any error
    (a full disk, a permission error, an interrupt)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class OutputExistsError(ValueError):
    """``--out`` names a non-empty folder and neither resume nor overwrite was asked for."""


def check_out_dir(out: str | Path, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Refuse a non-empty output folder unless ``resume`` (continue its run) or ``overwrite``; also
    refuse a folder that cannot be written, before any data is loaded. Creates the folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (resume or overwrite):
        raise OutputExistsError(f"output folder {out} is not empty; pass --resume to continue its run or "
                                "--overwrite to replace it (nothing was changed)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{id(out)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"output folder {out} is not writable ({e.strerror or e})") from None
    return out
