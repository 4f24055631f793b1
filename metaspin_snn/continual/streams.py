"""Task streams for continual learning: permuted / split / rotated MNIST, sequences of MNIST-format
datasets, a streaming variant and split event data (N-MNIST, DVS Gesture, SHD).

Data stay in memory as the loaders return them (uint8 images shared between tasks, no copies for
permuted/rotated MNIST on the full set); a task's input transform (pixel permutation, rotation) is
applied per mini-batch, and spike encoding (``metaspin_snn.data.encoding``) happens on the fly.

Labels inside a :class:`Task` are *local* indices ``0..len(classes)-1`` (position of the dataset label
in ``classes``); ``global_classes`` gives the class-incremental label of each local index. Scenarios
(:mod:`metaspin_snn.continual.scenarios`) choose which one the network is trained on.

Every stream is a deterministic function of its arguments and ``seed``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Sequence

import torch
import torch.nn.functional as F

from ..data import encoding as enc
from ..data import load_idx_dataset, load_mnist, load_nmnist
from ..data.events import EVENT_DATASETS, PackedFrames, dense, load_events, present
from ..data.idx import dataset_label, load_image_dataset

InputKind = Literal["image", "events"]


@dataclass(frozen=True)
class Permutation:
    """Pixel permutation x'[:, i] = x[:, perm[i]] on flattened images (Goodfellow et al. 2013)."""

    perm: torch.Tensor  # int64 [n_pixels]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        return flat[:, self.perm].reshape(x.shape)

    def describe(self) -> str:
        return "identity" if bool((self.perm == torch.arange(self.perm.numel())).all()) else "permutation"


@dataclass(frozen=True)
class Rotation:
    """Rotation of every image by ``degrees`` about the centre (bilinear, zero fill)."""

    degrees: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.degrees % 360 == 0:
            return x
        a = math.radians(self.degrees)
        c, s = math.cos(a), math.sin(a)
        theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=x.dtype).expand(x.shape[0], 2, 3)
        img = x.reshape(x.shape[0], 1, x.shape[-2], x.shape[-1])
        grid = F.affine_grid(theta, list(img.shape), align_corners=False)
        out = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.reshape(x.shape).clamp_(0.0, 1.0)

    def describe(self) -> str:
        return f"rotation {self.degrees:g}°"


Transform = Permutation | Rotation


