"""The HTTP protocol of ``python -m app`` fed bytes directly: a request refused at its headers
gets its 429 without reaching the app, and the connection stays usable for the next one."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
import uvicorn
from uvicorn.server import ServerState

from app.admission import BULK_KEY, TASK_MODELS, quick_admission
from app.batching import DynamicBatcher
from app.concurrency import ConcurrencyLimit
from app.errors import ModelNotFoundError
from app.image_pool import POOL_SECONDS_KEY, ImagePool
from app.server import GuardedHttpToolsProtocol

pytestmark = pytest.mark.anyio

REQUEST = (
    b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 17\r\n\r\n{"instances": [1]}'
)[:-1]  # 17 bytes of body


EARLY_PATH = "/v1/models/gone:predict"


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.reading = True
        self.eof = False

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def write(self, data) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


async def _protocol(
    refuse,
    delay_s: float = 0.0,
    max_delay_s: float = 0.0,
    gate: asyncio.Event | None = None,
    keep_alive_s: float = 5.0,
    api_keys: tuple[bytes, ...] = (),
    body_timeout_s: float = 30.0,
    body_min_rate_bytes: int = 16 * 1024,
):
    reached = []

    async def app(scope, receive, send):
        reached.append(scope["path"])
        if scope["path"] == EARLY_PATH:  # answered without reading the body (as a 404 is)
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"no"})
            return
        await receive()
        if gate is not None:
            await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", timeout_keep_alive=keep_alive_s
    )
    config.load()
    cls = type(
        "P",
        (GuardedHttpToolsProtocol,),
        {
            "quick_admission": staticmethod(refuse),
            "refusal_delay_s": delay_s,
            "refusal_max_delay_s": max_delay_s,
            "api_keys": list(api_keys),
            "body_timeout_s": body_timeout_s,
            "body_min_rate_bytes": body_min_rate_bytes,
        },
    )
    protocol = cls(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport, reached


@pytest.mark.parametrize("delay_s", [0.0, 0.05])
async def test_a_refused_request_never_reaches_the_app_and_the_connection_goes_on(delay_s):
    refusal = b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n"
    answers = iter([refusal, refusal, None])
    protocol, transport, reached = await _protocol(lambda m, p, q, n: next(answers), delay_s)
    protocol.data_received(REQUEST)
    assert transport.written.startswith(b"HTTP/1.1 429 ")  # a first refusal: at once
    transport.written.clear()
    protocol.data_received(REQUEST)  # refused again, in a row
    if delay_s:
        assert transport.written == b"" and not transport.reading  # held, nothing more read
        await asyncio.sleep(delay_s * 2)
    assert transport.written.startswith(b"HTTP/1.1 429 ") and reached == []
    assert transport.reading and not transport.closed
    transport.written.clear()
    protocol.data_received(REQUEST)  # the next request on the same connection is served
    for _ in range(50):
        if transport.written:
            break
        await asyncio.sleep(0.01)
    assert transport.written.startswith(b"HTTP/1.1 200 ") and reached == ["/v1/models/m:predict"]
    protocol.connection_lost(None)


async def test_the_admission_sees_the_method_the_path_and_the_query():
    seen = []
    protocol, transport, _ = await _protocol(lambda m, p, q, n: seen.append((m, p, q)))
    protocol.data_received(REQUEST.replace(b":predict", b":predict?x=1", 1))
    await asyncio.sleep(0.05)
    assert seen == [(b"POST", b"/v1/models/m:predict", b"x=1")]
    protocol.connection_lost(None)


REFUSAL = b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n"


async def _answer(protocol, transport) -> tuple[bytes, float]:
    """Send one request; its answer's status line and how long it took to come."""
    transport.written.clear()
    start = time.monotonic()
    protocol.data_received(REQUEST)
    while not transport.written:
        await asyncio.sleep(0.002)
    return bytes(transport.written.split(b"\r\n", 1)[0]), time.monotonic() - start


