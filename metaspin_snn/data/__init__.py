"""Dataset readers (MNIST-format IDX; N-MNIST, DVS Gesture and SHD events through tonic), downloads
(``data.download``) and spike encoding. Nothing downloads at run time."""
from .encoding import direct, encode, latency, rate
from .events import EVENT_DATASETS, PackedFrames, load_events
from .idx import (DatasetError, IdxDataset, default_data_root, load_idx_dataset, load_mnist, read_idx)
from .nmnist import NMNISTDataset, decode_events, events_to_frames, load_nmnist

__all__ = ["EVENT_DATASETS", "PackedFrames", "load_events", "DatasetError", "IdxDataset", "NMNISTDataset", "decode_events", "default_data_root", "direct",
           "encode", "events_to_frames", "latency", "load_idx_dataset", "load_mnist", "load_nmnist",
           "rate", "read_idx"]
