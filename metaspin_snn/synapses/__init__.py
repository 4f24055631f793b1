"""Metaplastic synapse models: parameter dataclass + state + fused Numba kernel + torch reference."""
from .base import Backend, SynapseModel, check_range, synapse_models
from .optim import SynapticOptimizer
from .registry import (SynapseParamsError, get_synapse, layer_synapse_factories, register_synapse,
                       synapse_factory, synapse_names, unregister_synapse)
from .magnetoionic import MagnetoIonicPair, MagnetoIonicParams
from .mtj import MetaplasticMTJ, MTJParams
from .metaplastic import MetaplasticBinary, MetaplasticBinaryParams
from .mesu import MESU, MESUParams
from .bayesbinn import BayesianBinary, BayesianBinaryParams

__all__ = ["Backend", "SynapseModel", "SynapticOptimizer", "check_range", "synapse_models", "SynapseParamsError",
           "get_synapse", "layer_synapse_factories", "register_synapse", "synapse_factory", "synapse_names",
           "unregister_synapse"]
__all__ += ["MetaplasticBinary", "MetaplasticBinaryParams", "MESU", "MESUParams", "BayesianBinary",
            "BayesianBinaryParams"]
__all__ += ["MagnetoIonicPair", "MagnetoIonicParams", "MetaplasticMTJ", "MTJParams"]