async def test_refusals_in_a_row_are_held_longer_and_an_admitted_request_resets_the_hold():
    limit = ConcurrencyLimit(5.0)
    verdicts = iter([REFUSAL] * 5 + [limit, REFUSAL])
    protocol, transport, _ = await _protocol(lambda m, p, q, n: next(verdicts), 0.01, 0.5)
    holds = []
    for _ in range(5):
        status, seconds = await _answer(protocol, transport)
        assert status == b"HTTP/1.1 429 Too Many Requests"
        holds.append(seconds)
    # at once, then 10, 20, 40, 80 ms (timers never fire early)
    assert holds[0] < 0.01
    assert [h >= 0.01 * 2**i for i, h in enumerate(holds[1:])] == [True] * 4
    status, _ = await _answer(protocol, transport)
    assert status == b"HTTP/1.1 200 OK"
    status, seconds = await _answer(protocol, transport)
    assert status == b"HTTP/1.1 429 Too Many Requests"
    assert seconds < 0.01 < holds[1]  # at once again
    protocol.connection_lost(None)


class RecordingLimit(ConcurrencyLimit):
    """A model's cap that admits every request and records what each gave back."""

    def __init__(self) -> None:
        super().__init__(5.0)
        self.released: list[float | None] = []

    def admit(self, method: bytes, path: bytes, query: bytes, size: int | None) -> ConcurrencyLimit:
        """A quick admission by this cap (the protocol takes the slot)."""
        return self

    def release(self, latency_s: float | None) -> None:
        self.released.append(latency_s)
        super().release(latency_s)


async def test_an_admitted_request_holds_its_slot_until_its_answer_is_sent():
    limit, gate = RecordingLimit(), asyncio.Event()

    protocol, transport, reached = await _protocol(limit.admit, gate=gate)
    protocol.data_received(REQUEST)
    await asyncio.sleep(0.05)
    assert reached and limit.inflight == 1 and limit.released == []  # the app is working
    gate.set()
    while not transport.written:
        await asyncio.sleep(0.002)
    assert limit.inflight == 0 and len(limit.released) == 1 and limit.released[0] >= 0.05
    protocol.connection_lost(None)
    assert len(limit.released) == 1  # given back once


async def test_a_request_whose_body_is_still_coming_holds_no_slot():
    limit, gate = RecordingLimit(), asyncio.Event()

    protocol, transport, reached = await _protocol(limit.admit, gate=gate)
    protocol.data_received(REQUEST[:-5])  # the headers and part of the body
    await asyncio.sleep(0.3)
    assert reached and limit.inflight == 0  # the app waits for the client, not the server
    protocol.data_received(REQUEST[-5:])
    assert limit.inflight == 1  # taken with the last body byte
    await asyncio.sleep(0.02)
    gate.set()
    while not transport.written:
        await asyncio.sleep(0.002)
    assert limit.inflight == 0 and len(limit.released) == 1
    assert 0.02 <= limit.released[0] < 0.25  # from the last body byte, not the headers (0.32)
    protocol.connection_lost(None)


async def test_the_time_a_request_spent_in_the_image_pool_is_not_the_models():
    limit, gate = RecordingLimit(), asyncio.Event()

    protocol, transport, reached = await _protocol(limit.admit, gate=gate)
    protocol.data_received(REQUEST)
    await asyncio.sleep(0.3)
    protocol.scope["state"][POOL_SECONDS_KEY] = 0.25  # as app.image_pool reports it
    gate.set()
    while not transport.written:
        await asyncio.sleep(0.002)
    assert len(limit.released) == 1 and 0.0 <= limit.released[0] < 0.2  # (0.3 with the pool)
    protocol.connection_lost(None)


@pytest.mark.parametrize("bulk_lane", [False, True])
async def test_a_request_that_turned_out_bulk_is_not_measured_by_the_interactive_cap(bulk_lane):
    limit, gate = RecordingLimit(), asyncio.Event()
    limit.bulk = bulk_lane
    protocol, transport, reached = await _protocol(limit.admit, gate=gate)
    protocol.data_received(REQUEST)
    await asyncio.sleep(0.02)
    protocol.scope["state"][BULK_KEY] = True  # as DynamicBatcher.submit reports it
    gate.set()
    while not transport.written:
        await asyncio.sleep(0.002)
    assert len(limit.released) == 1 and (limit.released[0] is None) is not bulk_lane
    protocol.connection_lost(None)


