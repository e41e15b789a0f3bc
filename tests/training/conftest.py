"""Shared fixtures for the training smoke tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The datasets folder ($TRAINING_DATA_DIR, else <repo>/../shared/datasets); skip if absent."""
    path = Path(os.environ.get("TRAINING_DATA_DIR", DEFAULT_DATA_DIR))
    if not path.is_dir():
        pytest.skip(f"datasets folder not found: {path} (set TRAINING_DATA_DIR)")
    return path
