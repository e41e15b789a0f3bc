"""Model lifecycle: version policies and labels, hot reload under load with zero failed
requests, Triton's repository / config / statistics APIs through the real ``tritonclient``, and
a repository in S3 (a real S3 API: moto's server on 127.0.0.1, no client mocks)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.model_config import ModelConfig, VersionPolicy
from deploy.scaleout import storage_options, upload
from tests.app.conftest import make_settings
from tests.app.serving_process import start_server, stop_server

PIXELS = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 1), dtype=np.uint8)
V2_BODY = {
    "inputs": [
        {
            "name": "pixels",
            "shape": [2, 8, 8, 1],
            "datatype": "UINT8",
            "data": PIXELS.ravel().tolist(),
        }
    ]
}


def add_version(tiny_models_dir: Path, models: Path, version: int, source: int) -> None:
    """Copy a tiny_image version in under a temporary name, then rename it: a version folder
    appears whole (what an operator or a sync job should do)."""
    staging = models / "tiny_image" / f"incoming-{version}"
    shutil.copytree(tiny_models_dir / "tiny_image" / str(source), staging)
    staging.rename(models / "tiny_image" / str(version))


# ---- policies and labels ---------------------------------------------------------------------
def test_version_policies_select_versions():
    assert VersionPolicy(latest=2).select([3, 1, 2]) == [2, 3]
    assert VersionPolicy(all={}).select([2, 1]) == [1, 2]
    assert VersionPolicy(specific=[1, 5]).select([1, 2, 3]) == [1]
    with pytest.raises(ValueError, match="exactly one"):
        VersionPolicy(latest=1, all={})
    with pytest.raises(ValueError, match="not a number"):
        ModelConfig(labels={"7": 1})


def test_config_json_sets_policy_labels_and_batching(tiny_models_dir, tmp_path):
    for version in (1, 2):
        add_version(tiny_models_dir, tmp_path, version, version)
    (tmp_path / "tiny_image" / "config.json").write_text(
        json.dumps(
            {
                "version_policy": {"latest": 1},
                "labels": {"stable": 2},
                "batching": {"max_batch_size": 4},
            }
        )
    )
    with TestClient(create_app(make_settings(models_dir=tmp_path))) as client:
        status = client.get("/v1/models/tiny_image").json()["model_version_status"]
        assert [s["version"] for s in status] == ["2"]  # latest 1
        assert (
            client.get("/v1/models/tiny_image/labels/stable").json()["model_version_status"][0][
                "version"
            ]
            == "2"
        )
        reply = client.post("/v2/models/tiny_image/versions/stable/infer", json=V2_BODY)
        assert reply.status_code == 200 and reply.json()["model_version"] == "2"
        predict = client.post(
            "/v1/models/tiny_image/labels/stable:predict", json={"instances": PIXELS.tolist()}
        )
        assert predict.status_code == 200 and len(predict.json()["predictions"]) == 2
        unknown = client.post(
            "/v1/models/tiny_image/labels/nope:predict", json={"instances": PIXELS.tolist()}
        )
        assert unknown.status_code == 404 and "label" in unknown.json()["error"]
        config = client.get("/v2/models/tiny_image/config").json()
        assert config["max_batch_size"] == 4 and config["version_policy"] == {"latest": 1}
        assert config["input"] == [{"name": "pixels", "data_type": "TYPE_UINT8", "dims": [8, 8, 1]}]
        index = {(r["name"], r["version"]): r for r in client.post("/v2/repository/index").json()}
        assert index[("tiny_image", "2")]["state"] == "READY"
        assert index[("tiny_image", "1")]["reason"] == "not in the version policy"


def test_a_broken_config_json_is_reported_and_the_model_still_served(tiny_models_dir, tmp_path):
    add_version(tiny_models_dir, tmp_path, 1, 1)
    (tmp_path / "tiny_image" / "config.json").write_text('{"version_policy": {"newest": 1}}')
    with TestClient(create_app(make_settings(models_dir=tmp_path))) as client:
        assert client.get("/v2/health/ready").status_code == 200
        rows = client.post("/v2/repository/index").json()
        assert any("config.json ignored" in r["reason"] for r in rows)


# ---- hot reload under load --------------------------------------------------------------------
class Load:
    """Threads sending requests to the default version; every status and answering version."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.results: list[tuple[int, str]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    reply = client.post(f"{self.url}/v2/models/tiny_image/infer", json=V2_BODY)
                    ok = reply.status_code == 200
                    version = reply.json().get("model_version", "") if ok else ""
                    self.results.append((reply.status_code, version))
                except httpx.HTTPError as exc:
                    self.results.append((0, type(exc).__name__))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)

    def latest_version(self) -> str:
        return self.results[-1][1] if self.results else ""


