"""A seeded torch generator that follows a synapse model across devices, with its state in
``state_dict`` (``_extra_state``) so that a resumed run draws the same samples."""
from __future__ import annotations

from typing import Any

import torch


class SeededGenerator:
    """Lazily creates ``torch.Generator(device).manual_seed(seed)`` on the device first asked for;
    moving to another device re-seeds there with ``seed`` (documented, deterministic)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._gen: torch.Generator | None = None

    def get(self, device: torch.device) -> torch.Generator:
        if self._gen is None or self._gen.device != device:
            self._gen = torch.Generator(device=device).manual_seed(self.seed)
        return self._gen

    def state(self) -> dict[str, Any]:
        if self._gen is None:
            return {"seed": self.seed, "device": None, "state": None}
        return {"seed": self.seed, "device": str(self._gen.device), "state": self._gen.get_state()}

    def load(self, st: dict[str, Any]) -> None:
        if not isinstance(st, dict) or "seed" not in st:
            raise ValueError(f"SeededGenerator.load: malformed generator state {type(st).__name__}")
        self.seed = int(st["seed"])
        self._gen = None
        if st.get("state") is not None:
            self._gen = torch.Generator(device=st["device"])
            self._gen.set_state(st["state"])
