"""Every domain exception of the service and its mapping to HTTP, in one place.

Protocol paths answer in their protocol's error shape, ``{"error": "..."}`` (TensorFlow Serving
under ``/v1/models``, KServe v2 under ``/v2``); every other endpoint answers RFC 9457
``application/problem+json``.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from app import request_ids

logger = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://tf-model-serving.local/problems/"


def clipped(text: str, limit: int = 100) -> str:
    """A client's string as an error message quotes it: at most ``limit`` characters."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def first_names(names: list[str], limit: int = 10) -> str:
    """The first ``limit`` of a client's names, and how many more there are."""
    shown = ", ".join(repr(clipped(name)) for name in names[:limit])
    return f"[{shown}]" + (f" and {len(names) - limit} more" if len(names) > limit else "")


class ServingError(Exception):
    """Base of the service's errors: a status code, a short title and a detail message."""

    status_code = 500
    title = "Internal server error"
    slug = "internal-error"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        file: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.file = file
        self.headers = headers or {}


class InvalidInputError(ServingError):
    status_code = 400
    title = "Invalid input"
    slug = "invalid-input"


class InvalidImageError(InvalidInputError):
    """An uploaded file that is empty, truncated or corrupt."""

    title = "Invalid image"
    slug = "invalid-image"


class UnsupportedMediaTypeError(ServingError):
    status_code = 415
    title = "Unsupported media type"
    slug = "unsupported-media-type"


class PayloadTooLargeError(ServingError):
    status_code = 413
    title = "Payload too large"
    slug = "payload-too-large"


class UnsupportedImageFormatError(UnsupportedMediaTypeError):
    title = "Unsupported image format"
    slug = "unsupported-image-format"


class ImageTooLargeError(PayloadTooLargeError):
    """Too many bytes or too many pixels (a decompression bomb)."""

    title = "Image too large"
    slug = "image-too-large"


class ConnectionClosingError(ServingError):
    """Answered, then the connection is closed (what follows on it cannot be trusted)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Connection": "close"})


class RequestTimeoutError(ConnectionClosingError):
    """The client was too slow sending its request."""

    status_code = 408
    title = "Request timeout"
    slug = "request-timeout"


class MalformedRequestError(ConnectionClosingError):
    """Bytes that are not an HTTP/1.1 request."""

    status_code = 400
    title = "Malformed HTTP request"
    slug = "malformed-request"


class HeadersTooLargeError(ConnectionClosingError):
    """The request line and headers exceed ``max_header_bytes``."""

    status_code = 431
    title = "Request header fields too large"
    slug = "headers-too-large"


class TransferCodingNotImplementedError(ConnectionClosingError):
    """A ``Transfer-Encoding`` other than ``chunked`` (RFC 9112 6.1: 501)."""

    status_code = 501
    title = "Transfer coding not implemented"
    slug = "transfer-coding-not-implemented"


class ServerOverloadedError(ServingError):
    """The server holds ``max_inflight_requests`` already."""

    status_code = 503
    title = "Server overloaded"
    slug = "overloaded"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class UnauthorizedError(ServingError):
    status_code = 401
    title = "Unauthorized"
    slug = "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="tf-model-serving"'})


class ForbiddenError(ServingError):
    status_code = 403
    title = "Forbidden"
    slug = "forbidden"


class ModelNotFoundError(ServingError):
    status_code = 404
    title = "Model not found"
    slug = "model-not-found"


class ModelNotReadyError(ServingError):
    status_code = 503
    title = "Model not ready"
    slug = "model-not-ready"


class QueueFullError(ServingError):
    status_code = 429
    title = "Too many requests"
    slug = "queue-full"

    def __init__(self, detail: str, *, retry_after_s: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})
        self.retry_after_s = retry_after_s


class DeadlineExceededError(ServingError):
    status_code = 504
    title = "Deadline exceeded"
    slug = "deadline-exceeded"


class InferenceError(ServingError):
    """The model call itself failed on inputs that passed validation."""

    status_code = 500
    title = "Inference failed"
    slug = "inference-failed"


# ---- HTTP mapping ---------------------------------------------------------------------------
def uses_protocol_errors(path: str) -> bool:
    """TF Serving (``/v1/models``) and KServe v2 (``/v2``) paths answer ``{"error": ...}``."""
    return path.startswith("/v1/models") or path == "/v2" or path.startswith("/v2/")


def error_response(
    path: str,
    status: int,
    detail: str,
    *,
    title: str | None = None,
    slug: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
) -> Response:
    """The error body the protocol of ``path`` expects; a problem names the request's ID
    (``request_id``, else the current request's: ``app.request_ids``)."""
    if uses_protocol_errors(path):
        return Response(
            orjson.dumps({"error": detail}), status, headers, media_type="application/json"
        )
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug if slug else "about:blank",
        "title": title or _reason(status),
        "status": status,
        "detail": detail,
        **(extra or {}),
    }
    request_id = request_id or request_ids.current()
    if request_id is not None:
        body["request_id"] = request_id
    return Response(orjson.dumps(body), status, headers, media_type="application/problem+json")


