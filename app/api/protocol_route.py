"""The hot inference routes, each registered once: a plain Starlette route that serves it and
carries its own OpenAPI operation.

FastAPI's per-request machinery (route context, dependency solving) costs about as much CPU as
the rest of a single-image request, so ``:predict`` and ``/infer`` skip it; FastAPI's OpenAPI
generator only documents its own routes, so :func:`install` adds these routes' operations to
the schema it builds (KServe's model server likewise registers each protocol endpoint once).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.api.status_replies import PROTOCOL_ERROR_CONTENT

ERROR_STATUSES = {
    "400": "Malformed input",
    "404": "No such model, version or label",
    "413": "A limit is exceeded (body, instances, ...)",
    "429": "The model's queue is full; retry later",
    "503": "The model is not ready, or the server is overloaded or draining",
    "504": "The request's deadline passed",
}


class ProtocolRoute(Route):
    """``endpoint(request) -> Response`` served at ``path``, documented by ``operation``
    (``reply_content``: the OpenAPI content map of its 200 reply)."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        *,
        methods: Sequence[str],
        summary: str,
        tags: list[str],
        request_body: dict[str, Any],
        reply_content: dict[str, Any],
        description: str | None = None,
    ) -> None:
        super().__init__(path, endpoint, methods=list(methods))
        self.operation: dict[str, Any] = {
            "tags": tags,
            "summary": summary,
            "operationId": re.sub(r"\W+", "_", f"{endpoint.__name__}{path}").strip("_"),
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in self.param_convertors
            ],
            "requestBody": request_body,
            "responses": {
                "200": {"description": "The model's outputs", "content": reply_content},
                **{
                    status: {"description": why, "content": PROTOCOL_ERROR_CONTENT}
                    for status, why in ERROR_STATUSES.items()
                },
            },
        }
        if description:
            self.operation["description"] = description

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # FastAPI records only its own routes in the scope; the metrics read the path template.
        scope["route"] = self
        await super().handle(scope, receive, send)


def post_routes(
    endpoint: Callable[[Request], Awaitable[Response]],
    paths: dict[str, str],
    *,
    tags: list[str],
    request_body: dict[str, Any],
    reply_content: dict[str, Any],
) -> list[ProtocolRoute]:
    """One ``POST`` route per ``path: summary`` of ``paths``, all served by ``endpoint``."""
    return [
        ProtocolRoute(
            path,
            endpoint,
            methods=["POST"],
            summary=summary,
            tags=tags,
            request_body=request_body,
            reply_content=reply_content,
        )
        for path, summary in paths.items()
    ]


def install(app: FastAPI, routes: Sequence[ProtocolRoute]) -> None:
    """Serve ``routes`` ahead of every other route (the hot paths match first) and add their
    operations to the app's OpenAPI schema."""
    app.router.routes[0:0] = list(routes)
    build_schema = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build_schema()
            for route in routes:
                path = schema["paths"].setdefault(route.path, {})
                for method in sorted(route.methods or ()):
                    if method != "HEAD":
                        path[method.lower()] = route.operation
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
