"""The route class of the typed endpoints.

Two things FastAPI's own ``APIRoute`` does not do:

- **JSON bodies are bounded like the protocol endpoints'**: checked for nesting depth and, when
  large, parsed in a worker thread (``max_json_depth``, ``inline_parse_bytes``); a top-level list
  longer than any endpoint takes is refused before validation (413). FastAPI parses a route's
  JSON body with ``await request.json()``; the handler gets a request whose ``json()`` does
  this, and its refusals are the service's problems on both paths (``PassedThroughError``).
- **A compiled fast path for well-formed requests.** FastAPI solves each request's dependencies
  generically (every parameter source of every dependency, one validator per parameter) inside
  a per-route wrapper of exit stacks and route contexts: a fifth to a third of a typed
  request's CPU here. At start-up, :class:`TaskRoute` compiles the endpoint's path and query
  parameters into one pydantic model and notes its body model and its request-only dependencies
  (``RepositoryDep``, ``SettingsDep``, ...). A request whose parameters and body validate runs
  the endpoint straight away, and its reply is serialized by FastAPI's own
  ``serialize_response``. Anything else (a parameter or body that fails validation, a body that
  is not JSON, dependency overrides, tracing on) is handed to FastAPI, with the body replayed,
  before the endpoint has run: every error reply is FastAPI's, byte for byte
  (``tests/app/tasks/test_task_route.py`` holds both paths to the same answers).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi._compat import field_annotation_is_sequence
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, serialize_response
from pydantic import BaseModel, ValidationError, create_model
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from app.api.deps import off_loop_if_large
from app.codec import check_depth
from app.config import Settings
from app.errors import (
    InvalidInputError,
    PassedThroughError,
    PayloadTooLargeError,
    clipped,
)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
_NO_QUERY: dict[str, str] = {}


class _OffloadingRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            settings = self.app.state.settings
            self._json = await off_loop_if_large(
                self, len(body), _parse, body, settings.max_json_depth, most_items(settings)
            )
        return self._json


def most_items(settings: Settings) -> int:
    """The longest list any typed endpoint takes: a longer one is refused before validation."""
    return max(
        settings.max_items_per_request,
        settings.max_explain_instances,
        settings.max_history_length,
        settings.max_images_per_request,
    )


def _parse(body: bytes, max_depth: int, max_items: int) -> Any:
    try:
        check_depth(body, max_depth)
    except InvalidInputError as exc:  # FastAPI passes only HTTPException through unchanged
        raise PassedThroughError(exc) from None
    # The standard parser, as Starlette's: it reads NaN / Infinity, which the endpoints refuse
    # with their own message; a JSONDecodeError is FastAPI's 422.
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        raise  # FastAPI's 422, as for any body
    except ValueError:  # Python's own limit on integers (FastAPI would say only "error parsing")
        raise PassedThroughError(
            InvalidInputError("invalid JSON: an integer of more than 4,300 digits", field="body")
        ) from None
    # Validating a list costs one error object per wrong item (200,000 wrong values in 1 MB:
    # 0.4 s to list them): a list longer than any endpoint takes is refused before (each
    # endpoint's own limit, a 413 too, is checked after validation).
    for key, value in data.items() if isinstance(data, dict) else ():
        if isinstance(value, list) and len(value) > max_items:
            raise PassedThroughError(
                PayloadTooLargeError(
                    f"{len(value)} items, more than any endpoint takes ({max_items})",
                    field=clipped(key),
                )
            )
    return data


@dataclass(frozen=True)
class _FastPath:
    """What one endpoint needs, resolved at start-up."""

    call: Callable[..., Awaitable[Any]]
    request_name: str | None
    params: type[BaseModel] | None  # path and query parameters, validated at once
    sources: dict[str, tuple[str, str]]  # parameter name -> (path | query, its key there)
    body_name: str | None
    body_model: type[BaseModel] | None
    dependencies: dict[str, Callable[[Request], Awaitable[Any]]]

    @classmethod
    def compile(cls, route: APIRoute) -> _FastPath | None:
        """The fast path of ``route``, or None when it uses what the fast path does not take
        (headers, cookies, sequences in the query, form bodies, nested dependencies, ...)."""
        dependant = route.dependant
        if not inspect.iscoroutinefunction(dependant.call) or _uses_more_than_request(
            dependant, allow_params=True
        ):
            return None
        fields: dict[str, Any] = {}
        sources: dict[str, tuple[str, str]] = {}
        for where, params in (("path", dependant.path_params), ("query", dependant.query_params)):
            for param in params:
                if field_annotation_is_sequence(param.field_info.annotation):
                    return None
                fields[param.name] = (param.field_info.annotation, param.field_info)
                sources[param.name] = (where, param.alias)
        body_name = body_model = None
        if dependant.body_params:
            if len(dependant.body_params) != 1 or route.body_field is None:
                return None
            (body,) = dependant.body_params
            model = body.field_info.annotation
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                return None
            if getattr(body.field_info, "embed", False):
                return None
            body_name, body_model = body.name, model
        dependencies: dict[str, Callable[[Request], Awaitable[Any]]] = {}
        for sub in dependant.dependencies:
            if (
                sub.name is None
                or sub.call is None
                or not inspect.iscoroutinefunction(sub.call)
                or sub.request_param_name is None
                or sub.dependencies
                or _uses_more_than_request(sub, allow_params=False)
            ):
                return None
            dependencies[sub.name] = sub.call
        params = create_model(f"{route.name}_params", **fields) if fields else None
        return cls(
            call=dependant.call,
            request_name=dependant.request_param_name,
            params=params,
            sources=sources,
            body_name=body_name,
            body_model=body_model,
            dependencies=dependencies,
        )

    async def arguments(self, request: Request) -> dict[str, Any] | None:
        """The endpoint's keyword arguments, or None when FastAPI must answer (an invalid or
        unusual request: its error replies stay FastAPI's)."""
        values: dict[str, Any] = {}
        if self.params is not None:
            raw = {}
            # No query string (the usual request): no QueryParams object to parse it into.
            query = request.query_params if request.scope.get("query_string") else _NO_QUERY
            for where, key in self.sources.values():
                found = (request.path_params if where == "path" else query).get(key)
                if found is not None:
                    raw[key] = found  # the model's fields carry the same aliases
            try:
                parsed = self.params.model_validate(raw)
            except ValidationError:
                return None
            values.update((name, getattr(parsed, name)) for name in self.sources)
        if self.body_model is not None:
            content_type = request.headers.get("content-type", "")
            media_type = content_type.partition(";")[0].strip().lower()
            if media_type != "application/json" and not media_type.endswith("+json"):
                return None
            if not await request.body():
                return None
            try:
                # A body over max_json_depth raises FastAPI's own 400 (HTTPException) here, as
                # it would in FastAPI's handler: not parsed twice.
                values[self.body_name] = self.body_model.model_validate(await request.json())
            except (ValidationError, ValueError):  # ValueError: not JSON (FastAPI's 422)
                return None
        if self.request_name is not None:
            values[self.request_name] = request
        for name, dependency in self.dependencies.items():
            values[name] = await dependency(request)
        return values


