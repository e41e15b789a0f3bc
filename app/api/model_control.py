"""Triton's model repository, configuration and statistics extensions (KServe v2 protocol), so
``tritonclient``'s ``get_model_repository_index``, ``load_model``, ``unload_model``,
``get_model_config`` and ``get_inference_statistics`` work unchanged.

- ``POST /v2/repository/index``: every version of the repository with its state
  (``READY``, ``LOADING``, ``UNAVAILABLE``) and the reason when it is not ready;
- ``POST /v2/repository/models/{name}/load``: serve the model (again), loading new or changed
  versions; ``.../unload``: stop serving it (drained first) until it is loaded again;
- ``GET /v2/models/{name}[/versions/{v}]/config``: Triton's model configuration (inputs,
  outputs, batching, version policy);
- ``GET /v2/models[/{name}[/versions/{v}]]/stats``: request and model-call counts and times.

Load and unload are off unless ``SERVING_MODEL_CONTROL=true`` (403), as Triton refuses them
outside its explicit mode: whoever reaches them can stop every model. With ``SERVING_API_KEYS``
set every one of these needs a key, like every endpoint but the health probes.

Each worker process (``SERVING_WORKERS``) holds its own models: with ``python -m app``'s workers
a load or unload is published to all of them and answered once each has applied it
(``app.worker_control``; 504 past ``model_control_timeout_s``). Workers that share no such
control (each ``create_app`` under another process manager) refuse both (400, as Triton refuses
them outside its explicit control mode); the repository's polling reaches every worker. The
statistics are the answering worker's (``/metrics`` sums every worker's).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import RepositoryDep, SettingsDep
from app.api.status_replies import (
    NOT_FOUND,
    Empty,
    ModelConfig,
    ModelStatistics,
    ProtocolError,
    RepositoryIndexEntry,
)
from app.codec import json_response, loads_object
from app.config import Settings
from app.errors import ForbiddenError, InvalidInputError
from app.repository import ModelRepository
from app.servable import ServedModel

router = APIRouter(prefix="/v2", tags=["KServe v2: model repository"])
CONTROL_REFUSED: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ProtocolError,
        "description": "The model control API is off (SERVING_MODEL_CONTROL, off by default)",
    },
    400: {
        "model": ProtocolError,
        "description": "Refused: a body this server does not take, a load that failed, or "
        "several worker processes that share no model control (each holds its own models)",
    },
    504: {
        "model": ProtocolError,
        "description": "Recorded, but not every worker process applied it within "
        "model_control_timeout_s",
    },
}

_TRITON_TYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "string": "TYPE_STRING",
}


async def _optional_json(request: Request) -> dict[str, Any]:
    """tritonclient sends these bodies empty or as a small JSON object."""
    body = await request.body()
    return loads_object(body) if body.strip() else {}


@router.post(
    "/repository/index",
    summary="Repository index (Triton)",
    response_model=list[RepositoryIndexEntry],
)
async def repository_index(request: Request, repository: RepositoryDep) -> Response:
    options = await _optional_json(request)
    rows = repository.index()
    if options.get("ready"):
        rows = [row for row in rows if row["state"] == "READY"]
    return json_response(rows)


@router.post(
    "/repository/models/{name}/load",
    summary="Load a model (Triton)",
    response_model=Empty,
    responses={**NOT_FOUND, **CONTROL_REFUSED},
)
async def load_model(
    name: str, request: Request, repository: RepositoryDep, settings: SettingsDep
) -> Response:
    _require_model_control(settings, repository, "load")
    options = await _optional_json(request)
    parameters = options.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInputError("'parameters' must be an object")
    if "config" in parameters or any(key.startswith("file:") for key in parameters):
        raise InvalidInputError(
            "loading a model from a request's config or files is not supported: put the "
            "version folder in the repository, then load"
        )
    await repository.load_model(name)
    return json_response({})


@router.post(
    "/repository/models/{name}/unload",
    summary="Unload a model (Triton)",
    response_model=Empty,
    responses={**NOT_FOUND, **CONTROL_REFUSED},
)
async def unload_model(
    name: str, request: Request, repository: RepositoryDep, settings: SettingsDep
) -> Response:
    _require_model_control(settings, repository, "unload")
    await _optional_json(request)
    await repository.unload_model(name)
    return json_response({})


def _require_model_control(settings: Settings, repository: ModelRepository, action: str) -> None:
    """Off unless ``model_control`` (403); with several workers, only with ``python -m app``'s
    shared control (another process manager's workers, each with its own ``create_app``: only
    the receiving worker would change; 400)."""
    if not settings.model_control:
        raise ForbiddenError(
            f"cannot {action} a model: the model control API is off (SERVING_MODEL_CONTROL); "
            "change the repository (a version folder, the model's config.json) and let polling "
            "(SERVING_REPOSITORY_POLL_SECONDS) apply it, or serve with SERVING_MODEL_CONTROL=true"
        )
    if settings.workers > 1 and repository.control is None:
        raise InvalidInputError(
            f"cannot {action} a model through the API with {settings.workers} worker processes "
            "(SERVING_WORKERS) that do not share model control (not started by python -m app): "
            "only the worker that received the request would. Change the repository (a "
            "version folder, the model's config.json) and let polling "
            "(SERVING_REPOSITORY_POLL_SECONDS) reach every worker, or serve with python -m app"
        )


def _dims(shape: tuple[int | None, ...]) -> list[int]:
    """Triton's dims leave out the batch dimension."""
    return [-1 if d is None else d for d in shape[1:]]


