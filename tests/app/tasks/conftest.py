"""One app for the whole task-endpoint suite: the committed models under ``models/``, small
limits (so limit tests stay cheap), warm-up off (start-up time)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from task_helpers import make_settings

from app.main import create_app


@pytest.fixture(scope="session")
def client():
    with TestClient(create_app(make_settings())) as test_client:
        yield test_client
