"""What the Triton kernels share (``networks/triton_lif.py``, ``synapses/triton_updates.py``): whether
Triton can run on a tensor, the launch options, and lazy decoration.

Triton is optional (``pip install triton``; the CUDA build of torch brings it). Kernels are written as
plain functions and handed to ``triton.jit`` on first use (:func:`jit`), so importing the package never
imports Triton, and ``TRITON_INTERPRET=1`` — Triton's interpreter, which runs the kernels on CPU
tensors — is read when the kernels are first wanted; that is how the tests check them without a GPU.
Launch options switch FMA contraction off, so each multiply rounds on its own as in the eager torch
ops the kernels replace. Reference: Triton documentation (triton-lang.org), ``triton.jit`` and
``TRITON_INTERPRET``.
"""
from __future__ import annotations

import functools
import os
from typing import Callable

import torch

LAUNCH_OPTIONS = {"enable_fp_fusion": False}
tl = None  # triton.language, bound by jit()


def div_rn(a, b):
    """Kernel helper: a / b correctly rounded (Triton's float32 ``/`` is an approximate division;
    float64's is exact). Bind it with :func:`jit` (as ``_div``)."""
    if a.dtype == tl.float32:
        return tl.math.div_rn(a, b)
    else:
        return a / b


@functools.cache
def _importable() -> bool:
    try:
        import triton  # noqa: F401
    except Exception:  # ImportError, or a broken install
        return False
    return True


def available() -> bool:
    """Whether Triton can be imported and is not switched off (``METASPIN_TRITON=0``: every kernel
    falls back to its torch path, e.g. on a GPU Triton cannot compile for)."""
    if os.environ.get("METASPIN_TRITON", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return _importable()


def interpreting() -> bool:
    """Whether ``TRITON_INTERPRET`` asks for Triton's interpreter (kernels on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() not in ("", "0", "false", "no", "off")


def usable(*tensors: torch.Tensor, dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64)) -> bool:
    """Whether the Triton kernels run on ``tensors``: all of a dtype in ``dtypes``, all on one CUDA
    device with Triton installed, or all on the CPU under Triton's interpreter."""
    if not tensors or not available() or any(t.dtype not in dtypes for t in tensors):
        return False
    devs = {t.device for t in tensors}
    if len(devs) != 1:
        return False
    dev = next(iter(devs))
    return dev.type == "cuda" or (dev.type == "cpu" and interpreting())


def jit(module_globals: dict, names: dict[str, Callable]) -> dict[str, object]:
    """Decorate the plain kernel functions ``names`` (global name → function) with ``triton.jit`` and
    bind each under its global name in ``module_globals`` (a kernel calls another by that name), with
    ``tl`` = ``triton.language``. Returns the decorated kernels by name."""
    import triton
    import triton.language
    global tl
    tl = module_globals["tl"] = triton.language
    out = {}
    for name, fn in names.items():
        out[name] = module_globals[name] = triton.jit(fn)
    return out


def launch(kernel, n: int, block: int, num_warps: int, *args, **meta) -> None:
    """Run ``kernel`` over ``n`` elements in programs of ``block`` (``num_warps`` warps each), with
    :data:`LAUNCH_OPTIONS`."""
    import triton
    kernel[(triton.cdiv(n, block),)](*args, BLOCK=block, num_warps=num_warps, **LAUNCH_OPTIONS, **meta)
