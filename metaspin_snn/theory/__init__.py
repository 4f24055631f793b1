"""Theory you can run: memory curves SNR(t) and memory lifetimes of synapse models, in closed form
(:mod:`.curves`) and measured with the library's own kernels (:mod:`.memory`)."""
from .curves import (MarkovSynapse, binary_lifetime, binary_signal, binary_synapse, cascade_synapse, chain_matrix,
                     chain_signal, decay_exponent, lifetime, mesu_signal, snr)
from .memory import SYNAPSES, MemoryCurve, lag_grid, lifetime_theory, memory_curve

__all__ = ["MarkovSynapse", "binary_lifetime", "binary_signal", "binary_synapse", "cascade_synapse", "chain_matrix",
           "chain_signal", "decay_exponent", "lifetime", "mesu_signal", "snr", "SYNAPSES", "MemoryCurve", "lag_grid",
           "lifetime_theory", "memory_curve"]
