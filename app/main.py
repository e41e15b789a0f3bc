"""The FastAPI application: ``uvicorn app.main:app``.

The lifespan loads and warms every model of ``Settings.models_dir`` (see ``app.repository``)
before the server reports ready, and stops the batchers on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app import __doc__ as app_doc
from app.api import kserve, service, tfserving
from app.api.tasks import router as tasks_router
from app.config import Settings, get_settings
from app.errors import install_error_handlers
from app.limits import BodySizeLimitMiddleware
from app.metrics import MetricsMiddleware
from app.repository import ModelRepository

logger = logging.getLogger("app")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _configure_logging(settings.log_level)
        # No per-request logging by default: uvicorn's access log is a formatted line per request.
        logging.getLogger("uvicorn.access").disabled = not settings.access_log
        repository = ModelRepository(settings)
        app.state.repository = repository
        loading = None
        if settings.load_in_background:
            loading = asyncio.create_task(_load_then_freeze(repository))
        else:
            await repository.load()
            _freeze_startup_objects()
        try:
            yield
        finally:
            if loading is not None and not loading.done():
                loading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loading
            await repository.close()

    app = FastAPI(
        title="tf-model-serving",
        version="0.1.0",
        description=app_doc or "",
        lifespan=lifespan,
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": settings.opentelemetry,
        },
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware)
    app.include_router(service.router)
    app.include_router(tfserving.router)
    app.include_router(kserve.router)
    app.include_router(tasks_router)
    # The hot inference paths first, as plain Starlette routes (see tfserving.fast_routes).
    app.router.routes[0:0] = [*tfserving.fast_routes(), *kserve.fast_routes()]
    return app


async def _load_then_freeze(repository: ModelRepository) -> None:
    await repository.load()
    _freeze_startup_objects()


def _freeze_startup_objects() -> None:
    """Move everything alive after start-up (TensorFlow, the models: ~10^5-10^6 objects) out of
    the cyclic garbage collector's reach. Otherwise each request's parsed JSON (hundreds of lists)
    triggers collections that rescan them all: seconds of pauses per thousand requests."""
    gc.collect()
    gc.freeze()


def _configure_logging(level: str) -> None:
    """Our loggers at ``level`` (uvicorn configures its own); no per-request logging."""
    app_logger = logging.getLogger("app")
    app_logger.setLevel(level.upper())
    if not logging.getLogger().handlers and not app_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        app_logger.addHandler(handler)


app = create_app()
