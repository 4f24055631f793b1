"""metaspin_snn.export: snnTorch → Lava (float and Loihi 2 fixed point), bit-exact emulator, NIR, netx.

Names are imported lazily (PEP 562) so that the Lava worker (``_lava_worker``), which imports this
package, stays free of torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "ExportError": "ir", "LayerIR": "ir", "NetworkIR": "ir", "extract_ir": "ir",
    "simulate_snntorch": "ir", "check_spikes": "ir", "check_graded": "ir", "check_inputs": "ir",
    "input_quantization": "fixed_point",
    "FixedPointLayer": "fixed_point", "FixedPointNetwork": "fixed_point", "quantize": "fixed_point",
    "emulate": "emulator",
    "to_lava": "lava", "run_lava": "lava", "LavaResult": "lava", "LavaRunError": "lava",
    "to_nir": "nir_io", "write_nir": "nir_io", "read_nir": "nir_io", "ir_from_nir": "nir_io",
    "write_netx": "netx", "read_netx": "netx",
    "verify": "verification",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
