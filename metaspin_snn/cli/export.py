"""``metaspin export PATH --to lava|nir|netx [--task k] [--fixed-point] [--verify N]``.

``PATH`` is a checkpoint file, a run folder holding ``checkpoint.pt`` (the output of ``metaspin run``
or ``metaspin train``), or a folder of such run folders (a ``metaspin run`` comparison: every run is
exported, or the one named by ``--run``). The network is rebuilt from the checkpoint's model spec
(``networks.load_model``), frozen into the export IR for task ``k`` (its head / normalisation set;
default: the last task trained) and written as

* ``lava``: an ``.npz`` of the arrays :func:`metaspin_snn.export.lava_build.build` turns into Lava
  processes (float, or fixed point with ``--fixed-point``);
* ``nir``: a NIR graph file (the dequantised fixed-point weights with ``--fixed-point``);
* ``netx``: a netx HDF5 file (always fixed point).

The input is what the network saw in training: rate/latency spikes and N-MNIST events as binary
spikes, direct-current input (``encoding = "direct"``) as graded input to the first layer.
``--verify N`` encodes the first N test samples of task k exactly as the run's evaluation did and
prints the spike agreement and accuracies of the float64 reference and the deployed network (Lava,
and for fixed point also the bit-exact emulator).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..continual.streams import EVENT_STREAMS
from ..export.ir import ExportError, NetworkIR, extract_ir
from ..networks.checkpoint import CHECKPOINT_NAME, load_model

HELP = "export a trained network (a run folder or checkpoint) to Lava / NIR / netx"
TARGETS = ("lava", "nir", "netx")
SUFFIX = {"lava": ".lava.npz", "nir": ".nir", "netx": ".netx.h5"}


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="run folder (metaspin run / metaspin train output) or checkpoint .pt")
    parser.add_argument("--to", choices=TARGETS, required=True, help="export target")
    parser.add_argument("--fixed-point", action="store_true",
                        help="quantise to Loihi 2 fixed point (Lava fixed_pt formats)")
    parser.add_argument("--verify", type=int, default=0, metavar="N",
                        help="run N test samples through torch and Lava/emulator and compare")
    parser.add_argument("--task", type=int, default=None,
                        help="task whose head / norm set / test data to use (default: the last task trained)")
    parser.add_argument("--run", type=str, default=None, help="in a folder of several runs: export this one only")
    parser.add_argument("--out", type=Path, default=None,
                        help="output file (default: beside the checkpoint, checkpoint[-task<k>][-fixed].lava.npz, .nir, "
                             ".netx.h5)")
    parser.add_argument("--data-root", type=Path, default=None, help="default: the run's, $METASPIN_DATA or ../shared/data")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input encoding for --verify of a train checkpoint")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the Lava run")


def find_checkpoints(path: Path, run: str | None = None) -> list[Path]:
    """The checkpoint files ``path`` stands for (see the module docstring)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no run folder or checkpoint at {path}")
    if (path / CHECKPOINT_NAME).is_file() and run is None:
        return [path / CHECKPOINT_NAME]
    subs = sorted(p / CHECKPOINT_NAME for p in path.iterdir() if (p / CHECKPOINT_NAME).is_file())
    if run is not None:
        subs = [p for p in subs if p.parent.name == run]
        if not subs:
            raise FileNotFoundError(f"{path}: no run {run!r} with a {CHECKPOINT_NAME}")
    if not subs:
        raise FileNotFoundError(f"{path}: no {CHECKPOINT_NAME} in it or in its sub-folders (was the run made "
                                "with checkpoint = false?)")
    return subs


