"""Fixtures for the networks tests: a small real MNIST subset and a toy synapse model."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from metaspin_snn.data import load_mnist
from metaspin_snn.synapses.base import SynapseModel


@dataclasses.dataclass(frozen=True)
class ToySignParams:
    lr: float = 0.02


class ToySign(SynapseModel):
    """BinaryConnect-style toy: w_eff = sign(h) (+1 at 0), h ← clip(h − lr·∂L/∂w_eff, −1, 1)."""

    def __init__(self, shape, params: ToySignParams = ToySignParams(), backend="torch"):
        super().__init__(shape, params, backend)
        self.register_buffer("h", torch.empty(self.shape).uniform_(-0.01, 0.01))

    def _compute_weight(self, sample: bool) -> torch.Tensor:
        return torch.where(self.h >= 0, 1.0, -1.0).to(self.h.dtype)

    def _update_torch(self, grad: torch.Tensor) -> None:
        self.h.sub_(self.params.lr * grad).clamp_(-1.0, 1.0)

    def _update_numba(self, grad: torch.Tensor) -> None:
        self._update_torch(grad)

    def hidden(self) -> torch.Tensor:
        return self.h


@pytest.fixture
def toy_sign():
    return lambda shape: ToySign(shape)


@pytest.fixture(scope="session")
def mnist_small(data_root):
    """2000 train / 500 test real MNIST images as float [N, 784] in [0, 1] with labels."""
    tr = load_mnist(data_root, "train")
    te = load_mnist(data_root, "test")
    xtr = tr.images[:2000].reshape(2000, -1).float() / 255.0
    xte = te.images[:500].reshape(500, -1).float() / 255.0
    return xtr, tr.labels[:2000].clone(), xte, te.labels[:500].clone()
