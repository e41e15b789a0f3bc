"""App fixtures: one app per models folder for the whole session (loading models is slow)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.paths import REPO_ROOT, make_settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_app(tiny_models_dir):
    return create_app(
        make_settings(
            models_dir=tiny_models_dir,
            max_batch_size=8,
            max_wait_ms=2,
            max_body_bytes=200_000,
            log_level="warning",
        )
    )


@pytest.fixture(scope="session")
def tiny_client(tiny_app):
    with TestClient(tiny_app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="session")
def mnist_client():
    app = create_app(
        make_settings(models_dir=REPO_ROOT / "models", model_names=["mnist"], log_level="warning")
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