def serving_error_response(path: str, exc: ServingError) -> Response:
    """The response for a domain error, wherever it is raised: a route (through the exception
    handler) or a middleware that answers before any route runs."""
    extra = {k: v for k, v in (("field", exc.field), ("file", exc.file)) if v is not None}
    return error_response(
        path,
        exc.status_code,
        exc.detail,
        title=exc.title,
        slug=exc.slug,
        extra=extra,
        headers=exc.headers,
    )


def error_bytes(path: str, exc: ServingError, *, close: bool = False) -> bytes:
    """``serving_error_response`` as HTTP/1.1 bytes, for the answers the server writes on the
    wire itself (before or instead of the app); ``close`` says the connection ends with it."""
    response = serving_error_response(path, exc)
    status = exc.status_code
    head = [b"HTTP/1.1 %d %s\r\n" % (status, _reason(status).encode())]
    head += [b"%s: %s\r\n" % pair for pair in response.raw_headers if pair[0] != b"connection"]
    if close:
        head.append(b"connection: close\r\n")
    return b"".join([*head, b"\r\n", response.body])


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _serving_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServingError)
    if exc.status_code < 500:
        return serving_error_response(request.scope["path"], exc)
    request_id, new = request_ids.for_error()
    if not isinstance(exc, ModelNotReadyError | DeadlineExceededError):
        logger.error(
            "%s %s: %s (request %s)", request.method, request.scope["path"], exc.detail, request_id
        )
    response = serving_error_response(request.scope["path"], exc)
    if new:  # (a request's own ID is echoed by app.admission)
        response.headers[request_ids.HEADER] = request_id
    return response


class PassedThroughError(StarletteHTTPException):
    """A domain error raised where FastAPI lets only HTTPException through unchanged (parsing a
    request's body): answered as the domain error itself."""

    def __init__(self, error: ServingError) -> None:
        super().__init__(error.status_code, error.detail, error.headers or None)
        self.error = error


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, PassedThroughError):
        return serving_error_response(request.scope["path"], exc.error)
    return error_response(
        request.scope["path"], exc.status_code, str(exc.detail), headers=exc.headers or None
    )


MAX_LISTED_ERRORS = 20


async def _validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    content_type = request.headers.get("content-type", "")
    if tuple(first.get("loc", ())) == ("body",) and not _is_json(content_type):
        # FastAPI hands a non-JSON body to the JSON schema as-is: say what is really wrong.
        return error_response(
            request.scope["path"],
            415,
            "the request body must be JSON: send 'Content-Type: application/json' "
            f"(got {content_type or 'no content type'!r})",
            title="Unsupported media type",
            slug="unsupported-media-type",
            extra={"field": "body"},
        )
    where = ".".join(str(p) for p in first.get("loc", ()))
    detail = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
    extra = {}
    if where:
        # The first errors, and how many there are: a reply is not made bigger than its request.
        extra = {"field": where, "errors": _jsonable(errors[:MAX_LISTED_ERRORS])}
        if len(errors) > MAX_LISTED_ERRORS:
            extra["error_count"] = len(errors)
    return error_response(
        request.scope["path"],
        422,
        detail,
        title="Validation error",
        slug="validation-error",
        extra=extra,
    )


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def _client_disconnect_handler(request: Request, exc: Exception) -> Response:
    """The client left while sending its body: nobody reads the answer; nothing to log."""
    return Response(status_code=400)


async def _unhandled_error_handler(request: Request, exc: Exception) -> Response:
    # Answered outside the app's middleware (Starlette's ServerErrorMiddleware): the request's
    # own ID is read again, and the header set here.
    request_id = request_ids.from_headers(request.scope["headers"]) or request_ids.for_error()[0]
    logger.exception(
        "unhandled error on %s %s (request %s)", request.method, request.scope["path"], request_id
    )
    return error_response(
        request.scope["path"],
        500,
        "internal server error",
        slug="internal-error",
        headers={request_ids.HEADER: request_id},
        request_id=request_id,
    )


def _jsonable(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic error dicts without their non-JSON parts (exceptions in ``ctx``, raw input)."""
    return [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServingError, _serving_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(ClientDisconnect, _client_disconnect_handler)
    app.add_exception_handler(Exception, _unhandled_error_handler)