@dataclass(frozen=True, eq=False)
class Task:
    """One task of a stream.

    ``train_x``/``test_x``: uint8 ``[N, 28, 28]`` images, or binary event frames ``[N, T, *sensor]``
    (uint8 or bit-packed :class:`~metaspin_snn.data.events.PackedFrames`);
    ``train_y``/``test_y``: int64 local labels; ``classes``: dataset label of each local index;
    ``global_classes``: class-incremental label of each local index; ``transform``: applied per batch.
    """

    id: int
    name: str
    train_x: torch.Tensor | PackedFrames
    train_y: torch.Tensor
    test_x: torch.Tensor | PackedFrames
    test_y: torch.Tensor
    classes: tuple[int, ...]
    global_classes: tuple[int, ...]
    transform: Transform | None = None
    kind: InputKind = "image"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"Task {self.name!r}: {split}_x has {x.shape[0]} samples, {split}_y {y.shape[0]}")
            if x.shape[0] == 0:
                raise ValueError(f"Task {self.name!r}: empty {split} split")
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
                raise ValueError(f"Task {self.name!r}: {split}_y must hold local labels 0..{len(self.classes) - 1}")
        if len(self.global_classes) != len(self.classes):
            raise ValueError(f"Task {self.name!r}: global_classes and classes differ in length")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-time-step input shape: (1, 28, 28) for images; (2, 34, 34) for N-MNIST events, the
        binned sensor (p, y, x) or (p, x) for other event data."""
        if self.kind == "image":
            return (1, *self.train_x.shape[1:])
        return tuple(self.train_x.shape[2:])

    @property
    def n_steps_native(self) -> int | None:
        """Time bins stored with event data (None for images)."""
        return int(self.train_x.shape[1]) if self.kind == "events" else None

    def size(self, split: str) -> int:
        return int(self._xy(split)[1].shape[0])

    def _xy(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split == "train":
            return self.train_x, self.train_y
        if split == "test":
            return self.test_x, self.test_y
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")

    def inputs(self, split: str, idx: torch.Tensor) -> torch.Tensor:
        """Float inputs in [0, 1] for samples ``idx``: ``[B, 28, 28]`` (transformed) or ``[B, T, 2, 34, 34]``."""
        x = dense(self._xy(split)[0][idx]).float()
        if self.kind == "image":
            x = x.div_(255.0)
            if self.transform is not None:
                x = self.transform(x)
        return x


def encode_batch(task: Task, x: torch.Tensor, *, num_steps: int, encoding: str, flatten: bool,
                 generator: torch.Generator | None = None, gain: float = 1.0) -> torch.Tensor:
    """``[T, B, F]`` (``flatten``) or ``[T, B, C, H, W]`` network input from :meth:`Task.inputs`.
    Images are encoded with ``encoding`` over ``num_steps``; event frames are used as binned."""
    if task.kind == "image":
        x = x.unsqueeze(1)  # [B, 1, 28, 28]
        s = enc.encode(x, num_steps, encoding, generator=generator, gain=gain)
    else:
        s = x.transpose(0, 1).contiguous()  # [T, B, 2, 34, 34]
    return s.reshape(s.shape[0], s.shape[1], -1) if flatten else s


def iter_batches(task: Task, split: str, batch_size: int, *, shuffle: bool,
                 generator: torch.Generator | None = None, limit: int | None = None,
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(inputs, local_labels)`` mini-batches (see :meth:`Task.inputs`); ``limit`` caps samples."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = task.size(split)
    if limit is not None:
        n = min(n, limit)
    order = torch.randperm(task.size(split), generator=generator)[:n] if shuffle else torch.arange(n)
    y_all = task._xy(split)[1]
    for s in range(0, n, batch_size):
        idx = order[s:s + batch_size]
        yield task.inputs(split, idx), y_all[idx]


def holdout_validation(tasks: Sequence[Task], n_val: int, *, seed: int = 0) -> list[Task]:
    """The same stream with ``n_val`` training samples of every task held out (seeded, disjoint from
    what is trained on) and put in the place of its test split, for hyper-parameter selection that
    never reads the test set. Names get the suffix ``[val]``; ``meta["eval_split"] = "validation"``."""
    if not isinstance(n_val, int) or isinstance(n_val, bool) or n_val <= 0:
        raise ValueError(f"holdout_validation: n_val must be a positive int, got {n_val!r}")
    out = []
    for t in tasks:
        n = t.size("train")
        if n_val >= n:
            raise ValueError(f"holdout_validation: task {t.name!r} has {n} training samples, "
                             f"cannot hold out {n_val} and still train")
        order = torch.randperm(n, generator=_gen(seed, 7919 + t.id))
        val, tr = order[:n_val].sort().values, order[n_val:].sort().values
        out.append(dataclasses.replace(t, name=f"{t.name} [val]", train_x=t.train_x[tr], train_y=t.train_y[tr],
                                       test_x=t.train_x[val], test_y=t.train_y[val],
                                       meta={**t.meta, "eval_split": "validation"}))
    return out


# ---- helpers ---------------------------------------------------------------------------------
def _gen(seed: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + salt) % (2**63 - 1))


def _subset(n: int, size: int | None, g: torch.Generator) -> torch.Tensor | None:
    if size is None or size >= n:
        return None
    if size <= 0:
        raise ValueError(f"subset size must be positive, got {size}")
    return torch.randperm(n, generator=g)[:size].sort().values


def _take(x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    return x if idx is None else x[idx]


def _local(labels: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    lut = torch.full((int(max(max(classes), int(labels.max())) + 1),), -1, dtype=torch.int64)
    lut[torch.tensor(list(classes))] = torch.arange(len(classes))
    out = lut[labels]
    if (out < 0).any():
        raise ValueError(f"labels outside classes {tuple(classes)}")
    return out


def _check_n(n_tasks: int) -> None:
    if not isinstance(n_tasks, int) or isinstance(n_tasks, bool) or n_tasks < 1:
        raise ValueError(f"n_tasks must be a positive int, got {n_tasks!r}")


def _named(names: list[str], stem: str, dataset: str) -> list[str]:
    """Task names of a stream on another dataset than MNIST: "pmnist-3" → "pfashion-mnist-3"."""
    return names if dataset == "mnist" else [n.replace(stem, stem.replace("mnist", dataset_label(dataset)), 1)
                                             for n in names]


def _transformed_mnist(transforms: list[Transform], names: list[str], *, seed: int,
                       root: str | Path | None, train_subset: int | None,
                       test_subset: int | None, meta: list[dict], dataset: str = "mnist") -> list[Task]:
    tr, te = load_image_dataset(dataset, root, "train"), load_image_dataset(dataset, root, "test")
    classes = tuple(range(10))
    tasks = []
    for k, (t, name) in enumerate(zip(transforms, names)):
        itr = _subset(len(tr), train_subset, _gen(seed, 2 * k + 101))
        ite = _subset(len(te), test_subset, _gen(seed, 2 * k + 102))
        tasks.append(Task(k, name, _take(tr.images, itr), _take(tr.labels, itr), _take(te.images, ite),
                          _take(te.labels, ite), classes, tuple(10 * k + c for c in classes), t, "image",
                          meta[k]))
    return tasks


# ---- streams ---------------------------------------------------------------------------------
def permuted_mnist(n_tasks: int, *, seed: int = 0, root: str | Path | None = None,
                   identity_first: bool = True, train_subset: int | None = None,
                   test_subset: int | None = None, dataset: str = "mnist") -> list[Task]:
    """Permuted MNIST: task k applies a fixed random pixel permutation drawn from ``seed``.
    With ``identity_first`` task 0 is plain MNIST (Laborieux et al. 2021 train on MNIST first);
    otherwise every task, task 0 included, is a random permutation. ``*_subset`` draws a seeded
    subset per task (different samples per task). ``dataset``: any 28×28 MNIST-format dataset
    (``load_image_dataset``: "fashion-mnist", "kmnist" or a directory); tasks are then named after it."""
    _check_n(n_tasks)
    perms = []
    for k in range(n_tasks):
        if k == 0 and identity_first:
            perms.append(Permutation(torch.arange(784)))
        else:
            perms.append(Permutation(torch.randperm(784, generator=_gen(seed, k))))
    names = [f"pmnist-{k}" + (" (identity)" if k == 0 and identity_first else "") for k in range(n_tasks)]
    return _transformed_mnist(perms, _named(names, "pmnist", dataset), seed=seed, root=root,
                              train_subset=train_subset, test_subset=test_subset,
                              meta=[{"transform": p.describe()} for p in perms], dataset=dataset)


def rotated_mnist(n_tasks: int, *, seed: int = 0, root: str | Path | None = None,
                  angles: Sequence[float] | None = None, max_angle: float = 180.0,
                  train_subset: int | None = None, test_subset: int | None = None,
                  dataset: str = "mnist") -> list[Task]:
    """Rotated MNIST: task k rotates every image by ``angles[k]`` degrees (default evenly spaced
    ``k·max_angle/n_tasks``, so task 0 is unrotated)."""
    _check_n(n_tasks)
    if angles is None:
        angles = [k * max_angle / n_tasks for k in range(n_tasks)]
    if len(angles) != n_tasks:
        raise ValueError(f"angles: {len(angles)} given for {n_tasks} tasks")
    rots = [Rotation(float(a)) for a in angles]
    names = [f"rotated-{a:g}" for a in angles]
    if dataset != "mnist":
        names = [f"rotated-{dataset_label(dataset)}-{a:g}" for a in angles]
    return _transformed_mnist(rots, names, seed=seed, root=root,
                              train_subset=train_subset, test_subset=test_subset,
                              meta=[{"transform": r.describe()} for r in rots], dataset=dataset)


def _split(tr_x, tr_y, te_x, te_y, groups: list[tuple[int, ...]], *, prefix: str, kind: InputKind,
           seed: int, train_subset: int | None, test_subset: int | None) -> list[Task]:
    tasks = []
    for k, cl in enumerate(groups):
        mtr = torch.isin(tr_y, torch.tensor(cl))
        mte = torch.isin(te_y, torch.tensor(cl))
        xtr, ytr, xte, yte = tr_x[mtr], tr_y[mtr], te_x[mte], te_y[mte]
        itr = _subset(len(ytr), train_subset, _gen(seed, 2 * k + 201))
        ite = _subset(len(yte), test_subset, _gen(seed, 2 * k + 202))
        xtr, ytr, xte, yte = _take(xtr, itr), _take(ytr, itr), _take(xte, ite), _take(yte, ite)
        tasks.append(Task(k, f"{prefix}-{'/'.join(map(str, cl))}", xtr, _local(ytr, cl), xte, _local(yte, cl),
                          tuple(cl), tuple(cl), None, kind, {"classes": list(cl)}))
    return tasks


def _groups(n_classes: int, classes_per_task: int, shuffle: bool, seed: int) -> list[tuple[int, ...]]:
    if not isinstance(classes_per_task, int) or classes_per_task < 1 or n_classes % classes_per_task:
        raise ValueError(f"classes_per_task must divide {n_classes}, got {classes_per_task!r}")
    order = torch.randperm(n_classes, generator=_gen(seed, 7)).tolist() if shuffle else list(range(n_classes))
    return [tuple(order[i:i + classes_per_task]) for i in range(0, n_classes, classes_per_task)]


def split_mnist(*, seed: int = 0, root: str | Path | None = None, classes_per_task: int = 2,
                shuffle_classes: bool = False, train_subset: int | None = None,
                test_subset: int | None = None, dataset: str = "mnist") -> list[Task]:
    """Split MNIST: the digits in groups of ``classes_per_task`` ((0,1), (2,3), ... by default;
    seeded shuffled order with ``shuffle_classes``), one task per group (Zenke et al. 2017).
    ``dataset``: any 28×28 MNIST-format dataset with 10 classes (split Fashion-MNIST, split KMNIST)."""
    tr, te = load_image_dataset(dataset, root, "train"), load_image_dataset(dataset, root, "test")
    groups = _groups(10, classes_per_task, shuffle_classes, seed)
    return _split(tr.images, tr.labels, te.images, te.labels, groups, prefix=f"split-{dataset_label(dataset)}",
                  kind="image", seed=seed, train_subset=train_subset, test_subset=test_subset)


def dataset_sequence(directories: Sequence[str | Path], *, seed: int = 0,
                     train_subset: int | None = None, test_subset: int | None = None) -> list[Task]:
    """Task k = the k-th MNIST-format directory (four IDX files, any 2-D image size and label set).
    Class-incremental labels are offset by the number of classes of the tasks before."""
    if len(directories) == 0:
        raise ValueError("dataset_sequence: give at least one MNIST-format directory")
    tasks, offset, shape = [], 0, None
    for k, d in enumerate(directories):
        tr, te = load_idx_dataset(d, "train"), load_idx_dataset(d, "test")
        if shape is None:
            shape = tuple(tr.images.shape[1:])
        if tuple(tr.images.shape[1:]) != shape or tuple(te.images.shape[1:]) != shape:
            raise ValueError(f"dataset_sequence: {d} has images {tuple(tr.images.shape[1:])}, "
                             f"expected {shape} like the first directory")
        classes = tuple(sorted(set(tr.labels.tolist()) | set(te.labels.tolist())))
        itr = _subset(len(tr), train_subset, _gen(seed, 2 * k + 301))
        ite = _subset(len(te), test_subset, _gen(seed, 2 * k + 302))
        tasks.append(Task(k, f"{Path(d).name}", _take(tr.images, itr), _local(_take(tr.labels, itr), classes),
                          _take(te.images, ite), _local(_take(te.labels, ite), classes), classes,
                          tuple(offset + i for i in range(len(classes))), None, "image", {"directory": str(d)}))
        offset += len(classes)
    return tasks


# Event streams: stream name -> event dataset (data.events.EVENT_DATASETS) and the classes it splits.
# DVS Gesture's class 10 ("other gestures", random moves) is not a gesture and is left out, so the
# ten gestures split like the ten digits.
EVENT_STREAMS: dict[str, str] = {"split-nmnist": "n-mnist", "split-dvsgesture": "dvsgesture", "split-shd": "shd"}
STREAM_CLASSES: dict[str, int] = {"split-mnist": 10, "split-nmnist": 10, "split-dvsgesture": 10, "split-shd": 20}


def split_events(stream: str, *, seed: int = 0, root: str | Path | None = None, classes_per_task: int = 2,
                 shuffle_classes: bool = False, dt_us: int | None = None, num_steps: int | None = None,
                 spatial_factor: float | None = None, train_subset: int | None = None,
                 test_subset: int | None = None) -> list[Task]:
    """Split event stream ``stream`` (``EVENT_STREAMS``) read with tonic from ``root`` in tonic's layout
    (:mod:`metaspin_snn.data.events`): classes grouped as in split MNIST, inputs bit-packed binary
    frames ``[T, p, y, x]`` (``[T, p, x]`` for SHD) of ``num_steps`` bins of ``dt_us`` after tonic's
    ``Downsample(spatial_factor)`` (``None``: the dataset's default). Only the selected samples are binned."""
    name = EVENT_STREAMS[stream]
    kw = dict(dt_us=dt_us, steps=num_steps, spatial_factor=spatial_factor)
    tr, te = load_events(name, root, "train", **kw), load_events(name, root, "test", **kw)
    groups = _groups(STREAM_CLASSES[stream], classes_per_task, shuffle_classes, seed)
    tasks = []
    for k, cl in enumerate(groups):
        parts: list = []
        for ds, size, salt in ((tr, train_subset, 401), (te, test_subset, 402)):
            idx = torch.nonzero(torch.isin(ds.labels, torch.tensor(cl))).flatten()
            if idx.numel() == 0:
                raise ValueError(f"{stream}: no recordings of classes {cl} in the data under {root or 'the data root'}")
            idx = _take(idx, _subset(len(idx), size, _gen(seed, 2 * k + salt)))
            parts += [ds.frames(idx.tolist()), _local(ds.labels[idx], cl)]
        tasks.append(Task(k, f"{stream}-{'/'.join(map(str, cl))}", *parts, tuple(cl), tuple(cl), None, "events",
                          {"classes": list(cl), "dataset": name, "data": f"{name} (tonic)", "dt_us": tr.dt_us,
                           "num_steps": tr.steps, "spatial_factor": tr.spatial_factor}))
    return tasks


def split_nmnist(*, seed: int = 0, root: str | Path | None = None, classes_per_task: int = 2,
                 shuffle_classes: bool = False, dt_us: int | None = None, num_steps: int | None = None,
                 train_subset: int | None = None, test_subset: int | None = None,
                 spatial_factor: float | None = None) -> list[Task]:
    """Split N-MNIST (event camera recordings, Orchard et al. 2015): digits grouped as in split MNIST;
    inputs are binary event frames ``[T, 2, 34, 34]`` (bins of ``dt_us``, default 10 ms, ``num_steps``
    bins, default 30, events after T·dt_us dropped). Reads the full data set with tonic when
    ``root/NMNIST/Train`` and ``Test`` hold recordings (:func:`split_events`), otherwise the
    1,000 / 100-recording subset ``root/nmnist-small``. Only the selected samples are binned."""
    if present("n-mnist", root, "train") and present("n-mnist", root, "test"):
        return split_events("split-nmnist", seed=seed, root=root, classes_per_task=classes_per_task,
                            shuffle_classes=shuffle_classes, dt_us=dt_us, num_steps=num_steps,
                            spatial_factor=spatial_factor, train_subset=train_subset, test_subset=test_subset)
    if spatial_factor not in (None, 1, 1.0):
        raise ValueError("split-nmnist: spatial_factor applies to the full data set read with tonic, "
                         "not to the nmnist-small subset")
    spec = EVENT_DATASETS["n-mnist"]
    dt_us = spec.dt_us if dt_us is None else dt_us
    num_steps = spec.steps if num_steps is None else num_steps
    tr, te = load_nmnist(root, "train"), load_nmnist(root, "test")
    groups = _groups(10, classes_per_task, shuffle_classes, seed)
    tasks = []
    for k, cl in enumerate(groups):
        parts = []
        for split, ds, size, salt in (("train", tr, train_subset, 401), ("test", te, test_subset, 402)):
            idx = torch.nonzero(torch.isin(ds.labels, torch.tensor(cl))).flatten()
            sub = _subset(len(idx), size, _gen(seed, 2 * k + salt))
            idx = _take(idx, sub)
            x = ds.frames(dt_us, num_steps, binary=True, indices=idx.tolist())
            parts += [PackedFrames.pack(x), _local(ds.labels[idx], cl)]
        tasks.append(Task(k, f"split-nmnist-{'/'.join(map(str, cl))}", *parts, tuple(cl), tuple(cl), None,
                          "events", {"classes": list(cl), "dataset": "n-mnist", "data": "nmnist-small (subset)",
                                     "dt_us": dt_us, "num_steps": num_steps, "spatial_factor": 1.0}))
    return tasks