async def test_a_request_answered_before_its_body_came_took_no_slot():
    limit = RecordingLimit()

    protocol, transport, _ = await _protocol(limit.admit, body_timeout_s=0.2)
    protocol.data_received(REQUEST.replace(b"m:predict", b"gone:predict")[:-5])
    while not transport.written:
        await asyncio.sleep(0.002)
    assert transport.written.startswith(b"HTTP/1.1 404 ")
    protocol.data_received(REQUEST[-5:])  # the rest of the body, discarded
    assert limit.inflight == 0 and limit.released == []
    protocol.connection_lost(None)
    assert limit.inflight == 0 and limit.released == []


async def test_a_connection_lost_mid_request_gives_its_slot_back_unmeasured():
    limit = RecordingLimit()

    protocol, transport, _ = await _protocol(limit.admit, gate=asyncio.Event())
    protocol.data_received(REQUEST)
    await asyncio.sleep(0.02)
    protocol.connection_lost(None)
    assert limit.inflight == 0 and limit.released == [None]


SMALL = 100  # a request body's bytes: the interactive lane


def _app_with(batcher: DynamicBatcher, asked: list | None = None):
    class Repository:
        def get(self, name: str, version: str | None):
            if asked is not None:
                asked.append((name, version))
            if name not in ("m", "movie_profit"):
                raise ModelNotFoundError(f"no model {name!r}")
            return SimpleNamespace(batcher=batcher)

    settings = SimpleNamespace(inline_parse_bytes=64 * 1024, inline_image_bytes=1024)
    return SimpleNamespace(state=SimpleNamespace(repository=Repository(), settings=settings))


def test_the_quick_admission_refuses_past_the_models_cap():
    batcher = DynamicBatcher(lambda inputs: inputs, name="m", timeout_s=0.05)
    batcher.concurrency.limit = 2
    admit = quick_admission(_app_with(batcher))
    assert admit(b"POST", b"/v1/models/m:predict", b"", SMALL) is batcher.concurrency
    assert batcher.concurrency.inflight == 0  # the protocol takes the slot, with the body
    batcher.concurrency.acquire()
    assert admit(b"POST", b"/v2/models/m/versions/1/infer", b"", SMALL) is batcher.concurrency
    batcher.concurrency.acquire()
    refusal = admit(b"POST", b"/v1/models/m:predict", b"", SMALL)
    assert isinstance(refusal, bytes) and refusal.startswith(b"HTTP/1.1 429 ")
    assert b"retry-after: " in refusal and b"2 requests in progress" in refusal
    assert b"application/json" in refusal  # the TF Serving API's error format
    refusal = admit(b"POST", b"/v1/images/m:classify", b"", SMALL)  # a typed endpoint
    assert b"application/problem+json" in refusal and b'"status":429' in refusal
    batcher.concurrency.release(0.01)
    assert admit(b"POST", b"/v1/models/m:predict", b"", SMALL) is batcher.concurrency
    # Not for the quick path: other methods and routes, unknown models (the app explains).
    assert admit(b"GET", b"/v1/models/m", b"", SMALL) is None
    assert admit(b"POST", b"/v1/models/other:predict", b"", SMALL) is None
    assert admit(b"POST", b"/v1/images/m:explain", b"", SMALL) is None
    assert batcher.concurrency.inflight == 1


def test_the_typed_endpoints_are_admitted_for_their_model_and_version():
    asked: list = []
    batcher = DynamicBatcher(lambda inputs: inputs, name="m")
    admit = quick_admission(_app_with(batcher, asked))
    assert (
        admit(b"POST", b"/v1/images/m:classify", b"top_k=2&version=3", SMALL) is batcher.concurrency
    )
    assert admit(b"POST", b"/v1/movies:predict", b"", SMALL) is batcher.concurrency
    assert admit(b"POST", b"/v1/sentiment:predict", b"version=stable", SMALL) is None  # not served
    assert admit(b"POST", b"/v1/nothing:predict", b"", SMALL) is None
    assert asked == [("m", "3"), ("movie_profit", None), ("sentiment", "stable")]


