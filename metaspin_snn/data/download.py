"""Download datasets to a data root: official file URLs and checksums pinned here, resumable,
verified, renamed into place atomically; archives are then unpacked into tonic's layout.

``download(name, root, mirror=None)`` fetches each file of the dataset into ``root/<name>/``:
a partial download ``.<file>.part`` is resumed with an HTTP ``Range`` request, the finished file is
checked against its pinned sha256 and only then renamed to its final name (so a file under its
final name is always a verified one); a file already there and verified is not downloaded again. A
checksum mismatch deletes the partial file and raises :class:`~metaspin_snn.data.idx.DatasetError`;
so does a network failure, with the URL, the expected file name and where to put it by hand.
``mirror``: a base URL that replaces the official ones (a local copy, a loopback server in tests);
the file is fetched from ``<mirror>/<file name>``.

Event datasets (``n-mnist``, ``dvsgesture``, ``shd``) come as archives whose publishers give no
sha256: their pins are the md5 sums tonic 1.7.0 checks (``tonic/datasets/*.py``). A verified archive
is unpacked into a temporary folder beside it, checked for unsafe member paths, and its top-level
entries renamed into ``root/<tonic class name>/`` (the layout :mod:`metaspin_snn.data.events`
reads); an archive already unpacked is not unpacked again.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .idx import DATASET_SHA256, MNIST_SHA256, DatasetError, file_digest


@dataclass(frozen=True)
class RemoteDataset:
    """Files of one dataset: name → pinned checksum (``digest``: sha256 or md5), the official base
    URLs (tried in order; ``file_urls`` gives a file its own URLs instead) and the folder under the
    data root. ``extract``: file → the entry its unpacking creates (archives of event datasets)."""
    name: str
    folder: str
    files: dict[str, str]
    urls: tuple[str, ...]
    source: str
    digest: str = "sha256"
    file_urls: dict[str, tuple[str, ...]] = field(default_factory=dict)
    extract: dict[str, str] = field(default_factory=dict)

    def urls_of(self, fname: str, mirror: str | None = None) -> tuple[str, ...]:
        if mirror:
            return (mirror.rstrip("/") + "/" + fname,)
        return self.file_urls.get(fname) or tuple(b.rstrip("/") + "/" + fname for b in self.urls)


_MENDELEY = "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"
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
    # md5 and URLs as tonic 1.7.0 pins them (tonic/datasets/nmnist.py, dvsgesture.py, hsd.py)
    "n-mnist": RemoteDataset(
        "n-mnist", "NMNIST", {"train.zip": "20959b8e626244a1b502305a9e6e2031",
                              "test.zip": "69ca8762b2fe404d9b9bad1103e97832"}, (),
        "Orchard et al. 2015, N-MNIST (Mendeley Data 468j46mzdv)", digest="md5",
        file_urls={"train.zip": (_MENDELEY + "39c25547-014b-4137-a934-9d29fa53c7a0/file_downloaded",),
                   "test.zip": (_MENDELEY + "05a4d654-7e03-4c15-bdfa-9bb2bcbea494/file_downloaded",)},
        extract={"train.zip": "Train", "test.zip": "Test"}),
    "dvsgesture": RemoteDataset(
        "dvsgesture", "DVSGesture", {"ibmGestureTrain.tar.gz": "3a8f0d4120a166bac7591f77409cb105",
                                     "ibmGestureTest.tar.gz": "56070e45dadaa85fff82e0fbfbc06de5"}, (),
        "Amir et al. 2017, IBM DVS Gesture, tonic's pre-cut recordings (figshare)", digest="md5",
        file_urls={"ibmGestureTrain.tar.gz": ("https://figshare.com/ndownloader/files/38022171",),
                   "ibmGestureTest.tar.gz": ("https://figshare.com/ndownloader/files/38020584",)},
        extract={"ibmGestureTrain.tar.gz": "ibmGestureTrain", "ibmGestureTest.tar.gz": "ibmGestureTest"}),
    "shd": RemoteDataset(
        "shd", "SHD", {"shd_train.h5.zip": "f3252aeb598ac776c1b526422d90eecb",
                       "shd_test.h5.zip": "1503a5064faa34311c398fb0a1ed0a6f"}, ("https://zenkelab.org/datasets/",),
        "Cramer et al. 2020, Spiking Heidelberg Digits (zenkelab.org)", digest="md5",
        extract={"shd_train.h5.zip": "shd_train.h5", "shd_test.h5.zip": "shd_test.h5"}),
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


def _safe_members(names: list[str], archive: Path) -> None:
    for n in names:
        p = Path(n)
        if p.is_absolute() or ".." in p.parts:
            raise DatasetError(f"corrupt file: {archive}: unsafe member path {n!r}")


def unpack(archive: Path, dest: Path, creates: str) -> Path:
    """Unpack ``archive`` (zip or tar) into ``dest`` through a temporary folder; its top-level
    entries are renamed into ``dest``. Returns ``dest / creates``, which must then exist."""
    target = dest / creates
    if target.exists():
        return target
    tmp = dest / f".{archive.name}.unpack"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                _safe_members(z.namelist(), archive)
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                members = [m for m in t.getmembers() if m.isfile() or m.isdir()]  # no links, devices
                _safe_members([m.name for m in members], archive)
                t.extractall(tmp, members=members)
        tops = [p for p in tmp.iterdir() if not p.name.startswith("__MACOSX")]
        if not any(p.name == creates for p in tops):
            raise DatasetError(f"corrupt file: {archive}: unpacks to {sorted(p.name for p in tops)}, "
                               f"expected {creates!r}")
        for p in tops:
            if not (dest / p.name).exists():
                os.replace(p, dest / p.name)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise DatasetError(f"corrupt file: {archive}: cannot unpack ({e})") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def download(name: str, root: str | Path, mirror: str | None = None, timeout: float = 60.0,
             log: Callable[[str], None] | None = None) -> Path:
    """Download dataset ``name`` into ``root/<folder>``; returns that folder (see the module docstring)."""
    if name not in REMOTE:
        raise ValueError(f"unknown dataset {name!r}; downloadable: {', '.join(REMOTE)}")
    ds = REMOTE[name]
    log = log or (lambda s: None)
    dest = Path(root) / ds.folder
    dest.mkdir(parents=True, exist_ok=True)
    for fname, want in ds.files.items():
        final = dest / fname
        if final.exists():
            if file_digest(final, ds.digest) != want:
                raise DatasetError(f"corrupt file: {final}: {ds.digest} does not match the pinned value; delete "
                                   "it and download again")
            log(f"  {fname}: present, verified")
        else:
            _fetch_verified(ds, fname, want, dest, mirror, timeout, log)
        if fname in ds.extract:
            existed = (dest / ds.extract[fname]).exists()
            out = unpack(final, dest, ds.extract[fname])
            log(f"  {fname}: {'already unpacked' if existed else 'unpacked'} -> {out}")
    return dest


def _fetch_verified(ds: RemoteDataset, fname: str, want: str, dest: Path, mirror: str | None, timeout: float,
                    log: Callable[[str], None]) -> None:
    part, final = dest / f".{fname}.part", dest / fname
    urls = ds.urls_of(fname, mirror)
    errors = []
    for url in urls:
        try:
            _fetch(url, part, timeout)
        except (urllib.error.URLError, OSError, ValueError) as e:
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
            continue
        got = file_digest(part, ds.digest)
        if got != want:
            part.unlink(missing_ok=True)
            raise DatasetError(f"download {url}: {ds.digest} {got} != pinned {want}; nothing was kept in {dest}")
        os.replace(part, final)
        log(f"  {fname}: downloaded from {url}, verified")
        return
    raise DatasetError(f"cannot download {fname} ({'; '.join(errors)}). Offline? Fetch {fname} "
                       f"by hand from {urls[0]} and put it at {final}")


__all__ = ["REMOTE", "RemoteDataset", "download", "unpack"]