# ---- what the network saw ---------------------------------------------------------------------------
class Source:
    """The training source of a checkpoint: a ``metaspin run`` config or a ``metaspin train`` config."""

    def __init__(self, ck: dict, path: Path, data_root: Path | None, seed: int) -> None:
        self.ck, self.path, self.data_root, self.seed = ck, path, data_root, seed
        self.run = ck.get("run_config")
        self.train = ck.get("train_config")
        if self.run is None and self.train is None:
            raise ExportError(f"{path}: checkpoint records neither a run nor a train config")

    @property
    def input_kind(self) -> str:
        enc = (self.run or self.train).get("encoding")
        if self.run is not None and self.run.get("stream") in EVENT_STREAMS:
            return "spikes"
        return "graded" if enc == "direct" else "spikes"

    def n_tasks_trained(self) -> int:
        return int(self.ck.get("next_task") or 1)

    def task_arg(self, k: int) -> int | None:
        if self.run is None:
            return None
        from ..continual.scenarios import Scenario
        return Scenario(self.run["scenario"], self.run["task_il"]).task_arg_of(k)  # no data loaded

    def _config(self):
        from ..continual.config import RunConfig
        d = {**self.run, "out": str(self.path.parent), "progress": False}
        if self.data_root is not None:
            d["data_root"] = str(self.data_root)
        return RunConfig.from_dict(d, source=f"{self.path} (run config)")

    def _tasks(self):
        if not hasattr(self, "_task_cache"):
            from ..continual.runner import build_stream
            self._task_cache = build_stream(self._config())
        return self._task_cache

    def inputs(self, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``n`` test samples of task ``k``, encoded as the run's evaluation encodes them:
        ``x [T, n, in]`` (uint8 spikes or float64 graded values) and the targets ``[n]``."""
        if self.run is not None:
            from ..continual.learner import DataView
            from ..continual.scenarios import Scenario
            cfg = self._config()
            task = self._tasks()[k]
            view = DataView(cfg, Scenario(cfg.scenario, cfg.task_il))
            x, y = next(view.test_batches(task, n, limit=n))
        else:
            x, y = _train_inputs(self.train, n, self.data_root, self.seed)
        x = x.reshape(x.shape[0], x.shape[1], -1)
        arr = x.numpy().astype(np.uint8) if self.input_kind == "spikes" else x.double().numpy()
        return arr, y.numpy()


def _train_inputs(config: dict, n: int, data_root: Path | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First ``n`` test samples of a ``metaspin train`` run, encoded as in training."""
    T = int(config.get("num_steps", 25))
    dataset = config.get("dataset", "mnist")
    if dataset == "mnist":
        from ..data import load_mnist
        from ..data.encoding import encode
        ds = load_mnist(data_root, "test")
        n = min(n, len(ds))
        gen = torch.Generator().manual_seed(seed)
        return encode(ds.float_images()[:n].unsqueeze(1), T, config.get("encoding", "rate"), generator=gen), ds.labels[:n]
    if dataset == "nmnist":
        from ..data import load_nmnist
        ds = load_nmnist(data_root, "test")
        n = min(n, len(ds))
        dt = int(config.get("dt_us") or max(1, 300_000 // T))
        return ds.frames(dt, T, binary=True, indices=list(range(n))).transpose(0, 1), ds.labels[:n]
    raise ExportError(f"unknown dataset {dataset!r} in checkpoint config")


def export_network(ir: NetworkIR, target: str, out: Path, fixed_point: bool, **quant: Any) -> Path:
    """Write ``ir`` as ``target`` to ``out`` (atomic); ``quant``: options of ``export.quantize``."""
    import io

    from ..export.fixed_point import quantize
    from ..files import atomic_write_bytes

    if target == "nir":
        from ..export.nir_io import write_nir
        return write_nir(quantize(ir, **quant).dequantize() if fixed_point else ir, out)
    if target == "netx":
        from ..export.netx import write_netx
        return write_netx(ir, out)
    if target == "lava":
        from ..export.lava import network_arrays
        buf = io.BytesIO()
        np.savez(buf, **network_arrays(quantize(ir, **quant) if fixed_point else ir))
        return atomic_write_bytes(out, buf.getvalue())
    raise ValueError(f"target must be one of {TARGETS}, got {target!r}")


def main(args: argparse.Namespace) -> int:
    """Entry point of ``metaspin export``; returns the exit status."""
    from ..export.verification import verify

    if args.verify < 0:
        raise ValueError(f"--verify needs N >= 0 test samples, got {args.verify}")
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {args.timeout}")
    paths = find_checkpoints(args.path, args.run)
    if args.out is not None and len(paths) > 1:
        raise ValueError(f"--out names one file but {args.path} holds {len(paths)} runs; add --run NAME")
    fixed = bool(args.fixed_point) or args.to == "netx"
    for ckpt in paths:
        model, ck = load_model(ckpt)
        src = Source(ck, ckpt, args.data_root, args.seed)
        n_trained = src.n_tasks_trained()
        k = n_trained - 1 if args.task is None else args.task
        if not 0 <= k < max(n_trained, 1) and src.run is not None:
            raise ValueError(f"--task {k}: {ckpt} was trained on tasks 0..{n_trained - 1}")
        task_arg = src.task_arg(k)
        t0 = time.perf_counter()
        ir = extract_ir(model, task_arg, input=src.input_kind)
        x = y = None
        quant: dict[str, Any] = {}
        if args.verify or (fixed and ir.input_kind == "graded"):
            # graded fixed point: the input range from ≥ 256 test samples (pixels: [0, 1])
            x, y = src.inputs(k, max(args.verify, 256 if ir.input_kind == "graded" else 1))
            if ir.input_kind == "graded":
                from ..export.verification import default_input_range
                quant["input_range"] = default_input_range(x)
        suffix = ("" if src.run is None or args.task is None else f"-task{k}") + \
            ("-fixed" if fixed and args.to == "lava" else "") + SUFFIX[args.to]
        out = args.out or ckpt.with_name(ckpt.stem + suffix)
        path = export_network(ir, args.to, out, fixed, **quant)
        where = f"task {k}" + ("" if task_arg is None else f" (head/norm set {task_arg})")
        print(f"exported {'x'.join(map(str, ir.sizes))} network from {ckpt} ({where}, {ir.input_kind} input, "
              f"{'fixed point' if fixed else 'float'}) to {args.to}: {path} in {time.perf_counter() - t0:.2f} s")
        if args.verify:
            from ..export.lava import LavaRunError
            try:
                res = verify(ir, x[:, :args.verify], y[:args.verify], fixed_point=fixed,
                             backend="both" if fixed else "lava", timeout=args.timeout, **quant)
            except LavaRunError as e:  # the worker's process group is already killed
                if os.environ.get("METASPIN_TRACEBACK"):
                    raise
                first = str(e).splitlines()[0].split(";")[0]
                raise ValueError(f"Lava run failed ({first}; --timeout {args.timeout:g} s); no worker left") from None
            print(json.dumps(res, indent=2))
    return 0
