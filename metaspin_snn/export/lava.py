"""Export to Lava processes, and an isolated runner.

* :func:`to_lava` builds the connected Lava processes in the calling process (imports Lava: call it
  before any ``numba parallel=True`` kernel, see ``shared/notes/lava.md`` pitfall 1).
* :func:`run_lava` runs a network on input spikes in ``Loihi2SimCfg`` inside an isolated worker
  process (own session, npz files in a temporary directory, timeout). On failure or timeout the
  worker's whole process group is killed and :class:`LavaRunError` carries the worker's stderr, so
  no Lava process is left behind (Lava hangs on a failing process model: pitfall 3).

Float mapping (snnTorch ``Leaky`` → Lava ``LIF``): du = 1, dv = 1 - beta, vth = threshold, weights
unchanged, biases via a delayed always-on line; spike-exact in float64 once the one-step delay per
Dense is removed (measured in ``tests/export``). Subtract reset, per-neuron parameters, and betas for
which ``1 - (1 - beta) != beta`` in float64 use :class:`~.lava_procs.snn_lif.SnnLIF`.

Graded (direct-current) input (``input_kind="graded"``): the source RingBuffer sends the real
inputs (float) or their integer payloads ``q = clip(rint(x / step), q_min, q_max)`` (fixed point,
``FixedPointNetwork.quantize_input``) as graded spikes into a first Dense with
``num_message_bits`` > 0, which computes ``W x`` with the same one-step delay as for spikes; see
:mod:`.lava_build`. :func:`run_lava` and :func:`to_lava` always take the real-valued inputs.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fixed_point import FixedPointNetwork, quantize
from .ir import ExportError, NetworkIR, check_inputs


class LavaRunError(RuntimeError):
    """The Lava worker failed or timed out (its process group has been killed)."""

    def __init__(self, message: str, pid: int, stderr: str) -> None:
        super().__init__(message)
        self.pid = pid
        self.stderr = stderr


@dataclass(frozen=True)
class LavaResult:
    """Spikes from a Lava run, aligned to snnTorch time: ``layers[k]`` is [T, B, out_k] uint8
    (all layers with ``record_all``, else only the output layer), plus per-runtime timings [s]."""

    layers: list[np.ndarray]
    timings: dict[str, np.ndarray] = field(default_factory=dict)
    pid: int = 0

    @property
    def output(self) -> np.ndarray:
        return self.layers[-1]


def network_arrays(network: NetworkIR | FixedPointNetwork) -> dict[str, np.ndarray]:
    """Flatten a float IR or a fixed-point network into the plain arrays the Lava builder reads
    (keys in :mod:`.lava_build`; ``input_kind`` "spikes" | "graded", and for a graded fixed-point
    network ``input_bits``, ``input_signed``, ``input_step`` and ``L0.bias_input``)."""
    out: dict[str, np.ndarray] = {"n_layers": np.asarray(len(network))}
    if isinstance(network, NetworkIR):
        out["kind"] = np.asarray("float")
    elif isinstance(network, FixedPointNetwork):
        out["kind"] = np.asarray("fixed")
    else:
        raise ExportError(f"expected a NetworkIR or FixedPointNetwork, got {type(network).__name__}")
    out["input_kind"] = np.asarray(network.input_kind)
    if isinstance(network, FixedPointNetwork) and network.input_kind == "graded":
        out["input_bits"] = np.asarray(network.input_bits)
        out["input_signed"] = np.asarray(int(network.input_signed))
        out["input_step"] = np.asarray(network.input_step, dtype=np.float64)
        if network.layers[0].bias is not None:
            out["L0.bias_input"] = np.asarray(network.bias_input(0))
    for k, layer in enumerate(network):
        p = f"L{k}."
        out[p + "weight"] = layer.weight
        if layer.bias is not None:
            out[p + "bias"] = layer.bias
        out[p + "subtract"] = np.asarray(int(layer.reset == "subtract"))
        if isinstance(network, NetworkIR):
            out[p + "beta"] = layer.beta
            out[p + "du"] = np.ones(layer.out_features)
            out[p + "dv"] = 1.0 - layer.beta
            out[p + "vth"] = layer.threshold
        else:
            out[p + "beta"] = 1.0 - layer.dv / 4096.0
            out[p + "du"] = layer.du
            out[p + "dv"] = layer.dv
            out[p + "vth"] = layer.vth
            out[p + "weight_exp"] = np.asarray(layer.weight_exp)
    return out


def _prepare(network: NetworkIR | FixedPointNetwork, fixed_point: bool):
    if isinstance(network, FixedPointNetwork):
        if not fixed_point:
            raise ExportError("a FixedPointNetwork can only run with fixed_point=True")
        return network
    if not isinstance(network, NetworkIR):
        raise ExportError(f"expected a NetworkIR or FixedPointNetwork, got {type(network).__name__}")
    return quantize(network) if fixed_point else network


def lava_inputs(net: NetworkIR | FixedPointNetwork, inputs) -> np.ndarray:
    """What the Lava source sends for ``inputs`` [T, B, in]: binary spikes (uint8), graded real
    values (float64), or a fixed-point network's integer payloads (int32, ``quantize_input``)."""
    if isinstance(net, FixedPointNetwork):
        return net.quantize_input(inputs)
    return check_inputs(inputs, net.layers[0].in_features, net.input_kind)


def to_lava(network: NetworkIR | FixedPointNetwork, input_spikes: np.ndarray,
            fixed_point: bool = False, record_all: bool = False):
    """Build connected Lava processes (source → Dense + LIF per layer → sinks) for ``input_spikes``
    [T, B, in] (binary spikes, or real values for a graded network) in this process; returns a
    :class:`~.lava_build.LavaNetwork` (run it with
    ``net.neurons[-1].run(RunSteps(net.num_steps), run_config(net.kind))``, always ``stop()``)."""
    from .lava_build import build

    net = _prepare(network, fixed_point)
    return build(network_arrays(net), lava_inputs(net, input_spikes), record_all)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


