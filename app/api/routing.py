"""A route class for the typed endpoints: their JSON bodies are checked for nesting depth and,
when large, parsed in a worker thread, like the protocol endpoints' (``inline_parse_bytes``,
``max_json_depth``). FastAPI parses a route's JSON body with ``await request.json()`` before the
handler runs; this gives it a request whose ``json()`` does so off the event loop."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app.api.deps import off_loop_if_large
from app.codec import check_depth
from app.errors import InvalidInputError


class _OffloadingRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            max_depth = self.app.state.settings.max_json_depth
            self._json = await off_loop_if_large(self, len(body), _parse, body, max_depth)
        return self._json


def _parse(body: bytes, max_depth: int) -> Any:
    try:
        check_depth(body, max_depth)
    except InvalidInputError as exc:  # FastAPI passes only HTTPException through unchanged
        raise HTTPException(400, exc.detail) from None
    # The standard parser, as Starlette's: it reads NaN / Infinity, which the endpoints refuse
    # with their own message; a JSONDecodeError is FastAPI's 422.
    return json.loads(body)


class JsonOffloadingRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def offloading_handler(request: Request) -> Response:
            return await handler(_OffloadingRequest(request.scope, request.receive))

        return offloading_handler
