"""TensorFlow Serving REST API v1, so TF Serving clients work unchanged.

- ``GET  /v1/models/{name}[/versions/{v}]``            model_version_status
- ``GET  /v1/models/{name}[/versions/{v}]/metadata``   signature_def
- ``POST /v1/models/{name}[/versions/{v}]:predict``    ``instances`` (row) or ``inputs`` (columnar)

Errors are ``{"error": "..."}`` (see ``app.errors``). The hot path reads the raw body with orjson
and answers an orjson-encoded response: no per-element validation models.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import RepositoryDep, model_from_path, off_loop_if_large
from app.api.protocol_route import ProtocolRoute
from app.codec import (
    decode_b64,
    is_b64,
    json_response,
    loads_object,
    numeric_instances,
)
from app.config import Settings
from app.errors import InvalidInputError
from app.servable import SIGNATURE, ServedModel

router = APIRouter(prefix="/v1/models", tags=["TensorFlow Serving v1"])

_TF_DTYPES = {
    "float16": "DT_HALF",
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "int8": "DT_INT8",
    "int16": "DT_INT16",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "uint8": "DT_UINT8",
    "uint16": "DT_UINT16",
    "uint32": "DT_UINT32",
    "uint64": "DT_UINT64",
    "bool": "DT_BOOL",
    "string": "DT_STRING",
}

_PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": 'Row format {"instances": [...]} or columnar {"inputs": ...}; '
                'bytes as {"b64": "..."}.',
                "properties": {
                    "signature_name": {"type": "string", "default": SIGNATURE},
                    "instances": {"type": "array", "items": {}},
                    "inputs": {},
                },
            },
            "example": {"instances": [[[[0]] * 28] * 28]},
        }
    },
}


# ---- status and metadata ------------------------------------------------------------------
def _version_status(model: ServedModel) -> dict[str, Any]:
    state = "END" if model.state == "FAILED" else model.state
    return {
        "version": str(model.version),
        "state": state,
        "status": {
            "error_code": "UNKNOWN" if model.error else "OK",
            "error_message": model.error or "",
        },
    }


@router.get("/{name}", summary="Model version status")
async def model_status(name: str, repository: RepositoryDep) -> Response:
    return json_response(
        {"model_version_status": [_version_status(m) for m in reversed(repository.versions(name))]}
    )


@router.get("/{name}/versions/{version}", summary="Model version status (one version)")
async def model_version_status(name: str, version: str, repository: RepositoryDep) -> Response:
    status = _version_status(repository.find(name, version))
    return json_response({"model_version_status": [status]})


def _tensor_info(name: str, dtype: str, shape: tuple[int | None, ...]) -> dict[str, Any]:
    return {
        "dtype": _TF_DTYPES.get(dtype, "DT_INVALID"),
        "tensor_shape": {
            "dim": [{"size": str(-1 if d is None else d), "name": ""} for d in shape],
            "unknown_rank": False,
        },
        "name": f"{SIGNATURE}_{name}:0",
    }


def _metadata(model: ServedModel) -> dict[str, Any]:
    signature = {
        "inputs": {k: _tensor_info(k, *s) for k, s in model.inputs.items()},
        "outputs": {k: _tensor_info(k, *s) for k, s in model.outputs.items()},
        "method_name": "tensorflow/serving/predict",
    }
    return {
        "model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
        # Not in TF Serving's reply; clients ignore unknown keys.
        "device": model.device,
        "task": model.task,
        "labels": model.labels,
    }


@router.get("/{name}/labels/{label}", summary="Model version status (by version label)")
async def model_label_status(name: str, label: str, repository: RepositoryDep) -> Response:
    status = _version_status(repository.find(name, label))
    return json_response({"model_version_status": [status]})


@router.get("/{name}/labels/{label}/metadata", summary="Model signature (by version label)")
async def model_label_metadata(name: str, label: str, repository: RepositoryDep) -> Response:
    return json_response(_metadata(repository.get(name, label)))


@router.get("/{name}/metadata", summary="Model signature")
async def model_metadata(name: str, repository: RepositoryDep) -> Response:
    return json_response(_metadata(repository.get(name)))


@router.get("/{name}/versions/{version}/metadata", summary="Model signature (one version)")
async def model_version_metadata(name: str, version: str, repository: RepositoryDep) -> Response:
    return json_response(_metadata(repository.get(name, version)))


# ---- predict ------------------------------------------------------------------------------
async def predict(request: Request) -> Response:
    """``:predict`` of the model (and version or label) the path names."""
    return await _predict(model_from_path(request), request.path_params["method"], request)


def _predict_route(path: str, summary: str) -> ProtocolRoute:
    return ProtocolRoute(
        path,
        predict,
        methods=["POST"],
        summary=summary,
        tags=router.tags,
        request_body=_PREDICT_BODY,
    )


inference_routes = [
    _predict_route("/v1/models/{name}:{method}", "Predict"),
    _predict_route("/v1/models/{name}/versions/{version}:{method}", "Predict (one version)"),
    _predict_route(
        "/v1/models/{name}/labels/{label}:{method}",
        "Predict (the version a label names, e.g. stable or canary)",
    ),
]


async def _predict(model: ServedModel, method: str, request: Request) -> Response:
    if method != "predict":
        raise InvalidInputError(f"unsupported method ':{method}': this server implements :predict")
    model.admit()  # 503 / 429 before the body is read
    settings: Settings = request.app.state.settings
    raw = await request.body()
    columnar, arrays, size = await off_loop_if_large(
        request, len(raw), _decode, model, raw, settings
    )
    outputs = await model.run(arrays, size)
    if not columnar:
        return _predictions(outputs)
    if len(outputs) == 1:
        return json_response({"outputs": next(iter(outputs.values()))})
    return json_response({"outputs": outputs})


def _decode(
    model: ServedModel, raw: bytes, settings: Settings
) -> tuple[bool, dict[str, np.ndarray], int]:
    """A ``:predict`` body as validated input arrays: ``(columnar?, arrays, batch size)``."""
    if len(model.inputs) == 1:
        ((name, spec),) = model.inputs.items()
        # The common single-tensor body, parsed lean.
        instances = (
            numeric_instances(
                raw,
                max_rank=settings.max_tensor_rank,
                max_instances=settings.max_instances_per_request,
            )
            if spec.dtype != "string"
            else None
        )
        if instances is not None:
            return (False, *model.validate({name: instances}))
    body = loads_object(raw, max_depth=settings.max_json_depth)
    signature = body.get("signature_name")
    if signature not in (None, "", SIGNATURE):
        raise InvalidInputError(
            f"signature '{signature}' not found; model '{model.name}' serves '{SIGNATURE}'"
        )
    has_instances, has_inputs = "instances" in body, "inputs" in body
    if has_instances == has_inputs:
        raise InvalidInputError(
            "the request must have exactly one of 'instances' (row format) or 'inputs' "
            "(columnar format)"
        )
    if has_instances:
        return (False, *model.validate(_rows_to_columns(model, body["instances"])))
    return (True, *model.validate(_columnar(model, body["inputs"])))


def _predictions(outputs: dict[str, Any]) -> Response:
    """Row format reply: the only output's rows, or one object per row naming the outputs."""
    if len(outputs) == 1:
        return json_response({"predictions": next(iter(outputs.values()))})
    size = len(next(iter(outputs.values())))
    return json_response(
        {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(size)]}
    )


