"""Start-up: with ``load_in_background`` the server answers at once, not ready until warm."""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient

from app import repository as repository_module
from app.config import Settings
from app.main import create_app
from app.servable import ServedModel
from tests.app.openapi_replies import assert_documented


def background_loading_app(models_dir):
    return create_app(
        Settings(
            _env_file=None,
            models_dir=models_dir,
            model_names=["tiny_image"],
            load_in_background=True,
            log_level="warning",
        )
    )


def wait_until_ready(client: TestClient, path: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get(path).status_code != 200:
        assert time.monotonic() < deadline, f"{path}: never became ready"
        time.sleep(0.05)


def test_background_loading_reports_not_ready_until_models_are_warm(tiny_models_dir, monkeypatch):
    gate = threading.Event()
    original_load = ServedModel.load

    def slow_load(self, *, warmup=True):
        gate.wait(30)
        original_load(self, warmup=warmup)

    monkeypatch.setattr(repository_module.ServedModel, "load", slow_load)
    app = background_loading_app(tiny_models_dir)
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
        wait_until_ready(client, "/v2/health/ready")
        assert client.post("/v1/models/tiny_image:predict", json=pixels).status_code == 200


def test_a_model_still_waiting_for_its_load_is_not_ready_rather_than_unknown(
    tiny_models_dir, monkeypatch
):
    """Before the background load has registered a model's versions (here: held while the
    device is chosen, before any version is registered), a request for it is a 503 "not
    ready yet", as for a version that is loading; an unknown name stays a 404."""
    gate = threading.Event()
    original_select = repository_module.select_device

    def slow_select(requested):
        gate.wait(30)
        return original_select(requested)

    monkeypatch.setattr(repository_module, "select_device", slow_select)
    app = background_loading_app(tiny_models_dir)
    with TestClient(app) as client:
        try:
            ready = client.get("/v2/models/tiny_image/ready")
            assert ready.status_code == 503 and "loading" in ready.json()["error"]
            openapi = client.get("/openapi.json").json()  # the reply is one it documents
            assert_documented(openapi, "/v2/models/{name}/ready", "get", ready)
            assert client.get("/v1/models/tiny_image").status_code == 503
            predict = client.post("/v1/models/tiny_image:predict", json={"instances": [[0]]})
            assert predict.status_code == 503 and "no ready version" in predict.json()["error"]
            assert client.get("/v2/models/nope/ready").status_code == 404
        finally:
            gate.set()
        wait_until_ready(client, "/v2/models/tiny_image/ready")
