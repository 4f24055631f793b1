"""metaspin-snn: metaplastic spiking neural networks for continual learning, with spintronic /
magneto-ionic synapse models, event-driven plasticity and export to Lava (Loihi 2).

Sub-packages: :mod:`metaspin_snn.synapses`, :mod:`metaspin_snn.networks`,
:mod:`metaspin_snn.continual`, :mod:`metaspin_snn.export`, :mod:`metaspin_snn.data`. Importing this
package imports none of them (and no torch).
"""

__version__ = "0.2.0"
