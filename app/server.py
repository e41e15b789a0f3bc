"""The HTTP server: uvicorn with the limits a public endpoint needs, and a graceful drain.

``python -m app`` runs :func:`serve`. Besides the app's own limits (``app.limits``,
``app.admission``) it bounds what a client can do at the connection level, where the app never
sees it:

- **connections:** at most ``max_connections`` open; one more is answered 503 and closed;
- **pipelining:** at most ``max_pipelined_requests`` requests queued behind the one in
  progress on a connection; the last one taken is answered with ``Connection: close`` and
  nothing after it is parsed (uvicorn parses every request a read holds: 256 KB of pipelined
  ``GET``s made 6,393 queued requests, ~15 MB, per connection); while the queued requests hold
  more than 64 KB of body, nothing more is read until they start;
- **chunked bodies:** 64 chunks and one more per ``min_body_chunk_bytes`` of data (400): a
  chunk costs a parser callback however small it is;
- **request head:** line plus headers at most ``max_header_bytes`` (431), sent within
  ``header_timeout_s`` of the first byte (or of connecting; 408): slow-header clients
  (slowloris) are cut off and never pin a file descriptor;
- **idle keep-alive** connections close after ``keep_alive_timeout_s``; no ``server`` header;
  no WebSocket (an ``Upgrade`` request is answered as plain HTTP);
- **a body the server has already answered** (a 404, 413, 429... sent before the whole body
  came) is read and discarded, like any body, within ``body_timeout_s`` of the answer plus 1 s
  for every ``body_min_rate_bytes`` discarded (of at most ``max_body_bytes``: no longer than
  reading the largest body allowed), else the connection is closed: the next bytes
  are the body's, never a new request's head, and a client that trickles (or stops) such a
  body cannot hold the connection; a request that carried ``Expect: 100-continue`` and was
  answered before its body was asked for is answered with ``Connection: close`` (the client
  may or may not send that body: what follows could be either, so the connection cannot go
  on);
- **slow readers:** a response the client stops reading (its bytes past the kernel's socket
  buffer and the transport's high-water mark) is given ``send_timeout_s`` without progress,
  then the connection is aborted: a client that never reads a large reply (an explanation,
  a bulk prediction) cannot hold its request, its memory and an in-flight slot for ever
  (nginx's ``send_timeout``; uvicorn has none);
- **admission at the headers** (``app.admission.quick_admission``): an inference request is
  refused (429) or admitted to its model's adaptive cap (``app.concurrency``) before its body
  is read; a connection refused again and again gets its next 429s later.

**SIGTERM** (what Kubernetes and ``docker stop`` send): readiness turns 503 at once and every
response says ``Connection: close``; the server keeps answering for ``drain_seconds`` so that a
load balancer can take it out of rotation; then it stops accepting, finishes every admitted and
queued request, and exits within ``graceful_timeout_seconds`` of the signal whatever the clients
do. A second SIGTERM (or Ctrl-C) skips the rest of the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import struct
import termios
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import httptools
import uvicorn
from starlette.types import Message
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import STARTUP_FAILURE

from app import metrics, request_ids
from app.admission import BULK_KEY, QuickAdmission, ServerState, quick_admission
from app.concurrency import ConcurrencyLimit
from app.config import Settings
from app.errors import (
    HeadersTooLargeError,
    MalformedRequestError,
    RequestTimeoutError,
    ServerOverloadedError,
    ServingError,
    TransferCodingNotImplementedError,
    error_bytes,
)
from app.image_pool import POOL_SECONDS_KEY
from app.limits import body_allowance_s
from app.security import key_problem
from app.worker_control import SharedControl

logger = logging.getLogger("app.server")


def _canned(error: ServingError) -> bytes:
    """A complete response that closes the connection, written before any route is chosen:
    the RFC 9457 problem the app itself answers for ``error``."""
    return error_bytes("", error, close=True)


_TOO_MANY_CONNECTIONS = _canned(ServerOverloadedError("too many connections; retry later"))


def _with_header(response: bytes, header: bytes) -> bytes:
    """A whole HTTP response, as bytes, with one more header line."""
    head, blank_line, body = response.partition(b"\r\n\r\n")
    return head + b"\r\n" + header + blank_line + body


class _Rejected(Exception):
    """Raised in a parser callback to stop parsing a request already answered."""


LINGER_S = 2.0  # a connection the server ends reads (and drops) what still comes this long
FREE_CHUNKS = 64  # chunks a chunked body may have whatever their size (min_body_chunk_bytes)


class _PipelineBoundFlow(FlowControl):
    """uvicorn's flow control, except that reading is not resumed while the requests queued
    behind the one in progress (pipelined) hold more than ``HIGH_WATER_LIMIT`` (64 KB) of
    body. uvicorn resumes reading after each answer and as each request starts, and the bodies
    of queued requests are buffered outside ``max_body_memory_bytes``: 200 connections each
    pipelining 33 POSTs of 60 KB took 230 MB. The request in progress never waits for this
    (its body came whole before the next request began); the queued ones read on as they
    start."""

    def __init__(self, transport, pipeline) -> None:
        super().__init__(transport)
        self._pipeline = pipeline

    def resume_reading(self) -> None:
        if self._pipeline and (
            sum(len(cycle.body) for cycle, _ in self._pipeline) > HIGH_WATER_LIMIT
        ):
            return
        super().resume_reading()


class _LingeringOnClose:
    """A transport whose ``close()`` is the protocol's lingering close: for the cycle of the
    last request answered on a connection the server ends (uvicorn closes it after that
    answer)."""

    def __init__(self, transport, close: Callable[[], None]) -> None:
        self._transport = transport
        self.close = close

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class _Timer:
    """One of a connection's timers: armed at most once at a time, idle again once it fires or
    is cancelled."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None

    @property
    def armed(self) -> bool:
        return self._handle is not None

    def arm(self, delay_s: float) -> None:
        if self._handle is None:
            self._handle = self._loop.call_later(delay_s, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._callback()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a connection cap, a request-head size cap, a
    request-head timeout and a send timeout (uvicorn has none of the four for httptools), and
    the app's admission at the headers."""

    max_connections = 1024
    max_header_bytes = 16 * 1024
    max_pipelined_requests = 32
    min_body_chunk_bytes = 1024
    header_timeout_s = 10.0
    body_timeout_s = 30.0
    body_min_rate_bytes = 16 * 1024
    max_body_bytes = 20 * 1024 * 1024
    send_timeout_s = 30.0
    quick_admission: QuickAdmission | None = None  # see app.admission.quick_admission
    api_keys: list[bytes] = []  # set: only a request with a valid key is admitted early
    refusal_delay_s = 0.0
    refusal_max_delay_s = 0.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        # This protocol stopped the parser (a refused head or body, a cut pipeline) and ends
        # the connection: nothing more is parsed, and what still comes is dropped.
        self._ending = False
        self._chunks = 0  # chunks begun in this request's chunked body
        self._chunked_bytes = 0  # ... and their bytes
        self._transfer_codings: list[bytes] = []  # this request's Transfer-Encoding, in order
        self._in_head = True  # reading a request line and headers
        self._head_bytes = 0  # bytes received while in the head (a lower bound of its size)
        self._head_size = 0  # the parsed head's size
        self._skipping = False  # a request refused at its headers: its body is discarded
        self._refusal_pending = False  # ... and its 429 not sent yet (refusal_delay_s)
        self._closing_after_refusal = False  # ... to an Expect: 100-continue request
        self._message_done = False  # the parser's current request has been received whole
        # The model's cap that admitted the request in progress: a slot of it is held from the
        # request's last body byte (a slow upload holds none) to its answer's.
        self._admitted_by: ConcurrencyLimit | None = None
        self._slot: ConcurrencyLimit | None = None
        self._slot_since = 0.0
        self._slot_state: dict = {}  # the request's scope["state"]: what the app reports
        self._refused_in_a_row = 0  # this connection's requests refused since its last admitted
        # Armed while the request head is awaited; while the body of an answered request is
        # discarded; while writing is paused (the client is not reading).
        self._head_timer = _Timer(self.loop, self._head_timeout)
        self._discard_timer = _Timer(self.loop, self._discard_timeout)
        self._discard_since = 0.0  # when the discard timer was first armed for this body
        self._discarded = 0  # bytes of that body received since
        self._send_timer = _Timer(self.loop, self._send_stalled)
        self._send_left = 0  # bytes still buffered when the send timer was armed

    # ---- connection
    def connection_made(self, transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self._refused = True
            self.transport = transport
            transport.write(_TOO_MANY_CONNECTIONS)
            metrics.CONNECTIONS_CUT.labels("too_many_connections").inc()
            transport.close()
            return
        super().connection_made(transport)
        self.flow = _PipelineBoundFlow(transport, self.pipeline)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_timer.cancel()
        self._discard_timer.cancel()
        self._send_timer.cancel()
        self._release_slot(measured=False)
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or self._ending:
            return
        if self._in_head:
            self._head_bytes += len(data)
        self._feed(data)
        # Still in the head after all these bytes: the head alone is that large.
        if (
            self._in_head
            and self._head_bytes > self.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._reject_large_head()

    def _feed(self, data: bytes) -> None:
        """uvicorn's ``data_received``, less its "Invalid HTTP request" warning and 400 when
        the parser stopped because this protocol stopped it (a refused head, a cut pipeline)."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if not self._ending:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)

    # ---- parser callbacks
    def on_message_begin(self) -> None:
        if len(self.pipeline) >= self.max_pipelined_requests:
            self._cut_pipeline()
            raise _Rejected  # stops the parser: this request and the bytes after it are dropped
        # A request has begun: the connection is not idle. (A keep-alive timer armed after the
        # previous request, whose end came in the same read as this one's start, would
        # otherwise close the connection while this request is held or served.)
        self._unset_keepalive_if_required()
        super().on_message_begin()
        self._message_done = False
        self._head_size = 0
        self._chunks = self._chunked_bytes = 0
        self._transfer_codings = []
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if len(name) == 17 and name.lower() == b"transfer-encoding":
            self._transfer_codings.extend(
                coding.strip().lower() for coding in value.split(b",") if coding.strip()
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_timer.cancel()
        if self._head_size > self.max_header_bytes:
            self._reject_large_head()
            raise _Rejected  # stops the parser: no request is started
        if self._transfer_codings and self._transfer_codings != [b"chunked"]:
            # The parser takes "gzip, chunked" as chunked and would hand on gzip bytes as the
            # body. (Content-Encoding: gzip is decoded: app.limits.)
            codings = b", ".join(self._transfer_codings).decode("latin-1")[:100]
            message = f"Transfer-Encoding '{codings}' is not implemented; send chunked or none"
            self._reject(TransferCodingNotImplementedError(message), "transfer_coding")
            raise _Rejected
        if self._admit_early():
            return  # refused here: the app never sees the request
        super().on_headers_complete()
        if self.expect_100_continue:
            self._close_if_body_never_asked(self.cycle)

    def _close_if_body_never_asked(self, cycle: RequestResponseCycle) -> None:
        """An answer to an ``Expect: 100-continue`` request sent before the app read its body
        (no ``100 Continue`` went out) says ``Connection: close``, and the connection ends with
        it: the client may send the body anyway or not at all, so what follows on the
        connection could be either."""
        send = cycle.send

        async def send_closing_if_body_never_asked(message: Message) -> None:
            if (
                message["type"] == "http.response.start"
                and cycle.waiting_for_100_continue
                and cycle.more_body
            ):
                cycle.keep_alive = False  # uvicorn adds the header and closes after the answer
            await send(message)

        cycle.send = send_closing_if_body_never_asked  # type: ignore[method-assign]

    def _admit_early(self) -> bool:
        """The app's quick admission (``app.admission``) at the request's headers: an admitted
        request holds a slot of its model's cap until its answer ends; a refused one gets its
        429 at once or held (:meth:`_refusal_delay`). True when refused."""
        if (
            self.quick_admission is None
            or self.pipeline
            or (self.cycle is not None and not self.cycle.response_complete)
        ):
            return False
        if self.api_keys and key_problem(self.headers, self.api_keys) is not None:
            return False  # the app answers 401: a refusal must not come before the key check
        path, _, query = self.url.partition(b"?")
        verdict = self.quick_admission(self.parser.get_method(), path, query, self._body_bytes())
        if verdict is None:
            return False
        if isinstance(verdict, ConcurrencyLimit):
            self._release_slot(measured=False)  # (none held: one request at a time)
            self._admitted_by = verdict  # its slot is taken when the body has come
            self._refused_in_a_row = 0
            return False
        request_id = request_ids.from_headers(self.headers)
        if request_id is not None:  # the request's own ID, as the app echoes it
            verdict = _with_header(verdict, request_ids.HEADER_BYTES + b": " + request_id.encode())
        if self.expect_100_continue:
            # The client may be holding its body back: the connection ends with the refusal.
            verdict = _with_header(verdict, b"connection: close")
            self._closing_after_refusal = True
        self._skipping = True
        self._refusal_pending = True
        delay_s = self._refusal_delay()
        if delay_s > 0:
            # Nothing more is read from this client until its refusal is sent.
            self.flow.pause_reading()
            self.loop.call_later(delay_s, self._send_refusal, verdict)
        else:
            self._send_refusal(verdict)
        return True

    def _body_bytes(self) -> int | None:
        """The request's ``Content-Length`` (None without one: chunked)."""
        for name, value in self.headers:
            if name == b"content-length":
                return int(value) if value.isdigit() else None  # (the parser checked it)
        return None

    def _refusal_delay(self) -> float:
        """How long this refusal is held: none for a first refusal (or one after an admitted
        request), then ``refusal_delay_s`` doubled for each further refusal in a row on this
        connection, up to ``refusal_max_delay_s``. A client that resends at once, ignoring
        ``Retry-After``, is slowed down instead of turning the server into a refusal loop."""
        in_a_row = self._refused_in_a_row
        self._refused_in_a_row += 1
        if in_a_row == 0:
            return 0.0
        longest = max(self.refusal_max_delay_s, self.refusal_delay_s)
        return min(self.refusal_delay_s * 2 ** min(in_a_row - 1, 16), longest)

    def _send_refusal(self, refusal: bytes) -> None:
        if self.transport.is_closing() or self._ending:
            return
        self.transport.write(refusal)
        self._refusal_pending = False
        if self._closing_after_refusal:
            self.transport.close()
            return
        self.flow.resume_reading()
        if self._message_done:
            self._next_request()
        else:
            self._arm_discard_timer()

    def on_chunk_header(self) -> None:
        """Each chunk of a chunked body costs a parser callback or two however small it is: a
        body may have ``FREE_CHUNKS`` chunks and one more per ``min_body_chunk_bytes`` of its
        data; more get a 400 and the connection ends (16 connections sending 1-byte chunks at
        22 MB/s held a liveness probe for up to 5 s; 1.5 GB/s of ordinary bodies, 0.4 s)."""
        self._chunks += 1
        complete = self._chunks - 1
        if (
            self.min_body_chunk_bytes
            and (complete - FREE_CHUNKS) * self.min_body_chunk_bytes > self._chunked_bytes
            and not self._ending
        ):
            self._refuse_small_chunks(complete)
            raise _Rejected

    def _refuse_small_chunks(self, chunks: int) -> None:
        cycle = self.cycle
        message = (
            f"the body came in {chunks} chunks for {self._chunked_bytes} bytes; a chunked body "
            f"may have {FREE_CHUNKS} chunks and one more per {self.min_body_chunk_bytes} bytes "
            "(min_body_chunk_bytes)"
        )
        if cycle is not None and not cycle.response_complete:
            # The app stops reading the body (a disconnect) and answers nothing more.
            cycle.disconnected = True
            cycle.message_event.set()
        # A request that has its answer (a refusal at its headers, an early one from the app),
        # or has begun one, gets no other.
        answered = self._skipping or (cycle is not None and cycle.response_started)
        self._reject(None if answered else MalformedRequestError(message), "small_chunks")

    def on_body(self, body: bytes) -> None:
        self._chunked_bytes += len(body)  # (only read for a chunked body)
        if self._discard_timer.armed:
            self._discarded += len(body)
        if not self._skipping:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._message_done = True
        if not self._skipping:
            if self._discard_timer.armed:
                self._next_request()  # the body of a request already answered has ended
                return
            if self._admitted_by is not None:
                # The server's part starts with the whole body: a slow upload neither holds a
                # slot of the model's cap nor, with its latency, shrinks it for everyone.
                self._slot, self._admitted_by = self._admitted_by, None
                self._slot.acquire()
                self._slot_since = time.monotonic()
                state = self.scope.get("state")
                self._slot_state = state if state is not None else {}  # (the same dict)
            super().on_message_complete()
            return
        if not self._refusal_pending:
            self._next_request()

    def _next_request(self) -> None:
        """The answered request is over, body and all: wait for the next one, as after any
        response."""
        self._discard_timer.cancel()
        self._skipping = False
        self._in_head, self._head_bytes = True, 0
        if not self.parser.should_keep_alive():
            self.transport.close()
        elif not self.transport.is_closing():
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def _cut_pipeline(self) -> None:
        """Too many requests queued behind the one in progress: the last one taken is answered
        with ``Connection: close`` and ends the connection; the client resends the others (as
        HTTP/1.1 clients must for pipelined requests a connection closed on)."""
        self._ending = True
        self.cycle.keep_alive = False  # its answer says Connection: close, then it closes...
        self.cycle.transport = _LingeringOnClose(self.transport, self._close_lingering)
        self.flow.pause_reading()
        metrics.CONNECTIONS_CUT.labels("too_many_pipelined").inc()
        logger.info(
            "a connection sent more than %d requests ahead of its answers "
            "(max_pipelined_requests): answering those, then closing it",
            self.max_pipelined_requests,
        )

    def send_400_response(self, msg: str) -> None:
        """A request that is not HTTP (uvicorn answers it in plain text)."""
        if not self._ending:  # (else the parser stopped because this protocol stopped it)
            self.transport.write(_canned(MalformedRequestError(msg)))
            metrics.CONNECTIONS_CUT.labels("malformed_request").inc()
            self.transport.close()

    def on_response_complete(self) -> None:
        self._release_slot(measured=True)
        super().on_response_complete()
        if self._message_done:
            self._in_head, self._head_bytes = True, 0  # the next bytes start a new request
        elif self.cycle is not None and self.cycle.response_complete:
            # Answered before its whole body came: the next bytes are still that body's.
            # (uvicorn discards them; any byte cancels its keep-alive timer.)
            self._arm_discard_timer()

    # ---- discard timer: the rest of an answered request's body must come in body_timeout_s,
    # plus 1 s per body_min_rate_bytes of it (as the body of a request in progress: app.limits)
    def _arm_discard_timer(self) -> None:
        if not self.transport.is_closing() and not self._discard_timer.armed:
            self._discard_since, self._discarded = self.loop.time(), 0
            self._discard_timer.arm(self.body_timeout_s)

    def _discard_timeout(self) -> None:
        if self.transport.is_closing():
            return
        # Time is earned for at most a body the server would read (a 413's declared body may be
        # endless): a discard lasts no longer than reading the largest allowed body may.
        counted = min(self._discarded, self.max_body_bytes)
        allowed = body_allowance_s(self.body_timeout_s, counted, self.body_min_rate_bytes)
        left = self._discard_since + allowed - self.loop.time()
        if left > 0:  # still coming at the minimum rate: the answer waits for its end
            self._discard_timer.arm(left)
            return
        logger.info(
            "closing a connection whose answered request's body did not end within %g s "
            "and 1 s per %d bytes discarded (%d bytes): body_timeout_s, body_min_rate_bytes",
            self.body_timeout_s,
            self.body_min_rate_bytes,
            self._discarded,
        )
        metrics.CONNECTIONS_CUT.labels("discard_timeout").inc()
        self.transport.close()

    def _release_slot(self, *, measured: bool) -> None:
        self._admitted_by = None  # answered (or lost) before its body came: no slot was taken
        slot, self._slot = self._slot, None
        if slot is not None:
            # The model's part: not the time its pictures waited for the image pool, which
            # has its own admission (app.image_pool).
            elsewhere = self._slot_state.get(POOL_SECONDS_KEY, 0.0)
            latency = max(time.monotonic() - self._slot_since - elsewhere, 0.0)
            # Admitted in the interactive lane by its small body, it turned out to be bulk
            # work (256 short texts): its latency is not that lane's.
            if not slot.bulk and self._slot_state.get(BULK_KEY):
                measured = False
            slot.release(latency if measured else None)

    # ---- send timer: the transport pauses writing while more than its high-water mark waits
    def pause_writing(self) -> None:
        super().pause_writing()
        if not self._send_timer.armed:
            self._arm_send_timer()

    def resume_writing(self) -> None:
        self._send_timer.cancel()
        super().resume_writing()

    def _arm_send_timer(self) -> None:
        self._send_left = self._unsent_bytes()
        self._send_timer.arm(self.send_timeout_s)

    def _unsent_bytes(self) -> int:
        """What the client has not acknowledged yet: the transport's buffer and the kernel's
        send queue. (The transport's buffer alone moves in steps: the kernel says a socket is
        writable only once a third of its send buffer, up to megabytes, is free, which takes a
        slow reader many seconds.)"""
        unsent = self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                unsent += struct.unpack(
                    "i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4)
                )[0]
        return unsent

    def _send_stalled(self) -> None:
        if self._unsent_bytes() < self._send_left:
            self._arm_send_timer()  # the client reads, slowly: another period
            return
        logger.info(
            "aborting a connection whose client read nothing of its response for %g s "
            "(send_timeout_s)",
            self.send_timeout_s,
        )
        self.transport.abort()  # drops the buffered reply; the request's send returns
        metrics.CONNECTIONS_CUT.labels("send_timeout").inc()

    # ---- head timer
    def _arm_head_timer(self) -> None:
        if self._in_head:
            self._head_timer.arm(self.header_timeout_s)

    def _head_timeout(self) -> None:
        if self._in_head and not self.transport.is_closing():
            message = f"request head not received within {self.header_timeout_s:g} s"
            self._reject(RequestTimeoutError(message), "head_timeout")

    def _reject_large_head(self) -> None:
        message = f"request line and headers exceed {self.max_header_bytes} bytes"
        self._reject(HeadersTooLargeError(message), "headers_too_large")

    def _reject(self, error: ServingError | None, reason: str) -> None:
        """End the connection, answering ``error`` (None: the request has its answer)."""
        metrics.CONNECTIONS_CUT.labels(reason).inc()
        self._ending = True
        self._head_timer.cancel()
        if error is not None:
            self.transport.write(_canned(error))
        self._close_lingering()

    def _close_lingering(self) -> None:
        """End the connection in stages, as RFC 9112 section 9.6 advises (nginx's lingering
        close): the answers written go out, then a FIN, and what the client still sends is
        read and dropped for ``LINGER_S`` before the socket closes. Closing a socket with
        unread bytes sends a reset, which can destroy answers the client has not read yet."""
        transport = self.transport
        if transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_S, transport.close)


def guarded_protocol(
    settings: Settings, admission: QuickAdmission | None = None
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with this configuration's limits and the app's early admission
    (with API keys, only for a request that carries a valid one: a refusal must not come
    before the key check)."""
    return type(
        "ConfiguredHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "max_connections": settings.max_connections,
            "max_header_bytes": settings.max_header_bytes,
            "max_pipelined_requests": settings.max_pipelined_requests,
            "min_body_chunk_bytes": settings.min_body_chunk_bytes,
            "header_timeout_s": settings.header_timeout_s,
            "body_timeout_s": settings.body_timeout_s,
            "body_min_rate_bytes": settings.body_min_rate_bytes,
            "max_body_bytes": settings.max_body_bytes,
            "send_timeout_s": settings.send_timeout_s,
            "quick_admission": None if admission is None else staticmethod(admission),
            # (only inference paths are admitted early: never among the open paths)
            "api_keys": [key.get_secret_value().encode() for key in settings.api_keys],
            "refusal_delay_s": settings.refusal_delay_ms / 1000,
            "refusal_max_delay_s": settings.refusal_max_delay_ms / 1000,
        },
    )


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM/SIGINT starts a drain instead of stopping at once."""

    def __init__(self, config: uvicorn.Config, *, state: ServerState, drain_seconds: float):
        super().__init__(config)
        self.state = state
        self.drain_seconds = drain_seconds
        self._drain_ends: float | None = None
        self.on_started: Callable[[], None] | None = None  # once the app is up and serving
        self.supervisor_pid: int | None = None  # a worker's: drain and exit when it is gone

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)  # (a failed app start-up exits the process)
        if self.on_started is not None:
            self.on_started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.state.draining or self.drain_seconds <= 0:
            self.state.draining = True
            super().handle_exit(sig, frame)  # a second signal: stop now (drain skipped)
            return
        self._captured_signals.append(sig)
        self.state.draining = True
        self._drain_ends = time.monotonic() + self.drain_seconds
        logger.info(
            "signal %d: not ready, draining for %.1f s before shutting down",
            sig,
            self.drain_seconds,
        )

    async def on_tick(self, counter: int) -> bool:
        if (
            self.supervisor_pid is not None
            and counter % 10 == 0  # every second
            and os.getppid() != self.supervisor_pid
            and not self.state.draining
        ):
            # Killed (SIGKILL, a crash) without passing on SIGTERM: orphaned workers would
            # serve on, unsupervised and holding the port, as gunicorn's workers do not either.
            logger.warning("the supervisor (pid %d) is gone: draining", self.supervisor_pid)
            self.handle_exit(signal.SIGTERM, None)
        if self._drain_ends is not None and time.monotonic() >= self._drain_ends:
            self._drain_ends = None
            self.should_exit = True
        return await super().on_tick(counter)


def build_server(settings: Settings, control: SharedControl | None = None) -> DrainingServer:
    from app.main import create_app

    app = create_app(settings, control)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings, quick_admission(app)),
        # No WebSocket endpoints: an Upgrade request is answered as plain HTTP, and no
        # handshake reaches the app past the HTTP-only limits and admission.
        ws="none",
        lifespan="on",
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        # What is left of the graceful budget after the drain, for running requests (less a
        # margin for the app's own shutdown).
        timeout_graceful_shutdown=max(
            settings.graceful_timeout_seconds - settings.drain_seconds - 1.0, 0.5
        ),
        server_header=False,
        backlog=settings.max_connections,
    )
    return DrainingServer(config, state=app.state.server, drain_seconds=settings.drain_seconds)


