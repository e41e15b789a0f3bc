"""Hostile and overloading requests, in process: each is refused fast with a clear 4xx/503,
before work is spent on it, and nothing it sends can grow the server's state."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.admission import AdmissionMiddleware, ServerState, arrival_time
from app.codec import json_depth
from app.errors import PayloadTooLargeError
from app.limits import RequestBodyMiddleware, decompress
from app.main import create_app
from app.repository import RepositoryError
from tests.app.conftest import make_settings

PIXELS = np.zeros((1, 8, 8, 1), dtype=np.uint8)


def _nested(depth: int) -> bytes:
    return b'{"instances": ' + b"[" * depth + b"0" + b"]" * depth + b"}"


# ---- bounded before work --------------------------------------------------------------------
@pytest.mark.parametrize("depth", [40, 70, 50_000])
def test_deep_json_is_a_fast_400(tiny_client, depth):
    start = time.perf_counter()
    for path in ("/v1/models/tiny_image:predict", "/v1/models/tiny_text:predict"):
        reply = tiny_client.post(path, content=_nested(depth))
        assert reply.status_code == 400, reply.text
        assert "levels deep" in reply.json()["error"] or "dimensions" in reply.json()["error"]
    assert time.perf_counter() - start < 1.0  # was 8.8 s at 50,000 deep, event loop blocked


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth(b'{"a": "[[[[[[[[", "b": [["\\"]]]]"]]}') == 3
    assert json_depth(b"[]") == 1 and json_depth(b"7") == 0


def test_a_text_body_with_brackets_in_strings_is_served(tiny_client):
    reply = tiny_client.post(
        "/v1/models/tiny_text:predict", json={"instances": ["[" * 100 + "good" + "]" * 100]}
    )
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("rank", [9, 70])
def test_kserve_shapes_of_absurd_rank_are_a_400(tiny_client, rank):
    tensor = {"name": "pixels", "shape": [1] * rank, "datatype": "UINT8", "data": [0]}
    reply = tiny_client.post("/v2/models/tiny_image/infer", json={"inputs": [tensor]})
    assert reply.status_code == 400 and "dimensions" in reply.json()["error"]


def test_kserve_rank_must_match_the_signature(tiny_client):
    tensor = {"name": "pixels", "shape": [1, 64], "datatype": "UINT8", "data": [0] * 64}
    reply = tiny_client.post("/v2/models/tiny_image/infer", json={"inputs": [tensor]})
    assert reply.status_code == 400 and "signature" in reply.json()["error"]


def test_a_huge_binary_tensor_is_refused_before_it_is_made(tiny_models_dir):
    app = create_app(
        make_settings(
            models_dir=tiny_models_dir, model_names=["tiny_image"], max_instances_per_request=64
        )
    )
    header = (
        b'{"inputs":[{"name":"pixels","shape":[26000,8,8,1],"datatype":"UINT8",'
        b'"parameters":{"binary_data_size":1664000}}]}'
    )
    with TestClient(app) as client:
        reply = client.post(
            "/v2/models/tiny_image/infer",
            content=header + bytes(1_664_000),
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
        assert reply.status_code == 413 and "max_instances_per_request" in reply.json()["error"]
        many = {"instances": np.zeros((65, 8, 8, 1), dtype=np.uint8).tolist()}
        assert client.post("/v1/models/tiny_image:predict", json=many).status_code == 413


def test_a_request_above_max_batch_size_is_answered_in_slices(tiny_client):
    # tiny_app: max_batch_size 8; 20 instances run as 8 + 8 + 4, answered in order.
    pixels = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 1), dtype=np.uint8)
    whole = tiny_client.post("/v1/models/tiny_image:predict", json={"instances": pixels.tolist()})
    assert whole.status_code == 200
    one_by_one = [
        tiny_client.post("/v1/models/tiny_image:predict", json={"instances": [p.tolist()]}).json()[
            "predictions"
        ][0]
        for p in pixels[:3]
    ]
    np.testing.assert_allclose(whole.json()["predictions"][:3], one_by_one, rtol=1e-5)
    assert len(whole.json()["predictions"]) == 20


# ---- telemetry stays bounded ------------------------------------------------------------------
def test_metric_labels_exist_only_for_served_models(tiny_client):
    for i in range(50):
        tiny_client.post(f"/v1/models/random-{i}:predict", json={"instances": [1]})
        tiny_client.request(f"M{i}", "/v1/models")
    text = tiny_client.get("/metrics").text
    assert "random-" not in text and 'method="M' not in text
    assert 'model="_unknown"' in text and 'method="OTHER"' in text


# ---- admission -------------------------------------------------------------------------------
def test_the_in_flight_limit_answers_503_and_probes_stay_open(tiny_models_dir):
    app = create_app(
        make_settings(
            models_dir=tiny_models_dir, model_names=["tiny_image"], max_inflight_requests=1
        )
    )
    with TestClient(app) as client:
        app.state.server.inflight = 1  # as if one request were being handled
        try:
            busy = client.post("/v1/models/tiny_image:predict", json={"instances": PIXELS.tolist()})
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert client.get("/v2/health/ready").status_code == 200
            assert client.get("/metrics").status_code == 200
        finally:
            app.state.server.inflight = 0
        assert (
            client.post(
                "/v1/models/tiny_image:predict", json={"instances": PIXELS.tolist()}
            ).status_code
            == 200
        )


def test_a_request_waiting_for_its_clients_body_holds_no_slot_and_its_deadline_waits():
    state = ServerState()
    seen: dict[str, float] = {}
    more_body = asyncio.Event()

    async def endpoint(scope, receive, send):
        seen["arrived"] = arrival_time()
        seen["counted_at_start"] = state.inflight
        await receive()  # the first part of the body, already here
        seen["counted_after_first_part"] = state.inflight
        reading = asyncio.ensure_future(receive())  # the rest, not sent yet
        await asyncio.sleep(0.1)
        seen["counted_while_waiting"] = state.inflight
        more_body.set()
        await reading
        seen["counted_with_the_body"] = state.inflight
        seen["moved_by"] = arrival_time() - seen["arrived"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    chunks = iter([b"{", b"}"])

    async def receive():
        chunk = next(chunks)
        if chunk == b"}":
            await more_body.wait()
        return {"type": "http.request", "body": chunk, "more_body": chunk == b"{"}

    async def send(message):
        pass

    app = AdmissionMiddleware(endpoint, state=state, max_inflight=1)
    scope = {"type": "http", "path": "/v1/models/m:predict", "method": "POST", "headers": []}

    async def one_request_then_another():
        served = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.sleep(0.05)  # the first request now waits for its client's bytes
        answered = []

        async def record(message):
            if message["type"] == "http.response.start":
                answered.append(message["status"])

        async def no_body():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def quick(scope, receive, send):
            await receive()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        # Another request, under the same server state and limit.
        await AdmissionMiddleware(quick, state=state, max_inflight=1)(scope, no_body, record)
        await served
        return answered

    answered = asyncio.run(one_request_then_another())
    assert answered == [204]  # not refused: the slow upload held no slot
    assert seen["counted_at_start"] == seen["counted_after_first_part"] == 1
    assert seen["counted_while_waiting"] == 0
    assert seen["counted_with_the_body"] == 1
    assert 0.1 <= seen["moved_by"] < 1  # the deadline waited for the client too
    assert state.inflight == 0


def test_while_draining_every_answer_says_connection_close_beside_the_request_id():
    state = ServerState()
    state.draining = True
    sent = []

    async def endpoint(scope, receive, send):
        headers = [(b"connection", b"keep-alive"), (b"x-request-id", b"the-app's")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    app = AdmissionMiddleware(endpoint, state=state, max_inflight=1)
    headers = [(b"x-request-id", b"r-9")]
    scope = {"type": "http", "path": "/v1/models/m:predict", "method": "POST", "headers": headers}
    asyncio.run(app(scope, receive, send))
    assert sorted(sent[0]["headers"]) == [(b"connection", b"close"), (b"x-request-id", b"r-9")]


def test_a_full_queue_refuses_before_the_body_is_parsed(tiny_client, monkeypatch):
    model = tiny_client.app.state.repository.get("tiny_image")
    parsed = []
    monkeypatch.setattr(model, "validate", lambda inputs: parsed.append(1))
    monkeypatch.setattr(model.batcher, "max_queue_size", 0)  # nothing fits
    for path, body in (
        ("/v1/models/tiny_image:predict", {"instances": PIXELS.tolist()}),
        (
            "/v2/models/tiny_image/infer",
            {
                "inputs": [
                    {"name": "pixels", "shape": [1, 8, 8, 1], "datatype": "UINT8", "data": [0] * 64}
                ]
            },
        ),
    ):
        reply = tiny_client.post(path, json=body)
        assert reply.status_code == 429 and reply.headers["retry-after"] == "1"
    assert parsed == []


# ---- readiness that tells the truth ------------------------------------------------------------
def test_a_missing_or_empty_models_directory_stops_start_up(tmp_path):
    for models_dir in (tmp_path / "absent", tmp_path):
        app = create_app(make_settings(models_dir=models_dir))
        with (
            pytest.raises(RepositoryError, match="does not exist|no model version"),
            TestClient(app),
        ):
            pass


def test_a_model_folder_without_versions_is_reported_and_not_ready(tiny_models_dir, tmp_path):
    (tmp_path / "tiny_image").symlink_to(tiny_models_dir / "tiny_image")
    (tmp_path / "forgotten").mkdir()
    (tmp_path / "forgotten" / "saved_model.pb").write_bytes(b"")  # no <version>/ folder
    with TestClient(create_app(make_settings(models_dir=tmp_path))) as client:
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503
        assert "model 'forgotten' has no version folder" in ready.json()["reasons"]
        assert client.get("/healthz").json()["empty_model_folders"] == ["forgotten"]


def test_readiness_policy_each_model_tolerates_one_failed_version(tiny_models_dir, tmp_path):
    (tmp_path / "tiny_image").symlink_to(tiny_models_dir / "tiny_image")
    broken = tmp_path / "tiny_image_copy"
    broken.mkdir()
    (broken / "1").symlink_to(tiny_models_dir / "tiny_image" / "1")
    (broken / "2").mkdir()  # a version that fails to load
    for policy, status in (("all_versions", 503), ("each_model", 200)):
        app = create_app(make_settings(models_dir=tmp_path, readiness=policy))
        with TestClient(app) as client:
            assert client.get("/v2/health/ready").status_code == status, policy


def test_errors_never_show_absolute_paths(tiny_client, tiny_models_dir):
    for path in (
        "/v1/models/broken",
        "/v2/models/broken/ready",
        "/v1/models",
        "/healthz",
        "/v2/health/ready",
    ):
        text = tiny_client.get(path).text
        assert str(tiny_models_dir) not in text and "/tmp/" not in text, path
    assert "broken/1" in tiny_client.get("/v1/models/broken").text


# ---- access control and CORS ----------------------------------------------------------------
@pytest.fixture(scope="module")
def secured(tiny_models_dir):
    app = create_app(
        make_settings(
            models_dir=tiny_models_dir,
            model_names=["tiny_image"],
            api_keys=["k-one", "k-two"],
            auth_metrics=True,
            cors_allow_origins=["https://demo.example"],
        )
    )
    with TestClient(app) as client:
        yield client


def test_api_keys_guard_inference_and_model_status(secured):
    body = {"instances": PIXELS.tolist()}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic k-one"}):
        reply = secured.post("/v1/models/tiny_image:predict", json=body, headers=headers)
        assert reply.status_code == 401 and reply.headers["www-authenticate"].startswith("Bearer")
        assert secured.get("/v1/models", headers=headers).status_code == 401
    for key in ("k-one", "k-two"):
        ok = secured.post(
            "/v1/models/tiny_image:predict", json=body, headers={"Authorization": f"Bearer {key}"}
        )
        assert ok.status_code == 200
    problem = secured.post("/v1/sentiment:predict", json={"texts": ["x"]})
    assert problem.status_code == 401
    assert problem.headers["content-type"].startswith("application/problem+json")


def test_probes_stay_open_and_metrics_follow_the_setting(secured):
    assert secured.get("/v2/health/ready").status_code == 200
    assert secured.get("/v2/health/live").status_code == 200
    assert secured.get("/metrics").status_code == 401  # auth_metrics=true
    assert secured.get("/docs").status_code == 200  # auth_docs=false


def test_cors_allows_only_the_listed_origins(secured):
    preflight = secured.options(
        "/v1/models/tiny_image:predict",
        headers={
            "Origin": "https://demo.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://demo.example"
    other = secured.options(
        "/v1/models/tiny_image:predict",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers


# ---- request bodies --------------------------------------------------------------------------
def test_a_gzip_body_is_decoded_and_a_bad_encoding_refused(tiny_client):
    body = b'{"instances": ' + str(PIXELS.tolist()).encode() + b"}"
    ok = tiny_client.post(
        "/v1/models/tiny_image:predict",
        content=gzip.compress(body),
        headers={"Content-Encoding": "gzip"},
    )
    assert ok.status_code == 200, ok.text
    assert (
        tiny_client.post(
            "/v1/models/tiny_image:predict",
            content=b"not gzip",
            headers={"Content-Encoding": "gzip"},
        ).status_code
        == 400
    )
    assert (
        tiny_client.post(
            "/v1/models/tiny_image:predict", content=body, headers={"Content-Encoding": "br"}
        ).status_code
        == 415
    )


@pytest.mark.anyio
async def test_a_body_that_trickles_past_the_timeout_is_a_408():
    answered = []

    async def app(scope, receive, send):
        await receive()
        await receive()  # never comes

    async def receive():
        if not answered:
            answered.append(1)
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.sleep(10)

    sent = []

    async def send(message):
        sent.append(message)

    middleware = RequestBodyMiddleware(
        app, max_body_bytes=1000, body_timeout_s=0.2, max_body_memory_bytes=10_000
    )
    scope = {"type": "http", "path": "/v1/x", "headers": [(b"content-length", b"10")]}
    with pytest.raises(Exception) as raised:
        await asyncio.wait_for(middleware(scope, receive, send), 5)
    assert getattr(raised.value, "status_code", None) == 408
    assert middleware.memory.used == 0  # given back, even on an error


@pytest.mark.anyio
@pytest.mark.parametrize(("chunk_bytes", "read_whole"), [(600, True), (10, False)])
async def test_a_body_still_coming_gets_one_second_more_per_body_min_rate_bytes(
    chunk_bytes, read_whole
):
    """body_timeout_s 0.2 s, body_min_rate_bytes 1,000: a body coming at 6 KB/s for 0.6 s is
    read whole; one trickling at 100 bytes/s is a 408 a little after 0.2 s."""
    chunks = 6

    async def receive():
        await asyncio.sleep(0.1)
        return {"type": "http.request", "body": b" " * chunk_bytes, "more_body": True}

    got = []

    async def app(scope, receive, send):
        for _ in range(chunks):
            got.append(await receive())

    middleware = RequestBodyMiddleware(
        app,
        max_body_bytes=100_000,
        body_timeout_s=0.2,
        body_min_rate_bytes=1000,
        max_body_memory_bytes=100_000,
    )
    scope = {"type": "http", "path": "/v1/x", "headers": []}
    start = time.monotonic()
    if read_whole:
        await middleware(scope, receive, lambda message: None)
        assert len(got) == chunks and time.monotonic() - start > 0.5
        return
    with pytest.raises(Exception) as raised:
        await middleware(scope, receive, lambda message: None)
    assert getattr(raised.value, "status_code", None) == 408
    assert "body_min_rate_bytes" in str(raised.value)
    assert len(got) == 2 and time.monotonic() - start < 0.4


def _body_app(release: asyncio.Event, bodies: list[bytes]):
    """An app that reads the whole body, then holds it until ``release``."""

    async def app(scope, receive, send):
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        bodies.append(b"".join(chunks))
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _request(body: bytes, *, declared: bool = True, chunk: int = 100, headers=()):
    """An ASGI scope and receive that send ``body`` in chunks."""
    scope = {
        "type": "http",
        "path": "/v1/models/x:predict",
        "headers": [
            *([(b"content-length", str(len(body)).encode())] if declared else []),
            *headers,
        ],
    }
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    read = []

    async def receive():
        index = len(read)
        read.append(index)
        if index < len(parts):
            return {
                "type": "http.request",
                "body": parts[index],
                "more_body": index < len(parts) - 1,
            }
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    return scope, receive, read


async def _status(middleware, scope, receive) -> tuple[int, dict]:
    sent = []

    async def send(message):
        sent.append(message)

    try:
        await middleware(scope, receive, send)
    except Exception as exc:  # a route's ServingError, which the app's handler would map
        return getattr(exc, "status_code", 500), getattr(exc, "headers", {})
    return sent[0]["status"], dict(sent[0].get("headers", []))


@pytest.mark.anyio
async def test_request_bodies_share_a_memory_budget():
    release, bodies = asyncio.Event(), []
    middleware = RequestBodyMiddleware(
        _body_app(release, bodies),
        max_body_bytes=10_000,
        body_timeout_s=5,
        max_body_memory_bytes=1_000,
    )
    holder = asyncio.create_task(_status(middleware, *_request(b"a" * 800)[:2]))
    await asyncio.sleep(0.05)
    assert middleware.memory.used == 800
    # Declared too large for what is left: refused before a byte of it is read.
    scope, receive, read = _request(b"b" * 300)
    status, headers = await _status(middleware, scope, receive)
    assert status == 503 and read == []
    assert (b"retry-after", b"1") in headers.items() or headers.get("Retry-After") == "1"
    # Sent without a length: refused as its chunks pass the budget.
    scope, receive, read = _request(b"c" * 300, declared=False)
    assert (await _status(middleware, scope, receive))[0] == 503 and 1 <= len(read) <= 3
    # What fits goes on.
    small = asyncio.create_task(_status(middleware, *_request(b"d" * 150)[:2]))
    await asyncio.sleep(0.05)
    assert middleware.memory.used == 950
    release.set()
    assert (await holder)[0] == 200 and (await small)[0] == 200
    assert middleware.memory.used == 0 and bodies == [b"a" * 800, b"d" * 150]


@pytest.mark.anyio
async def test_a_request_alone_may_hold_more_than_the_budget_and_decoded_bodies_count():
    release, bodies = asyncio.Event(), []
    release.set()
    middleware = RequestBodyMiddleware(
        _body_app(release, bodies),
        max_body_bytes=50_000,
        body_timeout_s=5,
        max_body_memory_bytes=1_000,
    )
    assert (await _status(middleware, *_request(b"x" * 5_000)[:2]))[0] == 200
    gzipped = gzip.compress(b"y" * 20_000)
    release.clear()
    holder = asyncio.create_task(
        _status(middleware, *_request(gzipped, headers=[(b"content-encoding", b"gzip")])[:2])
    )
    await asyncio.sleep(0.05)
    assert middleware.memory.used == len(gzipped) + 20_000  # as received, and decoded
    assert (await _status(middleware, *_request(b"z" * 10)[:2]))[0] == 503
    release.set()
    assert (await holder)[0] == 200 and middleware.memory.used == 0


# ---- typed endpoints ---------------------------------------------------------------------------
def test_typed_endpoints_refuse_deep_json_and_parse_large_bodies_off_the_loop(
    tiny_models_dir, monkeypatch
):
    import app.api.routing as routing

    threads = []
    real = routing._parse

    def recording(body, max_depth, max_items):
        threads.append(threading.current_thread().name)
        return real(body, max_depth, max_items)

    monkeypatch.setattr(routing, "_parse", recording)
    app = create_app(
        make_settings(models_dir=tiny_models_dir, model_names=["tiny_text"], inline_parse_bytes=100)
    )
    with TestClient(app) as client:
        deep = b'{"texts": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        reply = client.post(
            "/v1/sentiment:predict", content=deep, headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == 400 and "levels deep" in reply.json()["detail"]
        small = client.post("/v1/sentiment:predict", json={"texts": ["ok"]})
        large = client.post("/v1/sentiment:predict", json={"texts": ["x" * 500]})
        # No sentiment model in the tiny repository: both parse, then 404 for the model.
        assert small.status_code == large.status_code == 404
    loop_thread = threads[1]  # the small body is parsed on the event loop's thread
    assert threads[0] != loop_thread and threads[2] != loop_thread  # the large ones are not


def test_a_body_that_decodes_large_is_decoded_off_the_event_loop():
    # Judged by what it decodes to, not by its compressed size: 20 KB of gzip can hold 19 MB.
    small, bomb = gzip.compress(b"[1]" * 100), gzip.compress(b"[" * 19_000_000)
    assert len(bomb) < 30_000
    assert decompress(small, 64 * 1024, 20_000_000) == b"[1]" * 100  # inline
    assert decompress(bomb, 64 * 1024, 20_000_000) is None  # too much for the event loop
    assert len(decompress(bomb, 20_000_000, 20_000_000)) == 19_000_000  # in the thread
    with pytest.raises(PayloadTooLargeError):
        decompress(bomb, 1_000_000, 1_000_000)
