"""Where things are, for every test: the repository, the datasets, and a clean Settings builder."""

from __future__ import annotations

import os
from pathlib import Path

from app.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
# $TRAINING_DATA_DIR, else the shared datasets beside the repository (what CI has).
DATASETS_DIR = Path(os.environ.get("TRAINING_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets"))


def make_settings(**values) -> Settings:
    """Settings from these values only: no environment file (a developer's ``.env`` must not
    change what a test sees)."""
    return Settings(_env_file=None, **values)
