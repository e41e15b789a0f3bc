"""The connection-level limits and the SIGTERM drain, on a real ``python -m app`` process:
what a hostile or a slow client can do, and what an orchestrator sees at shutdown."""

from __future__ import annotations

import gzip
import json
import re
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.app.serving_process import start_server, stop_server

HEADER_TIMEOUT_S = 1.5
SEND_TIMEOUT_S = 1.0
MAX_PIPELINED = 64
LIMITS = {
    "max_header_bytes": "4096",
    "header_timeout_s": str(HEADER_TIMEOUT_S),
    "send_timeout_s": str(SEND_TIMEOUT_S),
    "max_connections": "6",
    "max_pipelined_requests": str(MAX_PIPELINED),
    "max_body_bytes": "100000",
    "drain_seconds": "0",
    "body_timeout_s": "1",
    "body_min_rate_bytes": "4096",
}


@pytest.fixture(scope="module")
def tiny_only(tiny_models_dir, tmp_path_factory):
    models = tmp_path_factory.mktemp("limits_models")
    (models / "tiny_image").symlink_to(tiny_models_dir / "tiny_image")
    return models


@pytest.fixture(scope="module")
def server(tiny_only):
    process, url = start_server(tiny_only, **LIMITS)
    try:
        yield url
    finally:
        stop_server(process)


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _raw(url: str, data: bytes, *, wait_s: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection; everything the server answers until it closes."""
    with socket.create_connection(_address(url), timeout=wait_s) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def _problem(answer: bytes, status: int, slug: str) -> dict:
    """``answer`` is a whole response: ``status``, an RFC 9457 body of type ``slug``, and the
    connection closed."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} "), lines[0]
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["status"] == status and problem["type"].endswith(f"/problems/{slug}")
    assert problem["title"] and problem["detail"]
    return problem


def _cut(url: str, reason: str) -> float:
    """``serving_connections_cut_total`` for ``reason``, as /metrics says now."""
    text = httpx.get(f"{url}/metrics").text
    found = re.search(rf'serving_connections_cut_total\{{reason="{reason}"\}} ([0-9.e+]+)', text)
    return float(found.group(1)) if found else 0.0


def _pixels(n: int = 1) -> dict:
    return {"instances": np.zeros((n, 8, 8, 1), dtype=np.uint8).tolist()}


def test_no_server_header(server):
    reply = httpx.get(f"{server}/v2/health/live")
    assert reply.status_code == 200 and "server" not in reply.headers


def test_oversized_headers_get_431_and_the_connection_closes(server):
    before = _cut(server, "headers_too_large")
    big = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n"
    assert "4096 bytes" in _problem(_raw(server, big), 431, "headers-too-large")["detail"]
    many = (
        b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(1000))
        + b"\r\n"
    )
    _problem(_raw(server, many), 431, "headers-too-large")
    assert _cut(server, "headers_too_large") == before + 2


def test_bytes_that_are_not_http_get_a_400_problem_and_the_connection_closes(server):
    before = _cut(server, "malformed_request")
    for garbage in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ):
        _problem(_raw(server, garbage), 400, "malformed-request")
    assert httpx.get(f"{server}/v2/health/live").status_code == 200
    assert _cut(server, "malformed_request") == before + 2


def test_a_slow_request_head_is_cut_off(server):
    start = time.monotonic()
    with socket.create_connection(_address(server), timeout=10) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHo")
        answer = b""
        # One byte a while, as slowloris does; the server must not wait for the rest.
        for byte in b"st: x\r\nX-Slow: 1":
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    _problem(answer, 408, "request-timeout")
    assert time.monotonic() - start < HEADER_TIMEOUT_S + 2.5


def test_a_connection_that_sends_nothing_is_closed(server):
    before = _cut(server, "head_timeout")
    start = time.monotonic()
    _problem(_raw(server, b"", wait_s=10), 408, "request-timeout")
    assert time.monotonic() - start < HEADER_TIMEOUT_S + 2
    assert _cut(server, "head_timeout") == before + 1


def test_a_client_that_never_reads_its_replies_is_cut_off(server):
    """Pipelined requests for 12 MB of replies on a connection that reads nothing: more than
    the kernel's socket buffers hold, so the rest waits in the server; after send_timeout_s
    without progress the server aborts the connection (it leaves ESTABLISHED on its side)."""
    before = _cut(server, "send_timeout")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(_address(server))
    try:
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 100)
        client_port = sock.getsockname()[1]
        _, server_port = _address(server)
        start = time.monotonic()
        assert _server_side_state(server_port, client_port) == "ESTABLISHED"
        while _server_side_state(server_port, client_port) == "ESTABLISHED":
            assert time.monotonic() - start < SEND_TIMEOUT_S + 10, "still held"
            time.sleep(0.1)
        assert time.monotonic() - start >= SEND_TIMEOUT_S - 0.2  # not before its time
    finally:
        sock.close()
    assert httpx.get(f"{server}/v2/health/live").status_code == 200
    assert _cut(server, "send_timeout") == before + 1


