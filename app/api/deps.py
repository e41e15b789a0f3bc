"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from app.config import Settings
from app.explain import Explainer
from app.repository import ModelRepository
from app.servable import ServedModel

T = TypeVar("T")


# async: FastAPI runs a plain ``def`` dependency in a worker thread, two thread hops per request.
async def get_repository(request: Request) -> ModelRepository:
    return request.app.state.repository


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def model_from_path(request: Request) -> ServedModel:
    """The model (and version or label, if the path names one) of a plain Starlette inference
    route."""
    params = request.path_params
    version = params.get("version") or params.get("label")
    return request.app.state.repository.get(params["name"], version)


async def get_explainer(request: Request) -> Explainer:
    return request.app.state.explainer


RepositoryDep = Annotated[ModelRepository, Depends(get_repository)]
ExplainerDep = Annotated[Explainer, Depends(get_explainer)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def off_loop_if_large(request: Request, size: int, parse: Callable[..., T], *args: Any) -> T:
    """``parse(*args)`` for a body of ``size`` bytes: on the event loop when it is small, in a
    worker thread when it is over ``inline_parse_bytes`` (one big body must not stall every
    other request)."""
    if size > request.app.state.settings.inline_parse_bytes:
        return await asyncio.to_thread(parse, *args)
    return parse(*args)


def readiness_reasons(request: Request) -> list[str]:
    """Why the server is not ready (empty when it is): draining, or the repository's reasons."""
    reasons = request.app.state.repository.not_ready_reasons()
    if request.app.state.server.draining:
        reasons.insert(0, "the server is shutting down")
    return reasons