def _wait(condition, timeout_s: float = 60, what: str = "") -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_versions_come_and_go_under_load_without_a_failed_request(tiny_models_dir, tmp_path):
    models = tmp_path / "models"
    (models / "tiny_image").mkdir(parents=True)
    add_version(tiny_models_dir, models, 1, 1)
    process, url = start_server(
        models, repository_poll_seconds="0.3", unload_grace_seconds="0.5", drain_seconds="0"
    )

    def versions() -> list[str]:
        status = httpx.get(f"{url}/v1/models/tiny_image").json()["model_version_status"]
        return sorted(s["version"] for s in status if s["state"] == "AVAILABLE")

    try:
        with Load(url) as load:
            _wait(lambda: len(load.results) > 20, what="the first answers")
            assert load.latest_version() == "1"
            # 1. A new version goes live once loaded and warm.
            add_version(tiny_models_dir, models, 2, 2)
            _wait(lambda: load.latest_version() == "2", what="version 2 to take traffic")
            # 2. A label points at the old version: a rollback target.
            (models / "tiny_image" / "config.json").write_text('{"labels": {"stable": 1}}')
            _wait(
                lambda: (
                    httpx.post(
                        f"{url}/v2/models/tiny_image/versions/stable/infer", json=V2_BODY
                    ).status_code
                    == 200
                ),
                what="the label",
            )
            stable = httpx.post(f"{url}/v2/models/tiny_image/versions/stable/infer", json=V2_BODY)
            assert stable.json()["model_version"] == "1"
            # 3. The policy drops version 1: drained and unloaded, version 2 serves on.
            (models / "tiny_image" / "config.json").write_text(
                '{"version_policy": {"latest": 1}, "labels": {"stable": 2}}'
            )
            _wait(lambda: versions() == ["2"], what="version 1 to be unloaded")
            # 4. A broken version is dropped in: reported, never takes traffic.
            (models / "tiny_image" / "3").mkdir()
            (models / "tiny_image" / "3" / "saved_model.pb").write_bytes(b"not a model")
            _wait(
                lambda: any(
                    r["version"] == "3" and r["state"] == "UNAVAILABLE"
                    for r in httpx.post(f"{url}/v2/repository/index").json()
                ),
                what="the broken version in the index",
            )
            time.sleep(1)
            ready = httpx.get(f"{url}/v2/health/ready")
            assert ready.status_code == 200, (
                ready.text,
                httpx.get(f"{url}/v1/models").text,
                httpx.post(f"{url}/v2/repository/index").text,
            )
            # 5. Version 3 fixed (a good export replaces the broken files): it goes live.
            shutil.rmtree(models / "tiny_image" / "3")
            add_version(tiny_models_dir, models, 3, 1)
            _wait(lambda: load.latest_version() == "3", what="the fixed version 3")
        statuses = {status for status, _ in load.results}
        answered = [version for _, version in load.results]
    finally:
        stop_server(process)
    assert statuses == {200}, {s: sum(1 for r in load.results if r[0] == s) for s in statuses}
    assert {"1", "2", "3"} <= set(answered) and len(answered) > 100


