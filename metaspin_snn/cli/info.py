"""``metaspin info``: versions of the stack and a tiny Lava run."""
from __future__ import annotations

import argparse
import platform

HELP = "versions of the stack and whether Lava runs"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=120.0, help="seconds for the Lava check")


def main(args: argparse.Namespace) -> int:
    import importlib.metadata as md

    import metaspin_snn
    from ..lava_setup import lava_smoke_test

    print(f"{'metaspin_snn':14s} {metaspin_snn.__version__}")
    for pkg in ("torch", "snntorch", "numba", "numpy", "triton", "lava-nc", "nir", "nirtorch"):
        try:
            print(f"{pkg:14s} {md.version(pkg)}")
        except md.PackageNotFoundError:
            print(f"{pkg:14s} not installed")
    print(f"{'python':14s} {platform.python_version()}")
    ok, msg = lava_smoke_test(timeout=args.timeout)
    print(f"{'lava runs':14s} {'yes' if ok else 'NO'}: {msg}")
    return 0 if ok else 1
