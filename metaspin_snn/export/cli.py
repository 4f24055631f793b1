"""``metaspin export CHECKPOINT --to lava|nir|netx [--fixed-point] [--verify N]``.

Loads a checkpoint written by ``metaspin train`` (``networks.training.save_checkpoint``: a dict with
``model`` (state dict) and ``meta["config"]``), rebuilds the model with
``networks.train.build_model``, extracts the frozen IR and writes:

* ``lava``: an ``.npz`` of the arrays :func:`metaspin_snn.export.lava_build.build` turns into Lava
  processes (float, or fixed point with ``--fixed-point``);
* ``nir``: a NIR graph file (the dequantised fixed-point weights with ``--fixed-point``);
* ``netx``: a netx HDF5 file (always fixed point).

``--verify N`` encodes the first N test samples as the training run did (seeded) and prints the spike
agreement and accuracies of the float64 snnTorch reference and the deployed network (Lava, and for
fixed point also the bit-exact emulator).
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .ir import ExportError, NetworkIR, extract_ir

TARGETS = ("lava", "nir", "netx")
SUFFIX = {"lava": ".lava.npz", "nir": ".nir", "netx": ".netx.h5"}


def add_export_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``metaspin export``."""
    parser.add_argument("checkpoint", type=Path, help="checkpoint .pt written by `metaspin train`")
    parser.add_argument("--to", choices=TARGETS, required=True, help="export target")
    parser.add_argument("--fixed-point", action="store_true",
                        help="quantise to Loihi 2 fixed point (Lava fixed_pt formats)")
    parser.add_argument("--verify", type=int, default=0, metavar="N",
                        help="run N test samples through torch and Lava/emulator and compare")
    parser.add_argument("--out", type=Path, default=None,
                        help="output file (default: checkpoint name + .lava.npz/.nir/.netx.h5)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="default: $METASPIN_DATA or ../shared/data")
    parser.add_argument("--task", type=int, default=None, help="head / norm set of a multi-task model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input encoding for --verify")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the Lava run")


def load_checkpoint_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model of a ``metaspin train`` checkpoint; returns (model in eval mode, config)."""
    from ..networks import load_checkpoint
    from ..networks.train import build_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ck, dict) or "model" not in ck:
        raise ExportError(f"{path}: not a metaspin checkpoint (expected keys 'model' and 'meta')")
    meta = ck.get("meta") or {}
    config = meta.get("config")
    if not isinstance(config, dict):
        raise ExportError(f"{path}: checkpoint has no meta['config'] to rebuild the model from")
    from ..networks import SpikingConvNet, SpikingMLP

    cls = SpikingMLP if config.get("arch") == "mlp" else SpikingConvNet
    accepted = set(inspect.signature(cls.__init__).parameters) - {
        "self", "sizes", "in_shape", "n_classes", "channels", "synapse"}
    net_kw = {k: v for k, v in config.items() if k in accepted}  # beta, threshold, reset, norm, ...
    model = build_model(config["arch"], tuple(config["in_shape"]), int(config["n_classes"]),
                        hidden=tuple(config.get("hidden", (512,))),
                        channels=tuple(config.get("channels", (12, 32))),
                        synapse=config.get("synapse", "real"), seed=int(meta.get("seed", 0)),
                        synapse_params=config.get("synapse_params"), **net_kw)
    load_checkpoint(path, model)
    model.eval()
    return model, config


def verification_inputs(config: dict, n: int, data_root: Path | None, seed: int) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
    """First ``n`` test samples encoded as in training: spikes [T, n, in] uint8 and labels [n]."""
    if n <= 0:
        raise ValueError(f"--verify needs N > 0, got {n}")
    T = int(config.get("num_steps", 25))
    dataset = config.get("dataset", "mnist")
    if dataset == "mnist":
        from ..data import load_mnist
        from ..data.encoding import encode

        encoding = config.get("encoding", "rate")
        if encoding not in ("rate", "latency"):
            raise ExportError(f"MNIST encoding {encoding!r} gives analog currents; Lava export needs "
                              "spike inputs (train with --encoding rate)")
        ds = load_mnist(data_root, "test")
        n = min(n, len(ds))
        gen = torch.Generator().manual_seed(seed)
        x = encode(ds.float_images()[:n], T, encoding, generator=gen)
        labels = ds.labels[:n]
    elif dataset == "nmnist":
        from ..data import load_nmnist

        ds = load_nmnist(data_root, "test")
        n = min(n, len(ds))
        dt = int(config.get("dt_us") or max(1, 300_000 // T))
        x = ds.frames(dt, T, binary=True, indices=list(range(n))).transpose(0, 1)
        labels = ds.labels[:n]
    else:
        raise ExportError(f"unknown dataset {dataset!r} in checkpoint config")
    x = x.reshape(x.shape[0], x.shape[1], -1)
    return x.numpy().astype(np.uint8), labels.numpy()


def _atomic_npz(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_network(ir: NetworkIR, target: str, out: Path, fixed_point: bool) -> Path:
    """Write ``ir`` as ``target`` to ``out`` (atomic)."""
    from .fixed_point import quantize

    if target == "nir":
        from .nir_io import write_nir
        return write_nir(quantize(ir).dequantize() if fixed_point else ir, out)
    if target == "netx":
        from .netx import write_netx
        return write_netx(ir, out)
    if target == "lava":
        from .lava import network_arrays
        _atomic_npz(out, network_arrays(quantize(ir) if fixed_point else ir))
        return out
    raise ValueError(f"target must be one of {TARGETS}, got {target!r}")


def run_export(args: argparse.Namespace) -> int:
    """Entry point of ``metaspin export``; returns the exit status."""
    import time

    from .verification import verify

    model, config = load_checkpoint_model(args.checkpoint)
    t0 = time.perf_counter()
    ir = extract_ir(model, args.task)
    fixed = bool(args.fixed_point) or args.to == "netx"
    out = args.out or args.checkpoint.with_name(args.checkpoint.stem + SUFFIX[args.to])
    path = export_network(ir, args.to, out, fixed)
    print(f"exported {'x'.join(map(str, ir.sizes))} network ({'fixed point' if fixed else 'float'}) "
          f"to {args.to}: {path} in {time.perf_counter() - t0:.2f} s")
    if args.verify:
        x, y = verification_inputs(config, args.verify, args.data_root, args.seed)
        res = verify(ir, x, y, fixed_point=fixed, backend="both" if fixed else "lava",
                     timeout=args.timeout)
        print(json.dumps(res, indent=2))
    return 0
