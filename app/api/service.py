"""Service endpoints: the model list, liveness/readiness for humans and probes, Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from app.api.deps import RepositoryDep, readiness_reasons
from app.api.status_replies import Health, ModelList
from app.codec import json_response

router = APIRouter(tags=["service"])


@router.get(
    "/v1/models",
    summary="Every model with its versions, readiness, device, task, labels",
    response_model=ModelList,
)
async def list_models(repository: RepositoryDep) -> Response:
    models = []
    for name in repository.names():
        versions = repository.versions(name)
        default = repository.default_version(name)
        shown = default or versions[-1]
        models.append(
            {
                "name": name,
                "default_version": default.version if default else None,
                "ready": default is not None,
                "device": shown.device,
                "task": shown.task,
                "labels": shown.labels,
                "versions": [m.status() for m in versions],
            }
        )
    return json_response({"models": models})


@router.get(
    "/healthz",
    summary="Liveness and readiness in one reply",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready: `reasons` says why"}},
)
async def healthz(request: Request, repository: RepositoryDep) -> Response:
    reasons = readiness_reasons(request)
    body = {
        "live": True,
        "ready": not reasons,
        "reasons": reasons,
        "device": repository.device,
        "models": {f"{m.name}/{m.version}": m.state for m in repository.all()},
        "empty_model_folders": repository.empty_models,
    }
    return json_response(body, 503 if reasons else 200)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="The Prometheus text exposition format (every worker's series, summed, with "
    "`SERVING_WORKERS` above 1), rendered at most once per `SERVING_METRICS_MAX_AGE_S` (1 s).",
    response_class=PlainTextResponse,
)
async def prometheus_metrics(request: Request) -> Response:
    body, content_type = request.app.state.exposition.get()
    return body.response(request, content_type)
