"""Where things are, for every test: the repository, the datasets, and a clean Settings builder."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from training.config import DEFAULT_DATA_DIR as DATASETS_DIR  # noqa: F401  (one default)

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_settings(**values) -> Settings:
    """Settings from these values only: no environment file (a developer's ``.env`` must not
    change what a test sees). /metrics is rendered on every scrape unless a test says otherwise:
    tests read counters before and after a request."""
    return Settings(_env_file=None, **{"metrics_max_age_s": 0, **values})