def test_a_slow_but_steady_reader_gets_its_whole_reply(server):
    """Progress within each send_timeout_s keeps the connection: 5 MB of pipelined replies
    read at 500 KB/s, over several periods."""
    request = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
    last = request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    body = _raw(server, last).partition(b"\r\n\r\n")[2]
    with socket.create_connection(_address(server), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(request * 39 + last)
        chunks = []
        start = time.monotonic()
        while chunk := sock.recv(32 * 1024):
            chunks.append(chunk)
            time.sleep(len(chunk) / 500_000)
    replies = b"".join(chunks).split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(replies) == 40 and all(reply.endswith(body) for reply in replies)
    assert time.monotonic() - start > 3 * SEND_TIMEOUT_S  # it took several periods


def test_a_connection_that_pipelines_too_many_requests_is_answered_up_to_the_limit_then_closed(
    server,
):
    """uvicorn parses every request a read holds and queues them all (256 KB of pipelined GETs
    made 6,393 queued requests, ~15 MB, per connection): the server takes the one in progress
    and max_pipelined_requests more, answers them in order, the last with Connection: close,
    and closes. Fewer are all answered and the connection stays open."""
    before = _cut(server, "too_many_pipelined")
    request = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(_address(server), timeout=5) as sock:
        sock.sendall(request * 5000)
        answer = b""
        while chunk := sock.recv(65536):  # until the server's FIN
            answer += chunk
        # A lingering close (RFC 9112 9.6): what still comes is read and dropped, not reset.
        for _ in range(3):
            sock.sendall(request * 100)
            time.sleep(0.05)
    replies = answer.split(b"HTTP/1.1 ")[1:]
    assert len(replies) == MAX_PIPELINED + 1
    assert all(reply.startswith(b"200 ") for reply in replies)
    assert b"connection: close" in replies[-1].lower()
    assert not any(b"connection: close" in reply.lower() for reply in replies[:-1])
    assert _cut(server, "too_many_pipelined") == before + 1
    with socket.create_connection(_address(server), timeout=5) as sock:
        sock.sendall(request * MAX_PIPELINED)
        received = b""
        while received.count(b'{"live":true}') < MAX_PIPELINED:
            received += sock.recv(65536)
        sock.sendall(request)  # still open
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert httpx.get(f"{server}/v2/health/live").status_code == 200


def _server_side_state(server_port: int, client_port: int) -> str | None:
    """The TCP state of the server's end of a loopback connection (/proc/net/tcp)."""
    states = {"01": "ESTABLISHED", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "07": "CLOSE"}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == server_port and int(remote, 16) == client_port:
            return states.get(fields[3], fields[3])
    return None


def test_connections_beyond_the_limit_are_refused_and_the_server_serves_on(server):
    before = _cut(server, "too_many_connections")
    idle = [socket.create_connection(_address(server)) for _ in range(6)]
    try:
        time.sleep(0.2)
        # Answered as soon as it connects (before it sends anything), then closed.
        refused = _raw(server, b"")
        _problem(refused, 503, "overloaded")
        assert b"\r\nretry-after: 1\r\n" in refused.lower()
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(f"{server}/v2/health/live").status_code == 200
    assert _cut(server, "too_many_connections") == before + 1


def test_a_body_sent_after_its_early_answer_is_discarded_and_the_connection_goes_on(server):
    """A 404 (unknown model) and a 413 (its Content-Length) come before the body; the client
    sends the body anyway, then its next request on the same connection: the body, far more
    than a request head may be, is discarded, not read as a head (a 431 before)."""
    before = _cut(server, "headers_too_large")
    with socket.create_connection(_address(server), timeout=5) as sock:
        for path, length in (
            ("/v1/models/gone:predict", 60_000),
            ("/v1/models/x:predict", 200_000),
        ):
            head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
            sock.sendall(head.encode())
            answer = _response(sock)
            assert answer.split(b" ")[1] in (b"404", b"413"), answer
            sock.sendall(b"x" * length)
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200 ")
    assert _cut(server, "headers_too_large") == before


def test_a_slow_body_after_its_early_answer_is_discarded_to_its_end_at_the_minimum_rate(server):
    """A 404 at the headers of a 16 KB upload sent at 8 KB/s, two seconds, past the 1 s of
    body_timeout_s: each 4 KB discarded earns a second more, so the client sends it all, reads
    its 404 and goes on (cut after 1 s before, a reset for the client's next send)."""
    with socket.create_connection(_address(server), timeout=5) as sock:
        head = "POST /v1/models/gone:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 16000\r\n\r\n"
        sock.sendall(head.encode())
        for _ in range(10):
            time.sleep(0.2)
            sock.sendall(b"x" * 1600)
        assert _response(sock).startswith(b"HTTP/1.1 404 ")
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200 ")


def _response(sock: socket.socket) -> bytes:
    """One whole response (its head and ``Content-Length`` bytes of body) read from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head = data.partition(b"\r\n\r\n")[0]
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))
    while len(data) < len(head) + 4 + length:
        data += sock.recv(65536)
    return data


def test_slow_uploads_hold_no_slot_and_are_served_when_their_bodies_come(tiny_only):
    """A slow POST attack: more clients than the server takes at once each send their headers
    and a byte of body, then wait. Another client is served meanwhile (before: every slot of
    max_inflight_requests and of the model's cap was held, 503 / 429), and each slow upload,
    once whole, is answered 200: its deadline (0.5 s here) did not run while its bytes were
    awaited (before: 504)."""
    process, url = start_server(
        tiny_only,
        max_inflight_requests="3",
        max_queue_size="3",
        request_timeout_ms="500",
        max_connections="16",
    )
    body = json.dumps(_pixels()).encode()
    head = (
        "POST /v1/models/tiny_image:predict HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    slow = [socket.create_connection(_address(url), timeout=5) for _ in range(6)]
    try:
        for sock in slow:
            sock.sendall(head + body[:1])
        time.sleep(0.8)  # past the deadline, had it run from the headers
        for _ in range(3):
            reply = httpx.post(f"{url}/v1/models/tiny_image:predict", json=_pixels())
            assert reply.status_code == 200, reply.text
        for sock in slow:  # one after another: together they would pass the queue's size
            sock.sendall(body[1:])
            assert _response(sock).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in slow:
            sock.close()
        stop_server(process)


def test_an_expect_continue_request_answered_early_says_connection_close(server):
    """curl sends large bodies with Expect: 100-continue and waits for the 100 before sending
    them: after a 413 instead, the connection cannot tell whether a body will follow."""
    head = (
        b"POST /v1/models/tiny_image:predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 900000000\r\nExpect: 100-continue\r\n\r\n"
    )
    answer = _raw(server, head)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"\r\nconnection: close\r\n" in answer


def test_head_is_answered_like_get_without_a_body(server):
    """A load balancer's health check may send HEAD: the head of the GET's reply, no body, and
    the connection goes on."""
    with socket.create_connection(_address(server), timeout=5) as sock:
        for path in ("/v2/health/ready", "/healthz", "/v1/models/tiny_image"):
            sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            answer = sock.recv(65536)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ") and body == b"", answer
            get = httpx.get(f"{server}{path}", headers={"Accept-Encoding": "identity"})
            assert b"content-length: %d" % len(get.content) in head
        sock.sendall(b"HEAD /v2/models/tiny_image/infer HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 405 ") and b"\r\nallow: POST\r\n" in answer
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200 ")


def test_an_upgrade_to_websocket_is_answered_as_plain_http(server):
    upgrade = (
        b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    with socket.create_connection(_address(server), timeout=5) as sock:
        sock.sendall(upgrade)
        assert _response(sock).startswith(b"HTTP/1.1 200 ")  # (a 403 with WebSockets on)


def test_gzip_and_deflate_bodies_are_decoded(server):
    body = httpx.Request("POST", "/", json=_pixels(2)).read()
    for encoding, data in (("gzip", gzip.compress(body)), ("deflate", _zlib(body))):
        reply = httpx.post(
            f"{server}/v1/models/tiny_image:predict",
            content=data,
            headers={"Content-Encoding": encoding, "Content-Type": "application/json"},
        )
        assert reply.status_code == 200, (encoding, reply.text)
        assert len(reply.json()["predictions"]) == 2


def _chunked(body: bytes, size: int) -> bytes:
    """``body`` in HTTP/1.1 chunks of ``size`` bytes, with the last chunk."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def test_a_body_of_tiny_chunks_gets_400_and_the_connection_ends(server):
    """Each chunk costs the event loop a callback however small it is: a chunked body may
    have 64 chunks and one more per min_body_chunk_bytes (1024) of data; more: 400. Ordinary
    chunks (here 2 KB; 64 of 1 byte, then 4 KB) are read as any body."""
    body = httpx.Request("POST", "/", json=_pixels(40)).read()
    assert len(body) > 10_000
    head = (
        b"POST /v1/models/tiny_image:predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    )
    before = _cut(server, "small_chunks")
    for chunks in (_chunked(body, 2048), _chunked(body[:64], 1)[:-5] + _chunked(body[64:], 4096)):
        ordinary = _raw(server, head + b"Connection: close\r\n\r\n" + chunks)
        assert ordinary.startswith(b"HTTP/1.1 200 "), ordinary[:200]
    tiny = _raw(server, head + b"\r\n" + _chunked(body, 1))
    problem = _problem(tiny, 400, "malformed-request")
    assert "min_body_chunk_bytes" in problem["detail"]
    assert _cut(server, "small_chunks") == before + 1
    assert httpx.get(f"{server}/v2/health/live").status_code == 200


def test_a_transfer_coding_other_than_chunked_gets_501(server):
    """The parser takes "gzip, chunked" as chunked: the app would get gzip bytes as the body.
    RFC 9112 6.1: a transfer coding the server does not know is a 501."""
    before = _cut(server, "transfer_coding")
    for codings in (b"gzip, chunked", b"deflate\r\nTransfer-Encoding: chunked"):
        answer = _raw(
            server,
            b"POST /v1/models/tiny_image:predict HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: " + codings + b"\r\n\r\n" + gzip.compress(b"{}") + b"\r\n",
        )
        problem = _problem(answer, 501, "transfer-coding-not-implemented")
        assert "chunked" in problem["detail"]
    assert _cut(server, "transfer_coding") == before + 2
    chunked = _raw(
        server,
        b"POST /v1/models/tiny_image:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Transfer-Encoding: Chunked\r\n\r\n" + _chunked(json.dumps(_pixels(1)).encode(), 4096),
    )
    assert chunked.startswith(b"HTTP/1.1 200 ")


def test_a_zip_bomb_is_refused_at_the_body_limit(server):
    bomb = gzip.compress(b"[" * 50_000_000)  # 50 MB of brackets in ~50 KB
    assert len(bomb) < 100_000
    reply = httpx.post(
        f"{server}/v1/models/tiny_image:predict",
        content=bomb,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert reply.status_code == 413 and "decoded" in reply.json()["error"]


def test_large_responses_are_gzipped_for_clients_that_accept_it(server):
    reply = httpx.post(f"{server}/v1/models/tiny_image:predict", json=_pixels(64))
    assert reply.status_code == 200 and reply.headers.get("content-encoding") == "gzip"
    plain = httpx.post(
        f"{server}/v1/models/tiny_image:predict",
        json=_pixels(64),
        headers={"Accept-Encoding": "identity"},
    )
    assert "content-encoding" not in plain.headers
    assert reply.json() == plain.json()
    for refused in ("gzip;q=0", "gzip;q=0.000, identity", "*;q=0, identity", "x-gzip-not"):
        reply = httpx.post(
            f"{server}/v1/models/tiny_image:predict",
            json=_pixels(64),
            headers={"Accept-Encoding": refused},
        )
        assert "content-encoding" not in reply.headers, refused
    for accepted in ("br;q=1, GZIP;q=0.5", "*", "deflate, *;q=0.1"):
        reply = httpx.post(
            f"{server}/v1/models/tiny_image:predict",
            json=_pixels(64),
            headers={"Accept-Encoding": accepted},
        )
        assert reply.headers.get("content-encoding") == "gzip", accepted


def _zlib(data: bytes) -> bytes:
    import zlib

    return zlib.compress(data)


# ---- SIGTERM ---------------------------------------------------------------------------------
def test_sigterm_drains_without_failing_a_request(tiny_only):
    """Readiness turns 503 at once, requests keep being answered through the drain window,
    and the process exits on its own within the graceful timeout, even with a slow client."""
    process, url = start_server(
        tiny_only, drain_seconds="2", graceful_timeout_seconds="6", body_timeout_s="30"
    )
    results: list[int | str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=10) as session:
            while not stop.is_set():
                try:
                    reply = session.post(f"{url}/v1/models/tiny_image:predict", json=_pixels())
                    results.append(reply.status_code)
                except httpx.HTTPError as exc:
                    results.append(type(exc).__name__)

    # A client that opens a request and trickles its body: it must not hold the shutdown.
    slow = socket.create_connection(_address(url))
    slow.sendall(
        b"POST /v1/models/tiny_image:predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    threads = [threading.Thread(target=client) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        ready = httpx.get(f"{url}/v2/health/ready", timeout=2)
        assert ready.status_code == 503 and "shutting down" in ready.json()["reasons"][0]
        time.sleep(1.0)  # still inside the drain window: the load balancer moves clients away
        stop.set()
        for thread in threads:
            thread.join(10)
        process.wait(15)
        exited_after = time.monotonic() - signalled
    finally:
        stop.set()
        slow.close()
        stop_server(process)
    assert results and all(status == 200 for status in results), set(map(str, results))
    assert 2.0 <= exited_after < 6.0 + 1.5
