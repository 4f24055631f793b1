"""Metaplastic synapse models: parameter dataclass + state + fused Numba kernel + torch reference."""
from .base import Backend, SynapseModel, check_range, synapse_models
from .optim import SynapticOptimizer
from .magnetoionic import MagnetoIonicPair, MagnetoIonicParams
from .mtj import MetaplasticMTJ, MTJParams

__all__ = ["Backend", "SynapseModel", "SynapticOptimizer", "check_range", "synapse_models"]
__all__ += ["MagnetoIonicPair", "MagnetoIonicParams", "MetaplasticMTJ", "MTJParams"]
