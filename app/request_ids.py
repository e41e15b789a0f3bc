"""Request IDs, to find one request in the logs (``X-Request-ID``, as Envoy and nginx pass it):

- a request that carries ``X-Request-ID`` (1 to :data:`MAX_CHARS` printable ASCII characters;
  any other value is ignored) gets it back on its response, whatever the answer, and in the
  body of an RFC 9457 problem (``request_id``);
- a server error (5xx) of a request without one gets a new ID, in its ``X-Request-ID``, its
  problem body and the error's log line, so that a user's report can be matched to the log.

Nothing is generated or logged for the requests that succeed: no cost on the hot path beyond
looking for the header.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar, Token

HEADER = "x-request-id"
HEADER_BYTES = HEADER.encode()  # as ASGI and the HTTP parser give header names
MAX_CHARS = 200

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's own ID: its first ``X-Request-ID``, if it is a usable one."""
    for name, value in headers:
        if name == HEADER_BYTES:
            text = value.decode("latin-1").strip()
            if 0 < len(text) <= MAX_CHARS and text.isascii() and text.isprintable():
                return text
            return None
    return None


def bind(request_id: str | None) -> Token:
    """``request_id`` is the current request's (``reset`` with the token when it ends)."""
    return _current.set(request_id)


def reset(token: Token) -> None:
    _current.reset(token)


def current() -> str | None:
    """The current request's ID: its own, or one given to its error; None otherwise."""
    return _current.get()


def for_error() -> tuple[str, bool]:
    """The current request's ID for a server error, made now if it has none: (ID, new)."""
    request_id = _current.get()
    if request_id is not None:
        return request_id, False
    request_id = uuid.uuid4().hex
    _current.set(request_id)
    return request_id, True
