"""Rows of named CSV columns -> a tabular model's inputs (shared by churn and movies).

``metadata.json["columns"]`` says, per served column, its type, known values and default
(docs/CONTRACTS.md). Columns the model does not take are ignored; a null or missing value gets the
column's default; text is stripped like the training data was. A category the model never saw
in training goes to its out-of-vocabulary slot (the request schemas already restrict the columns
whose values form a small closed set, e.g. churn's, to the CSV's values).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.responses import Response

from app.api.tasks.common import (
    TABULAR_CLASSIFICATION,
    binary_reply,
    check_count,
    occlusion_reply,
    task_model,
)
from app.config import Settings
from app.errors import InvalidInputError
from app.explain import Explainer, explain_rows
from app.repository import ModelRepository
from app.servable import ServedModel


def tabular_inputs(model: ServedModel, rows: list[dict[str, Any]], field: str) -> dict[str, list]:
    columns: dict[str, dict] = model.metadata.get("columns") or {}
    inputs: dict[str, list] = {}
    for name, tensor in model.inputs.items():
        spec = columns.get(name, {})
        categorical = (
            spec.get("type", "categorical" if tensor.dtype == "string" else "numeric")
            == "categorical"
        )
        values: list = []
        for i, row in enumerate(rows):
            where = f"{field}[{i}].{name}"
            value = row.get(name)
            if isinstance(value, str):
                value = value.strip() or None
            if value is None:
                value = spec.get("default")
                if value is None:
                    raise InvalidInputError(
                        f"{where} is required by model '{model.name}'", field=where
                    )
            if categorical:
                value = str(value).strip()
            else:
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise InvalidInputError(
                        f"{where}: {value!r} is not a number", field=where
                    ) from None
            values.append(value)
        inputs[name] = values if categorical else np.asarray(values, dtype=np.float32)
    return inputs


async def classify_rows(
    repository: ModelRepository,
    settings: Settings,
    *,
    model_name: str,
    rows: list[dict[str, Any]],
    field: str,
    version: int | None,
) -> Response:
    check_count(len(rows), settings.max_items_per_request, field, field)
    model = task_model(repository, model_name, TABULAR_CLASSIFICATION, version)
    outputs = await model.infer(tabular_inputs(model, rows, field))
    return binary_reply(model, outputs)


async def explain_rows_reply(
    repository: ModelRepository,
    settings: Settings,
    explainer: Explainer,
    *,
    model_name: str,
    rows: list[dict[str, Any]],
    field: str,
    version: int | None,
) -> dict[str, Any]:
    """Per row: the prediction and each column's occlusion contribution (``app.explain``)."""
    check_count(len(rows), settings.max_explain_instances, field, field)
    model = task_model(repository, model_name, TABULAR_CLASSIFICATION, version)
    inputs = tabular_inputs(model, rows, field)
    explained = await explainer.run(explain_rows, model, inputs, len(rows))
    return occlusion_reply(model, "with the column at its default", explained)
