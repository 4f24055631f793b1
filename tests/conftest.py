"""Shared fixtures: the real offline data root (../shared/data beside the checkout)."""
from __future__ import annotations

import pytest

from metaspin_snn.data import default_data_root


@pytest.fixture(scope="session")
def data_root():
    root = default_data_root()
    if not (root / "mnist").is_dir():
        pytest.fail(f"real data not found at {root} (tests read ../shared/data or $METASPIN_DATA)")
    return root


# One torch thread: on 2 shared cores OpenMP oversubscription made element-wise ops 5-10x slower.
import torch  # noqa: E402

torch.set_num_threads(1)
