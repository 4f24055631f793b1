"""Synapse-model torch references on a CUDA GPU: eager vs torch.compile vs the memory floor.

For each model of ``bench/synapses.py`` (same state, same step), on the GPU, times one optimisation
step of its torch reference run eagerly and under ``torch.compile``, with CUDA events (median of
``--repeat`` after warm-up). The floor is the step's memory traffic (every state tensor the step
reads, plus the ones it writes — found by running the step once and seeing which tensors changed)
divided by the device-to-device copy bandwidth measured in the same run. Prints ms and the ratios
eager/floor, compile/floor and eager/compile; for models with a fused Triton kernel
(``synapses/triton_updates.py``) also its time, compile/triton, and whether one step of it leaves the
eager reference's state to the bit (MESU's and BayesianBinary's should; MetaplasticBinary's agrees
to rounding only).

    python bench/synapses_gpu.py [--n 30000000] [--models metaplastic,mesu] [--repeat 20]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synapses import CASES  # noqa: E402  (bench/synapses.py: the cases and their torch references)


def cuda_time(fn: Callable[[], None], repeat: int) -> float:
    """Median milliseconds of ``fn`` over ``repeat`` runs, timed with CUDA events (after 3 warm-ups)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeat):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def copy_bandwidth(n_bytes: int = 2 << 30, repeat: int = 10) -> float:
    """Device-to-device copy rate in bytes/ms, counting bytes read plus bytes written."""
    src = torch.empty(n_bytes // 4, device="cuda")
    dst = torch.empty_like(src)
    ms = cuda_time(lambda: dst.copy_(src), repeat)
    return 2 * n_bytes / ms


def traffic(make_state: Callable[[], list[torch.Tensor]], reference: Callable[..., None]) -> int:
    """Bytes one step must move: all inputs read once, the tensors it changes written once."""
    st = [t.cuda() for t in make_state()]
    before = [t.clone() for t in st]
    with torch.no_grad():
        reference(*st)
    torch.cuda.synchronize()
    read = sum(t.numel() * t.element_size() for t in st)
    written = sum(t.numel() * t.element_size() for t, b in zip(st, before) if not torch.equal(t, b))
    return read + written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30_000_000, help="synapses per model")
    ap.add_argument("--models", default=",".join(CASES))
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench/synapses_gpu.py: needs a CUDA device")
    names = [m for m in a.models.split(",") if m]
    bw = copy_bandwidth()
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, N = {a.n:,}; "
          f"copy bandwidth {bw / 1e9:.2f} TB/s (read + write)")
    print(f"{'model':<26}{'floor ms':>9}{'eager ms':>10}{'compile ms':>11}{'eager/floor':>12}"
          f"{'compile/floor':>14}{'eager/compile':>14}{'triton ms':>10}{'compile/triton':>15}{'bitwise':>8}")
    for name in names:
        case = CASES[name](a.n)
        floor = traffic(case.make_state, case.reference) / bw
        st_e = [t.cuda() for t in case.make_state()]
        st_c = [t.cuda() for t in case.make_state()]
        with torch.no_grad():
            eager = cuda_time(lambda: case.reference(*st_e), a.repeat)
            try:
                comp = torch.compile(case.reference, dynamic=False)
                compiled = cuda_time(lambda: comp(*st_c), a.repeat)
            except Exception as exc:  # noqa: BLE001 — report and go on
                print(f"  torch.compile failed for {case.name}: {type(exc).__name__}: {exc}".splitlines()[0])
                compiled = float("nan")
            tri, same = float("nan"), "—"
            if case.triton is not None:
                st_r = [t.cuda() for t in case.make_state()]
                st_t = [t.cuda() for t in case.make_state()]
                case.reference(*st_r)
                case.triton(*st_t)
                same = "yes" if all(torch.equal(x, y) for x, y in zip(st_r, st_t)) else "NO"
                tri = cuda_time(lambda: case.triton(*st_t), a.repeat)
                del st_r, st_t
        print(f"{case.name:<26}{floor:>9.3f}{eager:>10.3f}{compiled:>11.3f}{eager / floor:>12.2f}"
              f"{compiled / floor:>14.2f}{eager / compiled:>14.2f}{tri:>10.3f}{compiled / tri:>15.2f}{same:>8}",
              flush=True)
        del st_e, st_c
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
