"""Optional access control: ``Authorization: Bearer <key>`` with one of ``SERVING_API_KEYS``.

Off unless keys are set. Health probes are always open (an orchestrator has no key);
``/metrics`` and the API docs are open unless ``auth_metrics`` / ``auth_docs``. Keys are
compared in constant time; a missing or wrong key is a 401 with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from app.admission import UNLIMITED_PATHS
from app.api import demo, docs
from app.config import Settings
from app.errors import UnauthorizedError, serving_error_response

DOCS_PATHS = docs.PATHS


def open_paths(settings: Settings) -> frozenset[str]:
    """Paths served without a key."""
    paths = (set(UNLIMITED_PATHS) - {"/metrics"}) | demo.PATHS  # the page asks for a key itself
    if not settings.auth_metrics:
        paths.add("/metrics")
    if not settings.auth_docs:
        paths |= DOCS_PATHS
    return frozenset(paths)


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, *, keys: list[str], open_paths: frozenset[str]) -> None:
        if not keys or not all(keys):
            raise ValueError("api_keys must be non-empty strings")
        self.app = app
        self.keys = [key.encode() for key in keys]
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in self.open_paths
            or scope["method"] == "OPTIONS"  # CORS preflight: browsers send no credentials
        ):
            await self.app(scope, receive, send)
            return
        problem = key_problem(scope["headers"], self.keys)
        if problem is None:
            await self.app(scope, receive, send)
            return
        response = serving_error_response(scope["path"], UnauthorizedError(problem))
        await response(scope, receive, send)


def key_problem(headers: Iterable[tuple[bytes, bytes]], keys: list[bytes]) -> str | None:
    """Why a request with these (lower-case) headers is not authorised, or None when it is."""
    header = next((v for k, v in headers if k == b"authorization"), None)
    if header is None:
        return "this endpoint needs 'Authorization: Bearer <API key>'"
    scheme, _, token = header.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return "the Authorization header must be 'Bearer <API key>'"
    token = token.strip()
    # Compare with every key (no early exit): the time taken says nothing about the keys.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token, key)
    return None if matched else "invalid API key"
