"""``metaspin data check``: find and verify the datasets; ``metaspin data download NAME…``: fetch them
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
    pd = sub.add_parser("download", help="download datasets (pinned sha256, resumable, atomic)")
    pd.add_argument("names", nargs="+", help="datasets to download (mnist, fashion-mnist, kmnist)")
    pd.add_argument("--root", type=Path, default=None, help="data root to download into (default: as `check`)")
    pd.add_argument("--mirror", default=None, help="base URL replacing the official ones")


def main(args: argparse.Namespace) -> int:
    if args.data_command == "download":
        return _download(args)
    from ..data import DatasetError, load_mnist, load_nmnist
    from ..data.idx import data_root_choice

    root, why = data_root_choice(args.data_root)
    print(f"data root: {root} ({why})")
    status = 0
    for name, fn in (("mnist", load_mnist), ("nmnist-small", load_nmnist)):
        for split in ("train", "test"):
            try:
                ds = fn(args.data_root, split)
                counts = ds.labels.bincount().tolist()
                print(f"  {name:13s} {split:5s} OK   {len(ds):6d} samples, verified; class counts {counts}")
            except DatasetError as e:
                status = 2  # bad input: a missing, corrupt or unverifiable file
                print(f"  {name:13s} {split:5s} FAIL {e}")
    return status


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
