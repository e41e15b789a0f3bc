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

from fastapi import APIRouter, FastAPI
from starlette.middleware.cors import CORSMiddleware

from app import __doc__ as app_doc
from app import metrics
from app.admission import AdmissionMiddleware, ServerState
from app.api import (
    demo,
    docs,
    kserve,
    model_control,
    protocol_route,
    reports,
    route_index,
    service,
    tfserving,
)
from app.api.tasks import routers as task_routers
from app.compression import GzipForClientsThatAcceptIt
from app.config import Settings, get_settings
from app.errors import install_error_handlers
from app.explain import Explainer
from app.image_pool import ImagePool
from app.limits import RequestBodyMiddleware
from app.metrics import MetricsMiddleware
from app.repository import ModelRepository
from app.security import ApiKeyMiddleware, open_paths
from app.worker_control import SharedControl

logger = logging.getLogger("app")


def create_app(settings: Settings | None = None, control: SharedControl | None = None) -> FastAPI:
    """The app; ``control``: the files the workers of ``python -m app`` share, so a model load
    or unload through the API reaches each of them (``app.worker_control``)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _configure_logging(settings.log_level)
        # No per-request logging by default: uvicorn's access log is a formatted line per request.
        logging.getLogger("uvicorn.access").disabled = not settings.access_log
        # Uploaded images are decoded here, a few at a time: bounded memory under any load.
        image_pool = ImagePool(settings.image_workers)
        app.state.image_pool = image_pool
        explainer = Explainer(
            settings.explain_concurrency,
            settings.explain_max_waiting,
            settings.explain_timeout_ms / 1000,
        )
        app.state.explainer = explainer
        repository = ModelRepository(settings, control)
        app.state.repository = repository
        repository.discover()  # a missing or empty models folder stops start-up here
        app.openapi()  # 0.1 s to build: here, not on the event loop of /docs' first visitor
        if not settings.load_in_background:
            await _load_then_freeze(repository)
        # What runs beside the requests: the loading (if in the background), then the polling.
        background = asyncio.create_task(
            _background(repository, settings.load_in_background, settings.repository_poll_seconds)
        )
        try:
            yield
        finally:
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
            # The server has stopped taking requests: let the queued ones finish.
            repository.leave_control()
            await repository.drain(settings.graceful_timeout_seconds)
            await repository.close()
            image_pool.shutdown()
            explainer.close()

    app = FastAPI(
        title="tf-model-serving",
        version="0.1.0",
        description=app_doc or "",
        lifespan=lifespan,
        docs_url=None,  # served from local files by app.api.docs, with /openapi.json
        redoc_url=None,
        openapi_url=None,
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": settings.opentelemetry,
        },
    )
    app.state.settings = settings
    app.state.server = ServerState()
    app.state.exposition = metrics.Exposition(settings.metrics_max_age_s)
    app.state.openapi_json = {}  # root path -> the schema serialized (app.api.docs)
    install_error_handlers(app)
    # Added innermost first: a request meets them in the reverse order.
    if settings.gzip_min_bytes:
        app.add_middleware(
            GzipForClientsThatAcceptIt,
            minimum_size=settings.gzip_min_bytes,
            level=settings.gzip_level,
        )
    app.add_middleware(
        RequestBodyMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        body_min_rate_bytes=settings.body_min_rate_bytes,
        max_body_memory_bytes=settings.max_body_memory_bytes,
    )
    if settings.api_keys:
        app.add_middleware(
            ApiKeyMiddleware,
            keys=[key.get_secret_value() for key in settings.api_keys],
            open_paths=open_paths(settings),
        )
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Content-Encoding",
                "Inference-Header-Content-Length",
                "X-Request-ID",
            ],
            expose_headers=["Inference-Header-Content-Length", "Retry-After", "X-Request-ID"],
        )
    app.add_middleware(
        AdmissionMiddleware, state=app.state.server, max_inflight=settings.max_inflight_requests
    )
    app.add_middleware(MetricsMiddleware)
    for router in (
        *task_routers,  # the typed endpoints first: matched in fewer steps
        docs.router,
        demo.router,
        service.router,
        reports.router,  # before tfserving: /report is not a version label
        tfserving.router,
        model_control.router,  # before kserve: /v2/models/stats is not a model
        kserve.router,
    ):
        add_routes(app, router)
    protocol_route.install(app, [*tfserving.inference_routes, *kserve.inference_routes])
    route_index.install(app.router)  # ahead of all: each path's candidate routes from a dict
    return app


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes, added to the app's own list as they are. ``include_router`` (FastAPI
    0.165) keeps the router as a nested branch that every request walks through (route contexts,
    version checks): a fifth of a typed request's CPU. These routers carry their prefix and tags
    on each route already, and have no router-level dependencies."""
    app.router.routes.extend(router.routes)


async def _background(repository: ModelRepository, load: bool, poll_s: float) -> None:
    if load:
        await _load_then_freeze(repository)
    followers = []
    if repository.control is not None:
        followers.append(repository.follow_control())
    if poll_s > 0:
        followers.append(repository.poll(poll_s))
    await asyncio.gather(*followers)


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
