"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.repository import ModelRepository
from app.servable import ServedModel


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


RepositoryDep = Annotated[ModelRepository, Depends(get_repository)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
