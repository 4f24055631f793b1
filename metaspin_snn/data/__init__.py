"""Offline dataset readers (MNIST-format IDX, N-MNIST events) and spike encoding."""
from .encoding import direct, encode, latency, rate
from .idx import (DatasetError, IdxDataset, default_data_root, load_idx_dataset, load_mnist, read_idx)
from .nmnist import NMNISTDataset, decode_events, events_to_frames, load_nmnist

__all__ = ["DatasetError", "IdxDataset", "NMNISTDataset", "decode_events", "default_data_root", "direct",
           "encode", "events_to_frames", "latency", "load_idx_dataset", "load_mnist", "load_nmnist",
           "rate", "read_idx"]