def test_a_body_too_big_to_read_inline_is_admitted_in_the_bulk_lane():
    batcher = DynamicBatcher(lambda inputs: inputs, name="m", max_batch_size=4, timeout_s=4)
    admit = quick_admission(_app_with(batcher))
    big = 64 * 1024 + 1  # over inline_parse_bytes
    assert admit(b"POST", b"/v1/models/m:predict", b"", big) is batcher.bulk_concurrency
    assert admit(b"POST", b"/v1/models/m:predict", b"", None) is batcher.bulk_concurrency
    assert admit(b"POST", b"/v1/models/m:predict", b"", 64 * 1024) is batcher.concurrency
    # Each lane has its own cap: slow bulk requests that shrank theirs lock out no small one.
    batcher.bulk_concurrency.limit = 1
    batcher.bulk_concurrency.acquire()
    refusal = admit(b"POST", b"/v1/models/m:predict", b"", big)
    assert isinstance(refusal, bytes) and refusal.startswith(b"HTTP/1.1 429 ")
    assert admit(b"POST", b"/v1/models/m:predict", b"", SMALL) is batcher.concurrency
    # The queue check at the headers takes a large body for at least a batch of its own.
    batcher.bulk_concurrency.release(None)
    batcher._bulk.call_time_s, batcher._interactive.call_time_s = 1.0, 0.01
    batcher._bulk.queued = 12  # three bulk batches queued: 3 s, and 1 s more for its own
    refusal = admit(b"POST", b"/v1/models/m:predict", b"", big)
    assert isinstance(refusal, bytes) and b"4000 ms" in refusal
    assert admit(b"POST", b"/v1/models/m:predict", b"", SMALL) is batcher.concurrency


def test_an_image_upload_too_big_to_decode_inline_is_refused_when_the_pool_is_behind():
    batcher = DynamicBatcher(lambda inputs: inputs, name="m", timeout_s=1.0)
    app = _app_with(batcher)
    app.state.image_pool = ImagePool(1)
    app.state.image_pool.jobs, app.state.image_pool.job_time_s = 4, 0.2  # ~1 s ahead
    admit = quick_admission(app)
    try:
        for size in (5000, None):  # a large upload, a chunked one
            refusal = admit(b"POST", b"/v1/images/m:classify", b"", size)
            assert isinstance(refusal, bytes) and refusal.startswith(b"HTTP/1.1 429 ")
            assert b"image_workers" in refusal and b"application/problem+json" in refusal
        # A small one is decoded on the event loop; other paths never wait for the pool.
        assert admit(b"POST", b"/v1/images/m:classify", b"", 900) is batcher.concurrency
        assert admit(b"POST", b"/v1/models/m:predict", b"", 5000) is batcher.concurrency
        app.state.image_pool.jobs = 0
        assert admit(b"POST", b"/v1/images/m:classify", b"", 5000) is batcher.concurrency
    finally:
        app.state.image_pool.shutdown()


def test_the_typed_endpoints_table_follows_the_routes():
    from app.api.tasks import churn, movies, sales, sentiment, spam
    from app.main import create_app

    paths = {getattr(route, "path", None) for route in create_app().routes}
    for module, verb in [
        (churn, "predict"),
        (movies, "predict"),
        (sales, "forecast"),
        (sentiment, "predict"),
        (spam, "predict"),
    ]:
        task = module.__name__.rsplit(".", 1)[1]
        assert f"/v1/{task}:{verb}" in paths
        assert TASK_MODELS[task.encode()] == module.MODEL_NAME
    assert "/v1/images/{model}:classify" in paths


async def test_a_slow_upload_is_not_counted_in_the_models_latency():
    limit = RecordingLimit()

    protocol, transport, _ = await _protocol(limit.admit)
    head, _, body = REQUEST.partition(b"\r\n\r\n")
    protocol.data_received(head + b"\r\n\r\n")
    await asyncio.sleep(0.1)  # the client takes its time to send the body
    protocol.data_received(body)
    while not transport.written:
        await asyncio.sleep(0.002)
    assert len(limit.released) == 1 and limit.released[0] < 0.05
    protocol.connection_lost(None)


