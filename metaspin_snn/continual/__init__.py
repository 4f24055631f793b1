"""Continual learning for spiking networks: task streams, scenarios, a runner with plugins (naive,
EWC, online EWC, SI, experience replay) and synapse models chosen per run, metrics (ACC/BWT/FWT/forgetting/
intransigence), checkpoint/resume, reports, TOML configs and the ``metaspin run`` command."""
from .config import RunConfig, load_config
from .metrics import (all_metrics, average_accuracy, backward_transfer, forgetting, forward_transfer,
                      intransigence)
from .plugins import EWC, SI, Naive, OnlineEWC, Plugin, Replay, make_plugin
from .runner import Results, build_stream, run_stream, synapse_factory
from .scenarios import Scenario
from .streams import (Task, dataset_sequence, iter_batches, permuted_mnist, rotated_mnist, split_mnist,
                      split_nmnist)

__all__ = ["RunConfig", "load_config", "all_metrics", "average_accuracy", "backward_transfer", "forgetting",
           "forward_transfer", "intransigence", "EWC", "SI", "Naive", "OnlineEWC", "Plugin", "Replay", "make_plugin",
           "Results", "build_stream", "run_stream", "synapse_factory", "Scenario", "Task", "dataset_sequence",
           "iter_batches", "permuted_mnist", "rotated_mnist", "split_mnist", "split_nmnist"]