def serve(settings: Settings) -> None:
    if settings.workers > 1:
        exit_code = Supervisor(settings).run()
        if exit_code:
            raise SystemExit(exit_code)
    else:
        build_server(settings).run()


# ---- several worker processes ---------------------------------------------------------------
def _worker(sock: socket.socket, control_dir: str, started) -> None:
    """One worker process: its own app, models, batchers and event loop, on the shared socket;
    model loads and unloads through the API shared with the others in ``control_dir``."""
    from app.config import get_settings

    server = build_server(get_settings(), SharedControl(Path(control_dir)))
    server.on_started = started.set
    server.supervisor_pid = os.getppid()
    server.run(sockets=[sock])


class Supervisor:
    """``workers`` processes accepting on one listening socket (pre-fork, as gunicorn and
    ``uvicorn --workers`` do): one event loop per core, so the HTTP side scales past one core.

    Each worker loads every model and batches on its own; Prometheus metrics are summed over the
    workers (``PROMETHEUS_MULTIPROC_DIR``); Triton API loads and unloads reach every worker
    (``app.worker_control``, in a folder of their own); a worker that dies once serving is
    replaced. A worker that exits before it has started serving (its models failed to load, or
    it was killed while loading them) stops them all, and the supervisor exits with uvicorn's
    start-up failure status, 3, as a single server does (and as gunicorn does when a worker
    fails to boot): a start-up that keeps failing is the orchestrator's to see and back off
    from, not a loop of restarts here. SIGTERM is passed to every worker, which drains as a
    single server does; the supervisor exits when they have. A worker whose supervisor is gone
    (killed without passing SIGTERM on) drains and exits within a second."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = False
        self.processes: list = []
        self.started: list = []  # each worker's multiprocessing.Event: set once it serves
        self.control_dir = ""
        self.exit_code = 0

    def run(self) -> int:
        """Serve until SIGTERM / SIGINT, or until a worker fails to start; the exit status."""
        import multiprocessing
        import shutil
        import tempfile

        metrics_dir = tempfile.mkdtemp(prefix="tf-model-serving-metrics-")
        self.control_dir = tempfile.mkdtemp(prefix="tf-model-serving-control-")
        # Before the workers import prometheus_client (they are spawned, not forked).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        sock = socket.socket(socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host, self.settings.port))
        sock.listen(self.settings.max_connections)
        sock.set_inheritable(True)
        context = multiprocessing.get_context("spawn")
        self.started = [context.Event() for _ in range(self.settings.workers)]
        self.processes = [self._start(context, sock, i) for i in range(self.settings.workers)]
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._forward)
        logger.info(
            "serving with %d workers on %s:%d",
            self.settings.workers,
            self.settings.host,
            self.settings.port,
        )
        try:
            while not self.stopping:
                for i, process in enumerate(self.processes):
                    if process.is_alive() or self.stopping:
                        continue
                    if not self.started[i].is_set():
                        logger.error(
                            "worker %d (pid %s) exited with %s before it started serving; "
                            "stopping every worker",
                            i,
                            process.pid,
                            process.exitcode,
                        )
                        self.exit_code = STARTUP_FAILURE
                        self._forward(signal.SIGTERM, None)
                        break
                    logger.error(
                        "worker %d (pid %s) exited with %s; starting another",
                        i,
                        process.pid,
                        process.exitcode,
                    )
                    _mark_dead(process.pid)
                    SharedControl(Path(self.control_dir)).forget(process.pid)
                    self.processes[i] = self._start(context, sock, i)
                time.sleep(0.5)
            end = time.monotonic() + self.settings.graceful_timeout_seconds + 5
            for process in self.processes:
                process.join(max(0.1, end - time.monotonic()))
                if process.is_alive():
                    process.kill()
                    process.join(5)
        finally:
            sock.close()
            shutil.rmtree(metrics_dir, ignore_errors=True)
            shutil.rmtree(self.control_dir, ignore_errors=True)
        return self.exit_code

    def _start(self, context, sock: socket.socket, index: int):
        self.started[index].clear()
        process = context.Process(
            target=_worker,
            args=(sock, self.control_dir, self.started[index]),
            name=f"serving-worker-{index}",
        )
        process.start()
        return process

    def _forward(self, sig: int, frame: FrameType | None) -> None:
        self.stopping = True
        for process in self.processes:
            if process.is_alive():
                os.kill(process.pid, sig)


def _mark_dead(pid: int | None) -> None:
    if pid is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
