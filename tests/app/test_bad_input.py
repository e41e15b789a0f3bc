"""Bad requests on the protocol endpoints: always a 4xx in the protocol's error shape, never a 500.
Also the HTTP side of overload: a full queue answers 429 with Retry-After, a deadline 504."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

PIXELS_OK = np.zeros((1, 8, 8, 1), dtype=np.uint8).tolist()


def v2_pixels(**overrides) -> dict:
    tensor = {"name": "pixels", "shape": [1, 8, 8, 1], "datatype": "UINT8", "data": [0] * 64}
    return {"inputs": [{**tensor, **overrides}]}


V1_CASES = [
    # (path, body, expected status)
    ("/v1/models/nope:predict", {"instances": PIXELS_OK}, 404),
    ("/v1/models/tiny_image/versions/9:predict", {"instances": PIXELS_OK}, 404),
    ("/v1/models/tiny_image/versions/latest:predict", {"instances": PIXELS_OK}, 404),
    ("/v1/models/broken:predict", {"instances": PIXELS_OK}, 503),
    ("/v1/models/tiny_image:classify", {"instances": PIXELS_OK}, 400),
    ("/v1/models/tiny_image:predict", {"instances": [[1, 2, 3]]}, 400),  # wrong shape
    ("/v1/models/tiny_image:predict", {"instances": np.zeros((1, 8, 8, 3)).tolist()}, 400),
    ("/v1/models/tiny_image:predict", {"instances": [[[["a"]] * 8] * 8]}, 400),  # dtype
    ("/v1/models/tiny_image:predict", {"instances": [[[[0.5]] * 8] * 8]}, 400),  # not uint8
    ("/v1/models/tiny_image:predict", {"instances": [[[[300]] * 8] * 8]}, 400),  # range
    ("/v1/models/tiny_image:predict", {"instances": [[[[0]] * 8] * 7 + [[[0]]]]}, 400),  # ragged
    ("/v1/models/tiny_image:predict", {"instances": PIXELS_OK, "inputs": PIXELS_OK}, 400),
    ("/v1/models/tiny_image:predict", {"signature_name": "serving_default"}, 400),
    ("/v1/models/tiny_image:predict", {"instances": []}, 400),
    ("/v1/models/tiny_image:predict", {"inputs": []}, 400),
    ("/v1/models/tiny_image:predict", {"instances": {"pixels": 1}}, 400),
    ("/v1/models/tiny_image:predict", {"instances": PIXELS_OK, "signature_name": "x"}, 400),
    ("/v1/models/tiny_image:predict", {"instances": [{"pixels": PIXELS_OK[0]}, {"x": 1}]}, 400),
    ("/v1/models/tiny_image:predict", {"inputs": {"wrong_name": PIXELS_OK}}, 400),
    ("/v1/models/tiny_image:predict", [1, 2], 400),
    ("/v1/models/tiny_tabular:predict", {"instances": [{"color": "red"}]}, 400),  # missing
    ("/v1/models/tiny_tabular:predict", {"instances": ["red"]}, 400),  # unnamed, 2 inputs
    ("/v1/models/tiny_tabular:predict", {"inputs": {"color": ["red"], "size": [1, 2]}}, 400),
    ("/v1/models/tiny_text:predict", {"instances": [{"b64": "***"}]}, 400),
    ("/v1/models/tiny_text:predict", {"instances": [{"b64": 5}]}, 400),
    ("/v1/models/tiny_text:predict", {"instances": [7]}, 400),
]


@pytest.mark.parametrize(("path", "body", "status"), V1_CASES)
def test_v1_bad_requests(tiny_client, path, body, status):
    reply = tiny_client.post(path, json=body)
    assert reply.status_code == status, reply.text
    assert set(reply.json()) == {"error"} and reply.json()["error"]


V2_CASES = [
    ("/v2/models/nope/infer", v2_pixels(), 404),
    ("/v2/models/tiny_image/versions/9/infer", v2_pixels(), 404),
    ("/v2/models/broken/infer", v2_pixels(), 503),
    ("/v2/models/tiny_image/infer", {"inputs": []}, 400),
    ("/v2/models/tiny_image/infer", {}, 400),
    ("/v2/models/tiny_image/infer", {"inputs": [5]}, 400),
    ("/v2/models/tiny_image/infer", v2_pixels(datatype="FP128"), 400),
    ("/v2/models/tiny_image/infer", v2_pixels(datatype={"a": 1}), 400),  # found by fuzzing
    ("/v2/models/tiny_image/infer", v2_pixels(datatype=["UINT8"]), 400),
    ("/v2/models/tiny_image/infer", v2_pixels(shape=[2, 8, 8, 1]), 400),  # data too short
    ("/v2/models/tiny_image/infer", v2_pixels(shape=[1, 64]), 400),  # wrong shape
    ("/v2/models/tiny_image/infer", v2_pixels(shape=[-1, 8, 8, 1]), 400),
    ("/v2/models/tiny_image/infer", v2_pixels(shape=[2**40, 2**40, 2**40, 1], data=[]), 413),
    ("/v2/models/tiny_image/infer", {**v2_pixels(), "parameters": {"timeout": 1e300}}, 200),
    (
        "/v2/models/tiny_multi/infer",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1e300, 0, 0, 0]}]},
        400,
    ),
    ("/v2/models/tiny_image/infer", v2_pixels(shape="1,8,8,1"), 400),
    ("/v2/models/tiny_image/infer", v2_pixels(shape=[0, 8, 8, 1], data=[]), 400),  # empty
    ("/v2/models/tiny_image/infer", v2_pixels(data=[300] * 64), 400),
    ("/v2/models/tiny_image/infer", v2_pixels(data=["a"] * 64), 400),
    ("/v2/models/tiny_image/infer", v2_pixels(datatype="BYTES", data=["a"] * 64), 400),
    ("/v2/models/tiny_image/infer", v2_pixels(name="other"), 400),
    ("/v2/models/tiny_image/infer", {**v2_pixels(), "outputs": [{"name": "nope"}]}, 400),
    ("/v2/models/tiny_image/infer", {**v2_pixels(), "outputs": {"name": "x"}}, 400),
    ("/v2/models/tiny_image/infer", {**v2_pixels(), "parameters": {"timeout": -1}}, 400),
    (
        "/v2/models/tiny_image/infer",
        {**v2_pixels(), "outputs": [{"name": "output_0", "parameters": {"classification": "x"}}]},
        400,
    ),
    ("/v2/models/tiny_image/infer", {"inputs": v2_pixels()["inputs"] * 2}, 400),  # twice
    (
        "/v2/models/tiny_text/infer",
        {"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": [1]}]},
        400,
    ),
]


@pytest.mark.parametrize(("path", "body", "status"), V2_CASES)
def test_v2_bad_requests(tiny_client, path, body, status):
    reply = tiny_client.post(path, json=body)
    assert reply.status_code == status, reply.text
    if status != 200:
        assert set(reply.json()) == {"error"} and reply.json()["error"]


@pytest.mark.parametrize("path", ["/v1/models/tiny_image:predict", "/v2/models/tiny_image/infer"])
@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe", b'{"instances": [1,'])
def test_invalid_json_is_a_400(tiny_client, path, content):
    reply = tiny_client.post(path, content=content, headers={"Content-Type": "application/json"})
    assert reply.status_code == 400 and "error" in reply.json()


@pytest.mark.parametrize(
    ("value", "says"),
    [("abc", "invalid"), ("99999", "larger than the request body"), ("-5", "must be >= 0")],
)
def test_bad_binary_header_is_a_400(tiny_client, value, says):
    headers = {"Inference-Header-Content-Length": value}
    reply = tiny_client.post("/v2/models/tiny_image/infer", json=v2_pixels(), headers=headers)
    assert reply.status_code == 400 and says in reply.json()["error"]


def test_binary_size_beyond_the_body_is_a_400(tiny_client):
    body = v2_pixels()
    del body["inputs"][0]["data"]
    body["inputs"][0]["parameters"] = {"binary_data_size": 64}
    reply = tiny_client.post(
        "/v2/models/tiny_image/infer", json=body, headers={"Inference-Header-Content-Length": "0"}
    )
    assert reply.status_code == 400


def test_oversized_body_is_a_413_before_it_is_read(tiny_client):
    big = {"instances": [[[[0]] * 8] * 8] * 2000}  # about 300 kB, over this app's 200 kB limit
    v1 = tiny_client.post("/v1/models/tiny_image:predict", json=big)
    assert v1.status_code == 413 and "error" in v1.json()
    v2 = tiny_client.post("/v2/models/tiny_image/infer", content=b" " * 300_000)
    assert v2.status_code == 413 and "error" in v2.json()


def test_oversized_chunked_body_is_a_413(tiny_client):
    def chunks():
        for _ in range(30):
            yield b" " * 10_000

    reply = tiny_client.post("/v1/models/tiny_image:predict", content=chunks())
    assert reply.status_code == 413


def test_unknown_paths_on_our_own_endpoints_are_problem_json(tiny_client):
    reply = tiny_client.get("/no/such/thing")
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= set(reply.json())


def _hold_model(model):
    """Make the model's calls wait on an event; returns (event, restore)."""
    release = threading.Event()
    started = threading.Event()
    original = model.batcher.call

    def held(inputs):
        started.set()
        release.wait(10)
        return original(inputs)

    model.batcher.call = held

    def restore():
        release.set()
        model.batcher.call = original

    return release, started, restore


