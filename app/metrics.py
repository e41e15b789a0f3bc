"""Prometheus metrics of the service, and the ASGI middleware that counts HTTP requests.

The metrics live in a registry of their own so that several apps (tests) do not clash with the
process-wide default registry, which still carries the process/platform collectors.
"""

from __future__ import annotations

import math
import os
import time
from contextvars import ContextVar
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import (
    REGISTRY as DEFAULT_REGISTRY,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.compression import GzipOnce

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256)

HTTP_REQUESTS = Counter(
    "serving_http_requests_total",
    "HTTP requests by model, endpoint (route template), method and status code.",
    ["model", "endpoint", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "serving_http_request_duration_seconds",
    "HTTP request latency by model and endpoint.",
    ["model", "endpoint"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "serving_queue_depth",
    "Requests waiting in the model's batching queue (as its worker last formed a batch).",
    ["model", "version"],
    registry=REGISTRY,
    multiprocess_mode="livesum",  # several workers: their queues add up
)
ADMISSION_LIMIT = Gauge(
    "serving_admission_limit",
    "Requests the model version admits at once (python -m app's adaptive cap: what it answers "
    "within the deadline; see app.concurrency), per lane: interactive (bodies up to "
    "inline_parse_bytes) and bulk (larger or chunked bodies).",
    ["model", "version", "lane"],
    registry=REGISTRY,
    multiprocess_mode="livesum",  # several workers: their caps add up
)
BATCH_SIZE = Histogram(
    "serving_batch_size",
    "Instances per model call (after dynamic batching).",
    ["model"],
    buckets=_BATCH_BUCKETS,
    registry=REGISTRY,
)
INFERENCE_TIME = Histogram(
    "serving_inference_duration_seconds",
    "Time of one (batched) model call.",
    ["model", "version"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
QUEUE_WAIT = Histogram(
    "serving_queue_wait_seconds",
    "Time a request waited in the queue before its batch ran.",
    ["model"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
REJECTED = Counter(
    "serving_rejected_requests_total",
    "Requests refused before their model call: queue full, deadline passed, image pool full.",
    ["model", "reason"],
    registry=REGISTRY,
)
CONNECTIONS_CUT = Counter(
    "serving_connections_cut_total",
    "Connections python -m app closed on its own, by reason: too_many_connections, "
    "malformed_request, head_timeout, headers_too_large, send_timeout (a client that stopped "
    "reading its reply), discard_timeout (the rest of a body already answered did not come "
    "within body_timeout_s), too_many_pipelined (after answering max_pipelined_requests "
    "requests sent ahead), small_chunks (a chunked body under min_body_chunk_bytes), "
    "transfer_coding (a Transfer-Encoding other than chunked: 501).",
    ["reason"],
    registry=REGISTRY,
)
MODEL_READY = Gauge(
    "serving_model_ready",
    "1 when the model version is loaded and warm, else 0.",
    ["model", "version", "device"],
    registry=REGISTRY,
    multiprocess_mode="livemin",  # several workers: ready only when every one is
)


def render() -> tuple[bytes, str]:
    """The exposition text of the service's metrics plus the process collectors; with several
    workers (``PROMETHEUS_MULTIPROC_DIR`` set by ``app.server``) the sum over all of them."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY) + generate_latest(DEFAULT_REGISTRY), CONTENT_TYPE_LATEST


class Exposition:
    """The /metrics text, rendered at most once per ``max_age_s``; scrapes within it get the same
    text. Rendering is Python on the event loop (about 7 ms with ten models served), so a flood
    of scrapes would hold every request back; Prometheus scrapes every 15 s or so, and its
    timestamps are its own."""

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._rendered_at = -math.inf
        self._latest: tuple[GzipOnce, str] = (GzipOnce(b""), CONTENT_TYPE_LATEST)

    def get(self) -> tuple[GzipOnce, str]:
        """The latest rendering (compressed at most once, for the scrapes that accept gzip) and
        its content type."""
        now = time.monotonic()
        if now - self._rendered_at >= self.max_age_s:
            body, content_type = render()
            self._latest, self._rendered_at = (GzipOnce(body), content_type), now
        return self._latest


# The labels of the request being handled: the middleware puts a fresh holder here, and an
# endpoint whose path has no model name (the typed endpoints) names its model in it.
_request_labels: ContextVar[dict[str, str] | None] = ContextVar("metric_labels", default=None)


def name_model(model: str) -> None:
    """Count the current request under ``model`` (for endpoints whose path does not say it)."""
    labels = _request_labels.get()
    if labels is not None:
        labels["model"] = model


UNKNOWN_MODEL = "_unknown"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _is_served(scope: Scope, model: str) -> bool:
    """Whether ``model`` is a model of the app's repository (labels only for those)."""
    app = scope.get("app")
    repository = getattr(getattr(app, "state", None), "repository", None)
    return repository is not None and repository.has(model)


# (model, endpoint, method, status) -> its request counter and latency histogram. ``labels()``
# takes the metric's lock and builds its key on every call; the label values are bounded
# (served models, route templates, methods, statuses), so each series is looked up once.
_HTTP_SERIES: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}


def _http_series(model: str, endpoint: str, method: str, status: int) -> tuple[Any, Any]:
    key = (model, endpoint, method, status)
    series = _HTTP_SERIES.get(key)
    if series is None:
        series = (
            HTTP_REQUESTS.labels(model, endpoint, method, str(status)),
            HTTP_LATENCY.labels(model, endpoint),
        )
        _HTTP_SERIES[key] = series
    return series


class MetricsMiddleware:
    """Pure ASGI middleware (cheap on the hot path): counts and times every HTTP request.

    Labels come from the matched route: its path template (bounded cardinality) and the
    ``name``/``model_name`` path parameter.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        labels: dict[str, str] = {}
        token = _request_labels.set(labels)
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            _request_labels.reset(token)
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            if endpoint != "/metrics":
                params = scope.get("path_params") or {}
                model = (
                    labels.get("model")
                    or params.get("name")
                    or params.get("model_name")
                    or params.get("model")
                    or ""
                )
                if model and not _is_served(scope, model):
                    model = UNKNOWN_MODEL  # clients choose names: never one series per name
                method = scope["method"] if scope["method"] in _METHODS else "OTHER"
                count, latency = _http_series(model, endpoint, method, status)
                count.inc()
                latency.observe(time.perf_counter() - start)
