"""The ``metaspin`` command: ``info``, ``data check``, ``train``, ``run``, ``export``."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Callable


def _info(args: argparse.Namespace) -> int:
    import importlib.metadata as md

    for pkg in ("metaspin-snn", "torch", "snntorch", "numba", "numpy", "lava-nc", "nir", "nirtorch"):
        try:
            print(f"{pkg:14s} {md.version(pkg)}")
        except md.PackageNotFoundError:
            print(f"{pkg:14s} not installed")
    import platform

    print(f"{'python':14s} {platform.python_version()}")
    from .lava_setup import lava_smoke_test

    ok, msg = lava_smoke_test(timeout=args.timeout)
    print(f"{'lava runs':14s} {'yes' if ok else 'NO'}: {msg}")
    return 0 if ok else 1


def _data_check(args: argparse.Namespace) -> int:
    from .data import DatasetError, load_mnist, load_nmnist
    from .data.idx import resolve_root

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
                status = 1
                print(f"  {name:13s} {split:5s} FAIL {e}")
    return status


def _delegate(module: str, add: str, run: str, help_text: str
              ) -> tuple[Callable[[argparse.ArgumentParser], None] | None, Callable | None, str]:
    """Subcommands implemented in other subpackages are wired by name (no registry)."""
    try:
        mod = importlib.import_module(module, __package__)
        return getattr(mod, add), getattr(mod, run), help_text
    except (ImportError, AttributeError) as e:
        return None, None, f"{help_text} (unavailable: {e})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="metaspin", description="Metaplastic spiking networks: "
                                "continual learning, event-driven plasticity, export to Lava.")
    sub = p.add_subparsers(dest="command", required=True)
    pi = sub.add_parser("info", help="versions of the stack and whether Lava runs")
    pi.add_argument("--timeout", type=float, default=120.0, help="seconds for the Lava check")
    pi.set_defaults(func=_info)
    pd = sub.add_parser("data", help="dataset utilities")
    dsub = pd.add_subparsers(dest="data_command", required=True)
    pc = dsub.add_parser("check", help="find and verify the offline datasets")
    pc.add_argument("--data-root", type=Path, default=None, help="default: $METASPIN_DATA or ../shared/data")
    pc.set_defaults(func=_data_check)
    for name, module, add, run, help_text in (
        ("train", ".networks.train", "add_train_args", "run_train", "train one spiking classifier"),
        ("run", ".continual.cli", "add_run_args", "run_cli", "run a continual-learning stream"),
        ("export", ".export.cli", "add_export_args", "run_export", "export a checkpoint to Lava / NIR / netx"),
    ):
        add_fn, run_fn, h = _delegate(module, add, run, help_text)
        sp = sub.add_parser(name, help=h)
        if add_fn is None:
            sp.set_defaults(func=lambda a, h=h: (print(f"metaspin: {h}", file=sys.stderr), 2)[1])
        else:
            add_fn(sp)
            sp.set_defaults(func=run_fn)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point. Expected failures (bad input, missing or corrupt files) print one line naming what
    and where and return 2; set ``METASPIN_TRACEBACK=1`` to see the traceback instead."""
    import os

    from .data import DatasetError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DatasetError, FileNotFoundError, ValueError, TypeError) as e:
        if os.environ.get("METASPIN_TRACEBACK"):
            raise
        print(f"metaspin {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
