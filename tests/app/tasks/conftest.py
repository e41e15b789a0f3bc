"""One app for the whole task-endpoint suite: the committed models under ``models/``, small
limits (so limit tests stay cheap), warm-up off (start-up time)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

# The test modules import their shared helpers as ``task_helpers`` (pytest runs with
# --import-mode=importlib, which does not put test folders on sys.path).
sys.path.insert(0, str(Path(__file__).parent))

from task_helpers import make_settings  # noqa: E402

from app.main import create_app  # noqa: E402


@pytest.fixture(scope="session")
def client():
    with TestClient(create_app(make_settings())) as test_client:
        yield test_client
