"""Atomic file writes: the one writer every module uses for results, checkpoints and exports."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask_mode() -> int:
    """The mode an ordinary ``open(..., "w")`` would give: 0o666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _write_temp(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())  # mkstemp's 0600 would make results unreadable to the group
    except OSError as e:  # a full disk, an I/O error: name the file that was being written
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` (fsync'd), then ``os.replace``: readers see
    the old file or the new one, never a partial one; the temporary file is removed on any error
    (a full disk, a permission error, an interrupt). The file gets the umask's usual mode."""
    atomic_write_many({path: data})
    return Path(path)


def atomic_write_many(files: dict[str | Path, bytes]) -> None:
    """Write several files so that they change together: every temporary file is written and synced
    first (a failure there — a full disk — removes them all and leaves every old file as it was), then
    all are renamed into place."""
    tmps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            tmps.append((_write_temp(Path(path), data), Path(path)))
        for tmp, path in tmps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in tmps:
            Path(tmp).unlink(missing_ok=True)
        raise


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
