"""Spiking networks with pluggable synapse models, trained by surrogate-gradient BPTT.

Layers (:class:`SynapticLinear`, :class:`SynapticConv2d`) take their weight from a
:class:`~metaspin_snn.synapses.base.SynapseModel` (or a plain parameter); models
(:class:`SpikingMLP`, :class:`SpikingConvNet`) are built from snnTorch ``Leaky`` neurons with a
numerically identical fast path; :func:`train_step` / :func:`evaluate` / :func:`make_optimizer`
train and measure them; :func:`fold_norm` prepares them for export.
"""
from .layers import SynapticConv2d, SynapticLinear
from .lif import leaky_scan, leaky_steps, make_leaky
from .models import FoldedLayer, NetOutput, SpikingConvNet, SpikingMLP, fold_norm
from .training import (EvalResult, compute_loss, evaluate, load_checkpoint, make_optimizer, save_checkpoint,
                       train_step)

__all__ = ["EvalResult", "FoldedLayer", "NetOutput", "SpikingConvNet", "SpikingMLP", "SynapticConv2d",
           "SynapticLinear", "compute_loss", "evaluate", "fold_norm", "leaky_scan", "leaky_steps",
           "load_checkpoint", "make_leaky", "make_optimizer", "save_checkpoint", "train_step"]