async def test_a_request_held_after_one_that_ended_in_the_same_read_keeps_its_connection():
    # The first request is refused at once; the end of its body and all of the second request
    # come in one read: the idle timer armed after the first must not close the connection
    # while the second is held.
    verdicts = iter([REFUSAL, REFUSAL])
    protocol, transport, _ = await _protocol(
        lambda m, p, q, n: next(verdicts), delay_s=0.3, max_delay_s=0.3, keep_alive_s=0.2
    )
    head, _, body = REQUEST.partition(b"\r\n\r\n")
    protocol.data_received(head + b"\r\n\r\n")
    assert transport.written.startswith(b"HTTP/1.1 429 ")
    transport.written.clear()
    protocol.data_received(body + REQUEST)
    # A stale idle timer would fire at 0.2 s, in the hold; the held 429 is sent at 0.3 s.
    while not transport.written and not transport.closed:
        await asyncio.sleep(0.002)
    assert transport.written.startswith(b"HTTP/1.1 429 ") and not transport.closed
    protocol.connection_lost(None)


async def test_with_api_keys_only_a_request_with_a_valid_key_is_admitted_early():
    seen = []
    protocol, transport, reached = await _protocol(
        lambda m, p, q, n: seen.append(p), api_keys=(b"k1", b"k2")
    )
    for auth in [b"", b"Authorization: Bearer wrong\r\n", b"Authorization: Bearer k2\r\n"]:
        transport.written.clear()
        protocol.data_received(REQUEST.replace(b"Host: x\r\n", b"Host: x\r\n" + auth, 1))
        while not transport.written:
            await asyncio.sleep(0.002)
    # The first two go to the app (which answers 401 there), never refused before the check.
    assert seen == [b"/v1/models/m:predict"] and len(reached) == 3
    protocol.connection_lost(None)


# ---- a request answered before its whole body came ----------------------------------------
def _early(length: int, extra_headers: bytes = b"") -> bytes:
    """The head of a request the app answers without reading its ``length``-byte body."""
    return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n" % (
        EARLY_PATH.encode(),
        length,
        extra_headers,
    )


async def _written(transport, marker: bytes) -> None:
    for _ in range(200):
        if marker in transport.written:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{marker!r} never written: {bytes(transport.written)!r}")


async def test_the_body_of_an_answered_request_is_discarded_and_the_next_request_served():
    protocol, transport, reached = await _protocol(lambda m, p, q, n: None)
    protocol.max_header_bytes = 4096
    protocol.data_received(_early(100_000))
    await _written(transport, b"HTTP/1.1 404 ")
    for _ in range(25):  # far more than a head may be: it is body, not a head
        protocol.data_received(b"x" * 4000)
    assert b" 431 " not in transport.written and not transport.closed
    transport.written.clear()
    protocol.data_received(REQUEST)  # the last 0 bytes of that body, then a new request
    await _written(transport, b"HTTP/1.1 200 ")
    assert reached == [EARLY_PATH, "/v1/models/m:predict"] and not transport.closed
    protocol.connection_lost(None)


def _cuts(reason: str) -> float:
    from app import metrics

    return (
        metrics.REGISTRY.get_sample_value("serving_connections_cut_total", {"reason": reason})
        or 0.0
    )


async def test_an_answered_body_that_stops_coming_closes_the_connection_after_body_timeout_s():
    before = _cuts("discard_timeout")
    protocol, transport, _ = await _protocol(lambda m, p, q, n: None, body_timeout_s=0.3)
    protocol.data_received(_early(1000) + b"x" * 10)
    await _written(transport, b"HTTP/1.1 404 ")
    await _trickle(protocol, 6, b"x", 0.02)  # a byte now and then: no uvicorn timer would fire
    assert not transport.closed
    await asyncio.sleep(0.3)
    assert transport.closed and _cuts("discard_timeout") == before + 1
    protocol.connection_lost(None)


