"""FastAPI's native OpenTelemetry hooks run only when the setting asks for them."""

from __future__ import annotations

import fastapi.telemetry._asgi as fastapi_telemetry
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.conftest import make_settings


@pytest.mark.parametrize("enabled", [False, True])
def test_opentelemetry_is_consulted_per_request_only_when_enabled(
    enabled, tiny_models_dir, monkeypatch
):
    lookups = []
    real = fastapi_telemetry.trace.get_tracer_provider

    def counting_lookup():
        lookups.append(1)
        return real()

    monkeypatch.setattr(fastapi_telemetry.trace, "get_tracer_provider", counting_lookup)
    app = create_app(
        make_settings(models_dir=tiny_models_dir, model_names=["tiny_multi"], opentelemetry=enabled)
    )
    with TestClient(app) as client:
        lookups.clear()
        assert client.get("/v2/health/live").status_code == 200
    assert bool(lookups) is enabled
