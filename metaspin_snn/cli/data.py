"""``metaspin data check``: find and verify the offline datasets."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "dataset utilities (check: find and verify the offline datasets)"


def add_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", required=True)
    pc = sub.add_parser("check", help="find and verify the offline datasets")
    pc.add_argument("--data-root", type=Path, default=None, help="default: $METASPIN_DATA or ../shared/data")


def main(args: argparse.Namespace) -> int:
    from ..data import DatasetError, load_mnist, load_nmnist
    from ..data.idx import resolve_root

    root = resolve_root(args.data_root)
    print(f"data root: {root}")
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
