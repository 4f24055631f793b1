"""Spiking networks with pluggable synapse models, trained by surrogate-gradient BPTT.

Layers (:class:`SynapticLinear`, :class:`SynapticConv2d`) take their weight from a
:class:`~metaspin_snn.synapses.base.SynapseModel` (or a plain parameter); models
(:class:`SpikingMLP`, :class:`SpikingConvNet`) are built from snnTorch ``Leaky`` neurons with a
numerically identical fast path; :func:`build_model` builds them from a plain spec
(:func:`model_spec`); :func:`train_step` / :func:`evaluate` / :func:`make_optimizer` train and
measure them; :func:`save_checkpoint` / :func:`load_model` store and rebuild them (one format);
:func:`fold_norm` prepares them for export; :func:`keep_freed_memory` keeps a step's buffers
for the next (no page faults).
"""
from .builder import build_model, model_spec
from .checkpoint import CheckpointError, load_checkpoint, load_model, read_checkpoint, save_checkpoint
from .layers import SynapticConv2d, SynapticLinear
from .lif import leaky_scan, leaky_steps, make_leaky, scan_backend
from .memory import keep_freed_memory
from .models import FoldedLayer, NetOutput, SpikingConvNet, SpikingMLP, fold_norm
from .training import EvalResult, compute_loss, evaluate, make_optimizer, train_step

__all__ = ["CheckpointError", "EvalResult", "FoldedLayer", "NetOutput", "SpikingConvNet", "SpikingMLP",
           "SynapticConv2d", "SynapticLinear", "build_model", "compute_loss", "evaluate", "fold_norm",
           "keep_freed_memory", "leaky_scan", "leaky_steps", "load_checkpoint", "load_model", "make_leaky", "make_optimizer", "model_spec",
           "read_checkpoint", "save_checkpoint", "scan_backend", "train_step"]
