"""Admission control: what is decided about a request before any work is spent on it.

- The request's **arrival time** is taken as it enters the app, so that its deadline counts
  the time spent waiting for the event loop, reading and parsing the body, not just the queue.
- A **global in-flight limit** (``max_inflight_requests``): one request more is answered 503 with
  ``Retry-After`` at once, before its body is read. Health probes and ``/metrics`` are never
  refused, so an overloaded replica still says whether it is alive.
- While the server **drains** (SIGTERM, see ``app.server``) every response says
  ``Connection: close`` so that clients move their keep-alive connections elsewhere.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_response

_arrival: ContextVar[float | None] = ContextVar("request_arrival", default=None)

# Never refused nor counted: probes must answer under any load.
UNLIMITED_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/healthz", "/metrics"})


def arrival_time() -> float:
    """``time.monotonic()`` when the current request entered the app (now, outside one)."""
    arrived = _arrival.get()
    return time.monotonic() if arrived is None else arrived


def deadline_after(timeout_s: float) -> float:
    """The monotonic time by which the current request must be answered."""
    return arrival_time() + timeout_s


class ServerState:
    """What the whole process knows about itself: draining or not (set by ``app.server``)."""

    def __init__(self) -> None:
        self.draining = False
        self.inflight = 0


class AdmissionMiddleware:
    """Outermost app middleware: stamps the arrival time, enforces the in-flight limit and
    closes connections while draining."""

    def __init__(self, app: ASGIApp, *, state: ServerState, max_inflight: int) -> None:
        self.app = app
        self.state = state
        self.max_inflight = max_inflight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _arrival.set(time.monotonic())
        try:
            if scope["path"] in UNLIMITED_PATHS:
                await self.app(scope, receive, self._closing(send))
                return
            state = self.state
            if state.inflight >= self.max_inflight:
                response = error_response(
                    scope["path"],
                    503,
                    f"the server is handling {state.inflight} requests, its limit "
                    f"(max_inflight_requests); retry later",
                    title="Server overloaded",
                    slug="overloaded",
                    headers={"Retry-After": "1"},
                )
                await response(scope, receive, self._closing(send))
                return
            state.inflight += 1
            try:
                await self.app(scope, receive, self._closing(send))
            finally:
                state.inflight -= 1
        finally:
            _arrival.reset(token)

    def _closing(self, send: Send) -> Send:
        if not self.state.draining:
            return send

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        return send_closing
