"""The request body before any route sees it: size limit, read timeout, gzip/deflate decoding.

Pure ASGI (cheap on the hot path):

- a declared ``Content-Length`` over ``max_body_bytes`` is a 413 before a byte is read; a body
  sent without one (chunked) is counted as it arrives and stopped at the limit;
- the whole body must arrive within ``body_timeout_s`` of the request's start, plus one second
  for every ``body_min_rate_bytes`` received (Apache's ``mod_reqtimeout`` ``MinRate``), else
  408 and the connection is closed: a client trickling its body never holds the server, and a
  large file on a slow link that keeps that rate is never cut off;
- ``Content-Encoding: gzip`` / ``deflate`` bodies (tritonclient's
  ``request_compression_algorithm``) are decoded, with the *decoded* size under the same limit:
  a zip bomb is a 413 after at most ``max_body_bytes`` of output;
- the bodies of all the requests in progress (as received, and decoded) share
  ``max_body_memory_bytes``: a request whose body would pass it is refused (503 +
  ``Retry-After``), before a byte is read when its ``Content-Length`` says so. Each body is
  bounded on its own, but many large ones at once (each costing its bytes and more while it is
  parsed) would otherwise take the process's memory; a request that finds no other body in
  memory is always admitted.
"""

from __future__ import annotations

import asyncio
import time
import zlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import (
    InvalidInputError,
    PayloadTooLargeError,
    RequestTimeoutError,
    ServerOverloadedError,
    ServingError,
    UnsupportedMediaTypeError,
    serving_error_response,
)

_ENCODINGS = {b"gzip", b"x-gzip", b"deflate"}
_IDENTITY = {b"", b"identity"}
# Bodies that decode to more than this are decoded in a worker thread. Judged by the output:
# 18 KB of gzip can hold 19 MB (~90 ms of the event loop).
_INLINE_DECODE_BYTES = 64 * 1024


class BodyMemory:
    """The bytes of request bodies held in memory by the requests in progress (one event loop:
    no lock), against ``capacity``. A request that holds all of it (or nothing is held) may
    always go on: one body alone is bounded by ``max_body_bytes``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0

    def check(self, size: int, own: int = 0) -> None:
        """503 unless ``size`` more bytes fit, for a request that holds ``own`` already."""
        if self.used > own and self.used + size > self.capacity:
            raise ServerOverloadedError(
                f"request bodies in memory would exceed {self.capacity} bytes "
                "(max_body_memory_bytes); retry later"
            )

    def take(self, size: int, held: list[int]) -> None:
        self.check(size, held[0])
        self.used += size
        held[0] += size


def body_allowance_s(timeout_s: float, received: int, min_rate_bytes: int) -> float:
    """The seconds a body may take once ``received`` bytes of it have come: ``body_timeout_s``
    plus 1 s per ``body_min_rate_bytes`` (0: none). The same rule for a body being read (here)
    and for the rest of one answered before it came (``app.server``)."""
    return timeout_s + (received / min_rate_bytes if min_rate_bytes else 0.0)


class RequestBodyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout_s: float,
        max_body_memory_bytes: int,
        body_min_rate_bytes: int = 0,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.body_min_rate_bytes = body_min_rate_bytes
        self.memory = BodyMemory(max_body_memory_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held = [0]  # this request's bytes in self.memory, given back when it ends
        try:
            try:
                scope, receive = await self._prepare(scope, receive, held)
            except ServingError as exc:  # raised here, before a route could map it
                await serving_error_response(scope["path"], exc)(scope, receive, send)
                return
            await self.app(scope, receive, send)
        finally:
            self.memory.used -= held[0]

    async def _prepare(
        self, scope: Scope, receive: Receive, held: list[int]
    ) -> tuple[Scope, Receive]:
        """The scope and receive the app gets: limited, timed, decoded, its memory counted."""
        limit = self.max_body_bytes
        declared, encoding = _body_headers(scope)
        if declared is not None and declared > limit:
            raise PayloadTooLargeError(
                f"request body of {declared} bytes exceeds the limit of {limit} bytes "
                "(max_body_bytes)"
            )
        if declared:
            self.memory.check(declared)  # refused before its body is read
        timed_receive = self._held(self._timed(receive, time.monotonic()), held)
        if encoding in _IDENTITY:
            return scope, timed_receive
        if encoding not in _ENCODINGS:
            raise UnsupportedMediaTypeError(
                f"Content-Encoding '{encoding.decode('latin-1')}' is not supported; send gzip, "
                "deflate or no encoding"
            )
        compressed = await _read_all(timed_receive)
        body = decompress(compressed, _INLINE_DECODE_BYTES, limit)
        if body is None:
            body = await asyncio.to_thread(decompress, compressed, limit, limit)
        self.memory.take(len(body), held)
        headers = [
            (k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        return {**scope, "headers": headers}, _replay(body, receive)

    def _held(self, receive: Receive, held: list[int]) -> Receive:
        """Each chunk of the body counted in ``self.memory`` as it arrives (503 past it), and
        against ``max_body_bytes`` (413 past it: a body sent without a length, or compressed)."""
        memory, limit = self.memory, self.max_body_bytes

        async def holding_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                memory.take(len(message.get("body", b"")), held)
                if held[0] > limit:  # (the body as received: decoded bytes come later)
                    raise PayloadTooLargeError(
                        f"request body exceeds the limit of {limit} bytes (max_body_bytes)"
                    )
            return message

        return holding_receive

    def _timed(self, receive: Receive, start: float) -> Receive:
        timeout_s, rate = self.body_timeout_s, self.body_min_rate_bytes
        received = 0

        async def timed_receive() -> Message:
            nonlocal received
            deadline = start + body_allowance_s(timeout_s, received, rate)
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeoutError(
                    f"the request body did not arrive within {timeout_s:g} s "
                    + (
                        f"and 1 s per {rate} bytes received ({received} bytes): body_timeout_s, "
                        "body_min_rate_bytes"
                        if rate
                        else "(body_timeout_s)"
                    )
                ) from None
            received += len(message.get("body", b""))
            return message

        return timed_receive


def decompress(data: bytes, budget: int, limit: int) -> bytes | None:
    """gzip or zlib (``deflate``) data, raw deflate too; 413 past ``limit`` bytes of output,
    None (nothing returned) past ``budget`` bytes, when ``budget`` is below ``limit``."""
    for wbits in (47, -15):  # 47: gzip or zlib, told by the header; -15: raw deflate
        decoder = zlib.decompressobj(wbits)
        try:
            body = decoder.decompress(data, budget + 1)
        except zlib.error:
            continue
        if len(body) > budget or decoder.unconsumed_tail:
            if budget < limit:
                return None
            raise PayloadTooLargeError(
                f"the decoded request body exceeds the limit of {limit} bytes (max_body_bytes)"
            )
        if not decoder.eof:
            raise InvalidInputError("the compressed request body is truncated")
        return body
    raise InvalidInputError("the request body is not valid gzip or deflate data")


def _body_headers(scope: Scope) -> tuple[int | None, bytes]:
    declared, encoding = None, b""
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = None
        elif key == b"content-encoding":
            encoding = value.strip().lower()
    return declared, encoding


async def _read_all(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # http.disconnect, when the client leaves

    return replay
