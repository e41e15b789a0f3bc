"""Request body size limit, enforced before the body is read (pure ASGI, cheap)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLargeError, error_response


class BodySizeLimitMiddleware:
    """413 when ``Content-Length`` exceeds ``max_body_bytes``; a body sent without one (chunked)
    is counted as it arrives and stopped at the limit."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            response = error_response(
                scope["path"],
                413,
                f"request body of {declared} bytes exceeds the limit of {limit} bytes",
                title=PayloadTooLargeError.title,
                slug=PayloadTooLargeError.slug,
            )
            await response(scope, receive, send)
            return
        if declared is not None:
            await self.app(scope, receive, send)
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLargeError(f"request body exceeds the limit of {limit} bytes")
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