def test_full_queue_answers_429_with_retry_after_at_once(tiny_app, tiny_client):
    model = tiny_app.state.repository.get("tiny_image", 1)
    batcher = model.batcher
    saved = (batcher.max_queue_size, batcher.max_batch_size, batcher.max_wait_s)
    batcher.max_queue_size, batcher.max_batch_size, batcher.max_wait_s = 1, 1, 0
    release, started, restore = _hold_model(model)
    url = "/v1/models/tiny_image/versions/1:predict"
    body = {"instances": PIXELS_OK}
    try:
        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(tiny_client.post, url, json=body)
            assert started.wait(10)
            queued = pool.submit(tiny_client.post, url, json=body)
            deadline = time.monotonic() + 5
            while batcher.queue_depth < 1 and time.monotonic() < deadline:
                time.sleep(0.005)
            start = time.monotonic()
            refused = tiny_client.post(url, json=body)
            elapsed = time.monotonic() - start
            release.set()
            assert running.result().status_code == 200
            assert queued.result().status_code == 200
    finally:
        restore()
        batcher.max_queue_size, batcher.max_batch_size, batcher.max_wait_s = saved
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert "queue is full" in refused.json()["error"]
    assert elapsed < 2


def test_request_past_its_deadline_answers_504(tiny_app, tiny_client):
    model = tiny_app.state.repository.get("tiny_image", 1)
    batcher = model.batcher
    saved_timeout = batcher.timeout_s
    release, started, restore = _hold_model(model)
    try:
        batcher.timeout_s = 0.2
        reply = tiny_client.post(
            "/v1/models/tiny_image/versions/1:predict", json={"instances": PIXELS_OK}
        )
        v2 = tiny_client.post(
            "/v2/models/tiny_image/versions/1/infer",
            json={**v2_pixels(), "parameters": {"timeout": 100_000}},  # 0.1 s in microseconds
        )
    finally:
        restore()
        batcher.timeout_s = saved_timeout
    assert reply.status_code == 504 and "error" in reply.json()
    assert v2.status_code == 504
    # The server is still healthy afterwards.
    ok = tiny_client.post("/v1/models/tiny_image/versions/1:predict", json={"instances": PIXELS_OK})
    assert ok.status_code == 200