def _tensor(name: str, spec) -> dict[str, Any]:
    return {
        "name": name,
        "data_type": _TRITON_TYPES.get(spec.dtype, "TYPE_INVALID"),
        "dims": _dims(spec.shape),
    }


def _config(model: ServedModel, repository) -> dict[str, Any]:
    batching = model.batching
    policy = repository.policy_of(model.name).describe()
    return {
        "name": model.name,
        "platform": "tensorflow_savedmodel",
        "backend": "tensorflow",
        "version_policy": {"all": {}} if "all" in policy else policy,
        "max_batch_size": batching.max_batch_size,
        "input": [_tensor(k, s) for k, s in model.inputs.items()],
        "output": [_tensor(k, s) for k, s in model.outputs.items()],
        "dynamic_batching": {
            "max_queue_delay_microseconds": int(batching.max_wait_ms * 1000),
            "default_queue_policy": {
                "max_queue_size": batching.max_queue_size,
                "default_timeout_microseconds": int(batching.request_timeout_ms * 1000),
                "timeout_action": "REJECT",
            },
        },
        "parameters": {
            "version": {"string_value": str(model.version)},
            "labels": {
                "string_value": ",".join(
                    f"{label}={v}" for label, v in sorted(repository.labels_of(model.name).items())
                )
            },
        },
    }


@router.get(
    "/models/{name}/config",
    summary="Model configuration (Triton)",
    response_model=ModelConfig,
    responses=NOT_FOUND,
)
async def model_config(name: str, repository: RepositoryDep) -> Response:
    return json_response(_config(repository.get(name, ready=False), repository))


@router.get(
    "/models/{name}/versions/{version}/config",
    summary="Model configuration (Triton)",
    response_model=ModelConfig,
    responses=NOT_FOUND,
)
async def model_version_config(name: str, version: str, repository: RepositoryDep) -> Response:
    return json_response(_config(repository.get(name, version, ready=False), repository))


def _stats(model: ServedModel) -> dict[str, Any]:
    stats = model.batcher.stats
    empty = {"count": 0, "ns": 0}
    return {
        "name": model.name,
        "version": str(model.version),
        "last_inference": stats.last_inference_ms,
        "inference_count": stats.inference_count,
        "execution_count": stats.execution_count,
        "inference_stats": {
            "success": stats.success.as_dict(),
            "fail": stats.fail.as_dict(),
            "queue": stats.queue.as_dict(),
            "compute_input": empty,
            "compute_infer": stats.compute_infer.as_dict(),
            "compute_output": empty,
            "cache_hit": empty,
            "cache_miss": empty,
        },
        "batch_stats": [
            {
                "batch_size": size,
                "compute_input": empty,
                "compute_infer": duration.as_dict(),
                "compute_output": empty,
            }
            for size, duration in sorted(stats.batches.items())
        ],
    }


@router.get(
    "/models/stats",
    summary="Inference statistics of every model (Triton)",
    response_model=ModelStatistics,
)
async def all_stats(repository: RepositoryDep) -> Response:
    return json_response({"model_stats": [_stats(m) for m in repository.all()]})


@router.get(
    "/models/{name}/stats",
    summary="Inference statistics (Triton)",
    response_model=ModelStatistics,
    responses=NOT_FOUND,
)
async def model_stats(name: str, repository: RepositoryDep) -> Response:
    return json_response({"model_stats": [_stats(m) for m in repository.versions(name)]})


@router.get(
    "/models/{name}/versions/{version}/stats",
    summary="Inference statistics (Triton)",
    response_model=ModelStatistics,
    responses=NOT_FOUND,
)
async def model_version_stats(name: str, version: str, repository: RepositoryDep) -> Response:
    return json_response({"model_stats": [_stats(repository.get(name, version, ready=False))]})