async def _trickle(protocol, count: int, piece: bytes, every_s: float) -> None:
    for _ in range(count):
        await asyncio.sleep(every_s)
        protocol.data_received(piece)


async def _answered_early(length: int):
    """A protocol (``body_timeout_s`` 0.2, ``body_min_rate_bytes`` 1000) that has answered a
    request of a ``length``-byte body at its headers, none of which has come."""
    protocol, transport, reached = await _protocol(
        lambda m, p, q, n: None, body_timeout_s=0.2, body_min_rate_bytes=1000
    )
    protocol.data_received(_early(length))
    await _written(transport, b"HTTP/1.1 404 ")
    return protocol, transport, reached


async def test_an_answered_body_still_coming_at_the_minimum_rate_is_discarded_to_its_end():
    # A slow upload answered early (a 429 or 404) is read to its end, so its client reads
    # the answer, as long as it comes at body_min_rate_bytes a second or more.
    protocol, transport, reached = await _answered_early(3000)
    await _trickle(protocol, 10, b"x" * 300, 0.05)  # 6 KB/s for 0.5 s: past body_timeout_s
    assert not transport.closed
    transport.written.clear()
    protocol.data_received(REQUEST)  # the body has ended: the next request is served
    await _written(transport, b"HTTP/1.1 200 ")
    assert reached == [EARLY_PATH, "/v1/models/m:predict"] and not transport.closed
    protocol.connection_lost(None)


async def test_an_answered_body_that_stops_gets_body_timeout_s_and_the_time_its_bytes_earned():
    before = _cuts("discard_timeout")
    protocol, transport, _ = await _answered_early(3000)
    protocol.data_received(b"x" * 500)  # 0.5 s earned, then nothing
    await asyncio.sleep(0.4)
    assert not transport.closed
    await asyncio.sleep(0.8)
    assert transport.closed and _cuts("discard_timeout") == before + 1
    protocol.connection_lost(None)


async def test_a_discarded_body_earns_time_only_for_as_much_as_the_largest_body_allowed():
    protocol, transport, _ = await _answered_early(10**9)  # a 413's body may be any size
    protocol.max_body_bytes = 100
    await _trickle(protocol, 10, b"x" * 300, 0.05)  # past the rate, but 0.1 s earned at most
    assert transport.closed
    protocol.connection_lost(None)


async def test_after_an_answered_body_has_come_the_idle_connection_is_closed():
    protocol, transport, _ = await _protocol(lambda m, p, q, n: None, keep_alive_s=0.05)
    protocol.data_received(_early(10))
    await _written(transport, b"HTTP/1.1 404 ")
    protocol.data_received(b"x" * 10)  # cancels uvicorn's keep-alive timer: ours re-arms it
    await asyncio.sleep(0.2)
    assert transport.closed
    protocol.connection_lost(None)


async def test_an_expect_continue_request_answered_before_its_body_closes_the_connection():
    protocol, transport, _ = await _protocol(lambda m, p, q, n: None)
    protocol.data_received(_early(10**9, b"Expect: 100-continue\r\n"))
    await _written(transport, b"no")
    assert b"100 Continue" not in transport.written
    assert b"connection: close\r\n" in transport.written and transport.closed
    protocol.connection_lost(None)


async def test_an_expect_continue_request_whose_body_is_asked_for_keeps_its_connection():
    protocol, transport, _ = await _protocol(lambda m, p, q, n: None)
    head, _, body = REQUEST.partition(b"\r\n\r\n")
    protocol.data_received(head + b"\r\nExpect: 100-continue\r\n\r\n")
    await _written(transport, b"HTTP/1.1 100 Continue\r\n\r\n")
    protocol.data_received(body)
    await _written(transport, b"HTTP/1.1 200 ")
    assert b"connection: close" not in transport.written and not transport.closed
    protocol.connection_lost(None)


