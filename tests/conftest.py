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
