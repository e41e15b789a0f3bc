"""Response compression: gzip for clients that accept it, nothing at all for the others.

Starlette's ``GZipMiddleware`` wraps every response's ``send``, even for clients that never
asked for gzip (most API clients, every load generator): that wrapping cost ~25 us of a ~400 us
single-digit request. Here a request that does not accept gzip goes straight to the app.

Whether a client accepts gzip is read as RFC 9110 (section 12.5.3) says: ``gzip`` (or its alias
``x-gzip``) with a q-value above 0, or ``*`` above 0 when gzip is not named; ``gzip;q=0`` is a
refusal. (Starlette's own test is a substring match, which took ``gzip;q=0`` for a yes.)

The level is ``gzip_level`` (default 1, nginx's default): measured on this service's replies
(``docs/configuration.md``), level 1 shrinks them to 14-48 % of their size, level 6 to 11-43 %
for 3-5 times the CPU, and level 9 (Starlette's default) gains nothing more for up to 14 times
level 1's CPU; a reply under 128 KiB is compressed on the event loop, holding every request.

A body sent many times unchanged (``/openapi.json``, a ``/metrics`` rendering, the docs pages'
assets) is compressed once instead (``GzipOnce``): the middleware passes on a response that
already has a ``Content-Encoding``.
"""

from __future__ import annotations

import gzip
import hashlib

from starlette.middleware.gzip import GZipResponder
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send


def accepts_gzip(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request's ``Accept-Encoding`` headers accept gzip."""
    gzip_q: float | None = None
    any_q: float | None = None
    for key, value in headers:
        if key != b"accept-encoding":
            continue
        for item in value.split(b","):
            coding, _, parameters = item.partition(b";")
            coding = coding.strip().lower()
            if coding in (b"gzip", b"x-gzip"):
                gzip_q = max(gzip_q or 0.0, _quality(parameters))
            elif coding == b"*":
                any_q = _quality(parameters)
    if gzip_q is not None:
        return gzip_q > 0
    return any_q is not None and any_q > 0


def _quality(parameters: bytes) -> float:
    """The ``q`` of a coding's parameters (1 when absent; 0 when it is not a number)."""
    for parameter in parameters.split(b";"):
        name, _, value = parameter.partition(b"=")
        if name.strip().lower() == b"q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 0.0
            return quality if 0.0 <= quality <= 1.0 else 0.0
    return 1.0


class GzipForClientsThatAcceptIt:
    def __init__(self, app: ASGIApp, *, minimum_size: int, level: int = 1) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.level = level

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and accepts_gzip(scope["headers"]):
            responder = GZipResponder(self.app, self.minimum_size, compresslevel=self.level)
            await responder(scope, receive, send)
            return
        await self.app(scope, receive, send)


class GzipOnce:
    """A body sent many times unchanged, and its gzip made at most once, at the first request
    that accepts it. Compressing at every fetch took the event loop 0.6 ms for
    ``/openapi.json`` (125 KB), 0.3 ms for ``/metrics`` with ten models (69 KB) and 14 ms for
    Swagger UI's script (1.5 MB): 8 clients fetching that script held a digit's ``:predict`` at
    p50 14 ms, worst 40 ms. The response is gzipped where the middleware would gzip it:
    compression on (``gzip_min_bytes`` above 0), the body at least that large, and the client
    accepting gzip.

    Each representation has a strong ``ETag`` (the gzipped one its own, RFC 9110 8.8.3), and a
    request whose ``If-None-Match`` names it gets ``304 Not Modified`` with no body: a browser
    revalidating Swagger UI's script after its day of caching gets 304, not 488 KB again."""

    __slots__ = ("body", "_gzipped", "_digest")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._gzipped: bytes | None = None
        self._digest: str | None = None

    def response(
        self, request: Request, media_type: str, headers: dict[str, str] | None = None
    ) -> Response:
        settings = request.app.state.settings
        minimum = settings.gzip_min_bytes
        headers = dict(headers or {})
        body, coding = self.body, ""
        if minimum and len(self.body) >= minimum:
            # Large enough to be compressed for some clients: caches must key on it.
            headers["Vary"] = "Accept-Encoding"
            if accepts_gzip(request.scope["headers"]):
                if self._gzipped is None:
                    self._gzipped = gzip.compress(
                        self.body, compresslevel=settings.gzip_level, mtime=0
                    )
                body, coding = self._gzipped, "gzip"
                headers["Content-Encoding"] = "gzip"
        if self._digest is None:
            self._digest = hashlib.blake2b(self.body, digest_size=12).hexdigest()
        headers["ETag"] = f'"{self._digest}{"-" + coding if coding else ""}"'
        if _none_match(request.headers.get("if-none-match"), headers["ETag"]):
            headers.pop("Content-Encoding", None)
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=media_type, headers=headers)


def _none_match(header: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (or is ``*``): weak comparison, as RFC 9110
    13.1.2 has it for this header."""
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags
