"""Download datasets to a data root: official file URLs and sha256 pinned here, resumable, verified,
renamed into place atomically.

``download(name, root, mirror=None)`` fetches each file of the dataset into ``root/<name>/``:
a partial download ``.<file>.part`` is resumed with an HTTP ``Range`` request, the finished file is
checked against its pinned sha256 and only then renamed to its final name (so a file under its
final name is always a verified one); a file already there and verified is not downloaded again. A
checksum mismatch deletes the partial file and raises :class:`~metaspin_snn.data.idx.DatasetError`;
so does a network failure, with the URL, the expected file name and where to put it by hand.
``mirror``: a base URL that replaces the official ones (a local copy, a loopback server in tests).
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .idx import DATASET_SHA256, MNIST_SHA256, DatasetError, _sha256


@dataclass(frozen=True)
class RemoteDataset:
    """Files of one dataset: name → sha256, the official base URLs (tried in order) and the folder
    under the data root."""
    name: str
    folder: str
    files: dict[str, str]
    urls: tuple[str, ...]
    source: str


# sha256 of every file: data/idx.py (DATASET_SHA256; from tensorflow/datasets url_checksums, MNIST's also in
# ../shared/data/mnist/SOURCE.md).
REMOTE: dict[str, RemoteDataset] = {
    "mnist": RemoteDataset(
        "mnist", "mnist", {k: v for k, v in MNIST_SHA256.items() if k.endswith(".gz")},
        ("https://storage.googleapis.com/cvdf-datasets/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        "LeCun, Cortes & Burges, the MNIST database (the official files)"),
    "fashion-mnist": RemoteDataset(
        "fashion-mnist", "fashion-mnist", DATASET_SHA256["fashion-mnist"],
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        "Xiao, Rasul & Vollgraf 2017, Fashion-MNIST (zalandoresearch/fashion-mnist)"),
    "kmnist": RemoteDataset(
        "kmnist", "kmnist", DATASET_SHA256["kmnist"],
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        "Clanuwat et al. 2018, Kuzushiji-MNIST (rois-codh/kmnist)"),
}

_CHUNK = 1 << 16


def _fetch(url: str, part: Path, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (an HTTP Range request when ``part`` has bytes)."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        status = getattr(resp, "status", 200)
        mode = "ab" if have and status == 206 else "wb"  # a server that ignores Range sends it all
        with open(part, mode) as out:
            while True:
                block = resp.read(_CHUNK)
                if not block:
                    break
                out.write(block)


def download(name: str, root: str | Path, mirror: str | None = None, timeout: float = 60.0,
             log: Callable[[str], None] | None = None) -> Path:
    """Download dataset ``name`` into ``root/<folder>``; returns that folder (see the module docstring)."""
    if name not in REMOTE:
        raise ValueError(f"unknown dataset {name!r}; downloadable: {', '.join(REMOTE)}")
    ds = REMOTE[name]
    log = log or (lambda s: None)
    dest = Path(root) / ds.folder
    dest.mkdir(parents=True, exist_ok=True)
    bases = (mirror,) if mirror else ds.urls
    for fname, sha in ds.files.items():
        final = dest / fname
        if final.exists():
            if _sha256(final) == sha:
                log(f"  {fname}: present, verified")
                continue
            raise DatasetError(f"corrupt file: {final}: sha256 does not match the pinned value; delete it "
                               "and download again")
        part = dest / f".{fname}.part"
        errors = []
        for base in bases:
            url = base.rstrip("/") + "/" + fname
            try:
                _fetch(url, part, timeout)
            except (urllib.error.URLError, OSError, ValueError) as e:
                errors.append(f"{url}: {getattr(e, 'reason', e)}")
                continue
            got = _sha256(part)
            if got != sha:
                part.unlink(missing_ok=True)
                raise DatasetError(f"download {url}: sha256 {got} != pinned {sha}; nothing was kept in {dest}")
            os.replace(part, final)
            log(f"  {fname}: downloaded from {url}, verified")
            break
        else:
            raise DatasetError(f"cannot download {fname} ({'; '.join(errors)}). Offline? Fetch {fname} "
                               f"by hand from {bases[0].rstrip('/')}/{fname} and put it at {final}")
    return dest


__all__ = ["REMOTE", "RemoteDataset", "download"]
