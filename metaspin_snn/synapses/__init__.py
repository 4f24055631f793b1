"""Metaplastic synapse models: parameter dataclass + state + fused Numba kernel + torch reference."""
from .base import Backend, SynapseModel, check_range, synapse_models
from .optim import SynapticOptimizer

__all__ = ["Backend", "SynapseModel", "SynapticOptimizer", "check_range", "synapse_models"]
