"""``metaspin data check``: find and verify the datasets (exit 2 when MNIST is missing or any dataset
present is corrupt; the others are optional and listed as absent); ``metaspin data download NAME…``: fetch them
(pinned sha256, resumable, atomic; ``--mirror URL`` for a local copy)."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "dataset utilities (check: find and verify the datasets; download: fetch them, verified)"


def add_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", required=True)
    pc = sub.add_parser("check", help="find and verify the offline datasets")
    pc.add_argument("--data-root", type=Path, default=None,
                    help="default: $METASPIN_DATA, the per-user data directory, or the checkout's ../shared/data")
    pd = sub.add_parser("download", help="download datasets (pinned checksums, resumable, atomic; event "
                        "archives unpacked into tonic's layout)")
    pd.add_argument("names", nargs="+", help="datasets to download (mnist, fashion-mnist, kmnist, n-mnist, "
                    "dvsgesture, shd)")
    pd.add_argument("--root", type=Path, default=None, help="data root to download into (default: as `check`)")
    pd.add_argument("--mirror", default=None, help="base URL replacing the official ones")


def main(args: argparse.Namespace) -> int:
    if args.data_command == "download":
        return _download(args)
    from ..data import load_mnist, load_nmnist
    from ..data.events import EVENT_DATASETS, load_events, present
    from ..data.idx import IMAGE_DATASETS, data_root_choice, load_image_dataset

    root, why = data_root_choice(args.data_root)
    print(f"data root: {root} ({why})")
    ok = True
    for name, fn in (("mnist", load_mnist), ("nmnist-small", load_nmnist)):
        if name != "mnist" and not (root / name).is_dir():  # MNIST is required (the main job), the rest optional
            print(f"  {name:13s} absent (optional: the N-MNIST subset of ../shared/data)")
            continue
        ok &= _check_splits(name, lambda sp, fn=fn: fn(args.data_root, sp),
                            lambda ds: f"{len(ds):6d} samples, verified; class counts {ds.labels.bincount().tolist()}")
    # optional datasets: checked when present, listed as absent otherwise
    for name in IMAGE_DATASETS[1:]:
        if not (root / name).is_dir():
            print(f"  {name:13s} absent (optional: metaspin data download {name})")
            continue
        ok &= _check_splits(name, lambda sp, name=name: load_image_dataset(name, root, sp),
                            lambda ds: f"{len(ds):6d} samples, verified")
    for name in EVENT_DATASETS:
        if not any(present(name, root, s) for s in ("train", "test")):
            print(f"  {name:13s} absent (optional: metaspin data download {name})")
            continue
        ok &= _check_splits(name, lambda sp, name=name: load_events(name, root, sp),
                            lambda ev: f"{len(ev):6d} recordings (tonic layout; checksums are checked on "
                                       f"download); class counts {ev.labels.bincount().tolist()}")
    return 0 if ok else 2  # 2: bad input, a missing, corrupt or unverifiable file


def _check_splits(name: str, load, describe) -> bool:
    """Load the train and test split of ``name``; one OK / FAIL line each. Whether both loaded."""
    from ..data import DatasetError
    ok = True
    for split in ("train", "test"):
        try:
            print(f"  {name:13s} {split:5s} OK   {describe(load(split))}")
        except DatasetError as e:
            ok = False
            print(f"  {name:13s} {split:5s} FAIL {e}")
    return ok


def _download(args: argparse.Namespace) -> int:
    from ..data.download import REMOTE, download
    from ..data.idx import data_root_choice
    bad = [n for n in args.names if n not in REMOTE]
    if bad:
        raise ValueError(f"unknown dataset {bad[0]!r}; downloadable: {', '.join(REMOTE)}")
    root, why = data_root_choice(args.root)
    print(f"data root: {root} ({why})")
    for name in args.names:
        print(f"{name}:")
        dest = download(name, root, mirror=args.mirror, log=print)
        print(f"  -> {dest}")
    return 0