SHM_DIR = Path("/dev/shm")


def _shm_names() -> set[str]:
    try:
        return {p.name for p in SHM_DIR.iterdir() if p.name.startswith("psm_")}
    except OSError:
        return set()


def _shm_in_use() -> set[str]:
    """psm_* segments mapped or held open by any live process (from /proc/*/maps and fd links)."""
    used: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for line in (entry / "maps").read_text().splitlines():
                i = line.find("/dev/shm/psm_")
                if i >= 0:
                    used.add(line[i + 9:].split()[0])
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("/dev/shm/psm_"):
                    used.add(target[9:].split()[0])
        except OSError:
            continue
    return used


def orphan_shm(before: set[str]) -> list[str]:
    """psm_* shared-memory segments created since ``before`` that no live process uses."""
    new = _shm_names() - before
    return sorted(new - _shm_in_use()) if new else []


def _remove_orphan_shm(before: set[str]) -> None:
    """Unlink the segments a killed Lava runtime left behind (Lava's SharedMemoryManager unlinks
    them on a clean stop; SIGKILL skips that)."""
    for name in orphan_shm(before):
        try:
            (SHM_DIR / name).unlink()
        except OSError:
            pass


def session_processes(sid: int) -> list[int]:
    """PIDs of live (non-zombie) processes whose session id is ``sid`` (read from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] = state, [1] = ppid, [2] = pgrp, [3] = session
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            pids.append(int(entry.name))
    return pids


def _wait_session_gone(sid: int, timeout: float = 10.0) -> None:
    """Wait until no live process of session ``sid`` remains (SIGKILL is asynchronous)."""
    deadline = time.monotonic() + timeout
    while session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.02)


def run_lava(network: NetworkIR | FixedPointNetwork, input_spikes: np.ndarray,
             fixed_point: bool = False, *, record_all: bool = False, chunk: int | None = None,
             timeout: float = 300.0, steps_long: int = 0, term_grace: float = 5.0,
             _fail: str = "") -> LavaResult:
    """Run ``network`` on ``input_spikes`` [T, B, in] in Lava (``Loihi2SimCfg``, ``floating_pt`` or
    bit-accurate ``fixed_pt``) inside an isolated worker; returns spikes aligned to snnTorch time.
    For a graded-input network ``input_spikes`` are the real-valued inputs (quantised here with the
    network's input quantisation for fixed point).

    ``chunk``: samples per Lava runtime (block-diagonal); default keeps each block-diagonal weight
    matrix under ~4 M entries. ``steps_long`` > 1 also times the per-step cost of one long run.
    Raises :class:`LavaRunError` (with the worker's stderr) on failure or after ``timeout`` seconds;
    on timeout the worker first gets SIGTERM and ``term_grace`` seconds to stop its runtime, then its
    process group is killed and shared-memory segments left by the killed runtime are unlinked.
    """
    net = _prepare(network, fixed_point)
    x = lava_inputs(net, input_spikes)
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 s, got {timeout}")
    if chunk is None:
        largest = max(layer.in_features * layer.out_features for layer in net)
        chunk = max(1, int(np.sqrt(4_000_000 / largest)))
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    env = dict(os.environ)
    env["NUMBA_THREADING_LAYER"] = "workqueue"
    env.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="metaspin_lava_") as tmp:
        req, res = os.path.join(tmp, "request.npz"), os.path.join(tmp, "result.npz")
        np.savez(req, spikes=x, record_all=np.asarray(int(record_all)), chunk=np.asarray(chunk),
                 steps_long=np.asarray(steps_long), fail=np.asarray(_fail), **network_arrays(net))
        out_path, err_path = os.path.join(tmp, "stdout.txt"), os.path.join(tmp, "stderr.txt")
        shm_before = _shm_names()
        with open(out_path, "wb") as out_f, open(err_path, "wb") as err_f:
            proc = subprocess.Popen(
                [sys.executable, "-m", "metaspin_snn.export._lava_worker", req, res],
                stdout=out_f, stderr=err_f, env=env, start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
                problem = None if rc == 0 else f"Lava worker exited with status {rc}"
            except subprocess.TimeoutExpired:
                problem = f"Lava worker timed out after {timeout:g} s"
                try:  # let the worker stop its runtime (its SIGTERM handler raises into finally)
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=term_grace)
                except subprocess.TimeoutExpired:
                    pass
            except BaseException:
                _kill_group(proc.pid)
                proc.wait()
                raise
            finally:
                # The worker stops its runtime in a finally block; kill whatever may remain anyway.
                _kill_group(proc.pid)
                proc.wait()
        if problem is not None:
            _wait_session_gone(proc.pid)  # killed workers may still map the segments for a moment
            _remove_orphan_shm(shm_before)
        if problem is not None or not os.path.exists(res):
            stderr = Path(err_path).read_text(errors="replace")
            stdout = Path(out_path).read_text(errors="replace")
            raise LavaRunError(
                f"{problem or 'Lava worker wrote no result'}; worker process group killed.\n"
                f"--- worker stderr (tail) ---\n{stderr[-4000:]}\n"
                f"--- worker stdout (tail) ---\n{stdout[-1000:]}", proc.pid, stderr)
        with np.load(res, allow_pickle=False) as f:
            n = sum(1 for key in f.files if key.startswith("layer"))
            layers = [f[f"layer{i}"] for i in range(n)]
            timings = {k[5:]: f[k] for k in f.files if k.startswith("time_")}
    return LavaResult(layers, timings, proc.pid)
