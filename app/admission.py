"""Admission control: what is decided about a request before any work is spent on it.

- The request's **arrival time** is taken as it enters the app, so that its deadline counts
  the time spent waiting for the event loop, reading and parsing the body, not just the queue.
- A **global in-flight limit** (``max_inflight_requests``): one request more is answered 503 with
  ``Retry-After`` at once, before its body is read. Health probes and ``/metrics`` are never
  refused, so an overloaded replica still says whether it is alive.
- **A slow upload is the client's time.** While the app waits for body bytes that the client
  has not sent yet, the request holds no in-flight slot and its deadline moves on by the wait:
  clients trickling their bodies (a slow POST attack, or a big file on a slow link) cannot fill
  the limit, and an upload is not answered 504 for the time its bytes took to arrive. Reading
  the body whole is bounded apart: ``body_timeout_s``, ``max_body_memory_bytes`` and
  ``max_connections``.
- While the server **drains** (SIGTERM, see ``app.server``) every response says
  ``Connection: close`` so that clients move their keep-alive connections elsewhere.
- A request's own ``X-Request-ID`` is echoed on its response (``app.request_ids``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics, request_ids
from app.concurrency import ConcurrencyLimit
from app.errors import (
    QueueFullError,
    ServerOverloadedError,
    ServingError,
    error_bytes,
    serving_error_response,
)


class _Arrival:
    """When the current request entered the app, plus the time it then spent waiting for its
    client's body bytes (shared by every context copied from the request's: a mutable cell),
    and its ``scope["state"]``, where the app reports to the HTTP protocol."""

    __slots__ = ("at", "state")

    def __init__(self, at: float, state: dict | None = None) -> None:
        self.at = at
        self.state = state


_arrival: ContextVar[_Arrival | None] = ContextVar("request_arrival", default=None)

# Never refused nor counted: probes must answer under any load.
UNLIMITED_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/healthz", "/metrics"})


# In scope["state"]: the request turned out to be bulk work (max_batch_size instances or more).
BULK_KEY = "serving.bulk"


def note_bulk() -> None:
    """The current request is bulk work: ``python -m app``, which admitted it in the
    interactive lane by its small body, leaves its latency out of that lane's cap."""
    arrived = _arrival.get()
    if arrived is not None and arrived.state is not None:
        arrived.state[BULK_KEY] = True


def arrival_time() -> float:
    """``time.monotonic()`` when the current request entered the app, moved later by the time
    it waited for its client's body bytes (now, outside a request)."""
    arrived = _arrival.get()
    return time.monotonic() if arrived is None else arrived.at


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
        arrival = _Arrival(time.monotonic(), scope.get("state"))
        token = _arrival.set(arrival)
        request_id = request_ids.from_headers(scope["headers"])
        id_token = request_ids.bind(request_id)
        extra_headers = {}
        if self.state.draining:
            extra_headers[b"connection"] = b"close"
        if request_id is not None:
            extra_headers[request_ids.HEADER_BYTES] = request_id.encode()
        if extra_headers:
            send = _setting_headers(send, extra_headers)
        try:
            if scope["path"] in UNLIMITED_PATHS:
                await self.app(scope, receive, send)
                return
            state = self.state
            if state.inflight >= self.max_inflight:
                response = serving_error_response(
                    scope["path"],
                    ServerOverloadedError(
                        f"the server is handling {state.inflight} requests, its limit "
                        "(max_inflight_requests); retry later"
                    ),
                )
                await response(scope, receive, send)
                return
            state.inflight += 1
            try:
                await self.app(scope, self._client_paced(receive, arrival), send)
            finally:
                state.inflight -= 1
        finally:
            request_ids.reset(id_token)
            _arrival.reset(token)

    def _client_paced(self, receive: Receive, arrival: _Arrival) -> Receive:
        """``receive`` under which, until the body has come whole, the time spent waiting for
        the client's bytes is the client's: the request is not counted in flight meanwhile, and
        its arrival (its deadline) moves on by the wait."""
        state = self.state
        body_pending = True

        async def client_paced_receive() -> Message:
            nonlocal body_pending
            if not body_pending:
                return await receive()
            state.inflight -= 1
            waited_from = time.monotonic()
            try:
                message = await receive()
            finally:
                state.inflight += 1
                arrival.at += time.monotonic() - waited_from
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_pending = False
            return message

        return client_paced_receive


def _setting_headers(send: Send, extra: dict[bytes, bytes]) -> Send:
    """``send`` that sets ``extra`` headers on the response (in place of the app's of those
    names): ``Connection: close`` while draining, the request's own ``X-Request-ID``."""

    async def send_setting_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k not in extra]
            message = {**message, "headers": [*headers, *extra.items()]}
        await send(message)

    return send_setting_headers


# ---- admission before the app: see app.server --------------------------------------------
# For a request's method, path, query and Content-Length (None: none) at its headers: the
# complete 429 to send (refused), the model's ConcurrencyLimit (admitted: a slot is held until
# the response ends) or None (the app decides).
QuickAdmission = Callable[[bytes, bytes, bytes, int | None], bytes | ConcurrencyLimit | None]

