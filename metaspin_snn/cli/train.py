"""``metaspin train``: one spiking classifier on MNIST or N-MNIST
(:func:`metaspin_snn.networks.classifier.train_classifier`)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..networks.builder import ARCHS
from ..networks.classifier import DATASETS, TRAIN_ENCODINGS, train_classifier
from ..networks.models import NET_RESETS, NORMS, OUTPUTS
from ..networks.training import LOSSES
from ..synapses.registry import BUILTIN_SYNAPSES

HELP = "train one spiking classifier"


def add_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``metaspin train``."""
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--arch", choices=ARCHS, default="mlp")
    parser.add_argument("--synapse", default="real", help=f"one of {', '.join(BUILTIN_SYNAPSES)}, a registered name, or package.module:Class")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-steps", type=int, default=25, help="time steps T per sample")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam lr for ordinary parameters")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None, help="default: $METASPIN_DATA or ../shared/data")
    parser.add_argument("--out", type=Path, default=None,
                        help="run folder (default runs/train-<dataset>-<arch>-<synapse>/<UTC time>-<hash>/)")
    parser.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")
    parser.add_argument("--quick", action="store_true", help="2000 train / 500 test samples")
    parser.add_argument("--encoding", choices=TRAIN_ENCODINGS, default="rate", help="MNIST input code")
    parser.add_argument("--hidden", type=int, nargs="+", default=[512], help="MLP hidden sizes")
    parser.add_argument("--channels", type=int, nargs="+", default=[12, 32], help="conv channels")
    parser.add_argument("--beta", type=float, default=0.9)
    parser.add_argument("--threshold", type=float, default=1.0)
    parser.add_argument("--reset", choices=NET_RESETS, default="zero")
    parser.add_argument("--norm", choices=("auto", "none", *(n for n in NORMS if n)), default="auto",
                        help="auto: batch norm for synapse models, none for real weights")
    parser.add_argument("--output", choices=OUTPUTS, default="count")
    parser.add_argument("--loss", choices=LOSSES, default="ce")
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--dt-us", type=int, default=None, help="N-MNIST bin width (default 300 ms / T)")
    parser.add_argument("--synapse-param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a synapse parameter (repeatable), e.g. lr=0.005")
    parser.add_argument("--no-progress", action="store_true")


def _parse_value(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def main(args: argparse.Namespace) -> int:
    """``metaspin train``: run :func:`train_classifier` from parsed arguments; prints the JSON path."""
    sp = {}
    for item in args.synapse_param:
        if "=" not in item:
            raise SystemExit(f"metaspin train: --synapse-param expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        sp[k.strip()] = _parse_value(v.strip())
    res = train_classifier(args.dataset, arch=args.arch, synapse=args.synapse, epochs=args.epochs,
                           batch_size=args.batch_size, num_steps=args.num_steps, lr=args.lr, seed=args.seed,
                           data_root=args.data_root, out=args.out, quick=args.quick, overwrite=args.overwrite,
                           encoding=args.encoding, hidden=tuple(args.hidden), channels=tuple(args.channels),
                           beta=args.beta, threshold=args.threshold, reset=args.reset, norm=args.norm,
                           output=args.output, loss=args.loss, n_train=args.n_train, n_test=args.n_test,
                           dt_us=args.dt_us, synapse_params=sp or None, progress=not args.no_progress)
    print(f"test accuracy {res['test_accuracy']:.4f}  ({res['wall_time_s']:.1f} s)  -> {res['json']}")
    if res.get("checkpoint"):
        print(f"checkpoint: {res['checkpoint']}  (metaspin export {Path(res['checkpoint']).parent} --to lava)")
    return 0
