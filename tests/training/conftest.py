"""Shared fixtures for the training smoke tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.paths import DATASETS_DIR


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The datasets folder ($TRAINING_DATA_DIR, else <repo>/../shared/datasets); skip if absent."""
    path = DATASETS_DIR
    if not path.is_dir():
        pytest.skip(f"datasets folder not found: {path} (set TRAINING_DATA_DIR)")
    return path