_PROTOCOL_PATH = re.compile(
    rb"^/v1/models/(?P<v1>[^/:]+)(?:/versions/(?P<v1v>\d+))?:predict$"
    rb"|^/v2/models/(?P<v2>[^/]+)(?:/versions/(?P<v2v>\d+))?/infer$"
)
_PROTOCOL_TEMPLATES = {
    (True, False): "/v1/models/{name}:{method}",
    (True, True): "/v1/models/{name}/versions/{version}:{method}",
    (False, False): "/v2/models/{name}/infer",
    (False, True): "/v2/models/{name}/versions/{version}/infer",
}
# The typed inference endpoints (app.api.tasks) and the model each one serves; the version is
# the ``version`` query parameter. Explanations are not here: they have their own slots.
_TASK_PATH = re.compile(
    rb"^/v1/images/(?P<image>[^/:]+):classify$|^/v1/(?P<task>[a-z]+):(?:predict|forecast)$"
)
_IMAGE_TEMPLATE = "/v1/images/{model}:classify"
TASK_MODELS = {
    b"sentiment": "sentiment",
    b"spam": "spam",
    b"churn": "churn",
    b"movies": "movie_profit",
    b"sales": "sales",
}


def _target(path: bytes, query: bytes) -> tuple[str, str | None, str] | None:
    """The (model, version, route template) a POST to ``path`` runs, if it runs one model."""
    match = _PROTOCOL_PATH.match(path)
    if match is not None:
        v1 = match["v1"] is not None
        version = match["v1v"] if v1 else match["v2v"]
        return (
            (match["v1"] if v1 else match["v2"]).decode("latin-1"),
            version.decode() if version else None,
            _PROTOCOL_TEMPLATES[(v1, version is not None)],
        )
    match = _TASK_PATH.match(path)
    if match is None:
        return None
    if match["image"] is not None:
        name, template = match["image"].decode("latin-1"), _IMAGE_TEMPLATE
    elif match["task"] in TASK_MODELS:
        name, template = TASK_MODELS[match["task"]], path.decode()
    else:
        return None
    versions = parse_qs(query.decode("latin-1")).get("version") if query else None
    return name, versions[-1] if versions else None, template


def quick_admission(app) -> QuickAdmission:
    """A check the HTTP protocol runs as soon as a request's headers are parsed, for an
    inference request to one served model (``:predict`` / ``/infer`` and the typed endpoints):
    the complete 429 response (keep-alive) when its queue cannot take the request or its lane
    already has as many requests in progress as it can answer in time
    (:class:`app.concurrency.ConcurrencyLimit`; a body over ``inline_parse_bytes``, or
    chunked, is in the bulk lane, judged as at least a batch of its own), or, for an image
    upload larger than ``inline_image_bytes`` (decoded in the image pool, ``app.image_pool``),
    when the pool's work ahead would make it late; else that limit, of which the protocol takes
    a slot once the request's body has come whole (a slow upload holds none) and gives it back,
    with the request's latency, when the response ends.

    Why below the app: under overload most requests are refused, and a closed-loop client
    resends at once. Refused through the ASGI stack (a task, middleware, routing, an exception
    handler: ~200 us of event loop each) they take the loop from the admitted requests, whose
    answers then come late; refused here (no task) they do not."""

    def admit(
        method: bytes, path: bytes, query: bytes, body_bytes: int | None = None
    ) -> bytes | ConcurrencyLimit | None:
        if method != b"POST":
            return None
        target = _target(path, query)
        repository = getattr(app.state, "repository", None)
        if target is None or repository is None:
            return None
        name, version, template = target
        # The body's size is the one cost known before it is read. A body cheap to read
        # (inline_parse_bytes) is judged as the small request it likely is, and again on its
        # real size once parsed (DynamicBatcher.submit); a larger one as at least a batch of
        # its own, here, where refusing it costs nothing.
        bulk = body_bytes is None or body_bytes > app.state.settings.inline_parse_bytes
        try:
            batcher = repository.get(name, version).batcher
            batcher.check_room(batcher.max_batch_size if bulk else 1)
            limit = batcher.bulk_concurrency if bulk else batcher.concurrency
            if limit.full:
                batcher.refuse(
                    f"{limit.inflight} requests in progress, as many as it answers within "
                    "their deadline"
                )
            pool = getattr(app.state, "image_pool", None)
            if (
                template == _IMAGE_TEMPLATE
                and pool is not None
                and (body_bytes is None or body_bytes > app.state.settings.inline_image_bytes)
            ):
                pool.check_room(name, batcher.timeout_s)
        except QueueFullError as exc:
            metrics.HTTP_REQUESTS.labels(name, template, "POST", "429").inc()
            return _refusal(path.decode("latin-1"), exc)
        except ServingError:
            return None  # unknown, not ready, ...: the app answers with the details
        return limit

    return admit


def _refusal(path: str, exc: QueueFullError) -> bytes:
    """The 429 as bytes on the wire (keep-alive), in the body format of ``path``'s API."""
    return error_bytes(path, exc)
