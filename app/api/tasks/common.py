"""Shared parts of the typed task endpoints: model lookup by task, limits, replies, problems."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response

from app import metrics
from app.classification import as_class_probabilities, class_names, decide
from app.codec import json_response
from app.errors import InvalidInputError, ModelNotFoundError, PayloadTooLargeError
from app.repository import ModelRepository
from app.servable import ServedModel

IMAGE_CLASSIFICATION = "image_classification"
TEXT_CLASSIFICATION = "text_classification"
TABULAR_CLASSIFICATION = "tabular_classification"
FORECASTING = "forecasting"

VersionQuery = Annotated[
    str | None,
    Query(
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Model version number or label (e.g. `stable`, from the model's "
        "config.json); default: the highest ready version.",
        examples=["1"],
    ),
]


MAX_UNKNOWN_FIELDS = 16


class RequestObject(BaseModel):
    """A JSON object of a typed endpoint's request: an unknown field is an error (a typo is not
    ignored), and an object with far more fields than it has is one error, not one per field
    (50,000 unknown fields made 50,000 error objects: 0.27 s and a 5 MB reply)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_fields(cls, data: Any) -> Any:
        known = len(cls.model_fields)
        if isinstance(data, dict) and len(data) > known + MAX_UNKNOWN_FIELDS:
            raise ValueError(
                f"{len(data)} fields, while this object has {known}: more than "
                f"{MAX_UNKNOWN_FIELDS} unknown fields are not named one by one"
            )
        return data


def task_model(
    repository: ModelRepository, name: str, task: str, version: int | str | None = None
) -> ServedModel:
    """The served model ``name`` (version or highest ready), which must be a ``task`` model:
    404 when it does not exist or serves another task; 429 when its queue is full (before any
    decoding or preprocessing is spent on the request)."""
    metrics.name_model(name)
    model = repository.get(name, version)
    if model.task != task:
        raise ModelNotFoundError(
            f"model '{name}' serves task '{model.task}', not '{task}'", field="model"
        )
    model.admit()
    return model


def check_count(count: int, limit: int, field: str, what: str) -> None:
    if count > limit:
        raise PayloadTooLargeError(
            f"{count} {what} in one request, more than the limit of {limit}", field=field
        )


def check_text_length(texts: list[str], limit: int, field: str) -> None:
    for i, text in enumerate(texts):
        if len(text) > limit:
            raise PayloadTooLargeError(
                f"text of {len(text)} characters, more than the limit of {limit}",
                field=f"{field}[{i}]",
            )


def check_finite(array: np.ndarray, model: ServedModel) -> np.ndarray:
    """Model outputs must be finite numbers; extreme inputs can overflow float32 inside it."""
    if not np.isfinite(array).all():
        raise InvalidInputError(
            f"model '{model.name}' produced non-finite values for these inputs; "
            "check them for extreme values"
        )
    return array


def class_probabilities(outputs: dict[str, np.ndarray], model: ServedModel) -> np.ndarray:
    """``(N, K)`` probabilities in the order of ``model.labels``."""
    return check_finite(as_class_probabilities(outputs["output_0"]), model)


# ---- replies ----------------------------------------------------------------------------------
class TaskReply(BaseModel):
    model: str = Field(description="Name of the model that answered.")
    version: int = Field(description="Version of the model that answered.")


class BinaryPrediction(BaseModel):
    label: str = Field(description="The predicted class.")
    score: float = Field(ge=0, le=1, description="Probability of the positive class.")


class BinaryReply(TaskReply):
    predictions: list[BinaryPrediction]


def binary_reply(model: ServedModel, outputs: dict[str, np.ndarray]) -> Response:
    """A binary classifier's outputs as the reply: ``labels[1]`` is the positive class
    (docs/CONTRACTS.md); the label is the positive class from the model's decision threshold
    on (0.5 unless its metadata chose another). A :class:`BinaryReply` by construction (finite
    probabilities in [0, 1]; tests validate replies against the schema), written as plain data
    by orjson: building the pydantic objects, then validating and serializing them again, cost
    more than the rest of the reply."""
    labels = class_names(model.labels, 2)
    probabilities = class_probabilities(outputs, model)
    predictions = [
        {"label": labels[choice], "score": float(p[1])}
        for p, choice in zip(
            probabilities, decide(probabilities, model.decision_threshold), strict=True
        )
    ]
    return json_response(
        {"model": model.name, "version": model.version, "predictions": predictions}
    )


def occlusion_reply(model: ServedModel, occluded: str, explained: list[dict]) -> dict[str, Any]:
    """A binary model's occlusion explanations (``app.explain``) as the reply, each labelled as
    :func:`binary_reply` would label its score; ``occluded`` says what each feature was
    replaced by ("without the token")."""
    labels = class_names(model.labels, 2)
    positive = labels[1]
    threshold = 0.5 if model.decision_threshold is None else model.decision_threshold
    for item in explained:
        item["label"] = labels[int(item["score"] >= threshold)]
    return {
        "model": model.name,
        "version": model.version,
        "method": f"occlusion: P({positive}) minus P({positive}) {occluded}",
        "positive_class": positive,
        "explanations": explained,
    }


# ---- problem documentation (app/errors.py writes the bodies) -----------------------------------
class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    field: str | None = Field(default=None, description="The offending field, when known.")
    file: str | None = Field(default=None, description="The offending file, when known.")
    request_id: str | None = Field(
        default=None,
        description="The request's X-Request-ID; for a server error (5xx), one made for it.",
    )


PROBLEM_REF = "#/components/schemas/Problem"


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the problem statuses an endpoint can answer."""
    reasons = {
        400: "Malformed input (corrupt image, non-finite or non-numeric value, ...)",
        404: "No such model, or the model serves another task",
        413: "A limit is exceeded (body, files, file bytes, pixels, items, characters, history)",
        415: "Wrong content type or unsupported image format",
        422: "Request validation failed",
        429: "The model's queue is full; retry later",
        503: "The model is not ready",
        504: "The request's deadline passed",
    }
    return {
        status: {
            "model": Problem,
            "description": reasons[status],
            "content": {"application/problem+json": {"schema": {"$ref": PROBLEM_REF}}},
        }
        for status in statuses
    }


COMMON_PROBLEMS = (400, 404, 413, 415, 422, 429, 503, 504)
