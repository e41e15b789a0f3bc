"""TensorFlow Serving REST v1 through the real app (lifespan started) on the tiny models."""

from __future__ import annotations

import base64
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest


def image(value: int) -> list:
    return np.full((8, 8, 1), value, dtype=np.uint8).tolist()


DARK, MID, BRIGHT = image(20), image(128), image(240)


def argmax(predictions) -> list[int]:
    return np.asarray(predictions).argmax(axis=-1).tolist()


def test_model_list_reports_versions_readiness_device_task_and_labels(tiny_client):
    models = {m["name"]: m for m in tiny_client.get("/v1/models").json()["models"]}
    assert set(models) == {"broken", "tiny_image", "tiny_multi", "tiny_tabular", "tiny_text"}
    image_model = models["tiny_image"]
    assert image_model["ready"] and image_model["default_version"] == 2
    assert [v["version"] for v in image_model["versions"]] == [1, 2]
    assert image_model["device"] == "/CPU:0"
    assert image_model["task"] == "image_classification"
    assert image_model["labels"] == ["zero", "one", "two"]
    broken = models["broken"]
    assert not broken["ready"] and broken["default_version"] is None
    assert broken["versions"][0]["state"] == "FAILED" and broken["versions"][0]["error"]


def test_version_status_in_tf_serving_shape(tiny_client):
    reply = tiny_client.get("/v1/models/tiny_image").json()
    assert reply["model_version_status"] == [
        {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in ("2", "1")
    ]
    one = tiny_client.get("/v1/models/tiny_image/versions/1").json()["model_version_status"]
    assert [s["version"] for s in one] == ["1"]
    broken = tiny_client.get("/v1/models/broken").json()["model_version_status"][0]
    assert broken["state"] == "END" and broken["status"]["error_code"] != "OK"
    assert "SavedModel" in broken["status"]["error_message"] or broken["status"]["error_message"]


def test_metadata_has_the_signature_with_dtypes_and_shapes(tiny_client):
    reply = tiny_client.get("/v1/models/tiny_image/metadata").json()
    assert reply["model_spec"]["version"] == "2"
    signature = reply["metadata"]["signature_def"]["signature_def"]["serving_default"]
    pixels = signature["inputs"]["pixels"]
    assert pixels["dtype"] == "DT_UINT8"
    assert [d["size"] for d in pixels["tensor_shape"]["dim"]] == ["-1", "8", "8", "1"]
    assert signature["outputs"]["output_0"]["dtype"] == "DT_FLOAT"
    old = tiny_client.get("/v1/models/tiny_image/versions/1/metadata").json()
    assert old["model_spec"]["version"] == "1"


@pytest.mark.parametrize(
    "version",
    ["9" * 5000, "9" * 19, "%C2%B2", "%D9%A4", "1" + "0" * 30, "-1", "1e3"],
    ids=["5000 digits", "19 digits", "superscript two", "arabic-indic four", "huge", "-1", "1e3"],
)
def test_a_version_that_is_not_a_plain_number_is_a_404_everywhere(tiny_client, version):
    """``int`` refuses over 4,300 digits and "²" (which ``str.isdigit`` takes): a 500 before."""
    for url in (
        f"/v1/models/tiny_image/versions/{version}",
        f"/v2/models/tiny_image/versions/{version}/ready",
        f"/v1/models/tiny_image/versions/{version}/report",
    ):
        reply = tiny_client.get(url)
        assert reply.status_code == 404, (url, reply.text[:200])
        assert len(reply.content) < 500  # the name is quoted briefly
    predict = tiny_client.post(
        f"/v1/models/tiny_image/versions/{version}:predict", json={"instances": [[[[0]]]]}
    )
    assert predict.status_code == 404


def test_row_format_predict_serves_the_highest_version_by_default(tiny_client):
    body = {"instances": [DARK, MID, BRIGHT]}
    latest = tiny_client.post("/v1/models/tiny_image:predict", json=body)
    assert latest.status_code == 200
    assert latest.headers["content-type"] == "application/json"
    assert argmax(latest.json()["predictions"]) == [2, 1, 0]  # version 2 is mirrored
    first = tiny_client.post("/v1/models/tiny_image/versions/1:predict", json=body).json()
    assert argmax(first["predictions"]) == [0, 1, 2]
    probs = np.asarray(first["predictions"])
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


def test_columnar_predict_answers_outputs(tiny_client):
    reply = tiny_client.post(
        "/v1/models/tiny_image/versions/1:predict", json={"inputs": [BRIGHT, DARK]}
    ).json()
    assert set(reply) == {"outputs"} and argmax(reply["outputs"]) == [2, 0]
    named = tiny_client.post(
        "/v1/models/tiny_image/versions/1:predict", json={"inputs": {"pixels": [BRIGHT]}}
    ).json()
    assert argmax(named["outputs"]) == [2]


def test_instances_may_name_their_input(tiny_client):
    reply = tiny_client.post(
        "/v1/models/tiny_image/versions/1:predict",
        json={"signature_name": "serving_default", "instances": [{"pixels": BRIGHT}]},
    )
    assert argmax(reply.json()["predictions"]) == [2]


def test_string_inputs_plain_and_b64(tiny_client):
    b64 = base64.b64encode(b"good good").decode()
    reply = tiny_client.post(
        "/v1/models/tiny_text:predict", json={"instances": ["good", "bad bad", {"b64": b64}]}
    )
    assert reply.status_code == 200, reply.text
    p = np.asarray(reply.json()["predictions"])
    assert p.shape == (3, 1)
    assert p[0, 0] > 0.9 and p[1, 0] < 0.1 and p[2, 0] > 0.99


def test_several_named_inputs_in_rows_and_columns(tiny_client):
    rows = tiny_client.post(
        "/v1/models/tiny_tabular:predict",
        json={"instances": [{"color": "red", "size": 1.5}, {"color": "green", "size": 3}]},
    )
    assert rows.status_code == 200, rows.text
    columns = tiny_client.post(
        "/v1/models/tiny_tabular:predict",
        json={"inputs": {"color": [["red"], ["green"]], "size": [[1.5], [3]]}},
    )
    assert columns.status_code == 200, columns.text
    np.testing.assert_allclose(rows.json()["predictions"], columns.json()["outputs"], rtol=1e-6)
    assert np.asarray(rows.json()["predictions"]).shape == (2, 2)


def test_several_outputs_are_named(tiny_client):
    x = [[0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4]]
    rows = tiny_client.post("/v1/models/tiny_multi:predict", json={"instances": x}).json()
    assert [set(p) for p in rows["predictions"]] == [{"output_0", "output_1"}] * 2
    assert len(rows["predictions"][0]["output_0"]) == 2
    assert len(rows["predictions"][0]["output_1"]) == 1
    columns = tiny_client.post("/v1/models/tiny_multi:predict", json={"inputs": x}).json()
    assert np.asarray(columns["outputs"]["output_0"]).shape == (2, 2)
    assert np.asarray(columns["outputs"]["output_1"]).shape == (2, 1)
    np.testing.assert_allclose(
        columns["outputs"]["output_1"][1], rows["predictions"][1]["output_1"], rtol=1e-6
    )


def test_concurrent_requests_are_batched_and_answered_correctly(tiny_app, tiny_client):
    model = tiny_app.state.repository.get("tiny_image", 1)
    before = model.batcher.max_wait_s
    model.batcher.max_wait_s = 0.3  # long enough for the threads below to meet in one batch
    calls = []
    original = model.batcher.call

    def counting_call(inputs):
        calls.append(len(inputs["pixels"]))
        return original(inputs)

    model.batcher.call = counting_call
    values = [20, 240, 128, 20, 240, 128, 20, 240]
    expected = {20: 0, 128: 1, 240: 2}
    barrier = threading.Barrier(len(values))

    def send(value: int) -> int:
        barrier.wait()
        reply = tiny_client.post(
            "/v1/models/tiny_image/versions/1:predict", json={"instances": [image(value)]}
        )
        return argmax(reply.json()["predictions"])[0]

    try:
        with ThreadPoolExecutor(len(values)) as pool:
            answers = list(pool.map(send, values))
    finally:
        model.batcher.max_wait_s = before
        model.batcher.call = original
    assert answers == [expected[v] for v in values]
    assert sum(calls) == len(values) and len(calls) < len(values)
    assert max(calls) <= 8  # max_batch_size of this app


def test_metrics_expose_batch_sizes_queue_depth_and_request_counts(tiny_client):
    tiny_client.post("/v1/models/tiny_image:predict", json={"instances": [DARK]})
    text = tiny_client.get("/metrics").text
    assert 'serving_batch_size_bucket{le="1.0",model="tiny_image"}' in text
    assert 'serving_queue_depth{model="tiny_image",version="2"}' in text
    assert "serving_inference_duration_seconds_count" in text
    assert (
        'serving_http_requests_total{endpoint="/v1/models/{name}:{method}",method="POST",'
        'model="tiny_image",status="200"}'
    ) in text


def test_lean_number_parse_answers_as_the_general_path(tiny_client):
    """``{"instances": <numbers>}`` is read without JSON's nested lists (app.codec); the answer
    must be what the general path gives (here forced by naming the signature)."""
    url = "/v1/models/tiny_image/versions/1:predict"
    lean = tiny_client.post(url, content=json.dumps({"instances": [BRIGHT, DARK]}))
    general = tiny_client.post(
        url, json={"signature_name": "serving_default", "instances": [BRIGHT, DARK]}
    )
    assert lean.status_code == general.status_code == 200
    assert lean.json() == general.json()
    # Values the model's uint8 input cannot hold are refused the same way on both paths.
    for value in (256, -1):
        body = {"instances": [np.full((8, 8, 1), value).tolist()]}
        reply = tiny_client.post(url, json=body)
        assert reply.status_code == 400 and "out of range" in reply.json()["error"]
    ragged = tiny_client.post(url, content=b'{"instances": [[1, 2], [3]]}')
    assert ragged.status_code == 400 and "error" in ragged.json()
