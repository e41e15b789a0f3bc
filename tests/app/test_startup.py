"""Start-up: with ``load_in_background`` the server answers at once, not ready until warm."""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient

from app import repository as repository_module
from app.config import Settings
from app.main import create_app
from app.servable import ServedModel


def test_background_loading_reports_not_ready_until_models_are_warm(tiny_models_dir, monkeypatch):
    gate = threading.Event()
    original_load = ServedModel.load

    def slow_load(self, *, warmup=True):
        gate.wait(30)
        original_load(self, warmup=warmup)

    monkeypatch.setattr(repository_module.ServedModel, "load", slow_load)
    app = create_app(
        Settings(
            _env_file=None,
            models_dir=tiny_models_dir,
            model_names=["tiny_image"],
            load_in_background=True,
            log_level="warning",
        )
    )
    pixels = {"instances": [[[[0]] * 8] * 8]}
    with TestClient(app) as client:
        try:
            assert client.get("/v2/health/live").status_code == 200
            assert client.get("/v2/health/ready").status_code == 503
            assert client.get("/v2/models/tiny_image/ready").status_code == 503
            loading = client.post("/v1/models/tiny_image:predict", json=pixels)
            assert loading.status_code == 503 and "no ready version" in loading.json()["error"]
        finally:
            gate.set()
        deadline = time.monotonic() + 60
        while client.get("/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "never became ready"
            time.sleep(0.05)
        assert client.post("/v1/models/tiny_image:predict", json=pixels).status_code == 200