def _rows_to_columns(model: ServedModel, instances: Any) -> dict[str, Any]:
    """Row format: a list of instances, each the input value or an object naming the inputs."""
    if not isinstance(instances, list):
        raise InvalidInputError("'instances' must be a list")
    if not instances:
        raise InvalidInputError("empty batch: 'instances' has no instance")
    model.check_instances(len(instances), "instances")
    names = list(model.inputs)
    first = instances[0]
    if isinstance(first, dict) and not (is_b64(first) and "b64" not in model.inputs):
        keys = set(first)
        if not all(isinstance(row, dict) and set(row) == keys for row in instances):
            raise InvalidInputError("every instance must be an object with the same input names")
        columns = {k: [row[k] for row in instances] for k in first}
    elif len(names) == 1:
        columns = {names[0]: instances}
    else:
        raise InvalidInputError(
            f"model '{model.name}' has several inputs {names}: each instance must be an object "
            "naming them"
        )
    return _decode_strings(model, columns)


def _columnar(model: ServedModel, inputs: Any) -> dict[str, Any]:
    """Columnar format: the value of the only input, or an object naming every input."""
    names = list(model.inputs)
    if isinstance(inputs, dict) and not (is_b64(inputs) and "b64" not in model.inputs):
        columns = inputs
    elif len(names) == 1:
        columns = {names[0]: inputs}
    else:
        raise InvalidInputError(
            f"model '{model.name}' has several inputs {names}: 'inputs' must be an object "
            "naming them"
        )
    return _decode_strings(model, columns)


def _decode_strings(model: ServedModel, columns: dict[str, Any]) -> dict[str, Any]:
    """``{"b64": ...}`` values become bytes for string inputs."""
    for name, value in columns.items():
        spec = model.inputs.get(name)
        if spec is not None and spec.dtype == "string":
            columns[name] = decode_b64(value)
    return columns
