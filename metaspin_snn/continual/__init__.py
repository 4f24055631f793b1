"""Continual learning for spiking networks: task streams, scenarios, one learner loop with plugins
(naive, EWC, online EWC, SI, experience replay — composable) and loggers, synapse models chosen per run,
metrics (ACC/BWT/FWT/forgetting/intransigence), checkpoint/resume, reports, TOML configs."""
from .config import RunConfig, load_config
from .learner import Learner, OnlineLearner, check_out_dir
from .loggers import ConsoleLogger, CSVLogger, TensorBoardLogger
from .metrics import (all_metrics, average_accuracy, backward_transfer, forgetting, forward_transfer,
                      intransigence)
from .plugins import EWC, SI, Context, Naive, OnlineEWC, Plugin, Replay, SynapseBoundary, make_plugin, make_plugins
from .runner import Results, build_stream, run_stream, synapse_factory
from .scenarios import Scenario
from .streams import (Task, dataset_sequence, iter_batches, permuted_mnist, rotated_mnist, split_mnist,
                      split_nmnist)

__all__ = ["RunConfig", "load_config", "Learner", "OnlineLearner", "check_out_dir", "ConsoleLogger", "CSVLogger",
           "TensorBoardLogger", "all_metrics", "average_accuracy", "backward_transfer", "forgetting",
           "forward_transfer", "intransigence", "EWC", "SI", "Context", "Naive", "OnlineEWC", "Plugin", "Replay",
           "SynapseBoundary", "make_plugin", "make_plugins", "Results", "build_stream", "run_stream",
           "synapse_factory", "Scenario", "Task", "dataset_sequence", "iter_batches", "permuted_mnist",
           "rotated_mnist", "split_mnist", "split_nmnist"]