def test_tritonclient_repository_config_and_statistics(tiny_models_dir, tmp_path):
    triton = pytest.importorskip("tritonclient.http")
    models = tmp_path / "models"
    (models / "tiny_image").mkdir(parents=True)
    add_version(tiny_models_dir, models, 1, 1)
    process, url = start_server(
        models, unload_grace_seconds="0.2", drain_seconds="0", model_control="true"
    )
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    try:
        tensor = triton.InferInput("pixels", list(PIXELS.shape), "UINT8")
        tensor.set_data_from_numpy(PIXELS)
        for _ in range(3):
            client.infer("tiny_image", [tensor])
        index = client.get_model_repository_index()
        assert {"name": "tiny_image", "version": "1", "state": "READY", "reason": ""} in index
        config = client.get_model_config("tiny_image")
        assert config["max_batch_size"] == 32 and config["input"][0]["dims"] == [8, 8, 1]
        stats = client.get_inference_statistics("tiny_image")["model_stats"][0]
        assert stats["inference_stats"]["success"]["count"] == 3
        assert stats["inference_count"] == 6 and stats["execution_count"] >= 1
        client.unload_model("tiny_image")
        assert not client.is_model_ready("tiny_image")
        add_version(tiny_models_dir, models, 2, 2)  # no polling: picked up by the next load
        client.load_model("tiny_image")
        assert client.is_model_ready("tiny_image", "2")
        with pytest.raises(triton.InferenceServerException):
            client.load_model("nope")
    finally:
        client.close()
        stop_server(process)


def test_api_load_and_unload_are_refused_with_several_workers(tiny_models_dir, tmp_path):
    """Each worker holds its own models: a load or unload would change one of them only."""
    models = tmp_path / "models"
    (models / "tiny_image").mkdir(parents=True)
    add_version(tiny_models_dir, models, 1, 1)
    app = create_app(
        make_settings(models_dir=models, workers=2, model_control=True, log_level="warning")
    )
    with TestClient(app) as client:
        for action in ("load", "unload"):
            reply = client.post(f"/v2/repository/models/tiny_image/{action}")
            assert reply.status_code == 400
            assert f"cannot {action} a model" in reply.json()["error"]
        assert client.get("/v2/models/tiny_image/ready").status_code == 200


def test_api_load_and_unload_are_off_by_default(tiny_models_dir, tmp_path):
    """Whoever reaches them could stop every model: 403 unless SERVING_MODEL_CONTROL is on."""
    models = tmp_path / "models"
    (models / "tiny_image").mkdir(parents=True)
    add_version(tiny_models_dir, models, 1, 1)
    app = create_app(make_settings(models_dir=models, log_level="warning"))
    with TestClient(app) as client:
        for action in ("unload", "load"):
            reply = client.post(f"/v2/repository/models/tiny_image/{action}")
            assert reply.status_code == 403
            assert "SERVING_MODEL_CONTROL" in reply.json()["error"]
        assert client.get("/v2/models/tiny_image/ready").status_code == 200
        assert client.post("/v2/repository/index").status_code == 200  # reading stays open


# ---- a repository in S3 ----------------------------------------------------------------------
def test_models_served_from_s3_and_new_versions_picked_up(moto_s3, tiny_models_dir, tmp_path):
    s3_url, s3 = moto_s3
    upload(s3, tiny_models_dir / "tiny_image" / "1", "repo/tiny_image/1")
    options = json.dumps(storage_options(s3_url))
    process, url = start_server(
        Path("unused"),
        models_dir="s3://models/repo",
        storage_options=options,
        model_cache_dir=str(tmp_path / "cache"),
        repository_poll_seconds="0.5",
        unload_grace_seconds="0.2",
        drain_seconds="0",
    )
    try:
        reply = httpx.post(f"{url}/v2/models/tiny_image/infer", json=V2_BODY)
        assert reply.status_code == 200 and reply.json()["model_version"] == "1"
        upload(s3, tiny_models_dir / "tiny_image" / "2", "repo/tiny_image/2")
        _wait(
            lambda: (
                httpx.post(f"{url}/v2/models/tiny_image/infer", json=V2_BODY).json()[
                    "model_version"
                ]
                == "2"
            ),
            what="version 2 from S3",
        )
        np.testing.assert_array_equal(
            np.array(
                httpx.post(f"{url}/v2/models/tiny_image/infer", json=V2_BODY).json()["outputs"][0][
                    "data"
                ]
            )
            .reshape(2, 3)
            .argmax(axis=1),
            np.array(
                httpx.post(f"{url}/v2/models/tiny_image/versions/1/infer", json=V2_BODY).json()[
                    "outputs"
                ][0]["data"]
            )
            .reshape(2, 3)[:, ::-1]
            .argmax(axis=1),
        )
    finally:
        stop_server(process)
