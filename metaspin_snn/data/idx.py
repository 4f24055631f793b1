"""Offline readers for MNIST-format IDX datasets (LeCun et al. 1998 file format).

IDX layout (big-endian): magic = 0x0000 | dtype code (0x08 = uint8) | ndim, then ``ndim`` uint32 sizes,
then the data. Images: magic 2051 ``[N, rows, cols]``; labels: magic 2049 ``[N]``. Files may be
gzip-compressed (``.gz``) or raw. Any directory holding the four standard file names works
(MNIST, Fashion-MNIST, KMNIST, ...).
"""
from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# sha256 of the official MNIST .gz files (as published by TFDS/Keras; see shared/data/mnist/SOURCE.md).
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    # the same files uncompressed (raw IDX; train images as published in SOURCE.md, the others computed
    # from the verified .gz files), so a raw copy is verified too
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# sha256 of the official .gz files of the other MNIST-format datasets: tensorflow/datasets,
# tensorflow_datasets/url_checksums/{fashion_mnist,kmnist}.txt (commit 333639b3).
DATASET_SHA256: dict[str, dict[str, str]] = {
    "mnist": MNIST_SHA256,
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"},
    "kmnist": {
        "train-images-idx3-ubyte.gz": "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
        "train-labels-idx1-ubyte.gz": "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
        "t10k-images-idx3-ubyte.gz": "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
        "t10k-labels-idx1-ubyte.gz": "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c"},
}
#: Named 28×28 datasets (the ``dataset`` key of image streams; a directory path is the alternative).
IMAGE_DATASETS = tuple(DATASET_SHA256)
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


class DatasetError(RuntimeError):
    """A dataset file is missing or corrupt; the message names the file and what was expected."""


def user_data_dir() -> Path:
    """The per-user data directory (``platformdirs.user_data_dir("metaspin-snn")``; without
    platformdirs the XDG rule ``$XDG_DATA_HOME/metaspin-snn`` or ``~/.local/share/metaspin-snn``)."""
    try:
        import platformdirs
        return Path(platformdirs.user_data_dir("metaspin-snn"))
    except ImportError:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "metaspin-snn"


def _checkout_data() -> Path | None:
    """``../shared/data`` beside the repository, when the package runs from a checkout that has it."""
    repo = Path(__file__).resolve().parents[2]
    shared = repo.parent / "shared" / "data"
    return shared if (repo / "pyproject.toml").is_file() and shared.is_dir() else None


def data_root_choice(root: str | Path | None = None) -> tuple[Path, str]:
    """(data root, why): ``--data-root`` > ``$METASPIN_DATA`` > the per-user data directory when it
    holds anything > the checkout's ``../shared/data`` > the (empty) per-user directory, where
    ``metaspin data download`` puts files."""
    if root is not None:
        return Path(root), "--data-root"
    env = os.environ.get("METASPIN_DATA")
    if env:
        return Path(env), "$METASPIN_DATA"
    user = user_data_dir()
    if user.is_dir() and any(user.iterdir()):
        return user, "the per-user data directory"
    shared = _checkout_data()
    if shared is not None:
        return shared, "the checkout's ../shared/data"
    return user, "the per-user data directory (empty: run `metaspin data download mnist`)"


def default_data_root() -> Path:
    """The data root when none is given (:func:`data_root_choice`)."""
    return data_root_choice(None)[0]


def resolve_root(root: str | Path | None) -> Path:
    return default_data_root() if root is None else Path(root)


