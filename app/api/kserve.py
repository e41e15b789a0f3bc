"""KServe v2 / Open Inference Protocol (REST), so Triton and KServe clients work unchanged.

Besides JSON tensors this implements Triton's binary tensor data extension (what
``tritonclient.http`` sends and asks for by default) and its classification extension
(``"parameters": {"classification": k}`` on an output answers the top-k ``"score:index:label"``).
Request ``parameters.timeout`` (microseconds, as in Triton) shortens the request's deadline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import RepositoryDep, model_from_path, off_loop_if_large, readiness_reasons
from app.api.kserve_codec import (
    BINARY_HEADER,
    DATATYPES,
    datatype_of,
    decode_request,
    encode_reply,
)
from app.api.protocol_route import post_routes
from app.api.status_replies import (
    NOT_FOUND,
    Liveness,
    ModelMetadata,
    ModelReadiness,
    ProtocolError,
    Readiness,
    ServerMetadata,
)
from app.codec import dumps, json_response
from app.config import Settings
from app.examples import SEVEN_PIXELS
from app.servable import ServedModel

router = APIRouter(prefix="/v2", tags=["KServe v2"])

SERVER_NAME = "tf-model-serving"
SERVER_VERSION = "0.1.0"


def _tensor_schema(*, parameters: str, data: dict[str, Any]) -> dict[str, Any]:
    """The Open Inference Protocol's tensor (``$request_input``, ``$response_output``)."""
    return {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string", "enum": list(DATATYPES)},
            "parameters": {"type": "object", "description": parameters},
            "data": data,
        },
    }


_INFER_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "parameters": {"type": "object"},
                    "inputs": {
                        "type": "array",
                        "items": _tensor_schema(
                            parameters="`binary_data_size`: the tensor's bytes follow the JSON "
                            "(binary tensor extension).",
                            data={
                                "description": "The values, flat or nested, row-major; left out "
                                "for a binary tensor."
                            },
                        ),
                    },
                    "outputs": {"type": "array", "items": {"type": "object"}},
                },
            },
            "example": {
                "inputs": [
                    {
                        "name": "pixels",
                        "shape": [1, 28, 28, 1],
                        "datatype": "UINT8",
                        "data": np.ravel(SEVEN_PIXELS).tolist(),  # mnist: a handwritten 7
                    }
                ]
            },
        }
    },
}


# The Open Inference Protocol's $inference_response (KServe, docs/predict-api/v2).
_INFER_REPLY = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string", "description": "The request's `id`, when it gave one."},
                "parameters": {"type": "object"},
                "outputs": {
                    "type": "array",
                    "items": _tensor_schema(
                        parameters="`binary_data_size` for a binary output.",
                        data={
                            "type": "array",
                            "description": "The values, flat, row-major (left out for a binary "
                            "output).",
                        },
                    ),
                },
            },
        },
    },
    "application/octet-stream": {
        "schema": {
            "type": "string",
            "format": "binary",
            "description": "When an output asks for `binary_data`: the JSON reply, then each "
            "binary output's bytes; the `Inference-Header-Content-Length` header gives the "
            "JSON's length.",
        }
    },
}


# A model's readiness: 503 with the same body while a version loads or after it failed; with
# an error body while the server has not reached the model's load yet (just started).
MODEL_NOT_READY = {
    **NOT_FOUND,
    503: {
        "model": ModelReadiness | ProtocolError,
        "description": "Not ready (loading, failed, or not reached yet at start-up)",
    },
}


# ---- server and model status ---------------------------------------------------------------
@router.get("", summary="Server metadata", response_model=ServerMetadata)
async def server_metadata() -> Response:
    return json_response(
        {
            "name": SERVER_NAME,
            "version": SERVER_VERSION,
            "extensions": ["binary_tensor_data", "classification"],
        }
    )


@router.get("/health/live", summary="Liveness", response_model=Liveness)
async def live() -> Response:
    return json_response({"live": True})


@router.get(
    "/health/ready",
    summary="Readiness: every model loaded and warmed up",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: `reasons` says why"}},
)
async def ready(request: Request) -> Response:
    reasons = readiness_reasons(request)
    if not reasons:
        return json_response({"ready": True})
    return json_response({"ready": False, "reasons": reasons}, 503)


def _tensor_meta(name: str, dtype: str, shape: tuple[int | None, ...]) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype_of(dtype),
        "shape": [-1 if d is None else d for d in shape],
    }


def _model_metadata(model: ServedModel, repository) -> dict[str, Any]:
    return {
        "name": model.name,
        "versions": [str(m.version) for m in repository.versions(model.name)],
        "platform": "tensorflow_savedmodel",
        "inputs": [_tensor_meta(k, *s) for k, s in model.inputs.items()],
        "outputs": [_tensor_meta(k, *s) for k, s in model.outputs.items()],
        "parameters": {
            "version": str(model.version),
            "device": model.device,
            "task": model.task,
            "labels": model.labels,
        },
    }


@router.get(
    "/models/{name}", summary="Model metadata", response_model=ModelMetadata, responses=NOT_FOUND
)
async def model_metadata(name: str, repository: RepositoryDep) -> Response:
    return json_response(_model_metadata(repository.get(name), repository))


@router.get(
    "/models/{name}/versions/{version}",
    summary="Model metadata (one version)",
    response_model=ModelMetadata,
    responses=NOT_FOUND,
)
async def model_version_metadata(name: str, version: str, repository: RepositoryDep) -> Response:
    return json_response(_model_metadata(repository.get(name, version), repository))


def _ready_reply(model: ServedModel) -> Response:
    body = {"name": model.name, "version": str(model.version), "ready": model.ready}
    if model.error:
        body["error"] = model.error
    return json_response(body, 200 if model.ready else 503)


@router.get(
    "/models/{name}/ready",
    summary="Model readiness",
    response_model=ModelReadiness,
    responses=MODEL_NOT_READY,
)
async def model_ready(name: str, repository: RepositoryDep) -> Response:
    return _ready_reply(repository.get(name, ready=False))


@router.get(
    "/models/{name}/versions/{version}/ready",
    summary="Model readiness (one version)",
    response_model=ModelReadiness,
    responses=MODEL_NOT_READY,
)
async def model_version_ready(name: str, version: str, repository: RepositoryDep) -> Response:
    return _ready_reply(repository.get(name, version, ready=False))


# ---- inference ----------------------------------------------------------------------------
async def infer(request: Request) -> Response:
    """``/infer`` of the model (and version) the path names."""
    return await _infer(model_from_path(request), request)


inference_routes = post_routes(
    infer,
    {
        "/v2/models/{name}/infer": "Inference",
        "/v2/models/{name}/versions/{version}/infer": "Inference (one version)",
    },
    tags=router.tags,
    request_body=_INFER_BODY,
    reply_content=_INFER_REPLY,
)


async def _infer(model: ServedModel, request: Request) -> Response:
    model.admit()  # 503 / 429 before the body is read
    settings: Settings = request.app.state.settings
    body = await request.body()
    header_length = request.headers.get(BINARY_HEADER)
    payload, arrays, size, requested, timeout_s = await off_loop_if_large(
        request, len(body), decode_request, model, body, header_length, settings
    )

    outputs = await model.run(arrays, size, timeout_s=timeout_s)

    reply, blobs = encode_reply(model, payload, requested, outputs)
    if not blobs:
        return json_response(reply)
    header = dumps(reply)
    return Response(
        b"".join([header, *blobs]),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
