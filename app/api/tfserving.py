"""TensorFlow Serving REST API v1, so TF Serving clients work unchanged.

- ``GET  /v1/models/{name}[/versions/{v}]``            model_version_status
- ``GET  /v1/models/{name}[/versions/{v}]/metadata``   signature_def
- ``POST /v1/models/{name}[/versions/{v}]:predict``    ``instances`` (row) or ``inputs`` (columnar)

Errors are ``{"error": "..."}`` (see ``app.errors``). The hot path reads the raw body with orjson
and answers an orjson-encoded response: no per-element validation models.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import RepositoryDep, model_from_path, off_loop_if_large
from app.api.protocol_route import post_routes
from app.api.status_replies import NOT_FOUND, TFServingMetadata, TFServingModelStatus
from app.api.tfserving_codec import decode_request, encode_predictions
from app.codec import json_response
from app.config import Settings
from app.errors import InvalidInputError, PayloadTooLargeError
from app.examples import SEVEN_PIXELS
from app.explain import explain_arrays, require_explainable
from app.servable import SIGNATURE, ServedModel

router = APIRouter(prefix="/v1/models", tags=["TensorFlow Serving v1"], responses=NOT_FOUND)

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
            "example": {"instances": [SEVEN_PIXELS]},  # mnist: a handwritten 7
        }
    },
}


_PREDICT_REPLY = {
    "application/json": {
        "schema": {
            "type": "object",
            "description": "`:predict`: `predictions` for a row-format request, `outputs` for "
            "a columnar one; `:explain`: `explanations`.",
            "properties": {
                "predictions": {
                    "type": "array",
                    "items": {},
                    "description": "One per instance: the output, or with several outputs an "
                    "object of output name to value.",
                },
                "outputs": {
                    "description": "The output for the whole batch, or with several outputs an "
                    "object of output name to values."
                },
                "explanations": {"type": "array", "items": {"type": "object"}},
            },
        },
        "example": {"predictions": [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]]},
    }
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


@router.get("/{name}", summary="Model version status", response_model=TFServingModelStatus)
async def model_status(name: str, repository: RepositoryDep) -> Response:
    return json_response(
        {"model_version_status": [_version_status(m) for m in reversed(repository.versions(name))]}
    )


@router.get(
    "/{name}/versions/{version}",
    summary="Model version status (one version)",
    response_model=TFServingModelStatus,
)
async def model_version_status(name: str, version: str, repository: RepositoryDep) -> Response:
    status = _version_status(repository.get(name, version, ready=False))
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
        # What a client needs to build inputs (the demo page's forms): tabular columns with
        # their types, values and defaults; image size; forecast window.
        **{k: model.metadata[k] for k in ("columns", "image", "forecast") if k in model.metadata},
    }


@router.get(
    "/{name}/labels/{label}",
    summary="Model version status (by version label)",
    response_model=TFServingModelStatus,
)
async def model_label_status(name: str, label: str, repository: RepositoryDep) -> Response:
    status = _version_status(repository.get(name, label, ready=False))
    return json_response({"model_version_status": [status]})


@router.get(
    "/{name}/labels/{label}/metadata",
    summary="Model signature (by version label)",
    response_model=TFServingMetadata,
)
async def model_label_metadata(name: str, label: str, repository: RepositoryDep) -> Response:
    return json_response(_metadata(repository.get(name, label)))


@router.get("/{name}/metadata", summary="Model signature", response_model=TFServingMetadata)
async def model_metadata(name: str, repository: RepositoryDep) -> Response:
    return json_response(_metadata(repository.get(name)))


@router.get(
    "/{name}/versions/{version}/metadata",
    summary="Model signature (one version)",
    response_model=TFServingMetadata,
)
async def model_version_metadata(name: str, version: str, repository: RepositoryDep) -> Response:
    return json_response(_metadata(repository.get(name, version)))


# ---- predict ------------------------------------------------------------------------------
async def predict(request: Request) -> Response:
    """``:predict`` of the model (and version or label) the path names."""
    return await _predict(model_from_path(request), request.path_params["method"], request)


inference_routes = post_routes(
    predict,
    {
        "/v1/models/{name}:{method}": "Predict (:predict), or explain (:explain)",
        "/v1/models/{name}/versions/{version}:{method}": "Predict (one version)",
        "/v1/models/{name}/labels/{label}:{method}": "Predict (the version a label names, "
        "e.g. stable or canary)",
    },
    tags=router.tags,
    request_body=_PREDICT_BODY,
    reply_content=_PREDICT_REPLY,
)


async def _predict(model: ServedModel, method: str, request: Request) -> Response:
    if method == "explain":
        return await _explain(model, request)
    if method != "predict":
        raise InvalidInputError(
            f"unsupported method ':{method}': this server implements :predict and :explain"
        )
    model.admit()  # 503 / 429 before the body is read
    settings: Settings = request.app.state.settings
    raw = await request.body()
    columnar, arrays, size = await off_loop_if_large(
        request, len(raw), decode_request, model, raw, settings
    )
    outputs = await model.run(arrays, size)
    if not columnar:
        return encode_predictions(outputs)
    if len(outputs) == 1:
        return json_response({"outputs": next(iter(outputs.values()))})
    return json_response({"outputs": outputs})


async def _explain(model: ServedModel, request: Request) -> Response:
    """KServe v1's ``:explain`` verb: the ``:predict`` body in. For image CNNs exported with
    explanation signatures: per instance the predicted class, its Grad-CAM heat map and each
    block's activations (``?values=false`` leaves their numbers out, keeping the PNG grids).
    For binary text and tabular classifiers: occlusion attributions and the layers'
    activations, as their typed ``:explain`` endpoints answer."""
    require_explainable(model)  # before the body is read
    settings: Settings = request.app.state.settings
    raw = await request.body()
    _, arrays, size = await off_loop_if_large(
        request, len(raw), decode_request, model, raw, settings
    )
    if size > settings.max_explain_instances:
        raise PayloadTooLargeError(
            f"{size} instances to explain, more than the limit of "
            f"{settings.max_explain_instances} (max_explain_instances)"
        )
    values = request.query_params.get("values", "true").lower() not in ("false", "0", "no")
    explained = await request.app.state.explainer.run(
        explain_arrays,
        model,
        arrays,
        size,
        values,
        settings.max_explain_tokens,
    )
    return json_response({"explanations": explained})