async def test_an_expect_continue_request_refused_at_its_headers_closes_the_connection():
    protocol, transport, reached = await _protocol(lambda m, p, q, n: REFUSAL)
    head, _, _ = REQUEST.partition(b"\r\n\r\n")
    protocol.data_received(head + b"\r\nExpect: 100-continue\r\n\r\n")
    assert transport.written.startswith(b"HTTP/1.1 429 ")
    assert b"\r\nconnection: close\r\n\r\n" in transport.written and transport.closed
    assert reached == []
    protocol.connection_lost(None)


async def test_a_refusal_at_the_headers_echoes_the_requests_own_id():
    protocol, transport, _ = await _protocol(lambda m, p, q, n: REFUSAL)
    head, _, body = REQUEST.partition(b"\r\n\r\n")
    protocol.data_received(head + b"\r\nX-Request-ID: r-7\r\n\r\n" + body + b"}")
    assert transport.written.startswith(b"HTTP/1.1 429 ")
    assert b"\r\nx-request-id: r-7\r\n\r\n" in transport.written
    protocol.data_received(REQUEST + b"}")  # without one: none
    assert transport.written.count(b"x-request-id") == 1
    protocol.connection_lost(None)


async def test_the_body_of_a_request_refused_at_its_headers_must_come_within_body_timeout_s():
    protocol, transport, _ = await _protocol(lambda m, p, q, n: REFUSAL, body_timeout_s=0.1)
    head, _, _ = REQUEST.partition(b"\r\n\r\n")
    protocol.data_received(head + b"\r\n\r\n")
    assert transport.written.startswith(b"HTTP/1.1 429 ") and not transport.closed
    await asyncio.sleep(0.2)
    assert transport.closed
    protocol.connection_lost(None)


TINY_CHUNKS = (
    b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"1\r\n \r\n" * 200
)


async def test_tiny_chunks_to_a_request_refused_at_its_headers_end_the_connection_quietly():
    """Its 429 is its answer: the chunks past the allowance end the connection (a lingering
    close) without a second answer, and nothing reaches the app."""
    refusal = b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n"
    protocol, transport, reached = await _protocol(lambda m, p, q, n: refusal)
    protocol.data_received(TINY_CHUNKS)
    assert bytes(transport.written) == refusal and reached == []
    assert transport.eof and not transport.closed  # half-closed: what comes is read and dropped
    protocol.data_received(b"1\r\n \r\n" * 10)
    assert bytes(transport.written) == refusal


async def test_tiny_chunks_to_a_request_the_app_reads_get_400_and_the_app_sees_a_disconnect():
    protocol, transport, reached = await _protocol(lambda m, p, q, n: None)
    protocol.data_received(TINY_CHUNKS)
    assert transport.written.startswith(b"HTTP/1.1 400 ") and b"min_body_chunk_bytes" in (
        transport.written
    )
    assert transport.eof
    await asyncio.sleep(0.05)  # the app's receive returns a disconnect: it answers nothing
    assert reached == ["/v1/models/m:predict"]
    assert transport.written.count(b"HTTP/1.1 ") == 1


def _post(body: bytes) -> bytes:
    return b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


@pytest.mark.parametrize(("queued_body", "held"), [(1_000, False), (100_000, True)])
async def test_reading_stays_paused_while_pipelined_requests_hold_a_large_body(queued_body, held):
    """uvicorn resumes reading after each answer; the bodies of requests queued behind the one
    in progress are outside max_body_memory_bytes, so past 64 KB of them it waits for those
    requests to start. Every request is answered all the same."""
    gate = asyncio.Event()
    protocol, transport, reached = await _protocol(lambda m, p, q, n: None, gate=gate)
    protocol.data_received(_post(b"a") + _post(b"b") + _post(b"c" * queued_body))
    await asyncio.sleep(0.02)
    assert len(reached) == 1 and len(protocol.pipeline) == 2  # one in progress, two queued
    protocol.flow.resume_reading()  # as uvicorn does after an answer
    assert transport.reading is not held
    gate.set()
    for _ in range(100):
        if transport.written.count(b"HTTP/1.1 200") == 3:
            break
        await asyncio.sleep(0.01)
    assert transport.written.count(b"HTTP/1.1 200") == 3 and transport.reading
