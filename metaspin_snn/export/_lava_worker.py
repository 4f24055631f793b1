"""Lava worker: ``python -m metaspin_snn.export._lava_worker REQUEST.npz RESULT.npz``.

Runs in its own session (started by :func:`metaspin_snn.export.lava.run_lava`), so that a hung
Lava runtime can be killed with its whole process group. Imports numpy and Lava only (no torch).
The request holds the network arrays (see :mod:`metaspin_snn.export.lava_build`), ``spikes``
[T, B, in] (the source data: binary spikes, graded real values, or graded integer payloads for a
fixed-point graded network), ``record_all``, ``chunk`` (samples per runtime), ``steps_long`` (0, or the length of an
extra single-sample run used to time steps), and ``fail`` (test hook: "" | "raise" | "hang" |
"stuck"; "stuck" ignores SIGTERM). SIGTERM raises SystemExit, so ``finally: stop()`` runs.
The result holds ``layer{k}`` [T, B, out] and timing arrays; it is written then renamed.
"""
from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np


def _run_chunk(arrays: dict, spikes: np.ndarray, record_all: bool, fail: str) -> tuple[list, dict]:
    from lava.magma.core.run_conditions import RunSteps

    from .lava_build import build, read_spikes, run_config

    t0 = time.perf_counter()
    net = build(arrays, spikes, record_all)
    t1 = time.perf_counter()
    top = net.neurons[-1]
    try:
        top.run(condition=RunSteps(num_steps=net.num_steps), run_cfg=run_config(net.kind))
        t2 = time.perf_counter()
        if fail == "raise":
            raise RuntimeError("requested failure (test hook) after the Lava run started")
        if fail in ("hang", "stuck"):
            if fail == "stuck":  # a worker that ignores SIGTERM: the parent must SIGKILL it
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(3600)
        layers = read_spikes(net, spikes.shape[0])
        t3 = time.perf_counter()
    finally:
        top.stop()
    t4 = time.perf_counter()
    return layers, {"build": t1 - t0, "run": t2 - t1, "read": t3 - t2, "stop": t4 - t3}


def _time_steps(arrays: dict, n_in: int, steps: int, seed: int = 0) -> float:
    """Seconds per step of one sample inside one long run (random 10 % input; 0/1 values, also
    valid graded input)."""
    from lava.magma.core.run_conditions import RunSteps

    from .lava_build import build, run_config

    rng = np.random.default_rng(seed)
    spikes = (rng.random((steps, 1, n_in)) < 0.1).astype(np.uint8)
    net = build(arrays, spikes)
    top = net.neurons[-1]
    try:  # compile and start outside the timed window with a 1-step run
        top.run(condition=RunSteps(num_steps=1), run_cfg=run_config(net.kind))
        t0 = time.perf_counter()
        top.run(condition=RunSteps(num_steps=steps - 1), run_cfg=run_config(net.kind))
        dt = time.perf_counter() - t0
    finally:
        top.stop()
    return dt / (steps - 1)


def _terminate(signum, frame):  # SIGTERM from the parent on timeout: unwind into finally/stop()
    raise SystemExit(f"Lava worker terminated by signal {signum}")


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    if len(argv) != 2:
        print("usage: python -m metaspin_snn.export._lava_worker REQUEST.npz RESULT.npz",
              file=sys.stderr)
        return 2
    req_path, out_path = argv
    with np.load(req_path, allow_pickle=False) as f:
        req = {k: f[k] for k in f.files}
    spikes = req.pop("spikes")
    record_all = bool(req.pop("record_all"))
    chunk = int(req.pop("chunk"))
    steps_long = int(req.pop("steps_long"))
    fail = str(req.pop("fail"))
    arrays = req
    T, B, _ = spikes.shape
    results: dict[str, list] = {}
    timings: dict[str, list] = {"build": [], "run": [], "read": [], "stop": [], "total": []}
    for start in range(0, B, chunk):
        t0 = time.perf_counter()
        layers, tm = _run_chunk(arrays, spikes[:, start:start + chunk], record_all, fail)
        for key, val in tm.items():
            timings[key].append(val)
        timings["total"].append(time.perf_counter() - t0)
        for i, layer in enumerate(layers):
            results.setdefault(f"layer{i}", []).append(layer)
    out = {k: np.concatenate(v, axis=1) for k, v in results.items()}
    out.update({f"time_{k}": np.asarray(v) for k, v in timings.items()})
    if steps_long > 1:
        out["time_per_step"] = np.asarray(_time_steps(arrays, spikes.shape[2], steps_long))
    tmp = out_path + ".tmp.npz"
    np.savez(tmp, **out)
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
