"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.repository import ModelRepository


# async: FastAPI runs a plain ``def`` dependency in a worker thread, two thread hops per request.
async def get_repository(request: Request) -> ModelRepository:
    return request.app.state.repository


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


RepositoryDep = Annotated[ModelRepository, Depends(get_repository)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