def _uses_more_than_request(dependant: Dependant, *, allow_params: bool) -> bool:
    """Whether ``dependant`` takes what the fast path does not resolve: headers, cookies, the
    connection or response objects, security scopes; and, unless ``allow_params``, path, query
    or body parameters (a dependency of its own must take only the request)."""
    params = dependant.path_params or dependant.query_params or dependant.body_params
    return bool(
        dependant.header_params
        or dependant.cookie_params
        or (params and not allow_params)
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or dependant.own_oauth_scopes
    )


class TaskRoute(APIRoute):
    _fast: _FastPath | None = None

    def get_route_handler(self) -> Handler:
        fastapi_handler = super().get_route_handler()
        self._fast = _FastPath.compile(self)

        async def handler(request: Request) -> Response:
            return await fastapi_handler(_OffloadingRequest(request.scope, request.receive))

        return handler

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The fast path, in place of FastAPI's per-route wrapper (its exit stacks and route
        context serve dependencies with ``yield``, which these endpoints do not have); their
        errors reach the app's exception handlers all the same."""
        app = scope["app"]
        if (
            self._fast is None
            or scope["method"] not in (self.methods or ())
            or app.dependency_overrides
            or app.state.settings.opentelemetry  # FastAPI's handler records the spans
        ):
            await super().handle(scope, receive, send)
            return
        request = _OffloadingRequest(scope, receive)
        arguments = await self._fast.arguments(request)
        if arguments is None:  # FastAPI answers (with its own error replies): body replayed
            await super().handle(scope, _replay(await request.body(), receive), send)
            return
        response = await self._reply(await self._fast.call(**arguments))
        await response(scope, receive, send)

    async def _reply(self, result: Any) -> Response:
        """The endpoint's result as FastAPI would send it (a Response as it is)."""
        if isinstance(result, Response):
            return result
        status = self.status_code or 200
        # FastAPI's own rule: JSON bytes straight from pydantic unless a response class is set.
        dump_json = self.response_field is not None and isinstance(
            self.response_class, DefaultPlaceholder
        )
        content = await serialize_response(
            field=self.response_field,
            response_content=result,
            include=self.response_model_include,
            exclude=self.response_model_exclude,
            by_alias=self.response_model_by_alias,
            exclude_unset=self.response_model_exclude_unset,
            exclude_defaults=self.response_model_exclude_defaults,
            exclude_none=self.response_model_exclude_none,
            dump_json=dump_json,
        )
        if dump_json:
            return Response(content, status_code=status, media_type="application/json")
        response_class = self.response_class
        if isinstance(response_class, DefaultPlaceholder):
            response_class = response_class.value
        return response_class(content, status_code=status)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives ``body`` again first (it has been read from ``receive``)."""
    sent = False

    async def replaying_receive() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # what comes after the body: the client's disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replaying_receive
