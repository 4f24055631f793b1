"""The ``metaspin`` command: one module per subcommand (``info``, ``data``, ``train``, ``run``,
``export``, ``theory``, ``devices``, ``retention``, ``sweep``), each thin — parse, call the library, print."""
from __future__ import annotations

import argparse
import os
import sys

from . import data, devices, export, info, retention, run, sweep, theory, train

COMMANDS = {"info": info, "data": data, "train": train, "run": run, "export": export, "theory": theory,
            "devices": devices, "retention": retention, "sweep": sweep}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="metaspin", description="Metaplastic spiking networks: "
                                "continual learning, event-driven plasticity, export to Lava.")
    p.add_argument("--version", action="version", version=f"metaspin-snn {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, mod in COMMANDS.items():
        sp = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_args(sp)
        sp.set_defaults(func=mod.main)
    return p


def _version() -> str:
    import metaspin_snn
    return metaspin_snn.__version__


def main(argv: list[str] | None = None) -> int:
    """Entry point. Expected failures (bad input, missing or corrupt files, an output folder that
    would be overwritten) print one line naming what and where and return 2; set
    ``METASPIN_TRACEBACK=1`` to see the traceback instead. Keeps freed heap memory for the process
    (:func:`metaspin_snn.networks.keep_freed_memory`)."""
    from ..data import DatasetError

    args = build_parser().parse_args(argv)
    from ..networks import keep_freed_memory
    keep_freed_memory()  # a training step's buffers reused by the next (METASPIN_KEEP_FREED_MEMORY=0: off)
    try:
        return int(args.func(args) or 0)
    except (DatasetError, OSError, ValueError, TypeError) as e:  # OSError: missing files, no permission, a full disk
        if os.environ.get("METASPIN_TRACEBACK"):
            raise
        print(f"metaspin {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