@dataclass(frozen=True)
class IdxDataset:
    """Images ``uint8 [N, rows, cols]`` and labels ``int64 [N]`` of one split."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.labels.max().item()) + 1

    def float_images(self) -> torch.Tensor:
        """Pixels scaled to ``[0, 1]``, float32 ``[N, rows, cols]``."""
        return self.images.float().div_(255.0)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        p = directory / name
        if p.is_file():
            return p
    raise DatasetError(f"missing file: {directory / (stem + '.gz')} (expected an MNIST-format IDX file "
                       f"'{stem}' or '{stem}.gz' in {directory})")


def file_digest(path: Path, algo: str = "sha256") -> str:
    """Hex digest of a file (``hashlib`` algorithm ``algo``), read in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_idx(path: str | Path, expected_magic: int | None = None, expected_sha256: str | None = None) -> np.ndarray:
    """Parse one IDX file (gzip or raw) into a numpy array, verifying magic, sizes and checksum."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing file: {path}")
    if expected_sha256 is not None:
        got = file_digest(path)
        if got != expected_sha256:
            raise DatasetError(f"corrupt file: {path}: sha256 {got} != expected {expected_sha256}")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise DatasetError(f"corrupt file: {path}: cannot decompress ({e})") from e
    if len(raw) < 4:
        raise DatasetError(f"corrupt file: {path}: {len(raw)} bytes, too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DatasetError(f"corrupt file: {path}: magic {magic}, expected {expected_magic}")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"corrupt file: {path}: magic {magic:#010x} is not an unsigned-byte IDX header")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DatasetError(f"corrupt file: {path}: truncated header ({ndim} dims)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DatasetError(f"corrupt file: {path}: {len(raw)} bytes, expected {expected} for dims {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@lru_cache(maxsize=8)
def _load_split(directory: Path, split: str, verify: str | bool) -> IdxDataset:
    """``verify``: a name of :data:`DATASET_SHA256` (True: "mnist") whose pinned sha256 each file must
    match, or False."""
    img_stem, lab_stem = SPLIT_FILES[split]
    img_path, lab_path = _find(directory, img_stem), _find(directory, lab_stem)
    table = DATASET_SHA256["mnist" if verify is True else verify] if verify else None
    def sha(p: Path) -> str | None:
        if table is None:
            return None
        name = p.name.replace(".idx", "-idx") if ".idx" in p.name else p.name
        if name not in table:
            raise DatasetError(f"unverifiable file: {p}: no sha256 is known for this file name")
        return table[name]
    images = read_idx(img_path, IMAGES_MAGIC, sha(img_path))
    labels = read_idx(lab_path, LABELS_MAGIC, sha(lab_path))
    if images.ndim != 3:
        raise DatasetError(f"corrupt file: {img_path}: {images.ndim} dims, expected 3 [N, rows, cols]")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DatasetError(f"corrupt file: {lab_path}: {labels.shape[0]} labels for {images.shape[0]} images in {img_path}")
    return IdxDataset(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)), str(directory))


def load_idx_dataset(directory: str | Path, split: str = "train") -> IdxDataset:
    """Load one split (``"train"`` / ``"test"``) of any MNIST-format directory."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"missing dataset directory: {directory}")
    return _load_split(directory.resolve(), split, False)


def load_mnist(root: str | Path | None = None, split: str = "train") -> IdxDataset:
    """Load real MNIST from ``root/mnist`` (root defaults to :func:`default_data_root`), verifying
    the official sha256 of each file, the magic numbers and the counts (60,000 / 10,000)."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = resolve_root(root) / "mnist"
    if not directory.is_dir():
        raise DatasetError(f"missing dataset directory: {directory} (set --data-root or METASPIN_DATA)")
    ds = _load_split(directory.resolve(), split, True)
    n = 60000 if split == "train" else 10000
    if len(ds) != n or tuple(ds.images.shape[1:]) != (28, 28):
        raise DatasetError(f"corrupt MNIST in {directory}: {tuple(ds.images.shape)}, expected ({n}, 28, 28)")
    return ds


def load_image_dataset(dataset: str, root: str | Path | None = None, split: str = "train") -> IdxDataset:
    """One split of a 28×28 MNIST-format dataset: a name of :data:`IMAGE_DATASETS` (``root/<name>``,
    every file checked against its pinned sha256, 60,000 / 10,000 samples) or a directory of the four
    IDX files (read as they are, unverified)."""
    if dataset == "mnist":
        return load_mnist(root, split)
    if dataset in DATASET_SHA256:
        if split not in SPLIT_FILES:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        directory = resolve_root(root) / dataset
        if not directory.is_dir():
            raise DatasetError(f"missing dataset directory: {directory} (`metaspin data download {dataset}`, "
                               "or set --data-root / METASPIN_DATA)")
        ds = _load_split(directory.resolve(), split, dataset)
        n = 60000 if split == "train" else 10000
        if len(ds) != n or tuple(ds.images.shape[1:]) != (28, 28):
            raise DatasetError(f"corrupt {dataset} in {directory}: {tuple(ds.images.shape)}, expected ({n}, 28, 28)")
        return ds
    ds = load_idx_dataset(dataset, split)
    if tuple(ds.images.shape[1:]) != (28, 28):
        raise DatasetError(f"{dataset}: images are {tuple(ds.images.shape[1:])}, the image streams need 28×28")
    return ds


def dataset_label(dataset: str) -> str:
    """The name tasks and reports use for a dataset: its name, or the directory's base name."""
    return dataset if dataset in DATASET_SHA256 else (Path(dataset).name or str(dataset))
